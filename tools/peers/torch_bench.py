#!/usr/bin/env python3
"""PyTorch on the convolutions `convscope bench --shape` times: one JSON line per shape.

usage: torch_bench.py [--runs N] [--threads N] [--device cpu|cuda] [SHAPE ...]
SHAPE = Cin,Cout,K,HxW[,stride,pad,groups]. Without shapes: the tutorial chain at 225x400
(its three layers, and the chain as a whole) and the ResNet shapes. fp32, median of N runs
after 3 warm-ups, a fresh input each run. CPU: oneDNN (torch's default CPU path), wall time.
CUDA: cuDNN with TF32 off (true fp32, as convscope computes) and cudnn.benchmark on (its
algorithm chosen by measurement, as convscope's autotune does), timed with CUDA events
around the conv alone (the GPU time, as convscope's GPU timestamps), the chain by wall time
to its end (synchronised), as convscope's chain total.

PyTorch runs with glibc's heap kept (heap.py): by default each call's fresh output of a
few MB is faulted in page by page, which made the 1×1 2.4 ms instead of 0.61."""
import argparse, json, os, statistics, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import heap

if __name__ == "__main__":
    heap.keep()
import torch

DEFAULT = ["3,12,5,225x400", "12,24,5,221x396", "24,48,5,217x392",
           "64,64,3,56x56,1,1", "64,256,1,56x56", "96,96,3,56x56,1,1,96"]

def parse(s):
    p = s.split(",")
    h, w = (int(v) for v in p[3].split("x"))
    n = lambda i, d: int(p[i]) if len(p) > i else d
    return dict(cin=int(p[0]), cout=int(p[1]), k=int(p[2]), h=h, w=w, stride=n(4, 1), pad=n(5, 0), groups=n(6, 1))

def name(s):
    return f"{s['cin']},{s['cout']},{s['k']},{s['h']}x{s['w']},{s['stride']},{s['pad']},{s['groups']}"

def flops(s, out):
    return 2.0 * s["cout"] * (s["cin"] // s["groups"]) * s["k"] ** 2 * out.shape[2] * out.shape[3]

def median_ms(fn, make, runs, events=False):
    """Median ms of fn over fresh inputs: CUDA events around fn (events=True), else wall
    time, synchronised before and after on CUDA."""
    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(3):
        fn(make())
    ts = []
    for _ in range(runs):
        x = make()
        sync()
        if events:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn(x)
            b.record()
            b.synchronize()
            ts.append(a.elapsed_time(b))
        else:
            t = time.perf_counter()
            fn(x)
            sync()
            ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shapes", nargs="*")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev, cuda = a.device, a.device == "cuda"
    peer = f"pytorch-{dev}"
    info = {"timing": "wall", "threads": a.threads,
            "heap": "kept" if heap.kept() else "default"}
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        info = {"timing": "cuda-events", "gpu": torch.cuda.get_device_name(0), "cudnn": torch.backends.cudnn.version()}
    with torch.no_grad():
        for s in map(parse, a.shapes or DEFAULT):
            conv = torch.nn.Conv2d(s["cin"], s["cout"], s["k"], s["stride"], s["pad"], groups=s["groups"]).eval().to(dev)
            make = lambda: torch.rand(1, s["cin"], s["h"], s["w"], device=dev) * 2 - 1
            out = conv(make())
            ms = median_ms(conv, make, a.runs, events=cuda)
            print(json.dumps({"peer": peer, "shape": name(s), "ms": round(ms, 4),
                              "gflops": round(flops(s, out) / ms / 1e6, 2), **info,
                              "torch": torch.__version__}), flush=True)
        if not a.shapes:
            # The tutorial chain as a whole (conv, conv, conv as the tutorial builds it).
            chain = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 5), torch.nn.Conv2d(12, 24, 5), torch.nn.Conv2d(24, 48, 5)).eval().to(dev)
            ms = median_ms(chain, lambda: torch.rand(1, 3, 225, 400, device=dev), a.runs)
            print(json.dumps({"peer": peer, "shape": "chain 225x400", "ms": round(ms, 4),
                              "gflops": round(6.14e9 / ms / 1e6, 2), **info, "timing": "wall",
                              "torch": torch.__version__}), flush=True)

if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch CPU on the convolutions `convscope bench --shape` times: one JSON line per shape.

usage: torch_bench.py [--runs N] [--threads N] [SHAPE ...]   SHAPE = Cin,Cout,K,HxW[,stride,pad,groups]
Without shapes: the tutorial chain at 225x400 (its three layers, and the chain as a whole)
and the ResNet shapes. fp32, oneDNN (torch's default CPU path), median of N runs after 3
warm-ups, a fresh input each run."""
import argparse, json, os, statistics, time
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

def median_ms(fn, make, runs):
    for _ in range(3):
        fn(make())
    ts = []
    for _ in range(runs):
        x = make()
        t = time.perf_counter()
        fn(x)
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shapes", nargs="*")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with torch.no_grad():
        for s in map(parse, a.shapes or DEFAULT):
            conv = torch.nn.Conv2d(s["cin"], s["cout"], s["k"], s["stride"], s["pad"], groups=s["groups"]).eval()
            make = lambda: torch.rand(1, s["cin"], s["h"], s["w"]) * 2 - 1
            out = conv(make())
            ms = median_ms(conv, make, a.runs)
            print(json.dumps({"peer": "pytorch-cpu", "shape": name(s), "ms": round(ms, 3),
                              "gflops": round(flops(s, out) / ms / 1e6, 2), "timing": "wall",
                              "threads": a.threads, "torch": torch.__version__}), flush=True)
        if not a.shapes:
            # The tutorial chain as a whole (conv, conv, conv as the tutorial builds it).
            chain = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 5), torch.nn.Conv2d(12, 24, 5), torch.nn.Conv2d(24, 48, 5)).eval()
            ms = median_ms(chain, lambda: torch.rand(1, 3, 225, 400), a.runs)
            print(json.dumps({"peer": "pytorch-cpu", "shape": "chain 225x400", "ms": round(ms, 3),
                              "gflops": round(6.14e9 / ms / 1e6, 2), "timing": "wall",
                              "threads": a.threads, "torch": torch.__version__}), flush=True)

if __name__ == "__main__":
    main()

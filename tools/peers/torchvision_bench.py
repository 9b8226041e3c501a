#!/usr/bin/env python3
"""Whole torchvision networks: convscope against PyTorch on the same machine, interleaved.

usage: torchvision_bench.py CONVSCOPE_BIN OUTDIR [--device cpu|cuda] [--rounds 3] [NET ...]
Each network (random init, 1×3×224×224, fp32) is exported to OUTDIR/NET.onnx (TorchScript
exporter, opset 17); each round then runs `convscope bench --model NET.onnx --runs 10 --json`
(its `total` row: the GPU's busy time summed over the nodes; its `wall` row: submit to done)
and PyTorch eval on --device (median of 20 after 5 warm-ups; on CUDA: cuDNN, TF32 off,
cudnn.benchmark on, CUDA events around the forward, and wall time synchronised). PyTorch
runs with glibc's heap kept (see heap.py).
Prints each round's numbers and the medians with the ratios. Not run by CI."""
import argparse, json, os, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import heap

if __name__ == "__main__":
    heap.keep()
import torch, torchvision

NETS = ["resnet18", "mobilenet_v3_small", "efficientnet_b0"]


def convscope_ms(binary, model):
    cmd = [binary, "bench", "--model", model, "--runs", "10", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{out.stderr}")
    rows = {r["layer"]: r for r in (json.loads(l) for l in out.stdout.splitlines() if l.startswith("{"))}
    return rows["total"]["ms"], rows.get("wall", rows["total"])["ms"]


def torch_ms(model, x, cuda):
    """(GPU time by CUDA events, wall time) medians; on the CPU both are the wall time."""
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    with torch.no_grad():
        for _ in range(5):
            model(x)
        ev, wall = [], []
        for _ in range(20):
            sync()
            t0 = time.perf_counter()
            if cuda:
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
            model(x)
            if cuda:
                b.record()
            sync()
            wall.append((time.perf_counter() - t0) * 1e3)
            ev.append(a.elapsed_time(b) if cuda else wall[-1])
    return statistics.median(ev), statistics.median(wall)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("convscope")
    ap.add_argument("outdir")
    ap.add_argument("nets", nargs="*")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    cuda = a.device == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    os.makedirs(a.outdir, exist_ok=True)
    nets = a.nets or NETS
    models, paths = {}, {}
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    for n in nets:
        torch.manual_seed(0)
        m = getattr(torchvision.models, n)(weights=None).eval()
        paths[n] = os.path.join(a.outdir, n + ".onnx")
        torch.onnx.export(m, (x,), paths[n], input_names=["input"], output_names=["output"], dynamo=False,
                          opset_version=17)
        models[n] = m.to(a.device)
    xd = x.to(a.device)
    res = {n: {"cs": [], "cs_wall": [], "pt": [], "pt_wall": []} for n in nets}
    for r in range(a.rounds):
        for n in nets:
            cs, cs_wall = convscope_ms(a.convscope, paths[n])
            pt, pt_wall = torch_ms(models[n], xd, cuda)
            for k, v in zip(["cs", "cs_wall", "pt", "pt_wall"], [cs, cs_wall, pt, pt_wall]):
                res[n][k].append(v)
            print(f"round {r + 1} {n}: convscope {cs:.3f} ms GPU / {cs_wall:.3f} wall, "
                  f"pytorch-{a.device} {pt:.3f} / {pt_wall:.3f} wall", flush=True)
    dev = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(f"{dev}, torch {torch.__version__}, {a.rounds} interleaved rounds, medians")
    print(f"{'network':22} {'convscope GPU':>13} {'wall':>8} {'pytorch GPU':>12} {'wall':>8} {'GPU ratio':>9} "
          f"{'wall ratio':>10}")
    med = statistics.median
    for n, v in res.items():
        c, cw, p, pw = med(v["cs"]), med(v["cs_wall"]), med(v["pt"]), med(v["pt_wall"])
        print(f"{n:22} {c:13.3f} {cw:8.3f} {p:12.3f} {pw:8.3f} {c / p:8.2f}× {cw / pw:9.2f}×")


if __name__ == "__main__":
    main()

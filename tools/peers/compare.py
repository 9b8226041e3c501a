#!/usr/bin/env python3
"""convscope, PyTorch CPU and burn-wgpu on the same convolutions, interleaved, one machine.

usage: compare.py CONVSCOPE_BIN [--rounds 3] [--runs 5] [--torch-python PYTHON]
                  [--torch-device cpu|cuda] [--burn BIN]
Each round runs, one after another: `convscope bench --shape … --json` (GPU timestamps,
autotuned blocks) and `convscope bench --size 225x400 --json` (the chain), then
`torch_bench.py` (wall time, median of 10), then the burn binary if given (wall time,
median of 5; build it with `cargo build --release` here). Prints each round's numbers and a
table of the medians over rounds with the ratios to PyTorch. On a machine with an NVIDIA GPU,
`--torch-device cuda` times PyTorch on cuDNN (TF32 off, CUDA events; see torch_bench.py)
against convscope on the same GPU through Vulkan."""
import argparse, json, os, platform, statistics, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = ["3,12,5,225x400", "12,24,5,221x396", "24,48,5,217x392",
          "64,64,3,56x56,1,1", "64,256,1,56x56", "96,96,3,56x56,1,1,96"]

def norm(s):
    p = s.split(",")
    while len(p) < 7:
        p.append({4: "1", 5: "0", 6: "1"}[len(p)])
    return ",".join(p)

def lines(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{out.stderr}")
    return [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]

def cpu_model():
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                return l.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("convscope")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--torch-python", default=sys.executable)
    ap.add_argument("--torch-device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--runs", type=int, default=5, help="convscope's timed runs per round")
    ap.add_argument("--burn")
    a = ap.parse_args()
    peer = f"pytorch-{a.torch_device}"
    runs = str(a.runs)
    res = {}  # (peer, shape) -> [ms per round]
    for r in range(a.rounds):
        args = [a.convscope, "bench", "--json", "--runs", runs]
        for s in SHAPES:
            args += ["--shape", s]
        for row in lines(args):
            res.setdefault(("convscope", row["layer"]), []).append(row["ms"])
            res.setdefault(("convscope block", row["layer"]), []).append(row["block"] or row["kernel"])
        for row in lines([a.convscope, "bench", "--json", "--runs", runs, "--size", "225x400"]):
            if row["layer"] == "total":
                res.setdefault(("convscope", "chain 225x400"), []).append(row["ms"])
        for row in lines([a.torch_python, os.path.join(HERE, "torch_bench.py"), "--device", a.torch_device]):
            res.setdefault((peer, row["shape"]), []).append(row["ms"])
        if a.burn:
            rows = lines([a.burn, "--runs", "5"])
            for row in rows:
                res.setdefault(("burn-wgpu", row["shape"]), []).append(row["ms"])
            chain = [row["ms"] for row in rows if row["shape"] in map(norm, SHAPES[:3])]
            if len(chain) == 3:
                res.setdefault(("burn-wgpu", "chain 225x400"), []).append(sum(chain))
        print(f"round {r + 1} done", file=sys.stderr)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); {a.rounds} interleaved rounds; PyTorch on {a.torch_device}")
    print(f"{'shape':<26} {'convscope ms':>20} {'block':>7} {'pytorch ms':>20} {'burn ms':>12} {'vs pytorch':>10} {'vs burn':>8}")
    for s in [norm(x) for x in SHAPES] + ["chain 225x400"]:
        c = res.get(("convscope", s), [])
        t = res.get((peer, s), [])
        b = res.get(("burn-wgpu", s), [])
        blocks = res.get(("convscope block", s), [])
        med = lambda v: statistics.median(v) if v else float("nan")
        digits = 2 if a.torch_device == "cpu" else 4
        rng = lambda v: f"{med(v):.{digits}f}" + (f" ({min(v):.{digits - 1}f}–{max(v):.{digits - 1}f})" if len(v) > 1 else "")
        print(f"{s:<26} {rng(c):>20} {(blocks[-1] if blocks else ''):>7} {rng(t):>20} {rng(b):>12} "
              f"{med(c) / med(t):>9.2f}× {med(b) / med(c) if b else float('nan'):>7.1f}×")

if __name__ == "__main__":
    main()

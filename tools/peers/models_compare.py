#!/usr/bin/env python3
"""convscope against onnxruntime (CPU) on whole ONNX models, interleaved, one machine.

usage: models_compare.py CONVSCOPE_BIN MODEL.onnx [MODEL.onnx ...] [--rounds 3] [--size 224x224]
Each round runs, per model: `convscope bench --model M --runs 5 --json` (GPU timestamps,
autotuned blocks; its `total` row) and onnxruntime on a random input of the model's input
shape (default threads, all graph optimisations, median of 10 runs after 3 warm-ups).
Prints each round's numbers and the medians with the ratio. Needs numpy and onnxruntime.
A model whose input size is dynamic gets --size (as convscope's --size)."""
import argparse, json, statistics, subprocess, sys, time
import numpy as np
import onnxruntime as ort


def convscope_ms(binary, model, size):
    cmd = [binary, "bench", "--model", model, "--runs", "5", "--json"]
    if size:
        cmd += ["--size", size]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{out.stderr}")
    rows = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    return next(r["ms"] for r in rows if r["layer"] == "total")


def ort_ms(model, size):
    s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    h, w = (int(v) for v in size.split("x")) if size else (224, 224)
    shape = [d if isinstance(d, int) else {0: 1, 1: 3, 2: h, 3: w}[k] for k, d in enumerate(i.shape)]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(3):
        s.run(None, {i.name: x})
    t = []
    for _ in range(10):
        t0 = time.perf_counter()
        s.run(None, {i.name: x})
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("convscope")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size")
    a = ap.parse_args()
    res = {m: ([], []) for m in a.models}
    for r in range(a.rounds):
        for m in a.models:
            c, o = convscope_ms(a.convscope, m, a.size), ort_ms(m, a.size)
            res[m][0].append(c)
            res[m][1].append(o)
            print(f"round {r + 1} {m}: convscope {c:.2f} ms, onnxruntime {o:.2f} ms", flush=True)
    print(f"{'model':40} {'convscope ms':>14} {'onnxruntime ms':>15} {'ratio':>7}")
    for m, (c, o) in res.items():
        mc, mo = statistics.median(c), statistics.median(o)
        print(f"{m:40} {mc:14.2f} {mo:15.2f} {mc / mo:6.1f}×")


if __name__ == "__main__":
    main()

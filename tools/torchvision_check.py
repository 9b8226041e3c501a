#!/usr/bin/env python3
"""Full-size torchvision networks through convscope, node by node against onnxruntime.

For each network (random init, 224x224, seed 0) and each exporter (TorchScript `legacy`,
torch.export-based `dynamo`): export to ONNX, run onnxruntime (CPU, optimisations off) with
every node output exposed, run `convscope export --model --input-tensor --tensors`, and
compare every node output by its ONNX name with the goldens' tolerance
max|got - ref| <= 1e-4 * max(1, max|ref|). Not run by CI (needs torch, torchvision, onnx,
onnxruntime, onnxscript from PyPI). Usage: torchvision_check.py BIN OUTDIR [NAME ...]
"""
import json, os, subprocess, sys, time
import numpy as np
import onnx, onnxruntime as ort, torch, torchvision
from safetensors.numpy import save_file, load_file

NETS = ["resnet18", "mobilenet_v3_small", "squeezenet1_0", "shufflenet_v2_x1_0", "efficientnet_b0",
        "densenet121", "googlenet", "regnet_y_400mf", "mnasnet0_5"]


def build(name):
    kw = {"weights": None}
    if name == "googlenet":
        kw.update(aux_logits=False, init_weights=True)
    torch.manual_seed(0)
    m = getattr(torchvision.models, name)(**kw).eval()
    # Random BN statistics so folding and BN nodes are exercised with non-trivial values.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
    return m


def all_outputs(path):
    m = onnx.load(path)
    known = {o.name for o in m.graph.output}
    for node in m.graph.node:
        for o in node.output:
            if o and o not in known:
                m.graph.output.append(onnx.ValueInfoProto(name=o))
                known.add(o)
    return m


def main():
    binary, outdir = sys.argv[1], sys.argv[2]
    names = sys.argv[3:] or NETS
    os.makedirs(outdir, exist_ok=True)
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    summary = []
    for name in names:
        for exp in ["legacy", "dynamo"]:
            tag = f"{name}-{exp}"
            path = os.path.join(outdir, tag + ".onnx")
            try:
                model = build(name)
                torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["output"],
                                  dynamo=(exp == "dynamo"), **({} if exp == "dynamo" else {"opset_version": 17}))
                m = all_outputs(path)
                so = ort.SessionOptions(); so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
                sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
                outs = dict(zip([o.name for o in sess.get_outputs()],
                                sess.run(None, {sess.get_inputs()[0].name: x.numpy()})))
                st = os.path.join(outdir, tag + ".in.safetensors")
                save_file({"input": x.numpy()}, st)
                got_path = os.path.join(outdir, tag + ".got.safetensors")
                t0 = time.time()
                r = subprocess.run([binary, "export", "--model", path, "--input-tensor", st, "--out",
                                    os.path.join(outdir, tag), "--tensors", got_path],
                                   capture_output=True, text=True)
                wall = time.time() - t0
                if r.returncode != 0:
                    summary.append((tag, "FAIL", r.stderr.strip().splitlines()[-1:]))
                    print(tag, "FAIL", r.stderr.strip()[-400:], flush=True)
                    continue
                got = load_file(got_path)
                worst, bad, n = 0.0, [], 0
                for k, v in outs.items():
                    if v.dtype != np.float32 or k not in got:
                        continue
                    g = got[k].reshape(v.shape) if got[k].size == v.size else None
                    if g is None:
                        bad.append(f"{k} size"); continue
                    n += 1
                    d = float(np.abs(g - v).max()) if v.size else 0.0
                    scale = max(1.0, float(np.abs(v).max()) if v.size else 1.0)
                    worst = max(worst, d / scale)
                    if d > 1e-4 * scale:
                        bad.append(f"{k} {d:.2e}")
                missing = [k for k, v in outs.items() if v.dtype == np.float32 and k not in got]
                status = "OK" if not bad and not missing else "MISMATCH"
                line = (tag, status, f"{n} nodes compared, worst {worst:.2e} (relative), missing {len(missing)}, "
                        f"bad {bad[:3]}, convscope wall {wall:.1f}s")
                summary.append(line)
                print(*line, flush=True)
            except Exception as e:  # report and go on with the next network
                summary.append((tag, "EXPORT-OR-ORT-ERROR", str(e).splitlines()[:1]))
                print(tag, "ERROR", str(e)[:300], flush=True)
    with open(os.path.join(outdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()

//! Trained networks through the command line: the ONet example from the README equals
//! PyTorch, the BN/ReLU/pool stack via --input-tensor, and one clear line for every bad
//! weights file or --arch.

mod common;
use common::{Golden, assert_close, assert_one_line_error, bin, fixture, run, tmp};
use std::path::Path;
use std::process::Command;

const ONET_ARCH: &str = "conv1 prelu1 pool1=maxpool(3,2,ceil) conv2 prelu2 pool2=maxpool(3,2,ceil) conv3 prelu3 pool3=maxpool(2,2,ceil) conv4 prelu4";

#[test]
fn onet_example_matches_pytorch() {
    if convscope::gpu::test_context().is_none() {
        return;
    }
    let dir = tmp("onet");
    let t = dir.join("t.safetensors");
    let out = run(bin()
        .arg("export")
        .arg(fixture("chelsea_face_96x96.png"))
        .arg("--weights")
        .arg(fixture("mtcnn_onet.safetensors"))
        .args(["--arch", ONET_ARCH, "--mean", "0.5,0.5,0.5", "--std", "0.50196078,0.50196078,0.50196078"])
        .arg("--tensors")
        .arg(&t)
        .arg("--kernels")
        .arg("--out")
        .arg(dir.join("o")));
    assert!(out.status.success());
    let g = Golden::open("onet_cat_96x96.safetensors");
    let ours = Golden::open(t.to_str().unwrap());
    assert_close("input", &ours.vec("input"), &g.vec("input"), 1e-6);
    for name in ["conv1", "prelu1", "pool1", "conv2", "prelu2", "pool2", "conv3", "prelu3", "pool3", "conv4", "prelu4"]
    {
        let n = format!("{name}.out");
        assert_eq!(ours.shape(&n), g.shape(&n), "{n}");
        assert_close(&n, &ours.vec(&n), &g.vec(&n), 2e-5);
        assert!(dir.join("o").join(format!("{name}.png")).is_file(), "{name}.png");
    }
    assert_eq!(ours.vec("prelu1.weight"), g.vec("prelu1.weight"));
    for k in ["kernels-conv1.png", "kernels-conv4.png"] {
        assert!(dir.join("o").join(k).is_file(), "{k}");
    }
}

#[test]
fn stack_via_input_tensor_matches_pytorch() {
    if convscope::gpu::test_context().is_none() {
        return;
    }
    let arch = "layers.0(pad=1) layers.1 layers.2=relu layers.3=maxpool(2) layers.4(stride=2,pad=1) layers.5 \
                layers.6=relu layers.7=maxpool(3,2,ceil) layers.8 layers.9=relu layers.10(pad=2) layers.11=relu";
    let dir = tmp("stack");
    let t = dir.join("t.safetensors");
    let f = fixture("stack_bn_relu_pool.safetensors");
    let out = run(bin()
        .arg("export")
        .arg("--input-tensor")
        .arg(&f)
        .arg("--weights")
        .arg(&f)
        .args(["--arch", arch, "--tensors"])
        .arg(&t)
        .arg("--out")
        .arg(dir.join("o")));
    assert!(out.status.success());
    let g = Golden::open("stack_bn_relu_pool.safetensors");
    let ours = Golden::open(t.to_str().unwrap());
    for i in 0..12 {
        let n = format!("layers.{i}.out");
        assert_close(&n, &ours.vec(&n), &g.vec(&n), 1e-5);
    }
}

fn onet_args(cmd: &mut Command, weights: &Path, arch: &str) {
    cmd.arg("export").arg(fixture("chelsea_face_96x96.png")).arg("--weights").arg(weights).args(["--arch", arch]);
}

#[test]
fn channel_mismatch_names_both_layers() {
    let d = tmp("mismatch");
    let mut cmd = bin();
    onet_args(&mut cmd, &fixture("mtcnn_onet.safetensors"), "conv1 prelu1 conv3");
    let out = run(cmd.arg("--out").arg(&d));
    assert_one_line_error(&out, "conv3 (conv) expects 64 input channels but prelu1 has 32");
}

#[test]
fn arch_name_missing_from_the_file() {
    let d = tmp("missing-name");
    let mut cmd = bin();
    onet_args(&mut cmd, &fixture("mtcnn_onet.safetensors"), "conv1 prelu9");
    let out = run(cmd.arg("--out").arg(&d));
    assert_one_line_error(&out, "\"prelu9\", which is not in");
}

/// Writes a safetensors file from `(name, dtype, shape, bytes)`.
fn write_st(path: &Path, tensors: &[(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn nan_weights_are_reported() {
    let d = tmp("nan");
    let f = d.join("w.safetensors");
    let mut w = vec![0.1f32; 4 * 3 * 3 * 3];
    w[7] = f32::NAN;
    write_st(&f, &[("c.weight", safetensors::Dtype::F32, vec![4, 3, 3, 3], f32_bytes(&w))]);
    let out =
        run(bin().arg("export").arg(fixture("chelsea_face_96x96.png")).arg("--weights").arg(&f).arg("--out").arg(&d));
    assert_one_line_error(&out, "c.weight holds NaN at element 7");
}

#[test]
fn file_without_usable_tensors_is_refused() {
    let d = tmp("no-usable");
    let f = d.join("w.safetensors");
    write_st(&f, &[("num_batches_tracked", safetensors::Dtype::I64, vec![], 5i64.to_le_bytes().to_vec())]);
    let out = run(bin().arg("export").arg("--weights").arg(&f).arg("--out").arg(&d));
    assert_one_line_error(&out, "holds no float tensors");
    let f2 = d.join("dense.safetensors");
    write_st(&f2, &[("fc.weight", safetensors::Dtype::F32, vec![2, 3], f32_bytes(&[0.0; 6]))]);
    let out = run(bin().arg("export").arg("--weights").arg(&f2).arg("--out").arg(&d));
    assert_one_line_error(&out, "no 4-D conv weights");
}

#[test]
fn malformed_files_are_refused_without_panicking() {
    let d = tmp("malformed");
    let good = std::fs::read(fixture("mtcnn_onet.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "not a valid safetensors file"),
        ("short", vec![1, 2, 3], "not a valid safetensors file"),
        ("truncated", good[..good.len() / 2].to_vec(), "not a valid safetensors file"),
        (
            "header-past-end",
            {
                let mut b = good[..64].to_vec();
                b[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
                b
            },
            "not a valid safetensors file",
        ),
        (
            "bad-json",
            {
                let mut b = good.clone();
                b[8] = b'!';
                b
            },
            "not a valid safetensors file",
        ),
    ];
    // Offsets beyond the data: rewrite the header's first data_offsets end to a huge value.
    let header = String::from_utf8(good[8..8 + header_len].to_vec()).unwrap();
    let pos = header.find("\"data_offsets\":[").unwrap() + "\"data_offsets\":[".len();
    let end = header[pos..].find(']').unwrap() + pos;
    let mut bad = header.clone();
    bad.replace_range(pos..end, "0,999999999999");
    let mut bytes = (bad.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(bad.as_bytes());
    bytes.extend_from_slice(&good[8 + header_len..]);
    cases.push(("offsets-out-of-range", bytes, "not a valid safetensors file"));
    // An unsupported float type.
    let f64_file = d.join("f64.safetensors");
    write_st(&f64_file, &[("c.weight", safetensors::Dtype::F64, vec![1, 1, 1, 1], 1.0f64.to_le_bytes().to_vec())]);
    cases.push(("f64", std::fs::read(&f64_file).unwrap(), "dtype F64"));
    for (name, bytes, needle) in cases {
        let f = d.join(format!("{name}.safetensors"));
        std::fs::write(&f, bytes).unwrap();
        let out = run(bin().arg("export").arg("--weights").arg(&f).arg("--out").arg(&d));
        assert_one_line_error(&out, needle);
    }
    let out = run(bin().arg("export").arg("--weights").arg(d.join("nope.safetensors")).arg("--out").arg(&d));
    assert_one_line_error(&out, "no such file");
}

#[test]
fn half_precision_weights_load_like_f32() {
    if convscope::gpu::test_context().is_none() {
        return;
    }
    // Values exactly representable in f16 and bf16 give the same network as f32.
    let w: Vec<f32> = (0..4 * 3 * 3 * 3).map(|i| ((i % 17) as f32 - 8.0) / 64.0).collect();
    let b = vec![0.5f32, -0.25, 0.125, 0.0];
    let d = tmp("half");
    let mut files = Vec::new();
    for (tag, dtype) in
        [("f32", safetensors::Dtype::F32), ("f16", safetensors::Dtype::F16), ("bf16", safetensors::Dtype::BF16)]
    {
        let enc = |v: &[f32]| -> Vec<u8> {
            match dtype {
                safetensors::Dtype::F16 => v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
                safetensors::Dtype::BF16 => v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
                _ => f32_bytes(v),
            }
        };
        let f = d.join(format!("{tag}.safetensors"));
        write_st(&f, &[("c.weight", dtype, vec![4, 3, 3, 3], enc(&w)), ("c.bias", dtype, vec![4], enc(&b))]);
        let t = d.join(format!("{tag}-t.safetensors"));
        let out = run(bin()
            .arg("export")
            .arg(fixture("chelsea_face_96x96.png"))
            .arg("--weights")
            .arg(&f)
            .arg("--tensors")
            .arg(&t)
            .arg("--out")
            .arg(d.join(tag)));
        assert!(out.status.success());
        files.push(t);
    }
    let base = Golden::open(files[0].to_str().unwrap());
    for f in &files[1..] {
        let g = Golden::open(f.to_str().unwrap());
        assert_eq!(g.vec("c.weight"), base.vec("c.weight"));
        assert_eq!(g.vec("c.out"), base.vec("c.out"));
    }
}

#[test]
fn bad_normalisation_is_refused() {
    let d = tmp("norm");
    let out = run(bin().args(["export", "--mean", "0.5,0.5", "--out"]).arg(&d));
    assert_one_line_error(&out, "give three numbers");
    let out = run(bin().args(["export", "--std", "1,0,1", "--out"]).arg(&d));
    assert_one_line_error(&out, "--std must not contain 0");
}

#[test]
fn weights_file_layers_obey_the_arch_bounds() {
    // A 300x300 kernel read from a file: refused like --arch conv(1,1,300), not compiled
    // into an enormous shader.
    let d = tmp("huge-k");
    let f = d.join("w.safetensors");
    write_st(&f, &[("c.weight", safetensors::Dtype::F32, vec![1, 1, 300, 300], f32_bytes(&vec![0.0; 90_000]))]);
    let out = run(bin().arg("export").arg("--weights").arg(&f).arg("--out").arg(&d));
    assert_one_line_error(&out, "is beyond what convscope shows (kernel at most 255");
    let out = run(bin().args(["export", "--arch", "input=conv(3,4,3)", "--out"]).arg(&d));
    assert_one_line_error(&out, "names the image");
}

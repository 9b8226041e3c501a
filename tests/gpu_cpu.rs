//! Every GPU stage against its CPU twin: the convolution kernels on awkward shapes, the
//! per-channel statistics, and the colormapped grid pixel for pixel.

mod common;
use common::{assert_close, random_input};
use convscope::gpu::test_context;
use convscope::grid::{Colormap, Norm};
use convscope::network::{Conv2d, Layer, Network, Op};
use convscope::ops::ConvKernel as Kernel;
use convscope::ops::conv_tuned::Block;
use convscope::reference;
use convscope::tensor::{Shape, Tensor};
use convscope::torch_init::Mt19937;
use convscope::visual::{Look, Visualizer, read_texture};

fn random_net(seed: i64, specs: &[(usize, usize, usize, usize, usize)]) -> Network {
    Network::seeded_convs(seed, specs)
}

/// Layer specs `(cin, cout, k, stride, pad)` and the input height and width.
type Case = (&'static [(usize, usize, usize, usize, usize)], usize, usize);

#[test]
fn kernels_match_cpu_on_awkward_shapes() {
    let Some(ctx) = test_context() else { return };
    let mut engine = common::executor(ctx);
    // (cin, cout, k, stride, pad), input h, w
    let cases: &[Case] = &[
        (&[(3, 5, 3, 1, 0)], 3, 3),                     // 1x1 output, Cout not a multiple of 4
        (&[(3, 7, 5, 2, 2)], 13, 11),                   // stride 2 with padding, odd sizes
        (&[(2, 9, 1, 1, 0), (9, 3, 3, 1, 1)], 10, 7),   // 1x1 conv, width not a multiple of 4/8
        (&[(4, 4, 2, 1, 0), (4, 13, 3, 3, 1)], 17, 29), // even kernel, stride 3
        (&[(1, 1, 7, 1, 3)], 5, 9),                     // padding larger than needed
        (&[(5, 9, 1, 1, 0), (9, 6, 1, 1, 0)], 6, 16),   // 1x1 on rows of whole vec4s
        // 1x1 input channels in groups of 4: whole groups only, remainders of 3 and 1, stride 2
        (&[(8, 7, 1, 1, 0), (7, 5, 1, 1, 0), (5, 4, 1, 2, 0)], 9, 20),
        (&[(3, 8, 3, 1, 1), (8, 5, 5, 1, 2), (5, 4, 7, 1, 3)], 9, 12), // vec4 rows, padded
        // Over PACK_BELOW invocations per channel block for 8x6s and 3x1l5s (the subgroup
        // form with the block from the workgroup), under it for the wider blocks (packed).
        (&[(2, 5, 3, 1, 1)], 64, 130),
        // Halo form (subgroup blocks on vec4 rows: columns beside a block from the
        // neighbouring lanes), packed and not (8x6s over PACK_BELOW here), a valid 5×5 whose
        // right halo at a row's end lies inside the row, rows straddling subgroups.
        (&[(2, 5, 3, 1, 1), (5, 4, 5, 1, 0), (4, 3, 3, 1, 0)], 64, 132),
    ];
    {
        use convscope::ops::conv_tuned::{invocations_per_row, packs_blocks};
        let per_block = |b: &Block| invocations_per_row(130, b) * 64;
        let (a, b) = (Block::parse("8x6s").unwrap(), Block::parse("12x4s").unwrap());
        assert!(!packs_blocks(&a, 3, per_block(&a)) && packs_blocks(&b, 3, per_block(&b)), "both forms run");
    }
    for (n, (specs, h, w)) in cases.iter().enumerate() {
        let net = random_net(n as i64, specs);
        let input = random_input(100 + n as i64, specs[0].0, *h, *w);
        let cpu = reference::forward(&net, &input).unwrap();
        for block in [
            Block::default(),
            Block { px: 4, ocv: 1, unroll: false, lanes: 1, sg: false, py: 1, wino: false, split: 1, image: false },
            Block { px: 12, ocv: 2, unroll: true, lanes: 1, sg: false, py: 1, wino: false, split: 1, image: false },
            Block { px: 8, ocv: 2, unroll: false, lanes: 1, sg: false, py: 1, wino: false, split: 1, image: false },
            Block { px: 24, ocv: 3, unroll: true, lanes: 1, sg: false, py: 1, wino: false, split: 1, image: false },
            Block { px: 4, ocv: 2, unroll: true, lanes: 8, sg: false, py: 1, wino: false, split: 1, image: false },
            Block { px: 3, ocv: 1, unroll: true, lanes: 5, sg: false, py: 1, wino: false, split: 1, image: false },
            // Subgroup forms (weights loaded 8 at a time and broadcast), where the device
            // has subgroups; the loop form has none and runs as without `s`.
            Block { px: 8, ocv: 6, unroll: true, lanes: 1, sg: true, py: 1, wino: false, split: 1, image: false },
            Block { px: 12, ocv: 4, unroll: true, lanes: 1, sg: true, py: 1, wino: false, split: 1, image: false },
            Block { px: 3, ocv: 1, unroll: true, lanes: 5, sg: true, py: 1, wino: false, split: 1, image: false },
            Block { px: 4, ocv: 1, unroll: false, lanes: 1, sg: true, py: 1, wino: false, split: 1, image: false },
            // Several output rows per invocation (rows sharing input rows and weights),
            // heights not multiples of PY; with and without subgroups, vec4 rows and not.
            Block { px: 8, ocv: 2, unroll: true, lanes: 1, sg: true, py: 3, wino: false, split: 1, image: false },
            // 32 output channels a block: 1x1 convs load their weights a vec4 per lane.
            Block { px: 4, ocv: 8, unroll: true, lanes: 1, sg: true, py: 1, wino: false, split: 1, image: false },
            // Their image form (input and weights read as images, outputs in vec4 pairs
            // where PX and the row are multiples of 8); without images elsewhere.
            Block::parse("8x8si").unwrap(),
            Block::parse("4x8si").unwrap(),
            // The image form of wider kernels (input rows from an image; Winograd's weights
            // too), halo rows and padding, on the layers whose rows are whole vec4s.
            Block::parse("12x4si").unwrap(),
            Block::parse("8x4wi").unwrap(),
            Block { px: 4, ocv: 1, unroll: true, lanes: 1, sg: false, py: 2, wino: false, split: 1, image: false },
            Block { px: 3, ocv: 1, unroll: true, lanes: 5, sg: true, py: 2, wino: false, split: 1, image: false },
            // Winograd F(2×2, 3×3) on the 3×3 stride-1 layers (the others run the direct
            // subgroup form): halo rows (8x4w on rows of whole vec4s), value by value (6x1w:
            // PX not a multiple of 4), odd heights and widths (partial tiles), odd channel
            // counts (the last channel pair short), packed and not.
            Block::parse("8x4w").unwrap(),
            Block::parse("6x1w").unwrap(),
            Block::parse("4x2w").unwrap(),
            // Split forms (input channels shared by S invocations, summed in workgroup
            // memory): splits above the channel count (idle invocations), an odd number of
            // channel groups, one pixel per workgroup (S = 64).
            Block::parse("1x2k8").unwrap(),
            Block::parse("1x3k4").unwrap(),
            Block::parse("1x1k64").unwrap(),
        ] {
            if block.sg && !ctx.subgroups {
                eprintln!("{} skipped: the device has no subgroup operations", block.name());
                continue;
            }
            for kernel in [Kernel::Tuned, Kernel::Naive] {
                let acts = common::run_net(&mut engine, ctx, &net, &input, kernel, block);
                for (i, want) in cpu.iter().enumerate() {
                    let got = acts.read(ctx, i + 1).unwrap();
                    assert_eq!(got.shape, want.shape);
                    assert_close(
                        &format!("case {n} {:?} {} layer {i}", block, kernel.name()),
                        &got.data,
                        &want.data,
                        1e-5,
                    );
                }
            }
        }
    }
}

#[test]
fn minmax_matches_cpu() {
    let Some(ctx) = test_context() else { return };
    let mut engine = common::executor(ctx);
    let net = random_net(3, &[(3, 6, 3, 1, 0)]);
    let mut input = random_input(9, 3, 40, 70);
    input.data[5] = 7.5; // a unique maximum in channel 0
    for subgroup in [true, false] {
        engine.subgroup_stats = subgroup;
        let acts = common::run_net(&mut engine, ctx, &net, &input, Kernel::Tuned, Block::default());
        for i in 0..acts.shapes.len() {
            let t = acts.read(ctx, i).unwrap();
            assert_eq!(acts.read_stats(ctx, i).unwrap(), reference::channel_minmax(&t), "layer {i}");
        }
        assert_eq!(acts.read_stats(ctx, 0).unwrap()[0][1], 7.5);
    }
}

/// Counts pixels that differ; writes actual/expected PNGs to target/ when any do.
fn compare_images(what: &str, got: &image::RgbaImage, want: &[u8]) {
    let bad = got.as_raw().chunks(4).zip(want.chunks(4)).filter(|(a, b)| a != b).count();
    if bad > 0 {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        let _ = got.save(dir.join(format!("{what}-actual.png")));
        let exp = image::RgbaImage::from_raw(got.width(), got.height(), want.to_vec()).unwrap();
        let _ = exp.save(dir.join(format!("{what}-expected.png")));
    }
    assert_eq!(bad, 0, "{what}: {bad} pixels differ (images in {})", env!("CARGO_TARGET_TMPDIR"));
}

#[test]
fn colormap_grid_matches_cpu_pixel_for_pixel() {
    let Some(ctx) = test_context() else { return };
    let mut engine = common::executor(ctx);
    let vis = Visualizer::new(ctx);
    let mut net = random_net(5, &[(3, 12, 5, 1, 0), (12, 7, 3, 1, 0)]);
    // A constant channel must draw at the bottom colour, not NaN.
    if let Op::Conv(c) = &mut net.layers[1].op {
        c.weight[..12 * 9].iter_mut().for_each(|w| *w = 0.0);
    }
    net.layers.push(Layer {
        name: "conv3".into(),
        op: Op::Conv(Conv2d { cin: 7, cout: 2, k: 1, stride: 1, pad: 0, weight: vec![1.0; 14], bias: vec![0.0; 2] }),
    });
    let img =
        image::RgbImage::from_fn(45, 31, |x, y| image::Rgb([(x * 5) as u8, (y * 8) as u8, ((x * y) % 256) as u8]));
    let input = convscope::input::tensor_from_rgb8(&img, convscope::input::ChannelOrder::Bgr);
    let acts = common::run_net(&mut engine, ctx, &net, &input, Kernel::Tuned, Block::default());
    let rgb = convscope::input::ChannelOrder::Bgr.rgb_indices();
    for i in 0..acts.shapes.len() {
        let t = acts.read(ctx, i).unwrap();
        let stats = reference::channel_minmax(&t);
        for cmap in Colormap::ALL {
            for norm in Norm::ALL {
                let look = Look { cmap, norm };
                let grid = vis.render(ctx, &acts, i, look, rgb).unwrap();
                let got = read_texture(ctx, &grid.texture).unwrap();
                let colour = (i == 0).then_some(rgb);
                let want = reference::render_grid(&t, &stats, &grid.layout, cmap, norm, colour);
                compare_images(&format!("grid-l{i}-{}-{norm:?}", cmap.name()), &got, &want);
            }
        }
    }
    // The input's colour tile shows the original pixels exactly.
    let grid = vis.render(ctx, &acts, 0, Look::default(), rgb).unwrap();
    let got = read_texture(ctx, &grid.texture).unwrap();
    let (x0, y0) = grid.layout.tile_origin(0);
    for (x, y) in [(0u32, 0u32), (44, 30), (17, 9)] {
        let p = got.get_pixel(x0 as u32 + x, y0 as u32 + y).0;
        assert_eq!(&p[..3], &img.get_pixel(x, y).0, "colour tile at {x},{y}");
    }
}

#[test]
fn banded_run_equals_unbanded_run() {
    let Some(ctx) = test_context() else { return };
    let net = Network::tutorial(4);
    let img = image::RgbImage::from_fn(83, 61, |x, y| image::Rgb([(x * 3) as u8, (y * 4) as u8, ((x ^ y) * 7) as u8]));
    let input = convscope::input::tensor_from_rgb8(&img, convscope::input::ChannelOrder::Rgb);
    let vis = Visualizer::new(ctx);
    let mut whole = common::executor(ctx);
    whole.max_binding = None;
    let a = common::run_net(&mut whole, ctx, &net, &input, Kernel::Tuned, Block::default());
    assert!(a.band_counts().iter().all(|&n| n == 1));
    // Bands whose rows are not whole blocks of three output rows, too.
    let rows3 = Block { py: 3, sg: ctx.subgroups, ..Block::default() };
    for (kb, kernel, block) in [
        (64u64, Kernel::Tuned, Block::default()),
        (150, Kernel::Tuned, Block::default()),
        (64, Kernel::Naive, Block::default()),
        (64, Kernel::Tuned, rows3),
    ] {
        let mut banded = common::executor(ctx);
        banded.max_binding = Some(kb << 10);
        let b = common::run_net(&mut banded, ctx, &net, &input, kernel, block);
        assert!(b.band_counts().iter().all(|&n| n > 2), "{:?}", b.band_counts());
        for i in 0..a.shapes.len() {
            let (ta, tb) = (a.read(ctx, i).unwrap(), b.read(ctx, i).unwrap());
            assert_close(&format!("banded {kb} KiB {} layer {i}", kernel.name()), &tb.data, &ta.data, 1e-6);
            assert_eq!(b.read_stats(ctx, i).unwrap(), reference::channel_minmax(&tb), "stats layer {i}");
            let ga = read_texture(ctx, &vis.render(ctx, &a, i, Look::default(), [0, 1, 2]).unwrap().texture).unwrap();
            let gb = read_texture(ctx, &vis.render(ctx, &b, i, Look::default(), [0, 1, 2]).unwrap().texture).unwrap();
            assert!(ga == gb, "grid of layer {i} differs when banded ({kb} KiB, {}, {})", kernel.name(), block.name());
            let s = a.shapes[i];
            let (c, y, x) = (s.c - 1, s.h - 1, s.w / 2);
            assert_eq!(b.read_value(ctx, i, c, y, x).unwrap(), ta.at(c, y, x));
        }
    }
}

/// The split form in bands (each band's input rows offset by its first row, zero padding
/// only at the layer's real edges) equals itself unbanded bit for bit, and the CPU.
#[test]
fn split_blocks_in_bands_equal_the_whole_layer() {
    let Some(ctx) = test_context() else { return };
    let net = random_net(8, &[(3, 12, 5, 1, 2), (12, 9, 3, 2, 1), (9, 16, 1, 1, 0)]);
    let input = random_input(12, 3, 57, 41);
    let cpu = reference::forward(&net, &input).unwrap();
    let block = Block::parse("1x2k4").unwrap();
    let mut whole = common::executor(ctx);
    whole.max_binding = None;
    let a = common::run_net(&mut whole, ctx, &net, &input, Kernel::Tuned, block);
    let mut banded = common::executor(ctx);
    banded.max_binding = Some(16 << 10);
    let b = common::run_net(&mut banded, ctx, &net, &input, Kernel::Tuned, block);
    assert!(b.band_counts().iter().skip(1).all(|&n| n > 2), "{:?}", b.band_counts());
    for (i, want) in cpu.iter().enumerate() {
        let (ta, tb) = (a.read(ctx, i + 1).unwrap(), b.read(ctx, i + 1).unwrap());
        assert!(ta.data == tb.data, "layer {i}: banded differs from whole");
        assert_close(&format!("split layer {i}"), &ta.data, &want.data, 1e-5);
    }
}

#[test]
fn runs_of_the_same_size_reuse_buffers_and_too_large_is_refused() {
    let Some(ctx) = test_context() else { return };
    let net = Network::tutorial(0);
    let mut engine = common::executor(ctx);
    let gnet = engine.upload(ctx, &net.graph(), Kernel::Tuned).unwrap();
    let x1 = random_input(1, 3, 30, 40);
    let x2 = random_input(2, 3, 30, 40);
    let a = engine.run(ctx, &gnet, &x1).unwrap();
    let ids = |acts: &convscope::exec::Activations| -> Vec<wgpu::Buffer> {
        acts.bands.iter().map(|b| b[0].buffer.buffer().clone()).collect()
    };
    let first = ids(&a);
    // While `a` is alive its buffers are not handed out again: `b` gets its own.
    let b = engine.run(ctx, &gnet, &x2).unwrap();
    assert!(ids(&b).iter().all(|x| !first.contains(x)), "live activations are never overwritten");
    assert_close("second run", &b.read(ctx, 3).unwrap().data, &reference::forward(&net, &x2).unwrap()[2].data, 1e-5);
    assert_close(
        "first run intact",
        &a.read(ctx, 3).unwrap().data,
        &reference::forward(&net, &x1).unwrap()[2].data,
        1e-5,
    );
    // Once `a` is dropped, the next run of the same size reuses its buffers.
    drop(a);
    let before = engine.cache_stats();
    let c = engine.run(ctx, &gnet, &x1).unwrap();
    let after = engine.cache_stats();
    assert_eq!(ids(&c), first, "same-size runs reuse pooled buffers");
    assert_eq!(after.buffers_created, before.buffers_created, "{before:?} -> {after:?}");
    assert_eq!(after.pipelines_built, before.pipelines_built);
    assert!(after.bind_group_hits > before.bind_group_hits, "bind groups are cached");
    // 3 tuned convolutions and the statistics pass.
    assert_eq!(engine.cached_pipelines(), 4);
    engine.memory_budget = 1 << 20;
    let err = engine.run(ctx, &gnet, &random_input(3, 3, 200, 300)).err().expect("refused");
    assert!(err.to_string().contains("GiB of GPU memory"), "{err}");
}

#[test]
fn layer_statistics_match_cpu_whole_and_banded() {
    let Some(ctx) = test_context() else { return };
    let net = convscope::arch::build(Some("conv(3,8,3) relu maxpool(2,2,ceil) conv(8,4,3,pad=1)"), None, 3).unwrap();
    let input = random_input(5, 3, 50, 37);
    let cpu = reference::forward(&net, &input).unwrap();
    // Both forms of the statistics pass (the subgroup form runs where the adapter is a CPU
    // with subgroups), whole and in bands (later bands folded into the earlier ones').
    for (limit, subgroup) in [(None, true), (Some(12u64 << 10), true), (None, false), (Some(12u64 << 10), false)] {
        let mut engine = common::executor(ctx);
        engine.max_binding = limit;
        engine.subgroup_stats = subgroup;
        let acts = common::run_net(&mut engine, ctx, &net, &input, Kernel::Tuned, Block::default());
        for (i, cpu_out) in cpu.iter().enumerate() {
            // The GPU's statistics are of the GPU's tensor: compare them with the CPU twin
            // of the reduction on that same tensor (exact for min/max and zeros), and the
            // tensor itself with the CPU reference within the documented tolerance (fma on
            // the GPU, mul+add on the CPU).
            let gpu_out = acts.read(ctx, i + 1).unwrap();
            assert_close(&format!("layer {i} {limit:?}"), &gpu_out.data, &cpu_out.data, 1e-5);
            let got = acts.read_layer_stats(ctx, i + 1).unwrap();
            let want = convscope::ops::stats::LayerStats::of(&gpu_out);
            assert_eq!((got.min, got.max), (want.min, want.max), "layer {i} {limit:?}");
            assert!((got.mean - want.mean).abs() <= 1e-5 * (1.0 + want.std), "mean layer {i}: {got:?} vs {want:?}");
            assert!((got.std - want.std).abs() <= 1e-4 * want.std.max(1e-3), "std layer {i}: {got:?} vs {want:?}");
            assert_eq!(got.zeros, want.zeros, "zeros layer {i}");
            let ch = acts.read_channel(ctx, i + 1, 1).unwrap();
            assert_eq!(ch, gpu_out.channel(1), "channel read-back layer {i}");
        }
        assert!(acts.read_layer_stats(ctx, 2).unwrap().zeros > 0.1, "ReLU output has zeros");
    }
    let h = convscope::ops::stats::histogram(&[0.0, 0.5, 1.0, 1.0], 0.0, 1.0);
    assert_eq!((h[0], h[32], h[63], h.iter().sum::<u32>()), (1, 1, 2, 4));
}

/// A graph of ONNX-level ops on `input` and their node order: GPU against the CPU twins,
/// covering modes the ONNX goldens do not (asymmetric pads with dilation, depthwise with
/// stride 2, every resize mode, every elementwise function, broadcasting both ways).
#[test]
fn graph_ops_match_their_cpu_twins() {
    use convscope::graph::*;
    let Some(ctx) = test_context() else { return };
    let mut r = Mt19937::new(11);
    let mut w = |n: usize| r.uniform(n, -0.5, 0.5);
    let conv = |cin, cout, k: [usize; 2], stride, dilation, pads, groups, transpose, w: Vec<f32>, b: Vec<f32>| {
        Op::ConvG(ConvG {
            cin,
            cout,
            kh: k[0],
            kw: k[1],
            stride,
            dilation,
            pads,
            groups,
            transpose,
            output_padding: [1, 0],
            weight: w,
            bias: b,
        })
    };
    let resize = |linear, coord, nearest, out_h, out_w| Op::Resize(Resize { linear, coord, nearest, out_h, out_w });
    let ops: Vec<(&str, Op, Vec<&str>)> = vec![
        ("dw", conv(6, 6, [3, 3], [2, 2], [1, 1], [1, 0, 2, 1], 6, false, w(54), w(6)), vec!["input"]),
        // Stride 1: the kernel's unrolled block of neighbouring outputs (odd widths, dilation).
        ("dw1", conv(6, 6, [3, 3], [1, 1], [2, 1], [1, 2, 0, 1], 6, false, w(54), w(6)), vec!["input"]),
        ("grouped", conv(6, 4, [3, 2], [1, 2], [2, 1], [2, 1, 0, 3], 2, false, w(4 * 3 * 6), w(4)), vec!["dw"]),
        ("deconv", conv(4, 6, [3, 3], [2, 2], [1, 1], [1, 1, 0, 1], 2, true, w(4 * 3 * 9), w(6)), vec!["grouped"]),
        ("clip", Op::Unary(Unary::Clip { min: -0.1, max: 0.2 }), vec!["deconv"]),
        ("leaky", Op::Unary(Unary::LeakyRelu { alpha: 0.1 }), vec!["deconv"]),
        ("sig", Op::Unary(Unary::Sigmoid), vec!["leaky"]),
        ("hsig", Op::Unary(Unary::HardSigmoid { alpha: 0.3, beta: 0.4 }), vec!["deconv"]),
        ("hswish", Op::Unary(Unary::HardSwish), vec!["deconv"]),
        ("tanh", Op::Unary(Unary::Tanh), vec!["deconv"]),
        ("erf", Op::Unary(Unary::Erf), vec!["deconv"]),
        ("mul", Op::Binary { kind: BinKind::Mul, constant: None }, vec!["sig", "hsig"]),
        ("gap", Op::GlobalPool { max: false }, vec!["mul"]),
        ("scale", Op::Binary { kind: BinKind::Div, constant: None }, vec!["erf", "gap"]),
        ("sub", Op::Binary { kind: BinKind::Sub, constant: Some((vec![0.25], Shape::new(1, 1, 1))) }, vec!["scale"]),
        ("cat", Op::Concat, vec!["sub", "tanh", "clip"]),
        ("slice", Op::SliceChannels { start: 3, end: 13 }, vec!["cat"]),
        ("pad", Op::Pad { pads: [1, 0, 2, 3], value: -0.5 }, vec!["slice"]),
        (
            "avg",
            Op::Pool(Pool {
                max: false,
                kernel: [3, 2],
                stride: [2, 1],
                dilation: [1, 2],
                pads: [1, 1, 1, 0],
                ceil: true,
                count_include_pad: true,
            }),
            vec!["pad"],
        ),
        (
            "max",
            Op::Pool(Pool {
                max: true,
                kernel: [2, 3],
                stride: [1, 2],
                dilation: [1, 1],
                pads: [0, 1, 1, 1],
                ceil: false,
                count_include_pad: false,
            }),
            vec!["pad"],
        ),
        ("up_ac", resize(true, CoordMode::AlignCorners, NearestMode::RoundPreferFloor, 13, 9), vec!["avg"]),
        ("up_as", resize(false, CoordMode::Asymmetric, NearestMode::Floor, 11, 17), vec!["avg"]),
        ("up_hp", resize(false, CoordMode::HalfPixel, NearestMode::RoundPreferCeil, 7, 5), vec!["max"]),
        ("up_pt", resize(true, CoordMode::PytorchHalfPixel, NearestMode::Ceil, 1, 6), vec!["max"]),
        ("shuffle", Op::ChannelShuffle { groups: 2 }, vec!["slice"]),
        ("gmax", Op::GlobalPool { max: true }, vec!["shuffle"]),
        ("flat", Op::Copy, vec!["gmax"]),
        ("fc", Op::Gemm { k: 10, n: 7, weight: w(70), bias: w(7) }, vec!["flat"]),
        ("prob", Op::Softmax, vec!["fc"]),
        // (last: its weights are drawn after the others')
        // 15 taps: the subgroup form's second load of 8 taps runs past the channel's last.
        ("dw35", conv(6, 6, [3, 5], [1, 1], [1, 1], [1, 2, 1, 2], 6, false, w(90), w(6)), vec!["input"]),
    ];
    let graph = common::graph_of(ops);
    let input = random_input(3, 6, 15, 12);
    let cpu = reference::forward_graph(&graph, &input).unwrap();
    let mut exec = common::executor(ctx);
    let g = exec.upload(ctx, &graph, Kernel::Tuned).unwrap();
    let acts = exec.run(ctx, &g, &input).unwrap();
    assert_eq!(acts.shapes.len(), cpu.len() + 1);
    let (sources, shapes) = (graph.input_indices().unwrap(), graph.infer_shapes(input.shape).unwrap());
    assert_eq!(sources.len(), cpu.len());
    for (i, want) in cpu.iter().enumerate() {
        let (node, got) = (&graph.nodes[i], acts.read(ctx, i + 1).unwrap());
        assert_eq!(got.shape, want.shape, "{}", node.name);
        // Each op alone: its CPU twin on the GPU's own inputs, so that an op is judged by
        // its own rounding. Chained, earlier nodes' rounding is carried along and can grow
        // (on an NVIDIA GPU `scale`, erf over a small mean, was 2.8e-6 off the CPU chain
        // with every op within 6e-7 on its own), so the chain is held to the 1e-5 the
        // product promises.
        let xs: Vec<Tensor> =
            sources[i].iter().map(|&t| if t == 0 { input.clone() } else { acts.read(ctx, t).unwrap() }).collect();
        let alone = reference::apply_n(&xs.iter().collect::<Vec<_>>(), &node.op, Some(shapes[i + 1]));
        assert_close(&node.name, &got.data, &alone.data, 2e-6);
        assert_close(&format!("{} (chained)", node.name), &got.data, &want.data, 1e-5);
    }
    let prob = graph.nodes.iter().position(|n| n.name == "prob").expect("a softmax node") + 1;
    let total: f32 = acts.read(ctx, prob).unwrap().data.iter().sum();
    assert!((total - 1.0).abs() < 1e-5, "softmax sums to 1");
}

#[test]
fn node_by_node_runs_hand_each_finished_tensor_to_progress_and_can_be_cancelled() {
    let Some(ctx) = test_context() else { return };
    let net = Network::tutorial(3);
    let mut engine = common::executor(ctx);
    let gnet = engine.upload(ctx, &net.graph(), Kernel::Tuned).unwrap();
    let x = random_input(4, 3, 30, 40);
    let want = reference::forward(&net, &x).unwrap();
    // Each call sees the tensor of the node just finished, readable and final; pipelines
    // of later nodes are built only when they are reached.
    let seen = std::cell::RefCell::new(Vec::new());
    let progress = |done: usize, total: usize, acts: &convscope::exec::Activations| {
        assert_eq!(total, 3);
        let t = acts.read(ctx, done).unwrap();
        let w = if done == 0 { &x.data } else { &want[done - 1].data };
        assert_close(&format!("tensor {done} when its node is done"), &t.data, w, 1e-5);
        assert_eq!(acts.read_stats(ctx, done).unwrap().len(), acts.shapes[done].c);
        seen.borrow_mut().push(done);
        true
    };
    let opts = convscope::exec::RunOptions { per_node: true, progress: Some(&progress), ..Default::default() };
    let acts = engine.run_with(ctx, &gnet, &x, &opts).unwrap();
    assert_eq!(*seen.borrow(), vec![0, 1, 2, 3]);
    let (ms, timing) = acts.node_ms.clone().expect("per-node times");
    assert_eq!((ms.len(), timing), (3, convscope::exec::Timing::Wall));
    // A callback that answers false stops the run after that node.
    let stop = |done: usize, _: usize, _: &convscope::exec::Activations| done < 1;
    let opts = convscope::exec::RunOptions { per_node: true, progress: Some(&stop), ..Default::default() };
    let err = engine.run_with(ctx, &gnet, &x, &opts).err().expect("cancelled");
    assert!(err.is::<convscope::exec::Cancelled>(), "{err}");
}

#[test]
fn autotune_measures_once_caches_on_disk_and_survives_a_corrupt_file() {
    let Some(ctx) = test_context() else { return };
    let dir = common::tmp("autotune-test");
    let net = Network::seeded_convs(5, &[(3, 8, 3, 1, 1), (8, 8, 1, 1, 0)]);
    let x = random_input(6, 3, 20, 30);
    let want = reference::forward(&net, &x).unwrap();
    let tune = |expect_measured: bool| {
        let mut exec = common::executor(ctx);
        exec.set_autotune(true, Some(&dir));
        let mut gnet = exec.upload(ctx, &net.graph(), Kernel::Tuned).unwrap();
        let chosen = exec.autotune(ctx, &mut gnet, x.shape, f64::INFINITY).unwrap();
        assert_eq!(chosen.len(), 2, "both convs are tuned: {chosen:?}");
        assert!(chosen.iter().all(|c| c.measured == expect_measured), "{chosen:?}");
        // Whatever the blocks, the sums are the same.
        let acts = exec.run(ctx, &gnet, &x).unwrap();
        assert_close("tuned run", &acts.read(ctx, 2).unwrap().data, &want[1].data, 1e-5);
        chosen.iter().map(|c| c.block).collect::<Vec<_>>()
    };
    let first = tune(true);
    let file = dir.join(format!("autotune-v{}.json", convscope::exec::autotune::VERSION));
    assert!(file.exists(), "choices are written to the cache folder");
    assert_eq!(tune(false), first, "a second executor takes them from the file");
    std::fs::write(&file, "{ truncated").unwrap();
    tune(true);
    let version = format!("\"version\": {}", convscope::exec::autotune::VERSION);
    assert!(std::fs::read_to_string(&file).unwrap().contains(&version), "the corrupt file was rewritten");
}

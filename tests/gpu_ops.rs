//! Ops beyond the plain convolution against their CPU twins, in each of their forms: the
//! depthwise kernel's halo rows and strided blocks, the Gemm's subgroup form, global pools
//! by invocation and by workgroup; 64-bit storage access against 32-bit.

mod common;
use common::random_input;
use convscope::gpu::test_context;
use convscope::tensor::Shape;
use convscope::torch_init::Mt19937;

/// The Gemm's subgroup form (inputs 32 at a time broadcast across the subgroup, weight rows
/// as vec4s; `k` a multiple of 4) against the CPU: whole chunks of 32 only, chunks and a
/// remainder of vec4s, fewer than 32 inputs, and more outputs than a workgroup (lanes past
/// `n` store nothing); `k` not a multiple of 4 runs the plain form.
#[test]
fn gemm_matches_the_cpu_in_both_forms() {
    use convscope::graph::*;
    let Some(ctx) = test_context() else { return };
    let mut r = Mt19937::new(41);
    for (k, n) in [(64, 7), (76, 70), (12, 3), (1024, 130), (10, 9)] {
        let (weight, bias) = (r.uniform(n * k, -0.5, 0.5), r.uniform(n, -0.5, 0.5));
        let graph = common::graph_of(vec![
            ("flat", Op::Copy, vec!["input"]),
            ("fc", Op::Gemm { k, n, weight, bias }, vec!["flat"]),
        ]);
        let input = random_input(k as i64, k, 1, 1);
        common::assert_graph_matches_cpu(ctx, &format!("gemm k {k} n {n}"), &graph, &input, 1e-5);
    }
}

/// Global pools of large planes (a workgroup per channel, partial sums halved in workgroup
/// memory) and of small ones (an invocation per channel) against the CPU: planes under,
/// at and over the threshold, not multiples of 64, max and average.
#[test]
fn global_pools_match_the_cpu_in_both_forms() {
    use convscope::graph::*;
    use convscope::ops::pool::GLOBAL_WORKGROUP_FROM;
    let Some(ctx) = test_context() else { return };
    for (h, w) in [(31, 33), (32, 32), (37, 41), (113, 112)] {
        assert_eq!(h * w >= GLOBAL_WORKGROUP_FROM, (h, w) != (31, 33), "both forms run");
        for max in [false, true] {
            let graph = common::graph_of(vec![("pool", Op::GlobalPool { max }, vec!["input"])]);
            let input = random_input((h * w) as i64, 5, h, w);
            common::assert_graph_matches_cpu(ctx, &format!("global pool {h}x{w} max {max}"), &graph, &input, 1e-6);
        }
    }
}

/// A depthwise conv of `c` channels, kernel `k`, with random weights, and the geometry of
/// running it whole on an input of `h`×`w`.
fn depthwise_case(
    r: &mut Mt19937,
    c: usize,
    k: usize,
    stride: [usize; 2],
    pads: [usize; 4],
    h: usize,
    w: usize,
) -> (convscope::graph::ConvG, convscope::ops::StepGeom) {
    let conv = convscope::graph::ConvG {
        cin: c,
        cout: c,
        kh: k,
        kw: k,
        stride,
        dilation: [1, 1],
        pads,
        groups: c,
        transpose: false,
        output_padding: [0, 0],
        weight: r.uniform(c * k * k, -0.5, 0.5),
        bias: r.uniform(c, -0.1, 0.1),
    };
    let (oh, ow) = ((h + pads[0] + pads[2] - k) / stride[0] + 1, (w + pads[1] + pads[3] - k) / stride[1] + 1);
    let g = convscope::ops::StepGeom {
        input: Shape::new(c, h, w),
        output: Shape::new(c, oh, ow),
        in_row0: 0,
        in_rows: h,
        out_row0: 0,
        out_rows: oh,
    };
    (conv, g)
}

/// The depthwise kernel's halo form (each lane loads its own 8 columns as vec4s and takes
/// the columns beside them from its neighbouring lanes) against the CPU: rows whose blocks
/// straddle subgroups and rows, widths not multiples of 8, valid and asymmetric padding
/// (a right halo inside the row at its end), 3×3 and 5×5, channels packed and not.
#[test]
fn depthwise_halo_rows_match_the_cpu() {
    use convscope::graph::*;
    use convscope::ops::depthwise;
    let Some(ctx) = test_context() else { return };
    let mut r = Mt19937::new(29);
    let c = 5;
    // (kernel, pads [top, left, bottom, right], input h, w)
    let cases: [(usize, [usize; 4], usize, usize); 6] = [
        (3, [1, 1, 1, 1], 13, 36),
        (3, [0, 0, 0, 0], 9, 20),
        (3, [1, 3, 1, 0], 11, 28),
        (5, [2, 2, 2, 2], 10, 44),
        (5, [1, 0, 2, 4], 12, 24),
        (3, [1, 1, 1, 1], 100, 332),
    ];
    for (n, (k, pads, h, w)) in cases.into_iter().enumerate() {
        let (conv, g) = depthwise_case(&mut r, c, k, [1, 1], pads, h, w);
        let px = depthwise::outputs_per_invocation(&conv);
        assert!(depthwise::halo_rows(&conv, &g, px, true), "case {n} runs in halo form");
        let packed =
            depthwise::packs_channels(depthwise::blocks_per_channel(px, depthwise::rows_per_invocation(&conv, &g), &g));
        assert_eq!(packed, n < 5, "case {n}: only the last is unpacked");
        let graph = common::graph_of(vec![("dw", Op::ConvG(conv), vec!["input"])]);
        let input = random_input(40 + n as i64, c, h, w);
        common::assert_graph_matches_cpu(ctx, &format!("halo case {n}"), &graph, &input, 2e-6);
    }
}

/// Depthwise convs at stride 2 (four outputs along x per invocation, rows of the block
/// sharing input rows) against the CPU: odd widths and heights (partial blocks), maps of 16
/// rows and more (3 rows a block) and fewer, 3×3 and 5×5 with asymmetric padding, a stride
/// of 2 along x only, channels packed and not.
#[test]
fn strided_depthwise_matches_the_cpu() {
    use convscope::graph::*;
    use convscope::ops::depthwise;
    let Some(ctx) = test_context() else { return };
    let mut r = Mt19937::new(31);
    let c = 3;
    // (kernel, stride [y, x], pads [top, left, bottom, right], input h, w)
    type Strided = (usize, [usize; 2], [usize; 4], usize, usize);
    let cases: [Strided; 5] = [
        (3, [2, 2], [1, 1, 1, 1], 56, 57),
        (5, [2, 2], [2, 1, 2, 3], 37, 30),
        (3, [2, 2], [0, 0, 0, 0], 9, 11),
        (3, [1, 2], [1, 0, 1, 2], 20, 23),
        (3, [2, 2], [1, 1, 1, 1], 300, 330),
    ];
    let mut rows3 = false;
    for (n, (k, stride, pads, h, w)) in cases.into_iter().enumerate() {
        let (conv, g) = depthwise_case(&mut r, c, k, stride, pads, h, w);
        assert_eq!(depthwise::outputs_per_invocation(&conv), 4, "case {n}");
        rows3 |= depthwise::rows_per_invocation(&conv, &g) == 3;
        let graph = common::graph_of(vec![("dw", Op::ConvG(conv), vec!["input"])]);
        let input = random_input(60 + n as i64, c, h, w);
        common::assert_graph_matches_cpu(ctx, &format!("strided case {n}"), &graph, &input, 2e-6);
    }
    assert!(rows3, "some case runs blocks of 3 rows");
}

/// 64-bit storage access (`ops::wide`, on by default on CPU adapters) moves the same bytes:
/// every tensor of a network of the kernels with vec4 arrays (tuned 3×3 direct and
/// Winograd, 1×1 with 32-channel blocks, 5×5, fused batch norm and ReLU, depthwise with
/// vec4 stores, Gemm) is bit-identical with it on and off, in several blocks; and on an
/// adapter with 64-bit integers it is really on.
#[test]
fn wide_access_is_bit_identical() {
    use convscope::env::EngineEnv;
    use convscope::exec::Executor;
    use convscope::graph::*;
    use convscope::ops::conv_tuned::Block;
    let Some(ctx) = test_context() else { return };
    let mut r = Mt19937::new(77);
    let mut conv = |cin: usize, cout: usize, k: usize, pad: usize| {
        let weight = r.uniform(cout * cin * k * k, -0.3, 0.3);
        Op::Conv(Conv2d { cin, cout, k, stride: 1, pad, weight, bias: r.uniform(cout, -0.1, 0.1) })
    };
    let (c3, c1, c5) = (conv(8, 16, 3, 1), conv(16, 32, 1, 0), conv(32, 8, 5, 2));
    let mut r = Mt19937::new(78);
    let mut w = |n: usize, lo: f64, hi: f64| r.uniform(n, lo, hi);
    let bn = Op::BatchNorm {
        weight: w(16, 0.5, 1.5),
        bias: w(16, -0.5, 0.5),
        mean: w(16, -0.2, 0.2),
        var: w(16, 0.5, 2.0),
        eps: 1e-5,
    };
    let dw = Op::ConvG(ConvG {
        cin: 16,
        cout: 16,
        kh: 3,
        kw: 3,
        stride: [1, 1],
        dilation: [1, 1],
        pads: [1; 4],
        groups: 16,
        transpose: false,
        output_padding: [0, 0],
        weight: w(16 * 9, -0.5, 0.5),
        bias: w(16, -0.1, 0.1),
    });
    let gemm = Op::Gemm { k: 8, n: 5, weight: w(40, -0.5, 0.5), bias: w(5, -0.5, 0.5) };
    let graph = common::graph_of(vec![
        ("c3", c3, vec!["input"]),
        ("bn", bn, vec!["c3"]),
        ("relu", Op::Relu, vec!["bn"]),
        ("dw", dw, vec!["relu"]),
        ("c1", c1, vec!["dw"]),
        ("c5", c5, vec!["c1"]),
        ("pool", Op::GlobalPool { max: false }, vec!["c5"]),
        ("flat", Op::Copy, vec!["pool"]),
        ("fc", gemm, vec!["flat"]),
    ]);
    let input = random_input(79, 8, 24, 32);
    let blocks: &[&str] = if ctx.subgroups { &["8x8s", "8x4w", "12x4s", "8x2"] } else { &["8x8", "8x2"] };
    let run = |wide: bool, block: &str| {
        let mut exec = Executor::with_env(ctx, &EngineEnv { wide: Some(wide), ..EngineEnv::default() });
        assert_eq!(exec.wide_access(), wide && ctx.int64, "64-bit access on where asked and offered");
        let b = Block::parse(block).expect("block");
        let g = exec.upload_with_block(ctx, &graph, convscope::ops::ConvKernel::Tuned, b).expect("upload");
        let acts = exec.run(ctx, &g, &input).expect("run");
        (0..=graph.nodes.len()).map(|i| acts.read(ctx, i).expect("read back")).collect::<Vec<_>>()
    };
    for block in blocks {
        let (on, off) = (run(true, block), run(false, block));
        assert_eq!(on.len(), off.len());
        for (i, (a, b)) in on.iter().zip(&off).enumerate() {
            assert_eq!(a.shape, b.shape, "{block}: tensor {i}");
            assert_eq!(a.data.len(), b.data.len(), "{block}: tensor {i}");
            let differ = a.data.iter().zip(&b.data).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
            assert_eq!(
                differ,
                0,
                "{block}: tensor {i} ({}) differs in {differ} values",
                if i == 0 { "input" } else { &graph.nodes[i - 1].name }
            );
        }
    }
}

/// The elementwise ops in both forms (one value per invocation; four adjacent ones on rows
/// or planes of whole vec4s) against the CPU, every tensor: each pointwise function, PReLU
/// per channel, a BatchNorm on its own, and binary ops with every operand mode (full, per
/// channel from a constant or a pooled tensor, scalar), with fused activations (Erf's
/// helper included). Shapes: both forms vec4, neither, and binary vec4 with pointwise not.
#[test]
fn elementwise_ops_match_the_cpu_in_both_forms() {
    use convscope::graph::*;
    use convscope::ops::{StepGeom, binary, pointwise};
    let Some(ctx) = test_context() else { return };
    let c = 5;
    let mut r = Mt19937::new(91);
    let mut w = |n: usize, lo: f64, hi: f64| r.uniform(n, lo, hi);
    let bn = Op::BatchNorm {
        weight: w(c, 0.5, 1.5),
        bias: w(c, -0.5, 0.5),
        mean: w(c, -0.2, 0.2),
        var: w(c, 0.5, 2.0),
        eps: 1e-5,
    };
    let bin = |kind, constant| Op::Binary { kind, constant };
    let ops: Vec<(&str, Op, Vec<&str>)> = vec![
        ("relu", Op::Relu, vec!["input"]),
        ("prelu", Op::PRelu { slopes: w(c, -0.5, 0.5) }, vec!["input"]),
        ("bn", bn, vec!["input"]),
        ("clip", Op::Unary(Unary::Clip { min: -0.3, max: 0.4 }), vec!["input"]),
        ("leaky", Op::Unary(Unary::LeakyRelu { alpha: 0.1 }), vec!["input"]),
        ("sig", Op::Unary(Unary::Sigmoid), vec!["input"]),
        ("hsig", Op::Unary(Unary::HardSigmoid { alpha: 0.3, beta: 0.4 }), vec!["input"]),
        ("hswish", Op::Unary(Unary::HardSwish), vec!["input"]),
        ("tanh", Op::Unary(Unary::Tanh), vec!["input"]),
        ("erf", Op::Unary(Unary::Erf), vec!["input"]),
        ("add", bin(BinKind::Add, None), vec!["input", "prelu"]),
        ("scale", bin(BinKind::Mul, Some((w(c, 0.5, 1.5), Shape::new(c, 1, 1)))), vec!["add"]),
        ("gap", Op::GlobalPool { max: false }, vec!["input"]),
        // A divisor away from 0 (GPU division may be an ulp off; a large quotient magnifies it).
        ("gap2", bin(BinKind::Add, Some((vec![2.0], Shape::new(1, 1, 1)))), vec!["gap"]),
        ("div", bin(BinKind::Div, None), vec!["sig", "gap2"]),
        ("sub", bin(BinKind::Sub, Some((vec![0.25], Shape::new(1, 1, 1)))), vec!["div"]),
        ("mul", bin(BinKind::Mul, None), vec!["sub", "tanh"]),
        ("mul_erf", Op::Unary(Unary::Erf), vec!["mul"]),
        ("add2", bin(BinKind::Add, None), vec!["mul_erf", "hswish"]),
        ("add2_relu", Op::Relu, vec!["add2"]),
    ];
    let graph = common::graph_of(ops);
    for ((h, wd), forms) in [((6, 16), (true, true)), ((5, 13), (false, false)), ((2, 6), (false, true))] {
        let s = Shape::new(c, h, wd);
        let g = StepGeom { input: s, output: s, in_row0: 0, in_rows: h, out_row0: 0, out_rows: h };
        assert_eq!((pointwise::vec4_form(&g), binary::vec4_form(s)), forms, "{h}x{wd}: pointwise, binary vec4");
        let input = random_input((h * wd) as i64, c, h, wd);
        let cpu = convscope::reference::forward_graph(&graph, &input).expect("CPU forward");
        let mut exec = common::executor(ctx);
        let net = exec.upload(ctx, &graph, convscope::ops::ConvKernel::Tuned).expect("upload");
        let acts = exec.run(ctx, &net, &input).expect("run");
        assert_eq!(cpu.len(), graph.nodes.len());
        for (i, want) in cpu.iter().enumerate() {
            let got = acts.read(ctx, i + 1).expect("read back");
            assert_eq!(got.shape, want.shape);
            common::assert_close(
                &format!("{} at {h}x{wd} {forms:?}", graph.nodes[i].name),
                &got.data,
                &want.data,
                2e-6,
            );
        }
    }
}

/// 1×1 stride-1 unpadded convs run on their plane as one row (`conv_tuned::run_geometry`):
/// at 14×14 (rows of 14 become one row of whole vec4s), 7×7, 20×28, against the CPU; and
/// in bands (flattened band by band, bands holding a 3×3 conv's halo rows), bit for bit
/// against the whole run. (An input band holding other rows than its output band keeps its
/// rows: `conv_tuned`'s unit tests.)
#[test]
fn one_by_one_convs_on_flattened_planes_match_the_cpu() {
    use convscope::graph::*;
    use convscope::ops::ConvKernel;
    let Some(ctx) = test_context() else { return };
    let mut r = Mt19937::new(93);
    let mut conv = |cin: usize, cout: usize, k: usize, pad: usize| {
        let weight = r.uniform(cout * cin * k * k, -0.3, 0.3);
        Op::Conv(Conv2d { cin, cout, k, stride: 1, pad, weight, bias: r.uniform(cout, -0.1, 0.1) })
    };
    // A chain (only chains are banded): each 1×1 conv's bands hold the rows the next 3×3
    // conv's halo needs, its input bands the same rows.
    let graph = common::graph_of(vec![
        ("pre", conv(16, 24, 1, 0), vec!["input"]),
        ("c3", conv(24, 24, 3, 1), vec!["pre"]),
        ("pw", conv(24, 24, 1, 0), vec!["c3"]),
        ("c3b", conv(24, 8, 3, 1), vec!["pw"]),
        ("pw2", conv(8, 8, 1, 0), vec!["c3b"]),
    ]);
    for (h, w) in [(14, 14), (7, 7), (20, 28)] {
        let input = random_input((h * w) as i64, 16, h, w);
        let cpu = convscope::reference::forward_graph(&graph, &input).expect("CPU forward");
        let mut whole = common::executor(ctx);
        whole.max_binding = None;
        // The input fits one buffer, the 24-channel tensors are banded.
        let mut banded = common::executor(ctx);
        banded.max_binding = Some(((16 * h * w * 4).div_ceil(1024) as u64) << 10);
        let blocks: &[&str] = if ctx.subgroups { &["8x8s", "8x8si", "8x4l8"] } else { &["8x4l8", "8x2"] };
        for block in blocks {
            let b = convscope::ops::conv_tuned::Block::parse(block).expect("block");
            let run = |exec: &mut convscope::exec::Executor| {
                let net = exec.upload_with_block(ctx, &graph, ConvKernel::Tuned, b).expect("upload");
                exec.run(ctx, &net, &input).expect("run")
            };
            let (a, bb) = (run(&mut whole), run(&mut banded));
            assert!(bb.bands.iter().any(|t| t.len() > 1), "{h}x{w}: the banded run has bands");
            assert_eq!(cpu.len(), graph.nodes.len());
            for (i, want) in cpu.iter().enumerate() {
                let got = a.read(ctx, i + 1).expect("read back");
                let what = format!("{} {h}x{w} {block}", graph.nodes[i].name);
                common::assert_close(&what, &got.data, &want.data, 1e-5);
                let got_banded = bb.read(ctx, i + 1).expect("read back");
                assert_eq!(got_banded.data.len(), got.data.len(), "{what}");
                assert!(got_banded.data == got.data, "{what}: banded differs from whole");
            }
        }
    }
}

/// The tuned 1×1 conv's image form (`8x8si`, `4x8si`: each input band copied into an image,
/// the weights uploaded as one, outputs in vec4 pairs where PX and the row allow) reads
/// and writes what the subgroup form does, in the same order: with fused batch norm + ReLU
/// and a fused SiLU gate, input channels in groups of 4 with a remainder of 3, 33 output
/// channels (two blocks), planes of 196 values (vec4s, no pairs) and 192 (pairs), images
/// of a part row and of several rows and a part row; the last tensor is bit-identical to the
/// subgroup form's and matches the CPU.
#[test]
fn image_form_of_1x1_convs_is_bit_identical_to_the_subgroup_form() {
    use convscope::graph::*;
    use convscope::ops::conv_tuned::{self, Block};
    use convscope::plan::Keep;
    let Some(ctx) = test_context() else { return };
    if !ctx.subgroups {
        eprintln!("skipped: the image form is a subgroup form, and this device has no subgroups");
        return;
    }
    let mut r = Mt19937::new(101);
    let mut w = |n: usize, lo: f64, hi: f64| r.uniform(n, lo, hi);
    let mut conv = |cin: usize, cout: usize| {
        let (weight, bias) = (w(cout * cin, -0.3, 0.3), w(cout, -0.1, 0.1));
        Op::Conv(Conv2d { cin, cout, k: 1, stride: 1, pad: 0, weight, bias })
    };
    let (a, b, d) = (conv(7, 64), conv(64, 33), conv(33, 40));
    let bn = common::random_bn(102, 64);
    let graph = common::graph_of(vec![
        ("a", a, vec!["input"]),
        ("bn", bn, vec!["a"]),
        ("relu", Op::Relu, vec!["bn"]),
        ("b", b, vec!["relu"]),
        ("sig", Op::Unary(Unary::Sigmoid), vec!["b"]),
        ("silu", Op::Binary { kind: BinKind::Mul, constant: None }, vec!["b", "sig"]),
        ("d", d, vec!["silu"]),
    ]);
    let last = graph.nodes.len();
    for (h, wd) in [(14, 14), (8, 24)] {
        let input = random_input((h * wd) as i64, 7, h, wd);
        let cpu = convscope::reference::forward_graph(&graph, &input).expect("CPU forward");
        // The 64-channel input of `b`: 3136 texels at 14×14, three rows and a part row.
        let c = convscope::ops::conv_naive::ConvShape { cin: 64, cout: 33, k: 1, stride: 1, pad: 0 };
        let g = convscope::ops::StepGeom {
            input: convscope::tensor::Shape::new(64, h, wd),
            output: convscope::tensor::Shape::new(33, h, wd),
            in_row0: 0,
            in_rows: h,
            out_row0: 0,
            out_rows: h,
        };
        let run = |block: &str| {
            let b = Block::parse(block).expect("block");
            assert_eq!(conv_tuned::image_form(&c, &b, &g), b.image, "{block} at {h}x{wd}");
            let mut exec = common::executor(ctx);
            let net = exec.upload_with_block(ctx, &graph, convscope::ops::ConvKernel::Tuned, b).expect("upload");
            let opts = convscope::exec::RunOptions { keep: Keep::Only(vec![last]), ..Default::default() };
            let plan = exec.plan(ctx, &net, input.shape, &opts.keep).expect("plan");
            assert_eq!(plan.fusions.len(), 2, "{block}: bn + relu into a, the gate into b");
            exec.run_with(ctx, &net, &input, &opts).expect("run").read(ctx, last).expect("read back")
        };
        for (plain, image) in [("8x8s", "8x8si"), ("4x8s", "4x8si")] {
            let (want, got) = (run(plain), run(image));
            let what = format!("{image} at {h}x{wd}");
            common::assert_close(&what, &got.data, &cpu[last - 1].data, 1e-5);
            let differ = common::differing_bits(&what, &got.data, &want.data);
            assert_eq!(differ, 0, "{what}: {differ} values differ from {plain}'s");
        }
    }
}

/// The image form of wider kernels reads what the form without images does: Winograd
/// (`8x4wi`: input rows and weights from images) and direct subgroup blocks (`12x4si`,
/// `16x3si`: input rows from an image, halo columns from the neighbouring lanes), padded
/// 3×3 and 5×5 convs with a fused batch norm and ReLU, rows of 48 (pairs for PX 8) and 44
/// values; every tensor bit-identical, the last matching the CPU.
#[test]
fn image_form_of_wider_kernels_is_bit_identical() {
    use convscope::graph::*;
    use convscope::ops::conv_tuned::Block;
    let Some(ctx) = test_context() else { return };
    if !ctx.subgroups {
        eprintln!("skipped: the image form is a subgroup form, and this device has no subgroups");
        return;
    }
    let mut r = Mt19937::new(111);
    let mut conv = |cin: usize, cout: usize, k: usize| {
        let (weight, bias) = (r.uniform(cout * cin * k * k, -0.3, 0.3), r.uniform(cout, -0.1, 0.1));
        Op::Conv(Conv2d { cin, cout, k, stride: 1, pad: k / 2, weight, bias })
    };
    let (c3, c5, c3b) = (conv(5, 12, 3), conv(12, 9, 5), conv(9, 6, 3));
    let bn = common::random_bn(112, 12);
    let graph = common::graph_of(vec![
        ("c3", c3, vec!["input"]),
        ("bn", bn, vec!["c3"]),
        ("relu", Op::Relu, vec!["bn"]),
        ("c5", c5, vec!["relu"]),
        ("c3b", c3b, vec!["c5"]),
    ]);
    for (h, wd) in [(13, 48), (10, 44)] {
        let input = random_input((h * wd) as i64, 5, h, wd);
        let cpu = convscope::reference::forward_graph(&graph, &input).expect("CPU forward");
        let run = |block: &str| {
            let b = Block::parse(block).expect("block");
            let mut exec = common::executor(ctx);
            let net = exec.upload_with_block(ctx, &graph, convscope::ops::ConvKernel::Tuned, b).expect("upload");
            let acts = exec.run(ctx, &net, &input).expect("run");
            (0..=graph.nodes.len()).map(|i| acts.read(ctx, i).expect("read back")).collect::<Vec<_>>()
        };
        for (plain, image) in [("8x4w", "8x4wi"), ("12x4s", "12x4si"), ("16x3s", "16x3si")] {
            let (want, got) = (run(plain), run(image));
            assert_eq!(got.len(), want.len());
            let what = format!("{image} at {h}x{wd}");
            let last = got.len() - 1;
            common::assert_close(&what, &got[last].data, &cpu[last - 1].data, 1e-4);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                let differ = common::differing_bits(&what, &a.data, &b.data);
                assert_eq!(differ, 0, "{what}: tensor {i} differs from {plain}'s in {differ} values");
            }
        }
    }
}

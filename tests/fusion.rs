//! Fused passes against the CPU twins: a conv or depthwise conv with the batch norm and
//! activation after it, a binary op with the activation after it; whichever of their
//! tensors are kept, every tensor written equals the CPU's, and the plan has fewer steps.

mod common;
use common::{assert_close, random_input};
use convscope::gpu::test_context;
use convscope::ops::ConvKernel as Kernel;
use convscope::reference;
use convscope::tensor::Shape;
use convscope::torch_init::Mt19937;

/// Conv → BatchNorm → ReLU runs as one pass on the tuned kernel; whether the conv's and the
/// batch norm's outputs are written (kept) or not, every written tensor equals the CPU
/// reference, and the fused plan has fewer steps.
#[test]
fn fused_conv_batchnorm_activation_equals_separate_passes() {
    use convscope::plan::Keep;
    let Some(ctx) = test_context() else { return };
    let sd = convscope::weights::StateDict::open(&common::fixture("stack_bn_relu_pool.safetensors")).unwrap();
    let arch = "layers.0(pad=1) layers.1 layers.2=relu layers.3=maxpool(2) layers.4(stride=2,pad=1) layers.5 \
        layers.6=relu layers.7=maxpool(3,2,ceil) layers.8 layers.9=relu layers.10(pad=2) layers.11=relu";
    let net = convscope::arch::build(Some(arch), Some(&sd), 0).unwrap();
    let graph = net.graph();
    let input = random_input(4, 3, 40, 36);
    let cpu = reference::forward(&net, &input).unwrap();
    let mut exec = common::executor(ctx);
    let split_block = convscope::ops::conv_tuned::Block::parse("1x2k8").unwrap();
    let last = graph.nodes.len();
    // The adapter's block, and the split form (its own shader, the same epilogues).
    for (keep, split) in [Keep::All, Keep::Only(vec![last]), Keep::Only(vec![2, last])]
        .into_iter()
        .flat_map(|k| [(k.clone(), false), (k, true)])
    {
        let g = match split {
            true => exec.upload_with_block(ctx, &graph, Kernel::Tuned, split_block).unwrap(),
            false => exec.upload(ctx, &graph, Kernel::Tuned).unwrap(),
        };
        let plan = exec.plan(ctx, &g, input.shape, &keep).unwrap();
        assert_eq!(plan.fusions.len(), 4, "{keep:?}: conv+bn+relu twice, conv+relu twice");
        assert_eq!(plan.steps.len(), graph.nodes.len() - 6, "six passes absorbed");
        let acts = exec
            .run_with(ctx, &g, &input, &convscope::exec::RunOptions { keep: keep.clone(), ..Default::default() })
            .unwrap();
        for (i, want) in cpu.iter().enumerate() {
            if acts.bands[i + 1].is_empty() {
                continue;
            }
            let got = acts.read(ctx, i + 1).unwrap();
            assert_close(&format!("{keep:?} split {split} {}", graph.nodes[i].name), &got.data, &want.data, 1e-5);
        }
        assert!(!acts.bands[last].is_empty());
    }
}

/// Depthwise conv → BatchNorm → activation runs as one depthwise pass (MobileNets are made
/// of these): every tensor written equals the CPU twins', kept or not, with fewer steps.
#[test]
fn fused_depthwise_batchnorm_activation_equals_the_cpu() {
    use convscope::graph::*;
    use convscope::plan::Keep;
    let Some(ctx) = test_context() else { return };
    let mut r = Mt19937::new(23);
    let mut w = |n: usize, lo: f64, hi: f64| r.uniform(n, lo, hi);
    let c = 6;
    let dw = |k: usize, stride: usize, pad: usize, weight: Vec<f32>, bias: Vec<f32>| {
        Op::ConvG(ConvG {
            cin: c,
            cout: c,
            kh: k,
            kw: k,
            stride: [stride, stride],
            dilation: [1, 1],
            pads: [pad; 4],
            groups: c,
            transpose: false,
            output_padding: [0, 0],
            weight,
            bias,
        })
    };
    let mut bn = || Op::BatchNorm {
        weight: w(c, 0.5, 1.5),
        bias: w(c, -0.5, 0.5),
        mean: w(c, -0.2, 0.2),
        var: w(c, 0.5, 2.0),
        eps: 1e-5,
    };
    let (bn1, bn2) = (bn(), bn());
    let ops: Vec<(&str, Op, &str)> = vec![
        ("dw1", dw(3, 1, 1, w(c * 9, -0.5, 0.5), w(c, -0.1, 0.1)), "input"),
        ("bn1", bn1, "dw1"),
        ("hswish", Op::Unary(Unary::HardSwish), "bn1"),
        ("dw2", dw(3, 2, 1, w(c * 9, -0.5, 0.5), w(c, -0.1, 0.1)), "hswish"),
        ("bn2", bn2, "dw2"),
        ("relu", Op::Relu, "bn2"),
        // 25 taps (four loads of 8 in subgroup form), an activation without a batch norm.
        ("dw3", dw(5, 1, 2, w(c * 25, -0.5, 0.5), w(c, -0.1, 0.1)), "relu"),
        ("erf", Op::Unary(Unary::Erf), "dw3"),
    ];
    let graph = common::graph_of(ops.into_iter().map(|(n, op, i)| (n, op, vec![i])).collect());
    let mut exec = common::executor(ctx);
    let g = exec.upload(ctx, &graph, Kernel::Tuned).unwrap();
    let last = graph.nodes.len();
    // Small: channels packed into the invocation index (19x23: rows not of whole vec4s;
    // 40x120: of whole vec4s, written as vec4s); 98x264: over PACK_BELOW blocks a channel,
    // the channel from the workgroup. Heights not multiples of the block's rows.
    {
        use convscope::ops::{StepGeom, depthwise};
        let Op::ConvG(c3) = &graph.nodes[0].op else { panic!("dw1 is a depthwise conv") };
        let blocks = |h: usize, w: usize| {
            let s = convscope::tensor::Shape::new(c, h, w);
            let g = StepGeom { input: s, output: s, in_row0: 0, in_rows: h, out_row0: 0, out_rows: h };
            let (px, py) = (depthwise::outputs_per_invocation(c3), depthwise::rows_per_invocation(c3, &g));
            assert!(!h.is_multiple_of(py as usize), "a partial block of rows at {h}");
            depthwise::blocks_per_channel(px, py, &g)
        };
        assert!(depthwise::packs_channels(blocks(19, 23)) && depthwise::packs_channels(blocks(40, 120)));
        assert!(!depthwise::packs_channels(blocks(98, 264)));
    }
    for (h, w) in [(19, 23), (40, 120), (98, 264)] {
        let input = random_input(8, c, h, w);
        let cpu = reference::forward_graph(&graph, &input).unwrap();
        for keep in [Keep::All, Keep::Only(vec![last]), Keep::Only(vec![1, 5, last])] {
            // dw+bn+act twice, dw+act once: five passes absorbed.
            check_fused(ctx, &mut exec, &g, &input, &cpu, &keep, (3, 5));
        }
    }
}

/// Add → ReLU (every ResNet block ends so) runs as one binary pass, as do other binary ops
/// with the activation after them; every written tensor equals the CPU twins', kept or not.
#[test]
fn fused_binary_activation_equals_the_cpu() {
    use convscope::graph::*;
    use convscope::plan::Keep;
    let Some(ctx) = test_context() else { return };
    let c = 5;
    let mut r = Mt19937::new(31);
    let scale = r.uniform(c, -1.0, 1.0);
    let ops: Vec<(&str, Op, Vec<&str>)> = vec![
        ("relu0", Op::Relu, vec!["input"]),
        ("add", Op::Binary { kind: BinKind::Add, constant: None }, vec!["input", "relu0"]),
        ("relu", Op::Relu, vec!["add"]),
        ("mul", Op::Binary { kind: BinKind::Mul, constant: Some((scale, Shape::new(c, 1, 1))) }, vec!["relu"]),
        ("hsig", Op::Unary(Unary::HardSigmoid { alpha: 0.3, beta: 0.4 }), vec!["mul"]),
        ("sub", Op::Binary { kind: BinKind::Sub, constant: None }, vec!["hsig", "add"]),
        ("erf", Op::Unary(Unary::Erf), vec!["sub"]),
    ];
    let graph = common::graph_of(ops);
    let input = random_input(12, c, 9, 13);
    let cpu = reference::forward_graph(&graph, &input).unwrap();
    let mut exec = common::executor(ctx);
    let g = exec.upload(ctx, &graph, Kernel::Tuned).unwrap();
    let last = graph.nodes.len();
    // add's output is read by sub too, so it is written even when not kept.
    for keep in [Keep::All, Keep::Only(vec![last]), Keep::Only(vec![4, last])] {
        // add+relu, mul+hardsigmoid, sub+erf: three passes absorbed.
        check_fused(ctx, &mut exec, &g, &input, &cpu, &keep, (3, 3));
    }
}

/// Conv → BatchNorm → Sigmoid → Mul(y, sigmoid(y)) (SiLU as ONNX exports it; EfficientNets
/// and YOLO detectors are made of these) runs as one pass where the sigmoid's own output
/// is needed nowhere else, its product written in its place: plain, depthwise and 1×1
/// convs, either operand order, rows of whole vec4s or not; every written tensor equals the
/// CPU twins'. A kept sigmoid keeps its Mul a pass of its own.
#[test]
fn fused_silu_gate_equals_the_cpu() {
    use convscope::graph::*;
    use convscope::plan::Keep;
    let Some(ctx) = test_context() else { return };
    let mut r = Mt19937::new(37);
    let mut w = |n: usize, lo: f64, hi: f64| r.uniform(n, lo, hi);
    let mut bn = |c: usize| Op::BatchNorm {
        weight: w(c, 0.5, 1.5),
        bias: w(c, -0.5, 0.5),
        mean: w(c, -0.2, 0.2),
        var: w(c, 0.5, 2.0),
        eps: 1e-5,
    };
    let (bn1, bn2) = (bn(6), bn(6));
    let mut r = Mt19937::new(38);
    let mut w = |n: usize| r.uniform(n, -0.4, 0.4);
    let conv = |cin: usize, cout: usize, k: usize, groups: usize, weight: Vec<f32>, bias: Vec<f32>| {
        Op::ConvG(ConvG {
            cin,
            cout,
            kh: k,
            kw: k,
            stride: [1, 1],
            dilation: [1, 1],
            pads: [k / 2; 4],
            groups,
            transpose: false,
            output_padding: [0, 0],
            weight,
            bias,
        })
    };
    let mul = || Op::Binary { kind: BinKind::Mul, constant: None };
    let ops: Vec<(&str, Op, Vec<&str>)> = vec![
        ("c1", conv(4, 6, 3, 1, w(6 * 4 * 9), w(6)), vec!["input"]),
        ("bn1", bn1, vec!["c1"]),
        ("sig1", Op::Unary(Unary::Sigmoid), vec!["bn1"]),
        ("silu1", mul(), vec!["bn1", "sig1"]),
        ("dw", conv(6, 6, 3, 6, w(6 * 9), w(6)), vec!["silu1"]),
        ("bn2", bn2, vec!["dw"]),
        ("sig2", Op::Unary(Unary::Sigmoid), vec!["bn2"]),
        ("silu2", mul(), vec!["sig2", "bn2"]),
        ("pw", conv(6, 5, 1, 1, w(5 * 6), w(5)), vec!["silu2"]),
        ("sig3", Op::Unary(Unary::Sigmoid), vec!["pw"]),
        ("silu3", mul(), vec!["pw", "sig3"]),
    ];
    let graph = common::graph_of(ops);
    let mut exec = common::executor(ctx);
    let g = exec.upload(ctx, &graph, Kernel::Tuned).unwrap();
    let last = graph.nodes.len();
    for (h, wd) in [(9, 13), (8, 16)] {
        let input = random_input(14, 4, h, wd);
        let cpu = reference::forward_graph(&graph, &input).unwrap();
        // Gated: bn, sigmoid and Mul absorbed twice, sigmoid and Mul once.
        check_fused(ctx, &mut exec, &g, &input, &cpu, &Keep::Only(vec![last]), (3, 8));
        let plan = exec.plan(ctx, &g, input.shape, &Keep::Only(vec![last])).unwrap();
        assert!(plan.fusions.iter().all(|f| f.gate.is_some()), "{:?}", plan.fusions);
        // sig1 kept (tensor 3): its Mul runs on its own; the others stay gated.
        check_fused(ctx, &mut exec, &g, &input, &cpu, &Keep::Only(vec![3, last]), (3, 7));
        // Every tensor kept (a viewer's run): no gate, every Mul a pass.
        check_fused(ctx, &mut exec, &g, &input, &cpu, &Keep::All, (3, 5));
    }
}

/// Runs `g` on `input` keeping `keep`: the plan has `fusions.0` fusions absorbing
/// `fusions.1` passes, every tensor written equals the CPU's `cpu`, and the last tensor and
/// every kept one are written.
fn check_fused(
    ctx: &convscope::gpu::GpuContext,
    exec: &mut convscope::exec::Executor,
    g: &convscope::exec::GpuNetwork,
    input: &convscope::tensor::Tensor,
    cpu: &[convscope::tensor::Tensor],
    keep: &convscope::plan::Keep,
    fusions: (usize, usize),
) {
    let graph = &g.graph;
    let plan = exec.plan(ctx, g, input.shape, keep).unwrap();
    assert_eq!(plan.fusions.len(), fusions.0, "{keep:?}");
    assert_eq!(plan.steps.len(), graph.nodes.len() - fusions.1, "{keep:?}: passes absorbed");
    let opts = convscope::exec::RunOptions { keep: keep.clone(), ..Default::default() };
    let acts = exec.run_with(ctx, g, input, &opts).unwrap();
    assert_eq!(acts.shapes.len(), cpu.len() + 1);
    for (i, want) in cpu.iter().enumerate() {
        if acts.bands[i + 1].is_empty() {
            continue;
        }
        let got = acts.read(ctx, i + 1).unwrap();
        assert_eq!(got.shape, want.shape);
        let what = format!("{} {keep:?} {}", input.shape, graph.nodes[i].name);
        assert_close(&what, &got.data, &want.data, 2e-6);
    }
    let last = graph.nodes.len();
    assert!(!acts.bands[last].is_empty(), "the last tensor is written");
    if let convscope::plan::Keep::Only(k) = keep {
        for t in k {
            assert!(!acts.bands[*t].is_empty(), "kept tensor {t} is written");
        }
    }
}

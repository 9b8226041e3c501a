//! `convscope bench --model M.onnx`: the whole graph timed N times after a warm-up, with
//! GPU time and GFLOP/s per kind of node (3×3, 1×1, depthwise and other convolutions, and
//! everything else) and in total, as rows like the chain's bench.

use crate::bench::Row;
use crate::env::EngineEnv;
use crate::exec::{Executor, RunOptions, Timing};
use crate::gpu::GpuContext;
use crate::graph::Op;
use crate::model::Prepared;
use crate::ops::ConvKernel;
use crate::plan::Keep;
use crate::source::Source;
use anyhow::Result;

/// The kind a node's time is counted under.
pub fn kind_of(op: &Op) -> &'static str {
    match op {
        Op::Conv(c) if c.k == 1 => "conv1x1",
        Op::Conv(c) if c.k == 3 => "conv3x3",
        Op::Conv(_) => "conv other",
        Op::ConvG(c) if !c.transpose && c.groups > 1 && c.groups == c.cin => "depthwise",
        Op::ConvG(c) if !c.transpose && c.groups == 1 && c.kh == 1 && c.kw == 1 => "conv1x1",
        Op::ConvG(c) if !c.transpose && c.groups == 1 && c.kh == 3 && c.kw == 3 => "conv3x3",
        Op::ConvG(_) => "conv other",
        _ => "other",
    }
}

/// The kinds, in the order rows are printed.
pub const KINDS: [&str; 5] = ["conv3x3", "conv1x1", "depthwise", "conv other", "other"];

/// Times the model `source` names on its input, `runs` times after one warm-up.
pub fn run(
    ctx: &GpuContext,
    env: &EngineEnv,
    source: &Source,
    (runs, nodes): (usize, usize),
    emit: &mut dyn FnMut(&Row),
    progress: &dyn Fn(&str, usize, usize),
) -> Result<()> {
    let prep = Prepared::new(source)?;
    let s = prep.input.tensor.shape;
    let size = format!("{}x{}", s.h, s.w);
    let shapes = prep.graph.infer_shapes(s)?;
    let mut exec = Executor::with_env(ctx, env);
    let mut gnet = exec.upload(ctx, &prep.graph, ConvKernel::Tuned)?;
    // As the chain's bench: every conv layer's block tuned first, whatever it takes.
    exec.autotune(ctx, &mut gnet, s, f64::INFINITY)?;
    // Only the scores (or the last node) are kept: buffers are reused as the plan allows.
    let last = prep.scores.map_or(prep.graph.nodes.len(), |s| s.0);
    let opts = RunOptions { keep: Keep::Only(vec![last]), ..Default::default() };
    let total = runs.max(1) + 1;
    progress(&size, 0, total);
    exec.run_with(ctx, &gnet, &prep.input.tensor, &opts)?;
    let mut per_kind: Vec<Vec<f64>> = vec![Vec::new(); KINDS.len()];
    let mut totals = Vec::new();
    let mut walls = Vec::new();
    let mut per_node: Vec<Vec<f64>> = vec![Vec::new(); prep.graph.nodes.len()];
    let mut gpu = true;
    for r in 0..runs.max(1) {
        let acts = exec.run_with(ctx, &gnet, &prep.input.tensor, &opts)?;
        progress(&size, r + 2, total);
        walls.push(acts.wall_ms);
        match &acts.node_ms {
            Some((ms, Timing::Gpu)) if gpu => {
                anyhow::ensure!(
                    ms.len() == prep.graph.nodes.len(),
                    "{} node times for {} nodes",
                    ms.len(),
                    prep.graph.nodes.len()
                );
                let mut sums = vec![0.0; KINDS.len()];
                for (n, t) in prep.graph.nodes.iter().zip(ms) {
                    sums[KINDS.iter().position(|k| *k == kind_of(&n.op)).unwrap_or(KINDS.len() - 1)] += t;
                }
                for (k, v) in sums.into_iter().enumerate() {
                    per_kind[k].push(v);
                }
                for (v, t) in per_node.iter_mut().zip(ms) {
                    v.push(*t);
                }
                totals.push(ms.iter().sum());
            }
            _ => {
                if gpu {
                    totals.clear();
                }
                gpu = false;
                totals.push(acts.wall_ms);
            }
        }
    }
    let timing = if gpu { "gpu" } else { "wall" };
    let mut flops = vec![0.0; KINDS.len()];
    for (i, n) in prep.graph.nodes.iter().enumerate() {
        let k = KINDS.iter().position(|k| *k == kind_of(&n.op)).unwrap_or(KINDS.len() - 1);
        flops[k] += n.op.flops(shapes[i + 1]);
    }
    let row = |layer: &str, ms: f64, f: f64| Row {
        kernel: "graph",
        block: String::new(),
        size: size.clone(),
        layer: layer.to_string(),
        ms,
        gflops: f / ms / 1e6,
        timing,
    };
    if gpu && nodes > 0 {
        let mut slow: Vec<(f64, usize)> =
            per_node.iter_mut().enumerate().map(|(i, v)| (crate::bench::median(v), i)).collect();
        slow.sort_by(|a, b| b.0.total_cmp(&a.0));
        for &(ms, i) in slow.iter().take(nodes) {
            let n = &prep.graph.nodes[i];
            let f = n.op.flops(shapes[i + 1]);
            emit(&Row { kernel: "node", block: kind_of(&n.op).to_string(), layer: n.name.clone(), ..row("", ms, f) });
        }
    }
    if gpu {
        for (k, kind) in KINDS.iter().enumerate() {
            if flops[k] > 0.0 || per_kind[k].iter().any(|&v| v > 0.0) {
                emit(&row(kind, crate::bench::median(&mut per_kind[k]), flops[k]));
            }
        }
    }
    emit(&row("total", crate::bench::median(&mut totals), flops.iter().sum()));
    if gpu {
        // The GPU's busy time above leaves out what a run also waits for: encoding,
        // submission and the gaps between passes (most of a small model's time on a fast GPU).
        emit(&Row { timing: "wall", ..row("wall", crate::bench::median(&mut walls), flops.iter().sum()) });
    }
    Ok(())
}

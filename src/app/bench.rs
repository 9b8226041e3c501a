//! `convscope bench`: the chain per kernel, block, size and layer, or an ONNX model per
//! kind of node.

use super::{BenchArgs, BenchKernel, progress_bar};
use crate::gpu::GpuContext;
use crate::input;
use crate::network::Network;
use crate::ops::ConvKernel;
use crate::ops::conv_tuned::Block;
use crate::say;
use crate::source::Source;
use anyhow::{Result, bail};

/// `convscope bench`.
pub fn run_bench(b: &BenchArgs) -> Result<()> {
    if let Some(m) = &b.model {
        return run_bench_model(b, m);
    }
    if b.nodes > 0 {
        bail!("--nodes lists a model's slowest nodes: use it with --model");
    }
    if !b.shapes.is_empty() {
        return run_bench_shapes(b);
    }
    let mut sizes = b.sizes.iter().map(|s| crate::bench::parse_size(s)).collect::<Result<Vec<_>>>()?;
    if sizes.is_empty() {
        sizes = vec![(225, 400), (1080, 1920)];
    }
    let kernels = match b.kernel {
        BenchKernel::Naive => vec![ConvKernel::Naive],
        BenchKernel::Tuned => vec![ConvKernel::Tuned],
        BenchKernel::All => vec![ConvKernel::Naive, ConvKernel::Tuned],
    };
    if let Some(p) = &b.image {
        input::load_rgb8(p)?;
    }
    let blocks = b.blocks.iter().map(|s| Block::parse(s)).collect::<Result<Vec<_>>>()?;
    let env = crate::env::EngineEnv::from_env()?;
    // Refuse sizes over the memory budget before any GPU work.
    let net = Network::tutorial(b.seed);
    for &(h, w) in &sizes {
        crate::bench::check_size(&net, h, w, env.memory_budget)?;
    }
    let ctx = GpuContext::headless()?;
    if !b.json {
        say!("adapter: {}", ctx.describe());
        say!(
            "median of {} runs after 1 warm-up; per-layer times: {}",
            b.runs.max(1),
            if ctx.timestamps { "GPU timestamps" } else { "none (this adapter has no timestamp queries)" }
        );
        say!(
            "{:<7} {:<6} {:<11} {:<7} {:>11} {:>9} {:<5}",
            "kernel",
            "block",
            "size",
            "layer",
            "ms",
            "GFLOP/s",
            "timing"
        );
    }
    let spec = crate::bench::BenchSpec { image: b.image.clone(), sizes, kernels, blocks, runs: b.runs, seed: b.seed };
    with_rows(
        b.json,
        &|r| {
            format!(
                "{:<7} {:<6} {:<11} {:<7} {:>11.2} {:>9.2} {:<5}",
                r.kernel, r.block, r.size, r.layer, r.ms, r.gflops, r.timing
            )
        },
        &mut |emit, progress| crate::bench::run(&ctx, &env, &spec, emit, progress),
    )
}

/// `convscope bench --model`.
fn run_bench_model(b: &BenchArgs, model: &std::path::Path) -> Result<()> {
    let size = match b.sizes.as_slice() {
        [] => None,
        [one] => Some(crate::bench::parse_size(one).map(|(h, w)| (h as usize, w as usize))?),
        _ => bail!("bench --model takes one --size (the model's input size when it is dynamic)"),
    };
    let env = crate::env::EngineEnv::from_env()?;
    let source = Source { image: b.image.clone(), model: Some(model.to_path_buf()), size, ..Default::default() };
    crate::model::Prepared::new(&source)?;
    let ctx = GpuContext::headless()?;
    if !b.json {
        say!("adapter: {}", ctx.describe());
        say!("model {}: median of {} runs after 1 warm-up", model.display(), b.runs.max(1));
        say!("{:<11} {:<11} {:>11} {:>9} {:<5}", "size", "nodes", "ms", "GFLOP/s", "timing");
    }
    with_rows(
        b.json,
        &|r| match r.kernel {
            // One node: its kind (in the block column) and name.
            "node" => {
                format!("{:<11} {:<11} {:>11.3} {:>9.2} {:<5} {}", r.size, r.block, r.ms, r.gflops, r.timing, r.layer)
            }
            _ => format!("{:<11} {:<11} {:>11.2} {:>9.2} {:<5}", r.size, r.layer, r.ms, r.gflops, r.timing),
        },
        &mut |emit, progress| crate::bench_model::run(&ctx, &env, &source, (b.runs, b.nodes), emit, progress),
    )
}

/// `convscope bench --shape`.
fn run_bench_shapes(b: &BenchArgs) -> Result<()> {
    let shapes = b.shapes.iter().map(|s| crate::bench::ConvShape::parse(s)).collect::<Result<Vec<_>>>()?;
    let blocks = b.blocks.iter().map(|s| Block::parse(s)).collect::<Result<Vec<_>>>()?;
    let env = crate::env::EngineEnv::from_env()?;
    let ctx = GpuContext::headless()?;
    if !b.json {
        say!("adapter: {}", ctx.describe());
        say!("median of {} runs after 1 warm-up", b.runs.max(1));
        say!("{:<12} {:<6} {:<24} {:>11} {:>9} {:<5}", "kernel", "block", "shape", "ms", "GFLOP/s", "timing");
    }
    with_rows(
        b.json,
        &|r| {
            format!("{:<12} {:<6} {:<24} {:>11.3} {:>9.2} {:<5}", r.kernel, r.block, r.layer, r.ms, r.gflops, r.timing)
        },
        &mut |emit, progress| crate::bench::run_shapes(&ctx, &env, &shapes, &blocks, b.runs, b.seed, emit, progress),
    )
}

/// A benchmark: given where rows go and where progress goes (what, done, total), runs.
type Bench<'a> = dyn FnMut(&mut dyn FnMut(&crate::bench::Row), &dyn Fn(&str, usize, usize)) -> Result<()> + 'a;

/// Runs a benchmark with a progress bar on stderr, printing each row as it is measured:
/// one JSON object per line, or the table line `line` makes.
fn with_rows(json: bool, line: &dyn Fn(&crate::bench::Row) -> String, run: &mut Bench<'_>) -> Result<()> {
    let bar = progress_bar(1, "", "{msg} {bar:20} run {pos}/{len} {elapsed}");
    let result = run(
        &mut |r| bar.suspend(|| if json { say!("{}", r.json()) } else { say!("{}", line(r)) }),
        &|what, done, total| {
            bar.set_message(what.to_string());
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    );
    bar.finish_and_clear();
    result
}

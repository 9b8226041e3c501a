//! `convscope bench`: runs the chain repeatedly per kernel and input size and reports the
//! median time and GFLOP/s of every layer and of the whole chain.

use crate::env::EngineEnv;
use crate::exec::{Executor, RunOptions, Timing};
use crate::gpu::GpuContext;
use crate::input::{self, ChannelOrder};
use crate::network::Network;
use crate::ops::ConvKernel;
use crate::ops::conv_tuned::Block;
use crate::plan::{Keep, Limits, Plan};
use crate::tensor::Shape;
use anyhow::{Result, anyhow, bail};
use std::path::PathBuf;

/// One measured row: a layer (or `total`) of one kernel at one size.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub kernel: &'static str,
    /// The tuned kernel's register block (`PXxOCV`), empty for the naive kernel.
    pub block: String,
    pub size: String,
    pub layer: String,
    pub ms: f64,
    pub gflops: f64,
    /// `gpu` (timestamp queries around the passes) or `wall` (submit to done, encoding
    /// excluded; only the chain `total` is timed this way).
    pub timing: &'static str,
}

impl Row {
    pub fn json(&self) -> String {
        serde_json::json!({
            "kernel": self.kernel,
            "block": self.block,
            "size": self.size,
            "layer": self.layer,
            "ms": (self.ms * 1000.0).round() / 1000.0,
            "gflops": (self.gflops * 100.0).round() / 100.0,
            "timing": self.timing,
        })
        .to_string()
    }
}

/// Parses `HxW`.
pub fn parse_size(s: &str) -> Result<(u32, u32)> {
    let (h, w) = s.split_once(['x', 'X']).ok_or_else(|| anyhow!("size {s:?} is not HxW, e.g. 225x400"))?;
    let h: u32 = h.trim().parse().map_err(|_| anyhow!("size {s:?}: height is not a number"))?;
    let w: u32 = w.trim().parse().map_err(|_| anyhow!("size {s:?}: width is not a number"))?;
    if h == 0 || w == 0 {
        bail!("size {s:?} must be at least 1x1");
    }
    Ok((h, w))
}

/// The median (NaN for no values).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Refuses an `h × w` input whose activations exceed `budget` bytes, before anything is
/// allocated (the bench keeps only the last layer, so buffers are reused).
pub fn check_size(net: &Network, h: u32, w: u32, budget: u64) -> Result<()> {
    let graph = net.graph();
    let shapes = graph.infer_shapes(Shape::new(3, h as usize, w as usize))?;
    let limits = Limits { max_binding: u64::MAX, memory_budget: budget, max_workgroups: u32::MAX };
    Plan::build(&graph, &shapes, &limits, &Keep::Only(vec![shapes.len() - 1]))
        .map(|_| ())
        .map_err(|e| anyhow!("size {h}x{w}: {e}"))
}

/// What to measure.
pub struct BenchSpec {
    pub image: Option<PathBuf>,
    pub sizes: Vec<(u32, u32)>,
    pub kernels: Vec<ConvKernel>,
    /// Register blocks to time the tuned kernel with.
    pub blocks: Vec<Block>,
    pub runs: usize,
    pub seed: i64,
}

/// Times `runs` runs: per-layer GPU times and chain totals, or, when any run lacks GPU
/// timestamps, chain wall times only (two clocks are never mixed). Returns (per layer,
/// totals, whether the times are GPU times).
fn time_runs(
    ctx: &GpuContext,
    exec: &mut Executor,
    gnet: &crate::exec::GpuNetwork,
    input: &crate::tensor::Tensor,
    opts: &RunOptions<'_>,
    runs: usize,
    done: &dyn Fn(usize),
) -> Result<(Vec<Vec<f64>>, Vec<f64>, bool)> {
    let mut per_layer: Vec<Vec<f64>> = vec![Vec::new(); gnet.nodes.len()];
    let mut totals = Vec::new();
    let mut gpu_timed = true;
    for r in 0..runs {
        let acts = exec.run_with(ctx, gnet, input, opts)?;
        done(r);
        match &acts.node_ms {
            Some((ms, Timing::Gpu)) if gpu_timed => {
                for (i, t) in ms.iter().enumerate() {
                    per_layer[i].push(*t);
                }
                totals.push(ms.iter().sum());
            }
            _ => {
                if gpu_timed {
                    totals.clear();
                }
                gpu_timed = false;
                totals.push(acts.wall_ms);
            }
        }
    }
    Ok((per_layer, totals, gpu_timed))
}

/// Runs the benchmark; calls `emit` for every row as soon as it is measured.
/// `progress(what, done, total)` is called before and after every run of each variant.
pub fn run(
    ctx: &GpuContext,
    env: &EngineEnv,
    spec: &BenchSpec,
    emit: &mut dyn FnMut(&Row),
    progress: &dyn Fn(&str, usize, usize),
) -> Result<()> {
    let base = match &spec.image {
        Some(p) => input::load_rgb8(p)?,
        None => input::builtin_scene(),
    };
    let net = Network::tutorial(spec.seed);
    let graph = net.graph();
    let mut exec = Executor::with_env(ctx, env);
    let blocks = if spec.blocks.is_empty() { vec![exec.block] } else { spec.blocks.clone() };
    let mut variants: Vec<(ConvKernel, Block)> = Vec::new();
    for &kernel in &spec.kernels {
        match kernel {
            ConvKernel::Naive => variants.push((kernel, Block::default())),
            ConvKernel::Tuned => variants.extend(blocks.iter().map(|&b| (kernel, b))),
        }
    }
    for &(h, w) in &spec.sizes {
        let img = image::imageops::resize(&base, w, h, image::imageops::FilterType::Triangle);
        let input = input::tensor_from_rgb8(&img, ChannelOrder::Rgb);
        let shapes = net.shapes(Shape::new(3, h as usize, w as usize))?;
        let size = format!("{h}x{w}");
        // Only the last layer is kept: earlier buffers are reused, as a user's run would.
        let opts = RunOptions { keep: Keep::Only(vec![shapes.len()]), ..Default::default() };
        for &(kernel, block) in &variants {
            let block_name = match kernel {
                ConvKernel::Naive => String::new(),
                ConvKernel::Tuned => block.name(),
            };
            let gnet = exec.upload_with_block(ctx, &graph, kernel, block)?;
            // Warm-up: builds and caches the pipelines, touches the buffers.
            let what = format!("{} {block_name} {size}", kernel.name());
            let total = spec.runs.max(1) + 1;
            progress(&what, 0, total);
            exec.run_with(ctx, &gnet, &input, &opts)?;
            progress(&what, 1, total);
            let (mut per_layer, mut totals, gpu_timed) =
                time_runs(ctx, &mut exec, &gnet, &input, &opts, spec.runs.max(1), &|r| progress(&what, r + 2, total))?;
            let timing = if gpu_timed { "gpu" } else { "wall" };
            let mut total_flops = 0.0;
            for (i, layer) in net.layers.iter().enumerate() {
                let flops = layer.op.flops(shapes[i]);
                total_flops += flops;
                if gpu_timed {
                    let ms = median(&mut per_layer[i]);
                    emit(&Row {
                        kernel: kernel.name(),
                        block: block_name.clone(),
                        size: size.clone(),
                        layer: layer.name.clone(),
                        ms,
                        gflops: flops / ms / 1e6,
                        timing,
                    });
                }
            }
            let ms = median(&mut totals);
            emit(&Row {
                kernel: kernel.name(),
                block: block_name.clone(),
                size: size.clone(),
                layer: "total".into(),
                ms,
                gflops: total_flops / ms / 1e6,
                timing,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("225x400").unwrap(), (225, 400));
        assert_eq!(parse_size("2160X3840").unwrap(), (2160, 3840));
        assert!(parse_size("225").is_err());
        assert!(parse_size("0x5").is_err());
        assert!(parse_size("ax5").is_err());
    }

    #[test]
    fn absurd_sizes_are_refused_before_allocating() {
        let net = Network::tutorial(0);
        assert!(check_size(&net, 225, 400, 4 << 30).is_ok());
        let e = check_size(&net, 100_000, 100_000, 4 << 30).unwrap_err().to_string();
        assert!(e.starts_with("size 100000x100000:") && e.contains("GPU memory"), "{e}");
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn json_row_has_the_documented_fields() {
        let r = Row {
            kernel: "tuned",
            block: "8x2".into(),
            size: "225x400".into(),
            layer: "conv1".into(),
            ms: 1.23456,
            gflops: 9.876,
            timing: "gpu",
        };
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        for k in ["kernel", "block", "size", "layer", "ms", "gflops", "timing"] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(v["layer"], "conv1");
    }
}

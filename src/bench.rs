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

fn shapes_in(h: u32, w: u32) -> Shape {
    Shape::new(3, h as usize, w as usize)
}

/// Uploads a graph for a kernel and block; without a block, autotunes it (measuring what
/// the cache lacks). Returns the network and, per node, the block name it runs with.
fn upload_variant(
    ctx: &GpuContext,
    exec: &mut Executor,
    graph: &crate::graph::Graph,
    kernel: ConvKernel,
    block: Option<Block>,
    input: Shape,
) -> Result<(crate::exec::GpuNetwork, Vec<Option<String>>)> {
    let mut gnet = exec.upload_with_block(ctx, graph, kernel, block.unwrap_or(exec.block))?;
    let mut names = vec![None; graph.nodes.len()];
    if block.is_none() && kernel == ConvKernel::Tuned {
        // A benchmark measures every layer, whatever it takes.
        let tuned = exec.autotune(ctx, &mut gnet, input, f64::INFINITY)?;
        for (i, n) in graph.nodes.iter().enumerate() {
            names[i] = tuned.iter().find(|t| t.node == n.name).map(|t| t.block.name());
        }
    }
    // Layers autotuning left alone (or a forced block) run the executor's default.
    for (i, node) in gnet.nodes.iter().enumerate() {
        if let (None, crate::ops::GpuNode::ConvTuned(c)) = (&names[i], node) {
            names[i] = Some(c.block.name());
        }
    }
    Ok((gnet, names))
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
    // No --block: each layer gets the block autotuning chose (None below).
    let blocks: Vec<Option<Block>> =
        if spec.blocks.is_empty() { vec![None] } else { spec.blocks.iter().copied().map(Some).collect() };
    let mut variants: Vec<(ConvKernel, Option<Block>)> = Vec::new();
    for &kernel in &spec.kernels {
        match kernel {
            ConvKernel::Naive => variants.push((kernel, Some(Block::default()))),
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
            let (gnet, layer_blocks) = upload_variant(ctx, &mut exec, &graph, kernel, block, shapes_in(h, w))?;
            let block_name = match (kernel, block) {
                (ConvKernel::Naive, _) => String::new(),
                (ConvKernel::Tuned, Some(b)) => b.name(),
                (ConvKernel::Tuned, None) => "auto".into(),
            };
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
                        block: layer_blocks.get(i).cloned().flatten().unwrap_or_else(|| block_name.clone()),
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

/// One convolution to time alone (`bench --shape Cin,Cout,K,HxW[,stride,pad,groups]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub h: usize,
    pub w: usize,
    pub stride: usize,
    pub pad: usize,
    pub groups: usize,
}

impl ConvShape {
    /// Parses `Cin,Cout,K,HxW[,stride,pad,groups]` (stride 1, pad 0, groups 1 by default).
    pub fn parse(s: &str) -> Result<ConvShape> {
        let p: Vec<&str> = s.split(',').map(str::trim).collect();
        if !(4..=7).contains(&p.len()) {
            bail!("shape {s:?} is not Cin,Cout,K,HxW[,stride,pad,groups], e.g. 64,64,3,56x56,1,1");
        }
        let num = |i: usize, what: &str, default: usize| -> Result<usize> {
            match p.get(i) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| anyhow!("shape {s:?}: {what} {v:?} is not a number")),
            }
        };
        let (h, w) = parse_size(p[3]).map_err(|e| anyhow!("shape {s:?}: {e}"))?;
        let c = ConvShape {
            cin: num(0, "Cin", 0)?,
            cout: num(1, "Cout", 0)?,
            k: num(2, "K", 0)?,
            h: h as usize,
            w: w as usize,
            stride: num(4, "stride", 1)?,
            pad: num(5, "pad", 0)?,
            groups: num(6, "groups", 1)?,
        };
        let limit = 1 << 16;
        if [c.cin, c.cout, c.k, c.stride, c.groups].iter().any(|&v| v == 0 || v > limit) || c.pad > limit {
            bail!("shape {s:?}: Cin, Cout, K, stride and groups must be 1..{limit}, pad 0..{limit}");
        }
        if !c.cin.is_multiple_of(c.groups) || !c.cout.is_multiple_of(c.groups) {
            bail!("shape {s:?}: Cin and Cout must be multiples of groups");
        }
        if c.h + 2 * c.pad < c.k || c.w + 2 * c.pad < c.k {
            bail!("shape {s:?}: the kernel is larger than the padded input");
        }
        Ok(c)
    }

    /// `Cin,Cout,K,HxW,stride,pad,groups`.
    pub fn name(&self) -> String {
        let c = self;
        format!("{},{},{},{}x{},{},{},{}", c.cin, c.cout, c.k, c.h, c.w, c.stride, c.pad, c.groups)
    }

    /// A graph of this one convolution with seeded weights (PyTorch's default init).
    pub fn graph(&self, seed: i64) -> crate::graph::Graph {
        let c = self;
        let mut rng = crate::torch_init::Mt19937::new(seed);
        let (weight, bias) = crate::torch_init::conv2d_default_init(&mut rng, c.cin / c.groups, c.cout, c.k);
        let op = if c.groups == 1 {
            crate::graph::Op::Conv(crate::network::Conv2d {
                cin: c.cin,
                cout: c.cout,
                k: c.k,
                stride: c.stride,
                pad: c.pad,
                weight,
                bias,
            })
        } else {
            crate::graph::Op::ConvG(crate::graph::ConvG {
                cin: c.cin,
                cout: c.cout,
                kh: c.k,
                kw: c.k,
                stride: [c.stride; 2],
                dilation: [1, 1],
                pads: [c.pad; 4],
                groups: c.groups,
                transpose: false,
                output_padding: [0, 0],
                weight,
                bias,
            })
        };
        crate::graph::Graph {
            input: crate::graph::INPUT.into(),
            nodes: vec![crate::graph::Node {
                name: "conv".into(),
                op,
                inputs: vec![crate::graph::INPUT.into()],
                output: "conv".into(),
            }],
        }
    }
}

/// Times single convolutions: one row per shape and block (blocks apply where the tuned
/// kernel runs; depthwise and grouped convolutions have kernels of their own).
#[allow(clippy::too_many_arguments)]
pub fn run_shapes(
    ctx: &GpuContext,
    env: &EngineEnv,
    shapes: &[ConvShape],
    blocks: &[Block],
    runs: usize,
    seed: i64,
    emit: &mut dyn FnMut(&Row),
    progress: &dyn Fn(&str, usize, usize),
) -> Result<()> {
    let mut exec = Executor::with_env(ctx, env);
    let blocks: Vec<Option<Block>> =
        if blocks.is_empty() { vec![None] } else { blocks.iter().copied().map(Some).collect() };
    for s in shapes {
        let graph = s.graph(seed);
        let shapes_t = graph.infer_shapes(Shape::new(s.cin, s.h, s.w))?;
        let limits = exec.limits(ctx);
        Plan::build(&graph, &shapes_t, &limits, &Keep::Only(vec![1]))
            .map_err(|e| anyhow!("shape {}: {e}", s.name()))?;
        let mut rng = crate::torch_init::Mt19937::new(seed ^ 0x5eed);
        let input = crate::tensor::Tensor::new(Shape::new(s.cin, s.h, s.w), rng.uniform(s.cin * s.h * s.w, -1.0, 1.0));
        let flops = graph.nodes[0].op.flops(shapes_t[1]);
        let opts = RunOptions { keep: Keep::Only(vec![1]), ..Default::default() };
        let tuned = s.groups == 1;
        for &block in if tuned { &blocks[..] } else { &blocks[..1] } {
            let (gnet, names) =
                upload_variant(ctx, &mut exec, &graph, ConvKernel::Tuned, block, Shape::new(s.cin, s.h, s.w))?;
            let kernel = gnet.nodes[0].kind();
            let block_name = if tuned { names[0].clone().unwrap_or_default() } else { String::new() };
            let what = format!("{kernel} {block_name} {}", s.name());
            let total = runs.max(1) + 1;
            progress(&what, 0, total);
            exec.run_with(ctx, &gnet, &input, &opts)?;
            progress(&what, 1, total);
            let (mut per_layer, mut totals, gpu_timed) =
                time_runs(ctx, &mut exec, &gnet, &input, &opts, runs.max(1), &|r| progress(&what, r + 2, total))?;
            let ms = if gpu_timed { median(&mut per_layer[0]) } else { median(&mut totals) };
            emit(&Row {
                kernel,
                block: block_name,
                size: format!("{}x{}", s.h, s.w),
                layer: s.name(),
                ms,
                gflops: flops / ms / 1e6,
                timing: if gpu_timed { "gpu" } else { "wall" },
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
    fn conv_shapes_parse_with_defaults_and_refuse_nonsense() {
        let c = ConvShape::parse("64,64,3,56x56,1,1").unwrap();
        assert_eq!((c.cin, c.cout, c.k, c.h, c.w, c.stride, c.pad, c.groups), (64, 64, 3, 56, 56, 1, 1, 1));
        assert_eq!(c.name(), "64,64,3,56x56,1,1,1");
        assert_eq!(ConvShape::parse("96,96,3,56x56,1,1,96").unwrap().groups, 96);
        assert_eq!(ConvShape::parse(" 64, 256, 1, 56x56").unwrap().k, 1);
        for bad in [
            "64,64,3",
            "64,64,3,56",
            "a,64,3,56x56",
            "0,64,3,56x56",
            "64,64,9,4x4",
            "6,64,3,8x8,1,1,4",
            "64,64,3,56x56,1,1,1,1",
        ] {
            assert!(ConvShape::parse(bad).is_err(), "{bad}");
        }
        // A depthwise shape becomes a grouped conv node; a plain one a plain conv.
        let g = ConvShape::parse("8,8,3,10x10,1,1,8").unwrap().graph(0);
        assert!(matches!(g.nodes[0].op, crate::graph::Op::ConvG(_)));
        assert!(g.infer_shapes(Shape::new(8, 10, 10)).is_ok());
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

//! The convolution chain on the GPU: pipelines (naive baseline and the shape-specialised
//! tuned kernel, cached by configuration), weights uploaded once, and one submission that
//! runs every layer plus the per-channel statistics, timed with GPU timestamps.

use crate::gpu::GpuContext;
use crate::network::{Conv2d, Network, Op};
use crate::shader;
use crate::tensor::{Shape, Tensor};
use anyhow::{Result, anyhow, bail};
use std::collections::HashMap;
use std::time::Instant;
use wgpu::util::DeviceExt;

/// Which convolution shader runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Kernel {
    /// One output per invocation, shapes in a uniform: the baseline.
    Naive,
    /// Register-blocked, shape-specialised.
    #[default]
    Tuned,
}

impl Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Naive => "naive",
            Kernel::Tuned => "tuned",
        }
    }
}

/// Register block of the tuned kernel: x outputs and vec4 output-channel groups per invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Block {
    pub px: u32,
    pub ocv: u32,
    /// Write the block out unrolled (named registers) instead of as loops over arrays.
    pub unroll: bool,
}

impl Default for Block {
    fn default() -> Self {
        Block { px: 8, ocv: 2, unroll: true }
    }
}

impl Block {
    /// The block for an adapter, chosen by measurement (`convscope bench --block ...`):
    /// on CPU adapters (lavapipe) wide blocks win because llvmpipe runs 8 invocations per
    /// SIMD op and keeps large register blocks in vector registers: 24x3 measured 33 GFLOP/s
    /// on the tutorial chain against 20 for 8x2 and 11 for 4x1. GPUs spill registers past
    /// ~128 floats per invocation, so they get the moderate 8x2 (64 accumulators); no
    /// discrete GPU was available to measure it. `CONVSCOPE_BLOCK=PXxOCV` overrides.
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> Block {
        if let Ok(v) = std::env::var("CONVSCOPE_BLOCK")
            && let Ok(b) = crate::bench::parse_block(&v)
        {
            return b;
        }
        match info.device_type {
            wgpu::DeviceType::Cpu => Block { px: 24, ocv: 3, unroll: true },
            _ => Block::default(),
        }
    }
}

/// Everything that is baked into one tuned pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TunedKey {
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    input: Shape,
    output: Shape,
    block: Block,
}

/// A conv layer's weights on the GPU, in both layouts.
pub struct GpuConv {
    pub spec: Conv2d,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
    /// Packed as vec4 over output channels, padded to whole blocks.
    packed_weight: wgpu::Buffer,
    packed_bias: wgpu::Buffer,
    packed_groups: usize,
}

/// An elementwise layer's parameters on the GPU (`a`: slopes or BatchNorm scale, `b`:
/// BatchNorm shift).
pub struct GpuPointwise {
    /// 0 = ReLU, 1 = PReLU, 2 = affine (BatchNorm), as `pointwise.wgsl` reads it.
    mode: u32,
    per_channel: bool,
    a: wgpu::Buffer,
    b: wgpu::Buffer,
}

/// A layer ready to run on the GPU.
pub enum GpuLayer {
    Conv(GpuConv),
    Pointwise(GpuPointwise),
    MaxPool { k: usize, stride: usize },
}

/// A network whose weights live on the GPU.
pub struct GpuNetwork {
    pub net: Network,
    pub layers: Vec<GpuLayer>,
    pub block: Block,
}

/// One horizontal band of a layer held in its own GPU buffer: rows `row0 .. row0 + rows`
/// of every channel (`[C][rows][W]`). Neighbouring bands overlap by the rows the next
/// layer's kernel needs; each row is *owned* (counted in statistics, drawn) by exactly one
/// band: `own_lo .. own_hi`.
#[derive(Clone, Debug)]
pub struct Band {
    pub buffer: wgpu::Buffer,
    pub row0: usize,
    pub rows: usize,
    pub own_lo: usize,
    pub own_hi: usize,
}

/// The result of one run: every layer's output (index 0 is the input) in one or more
/// row bands, and its per-channel `(min, max)`, all still on the GPU.
pub struct Activations {
    pub names: Vec<String>,
    pub shapes: Vec<Shape>,
    pub bands: Vec<Vec<Band>>,
    pub stats: Vec<wgpu::Buffer>,
    /// Per-channel (sum, sum of squares, zeros, count) for the HUD's statistics.
    pub moments: Vec<wgpu::Buffer>,
    /// GPU time of each layer's convolution in ms (timestamp queries), if the adapter has them.
    pub gpu_ms: Option<Vec<f64>>,
    /// Wall time from the first submission to completion, in ms.
    pub wall_ms: f64,
}

impl Activations {
    /// Reads layer `i` (0 = input) back to the CPU, assembled from its bands.
    pub fn read(&self, ctx: &GpuContext, i: usize) -> Result<Tensor> {
        let s = self.shapes[i];
        let mut t = Tensor::zeros(s);
        for b in &self.bands[i] {
            let bytes = ctx.read_buffer(&b.buffer, 0, (s.c * b.rows * s.w * 4) as u64)?;
            let vals: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
            for c in 0..s.c {
                for y in b.own_lo..b.own_hi {
                    let src = (c * b.rows + (y - b.row0)) * s.w;
                    let dst = (c * s.h + y) * s.w;
                    t.data[dst..dst + s.w].copy_from_slice(&vals[src..src + s.w]);
                }
            }
        }
        Ok(t)
    }

    /// Reads layer `i`'s per-channel `(min, max)`.
    pub fn read_stats(&self, ctx: &GpuContext, i: usize) -> Result<Vec<[f32; 2]>> {
        let bytes = ctx.read_buffer(&self.stats[i], 0, self.shapes[i].c as u64 * 8)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Reads layer `i`'s whole-layer statistics.
    pub fn read_layer_stats(&self, ctx: &GpuContext, i: usize) -> Result<LayerStats> {
        let mm = self.read_stats(ctx, i)?;
        let bytes = ctx.read_buffer(&self.moments[i], 0, self.shapes[i].c as u64 * 16)?;
        let m: Vec<[f32; 4]> = bytemuck::pod_collect_to_vec(&bytes);
        Ok(LayerStats::combine(&mm, &m))
    }

    /// Reads one channel of layer `i` (for its histogram).
    pub fn read_channel(&self, ctx: &GpuContext, i: usize, c: usize) -> Result<Vec<f32>> {
        let s = self.shapes[i];
        let mut out = vec![0.0f32; s.plane()];
        for b in &self.bands[i] {
            let rows = b.own_hi - b.own_lo;
            if rows == 0 {
                continue;
            }
            let off = ((c * b.rows + (b.own_lo - b.row0)) * s.w * 4) as u64;
            let bytes = ctx.read_buffer(&b.buffer, off, (rows * s.w * 4) as u64)?;
            let vals: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
            out[b.own_lo * s.w..b.own_hi * s.w].copy_from_slice(&vals);
        }
        Ok(out)
    }

    /// Reads one value of layer `i`.
    pub fn read_value(&self, ctx: &GpuContext, i: usize, c: usize, y: usize, x: usize) -> Result<f32> {
        let s = self.shapes[i];
        let b = self.bands[i]
            .iter()
            .find(|b| (b.own_lo..b.own_hi).contains(&y))
            .ok_or_else(|| anyhow!("row {y} is outside {}", self.names[i]))?;
        let off = (((c * b.rows + (y - b.row0)) * s.w + x) * 4) as u64;
        // Copies must be 4-byte aligned and sized; one f32 is exactly that.
        let bytes = ctx.read_buffer(&b.buffer, off, 4)?;
        Ok(f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Number of bands each layer is held in.
    pub fn band_counts(&self) -> Vec<usize> {
        self.bands.iter().map(Vec::len).collect()
    }
}

/// Whole-layer statistics for the HUD.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerStats {
    pub min: f32,
    pub max: f32,
    pub mean: f64,
    pub std: f64,
    /// Fraction of values that are exactly zero.
    pub zeros: f64,
}

impl LayerStats {
    /// Combines per-channel `(min, max)` and `(sum, sum of squares, zeros, count)`.
    pub fn combine(minmax: &[[f32; 2]], moments: &[[f32; 4]]) -> Self {
        let (min, max) = crate::grid::layer_range(minmax);
        let (mut s, mut ss, mut z, mut n) = (0f64, 0f64, 0f64, 0f64);
        for m in moments {
            s += m[0] as f64;
            ss += m[1] as f64;
            z += m[2] as f64;
            n += m[3] as f64;
        }
        let n = n.max(1.0);
        let mean = s / n;
        LayerStats { min, max, mean, std: (ss / n - mean * mean).max(0.0).sqrt(), zeros: z / n }
    }

    /// The same statistics computed on the CPU (the twin of the GPU reduction).
    pub fn of(t: &Tensor) -> Self {
        let n = t.data.len().max(1) as f64;
        let mean = t.data.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = t.data.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let (min, max) = t.data.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let zeros = t.data.iter().filter(|&&v| v == 0.0).count() as f64 / n;
        LayerStats { min, max, mean, std: var.sqrt(), zeros }
    }
}

/// A 64-bin histogram of `values` over `lo..hi` (a constant channel fills bin 0).
pub fn histogram(values: &[f32], lo: f32, hi: f32) -> [u32; 64] {
    let mut h = [0u32; 64];
    for &v in values {
        let i = if hi > lo { (((v - lo) / (hi - lo)) * 64.0).floor().clamp(0.0, 63.0) as usize } else { 0 };
        h[i] += 1;
    }
    h
}

/// Row ranges `[lo, hi)` of every layer's bands (index 0 = input) when the last layer is
/// split into `n` bands: each band of a layer holds exactly the rows the next layer's band
/// needs (the kernel's halo included), widened so that the bands cover every row.
pub fn plan_bands(net: &Network, shapes: &[Shape], n: usize) -> Vec<Vec<(usize, usize)>> {
    let last = shapes.len() - 1;
    let h_last = shapes[last].h;
    let n = n.clamp(1, h_last.max(1));
    let mut ranges: Vec<Vec<(usize, usize)>> = vec![Vec::new(); shapes.len()];
    ranges[last] = (0..n).map(|j| (j * h_last / n, (j + 1) * h_last / n)).collect();
    for l in (0..last).rev() {
        let h = shapes[l].h;
        let op = &net.layers[l].op;
        let mut need: Vec<(usize, usize)> = ranges[l + 1].iter().map(|&(a, b)| op.input_rows(a, b, h)).collect();
        need[0].0 = 0;
        for j in 0..need.len() - 1 {
            need[j].1 = need[j].1.max(need[j + 1].0);
        }
        if let Some(lastb) = need.last_mut() {
            lastb.1 = h;
        }
        ranges[l] = need;
    }
    ranges
}

/// The rows band `j` of a layer owns: from its start to the next band's start.
fn owned(ranges: &[(usize, usize)], j: usize, h: usize) -> (usize, usize) {
    let lo = if j == 0 { 0 } else { ranges[j].0.max(ranges[j - 1].0) };
    let hi = if j + 1 == ranges.len() { h } else { ranges[j + 1].0 };
    (lo.min(hi), hi)
}

/// Called after each layer of a banded run: (layers done, layers in all).
pub type Progress<'a> = &'a dyn Fn(usize, usize);

/// Pipelines, built once and cached by configuration.
pub struct Engine {
    naive: wgpu::ComputePipeline,
    naive_layout: wgpu::BindGroupLayout,
    tuned_layout: wgpu::BindGroupLayout,
    tuned_pipeline_layout: wgpu::PipelineLayout,
    tuned: HashMap<TunedKey, wgpu::ComputePipeline>,
    minmax: wgpu::ComputePipeline,
    minmax_layout: wgpu::BindGroupLayout,
    pointwise: wgpu::ComputePipeline,
    pointwise_layout: wgpu::BindGroupLayout,
    maxpool: wgpu::ComputePipeline,
    maxpool_layout: wgpu::BindGroupLayout,
    /// Largest buffer one band may use; defaults to the device's binding and buffer limits.
    /// Lower it to force banding (tests do).
    pub max_binding: Option<u64>,
    /// Largest total of all activation buffers of one run (default 4 GiB, or
    /// `CONVSCOPE_GPU_MEMORY_MB`); larger inputs are refused with a clear message.
    pub memory_budget: u64,
    /// Buffers of the last run, reused by the next run of the same shapes.
    cache: Option<RunBuffers>,
}

/// Buffers one run of a given set of shapes uses.
#[derive(Clone)]
struct RunBuffers {
    shapes: Vec<Shape>,
    ranges: Vec<Vec<(usize, usize)>>,
    buffers: Vec<Vec<wgpu::Buffer>>,
    stats: Vec<wgpu::Buffer>,
    moments: Vec<wgpu::Buffer>,
}

/// The default activation memory budget.
pub fn default_memory_budget() -> u64 {
    std::env::var("CONVSCOPE_GPU_MEMORY_MB").ok().and_then(|v| v.parse::<u64>().ok()).map_or(4 << 30, |mb| mb << 20)
}

fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

pub(crate) fn uniform_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

pub(crate) fn storage(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    storage_entry(binding, read_only)
}

pub(crate) fn compute_pipeline(
    ctx: &GpuContext,
    label: &str,
    source: &str,
    layouts: &[Option<&wgpu::BindGroupLayout>],
) -> (wgpu::ComputePipeline, wgpu::PipelineLayout) {
    let device = &ctx.device;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(label),
        bind_group_layouts: layouts,
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: Some(&layout),
        module: &module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &[],
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    });
    (pipeline, layout)
}

fn bind_group(
    ctx: &GpuContext,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
        .collect();
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(label), layout, entries: &entries })
}

/// Splits `n` workgroups over x and y so neither exceeds the per-dimension limit.
pub fn split_workgroups(n: u32, max_per_dim: u32) -> (u32, u32) {
    if n <= max_per_dim { (n.max(1), 1) } else { (max_per_dim, n.div_ceil(max_per_dim)) }
}

/// Packs `[cout, cin, k, k]` weights as vec4 over output channels, `groups` groups of 4
/// (zero beyond `cout`), and the bias likewise.
pub fn pack_weights(c: &Conv2d, groups: usize) -> (Vec<f32>, Vec<f32>) {
    let kk = c.k * c.k;
    let mut w = vec![0.0f32; groups * c.cin * kk * 4];
    let mut b = vec![0.0f32; groups * 4];
    for co in 0..c.cout {
        let (g, lane) = (co / 4, co % 4);
        b[g * 4 + lane] = c.bias[co];
        for ci in 0..c.cin {
            for t in 0..kk {
                w[((g * c.cin + ci) * kk + t) * 4 + lane] = c.weight[(co * c.cin + ci) * kk + t];
            }
        }
    }
    (w, b)
}

impl Engine {
    pub fn new(ctx: &GpuContext) -> Self {
        let device = &ctx.device;
        let naive_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("conv2d naive bind group layout"),
            entries: &[
                uniform_entry(0),
                storage_entry(1, true),
                storage_entry(2, true),
                storage_entry(3, true),
                storage_entry(4, false),
            ],
        });
        let (naive, _) = compute_pipeline(ctx, "conv2d naive", shader::CONV2D_NAIVE, &[Some(&naive_layout)]);
        let tuned_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("conv2d tuned bind group layout"),
            entries: &[
                storage_entry(0, true),
                storage_entry(1, true),
                storage_entry(2, true),
                storage_entry(3, false),
                uniform_entry(4),
            ],
        });
        let tuned_pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("conv2d tuned pipeline layout"),
            bind_group_layouts: &[Some(&tuned_layout)],
            immediate_size: 0,
        });
        let minmax_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("minmax bind group layout"),
            entries: &[uniform_entry(0), storage_entry(1, true), storage_entry(2, false), storage_entry(3, false)],
        });
        let (minmax, _) = compute_pipeline(ctx, "minmax", shader::MINMAX, &[Some(&minmax_layout)]);
        let pointwise_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("pointwise bind group layout"),
            entries: &[
                uniform_entry(0),
                storage_entry(1, true),
                storage_entry(2, true),
                storage_entry(3, true),
                storage_entry(4, false),
            ],
        });
        let (pointwise, _) = compute_pipeline(ctx, "pointwise", shader::POINTWISE, &[Some(&pointwise_layout)]);
        let maxpool_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("maxpool bind group layout"),
            entries: &[uniform_entry(0), storage_entry(1, true), storage_entry(2, false)],
        });
        let (maxpool, _) = compute_pipeline(ctx, "maxpool", shader::MAXPOOL, &[Some(&maxpool_layout)]);
        Self {
            naive,
            naive_layout,
            tuned_layout,
            tuned_pipeline_layout,
            tuned: HashMap::new(),
            minmax,
            minmax_layout,
            pointwise,
            pointwise_layout,
            maxpool,
            maxpool_layout,
            // A smaller per-buffer limit forces banding, to exercise the large-image path.
            max_binding: std::env::var("CONVSCOPE_MAX_BINDING_KB")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .map(|kb| kb << 10),
            memory_budget: default_memory_budget(),
            cache: None,
        }
    }

    /// Forgets the buffers kept for the next run of the same size (frees them once the
    /// activations that share them are dropped).
    pub fn clear_cache(&mut self) {
        self.cache = None;
    }

    /// Number of tuned pipelines built so far (they are cached by shape).
    pub fn cached_pipelines(&self) -> usize {
        self.tuned.len()
    }

    fn tuned_pipeline(&mut self, ctx: &GpuContext, key: TunedKey) -> &wgpu::ComputePipeline {
        let layout = &self.tuned_pipeline_layout;
        self.tuned.entry(key).or_insert_with(|| {
            let u = |v: usize| v as u32;
            let src = shader::tuned_source(
                &[
                    ("CIN", u(key.cin)),
                    ("COUT", u(key.cout)),
                    ("K", u(key.k)),
                    ("STRIDE", u(key.stride)),
                    ("PAD", u(key.pad)),
                    ("IN_H", u(key.input.h)),
                    ("IN_W", u(key.input.w)),
                    ("OUT_H", u(key.output.h)),
                    ("OUT_W", u(key.output.w)),
                    ("PX", key.block.px),
                    ("OCV", key.block.ocv),
                ],
                key.block.unroll,
            );
            let label = format!(
                "conv2d tuned {}->{} k{} s{} p{} {}x{} block {}x{}",
                key.cin, key.cout, key.k, key.stride, key.pad, key.input.h, key.input.w, key.block.px, key.block.ocv
            );
            let module = ctx.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&label),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
            ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(layout),
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[],
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
        })
    }

    /// Uploads a network's weights once, in the layouts both kernels read.
    pub fn upload(&self, ctx: &GpuContext, net: &Network, block: Block) -> Result<GpuNetwork> {
        let device = &ctx.device;
        let mut layers = Vec::new();
        for layer in &net.layers {
            match &layer.op {
                Op::Conv(c) => {
                    let groups = c.cout.div_ceil(4).div_ceil(block.ocv as usize) * block.ocv as usize;
                    let (pw, pb) = pack_weights(c, groups);
                    let init = |label: String, data: &[f32]| {
                        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                            label: Some(&label),
                            contents: bytemuck::cast_slice(data),
                            usage: wgpu::BufferUsages::STORAGE,
                        })
                    };
                    layers.push(GpuLayer::Conv(GpuConv {
                        spec: c.clone(),
                        weight: init(format!("{} weight", layer.name), &c.weight),
                        bias: init(format!("{} bias", layer.name), &c.bias),
                        packed_weight: init(format!("{} packed weight", layer.name), &pw),
                        packed_bias: init(format!("{} packed bias", layer.name), &pb),
                        packed_groups: groups,
                    }));
                }
                Op::MaxPool { k, stride, .. } => layers.push(GpuLayer::MaxPool { k: *k, stride: *stride }),
                op => {
                    let (mode, a, b) = match op {
                        Op::Relu => (0, vec![0.0], vec![0.0]),
                        Op::PRelu { slopes } => (1, slopes.clone(), vec![0.0]),
                        _ => {
                            let (alpha, beta) = op.batchnorm_affine().expect("a batchnorm");
                            (2, alpha, beta)
                        }
                    };
                    let init = |label: String, data: &[f32]| {
                        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                            label: Some(&label),
                            contents: bytemuck::cast_slice(data),
                            usage: wgpu::BufferUsages::STORAGE,
                        })
                    };
                    layers.push(GpuLayer::Pointwise(GpuPointwise {
                        mode,
                        per_channel: a.len() > 1,
                        a: init(format!("{} parameters a", layer.name), &a),
                        b: init(format!("{} parameters b", layer.name), &b),
                    }));
                }
            }
        }
        ctx.check_errors()?;
        Ok(GpuNetwork { net: net.clone(), layers, block })
    }

    /// Runs the whole chain on `input`: every layer, then every layer's channel statistics,
    /// with nothing read back between layers. Small inputs go in one submission; layers too
    /// large for one buffer run in horizontal bands, one submission per layer, reporting
    /// `progress`.
    pub fn run(&mut self, ctx: &GpuContext, gnet: &GpuNetwork, input: &Tensor, kernel: Kernel) -> Result<Activations> {
        self.run_with_progress(ctx, gnet, input, kernel, &|_, _| {})
    }

    /// The buffers for a run of `shapes`: the last run's when the shapes match, else new.
    fn buffers_for(
        &mut self,
        ctx: &GpuContext,
        names: &[String],
        shapes: &[Shape],
        net: &Network,
    ) -> Result<RunBuffers> {
        if let Some(c) = &self.cache
            && c.shapes == shapes
        {
            return Ok(c.clone());
        }
        self.cache = None;
        let l = ctx.limits();
        let device_cap = l.max_storage_buffer_binding_size.min(l.max_buffer_size);
        let cap = self.max_binding.map_or(device_cap, |m| m.min(device_cap));
        let band_bytes = |ranges: &[Vec<(usize, usize)>]| -> (u64, u64, usize) {
            let mut max = 0u64;
            let mut total = 0u64;
            let mut worst = 0;
            for (i, r) in ranges.iter().enumerate() {
                for &(lo, hi) in r {
                    let b = (shapes[i].c * (hi - lo) * shapes[i].w * 4) as u64;
                    if b > max {
                        max = b;
                        worst = i;
                    }
                    total += b;
                }
            }
            (max, total, worst)
        };
        let h_last = shapes[shapes.len() - 1].h.max(1);
        // The fewest bands that fit; bands only shrink as n grows, so search upwards.
        let mut n = 1;
        let ranges = loop {
            let r = plan_bands(net, shapes, n);
            let (max, total, worst) = band_bytes(&r);
            if max <= cap {
                if total > self.memory_budget {
                    bail!(
                        "this image needs {:.1} GiB of GPU memory for all layers, more than the {:.1} GiB allowed; \
                         use a smaller image (or raise CONVSCOPE_GPU_MEMORY_MB)",
                        total as f64 / (1u64 << 30) as f64,
                        self.memory_budget as f64 / (1u64 << 30) as f64
                    );
                }
                break r;
            }
            if n >= h_last {
                bail!(
                    "{} ({}) is too wide for this GPU: one row band needs {} KiB, the limit is {} KiB per buffer; use a smaller image",
                    names[worst],
                    shapes[worst],
                    max >> 10,
                    cap >> 10
                );
            }
            // Grow quickly for huge inputs, then exactly.
            n = (n * max.div_ceil(cap) as usize).clamp(n + 1, h_last);
        };
        let device = &ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffers: Vec<Vec<wgpu::Buffer>> = ranges
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.iter()
                    .enumerate()
                    .map(|(j, &(lo, hi))| {
                        device.create_buffer(&wgpu::BufferDescriptor {
                            label: Some(&format!("{} rows {lo}..{hi} (band {j})", names[i])),
                            size: ((shapes[i].c * (hi - lo) * shapes[i].w * 4) as u64).max(4),
                            usage: wgpu::BufferUsages::STORAGE
                                | wgpu::BufferUsages::COPY_SRC
                                | wgpu::BufferUsages::COPY_DST,
                            mapped_at_creation: false,
                        })
                    })
                    .collect()
            })
            .collect();
        let stats: Vec<wgpu::Buffer> = names
            .iter()
            .zip(shapes)
            .map(|(name, s)| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("{name} channel min/max")),
                    size: (s.c as u64 * 8).max(8),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let moments: Vec<wgpu::Buffer> = names
            .iter()
            .zip(shapes)
            .map(|(name, s)| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("{name} channel moments")),
                    size: (s.c as u64 * 16).max(16),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                })
            })
            .collect();
        if let Some(e) = pollster::block_on(scope.pop()) {
            bail!("out of GPU memory for this image ({e}); use a smaller image");
        }
        let rb = RunBuffers { shapes: shapes.to_vec(), ranges, buffers, stats, moments };
        self.cache = Some(rb.clone());
        Ok(rb)
    }

    /// As [`Engine::run`], calling `progress(done, total)` after each layer of a banded run.
    pub fn run_with_progress(
        &mut self,
        ctx: &GpuContext,
        gnet: &GpuNetwork,
        input: &Tensor,
        kernel: Kernel,
        progress: Progress<'_>,
    ) -> Result<Activations> {
        let device = &ctx.device;
        let mut shapes = vec![input.shape];
        shapes.extend(gnet.net.shapes(input.shape)?);
        let mut names = vec!["input".to_string()];
        names.extend(gnet.net.layers.iter().map(|l| l.name.clone()));
        for (name, s) in names.iter().zip(&shapes) {
            if s.c as u32 > ctx.limits().max_compute_workgroups_per_dimension {
                bail!("{name} has {} channels, more than this GPU can dispatch", s.c);
            }
        }
        let rb = self.buffers_for(ctx, &names, &shapes, &gnet.net)?;
        let banded = rb.ranges.iter().any(|r| r.len() > 1);

        // Upload the input, band by band.
        let s0 = input.shape;
        for (j, &(lo, hi)) in rb.ranges[0].iter().enumerate() {
            let mut rows = Vec::with_capacity(s0.c * (hi - lo) * s0.w);
            for c in 0..s0.c {
                let start = (c * s0.h + lo) * s0.w;
                rows.extend_from_slice(&input.data[start..start + (hi - lo) * s0.w]);
            }
            ctx.queue.write_buffer(&rb.buffers[0][j], 0, bytemuck::cast_slice(&rows));
        }

        let n_layers = gnet.layers.len();
        let passes: usize = rb.ranges[1..].iter().map(Vec::len).sum();
        let queries = (ctx.timestamps && passes > 0 && passes <= 2048).then(|| {
            let set = device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("conv timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * passes as u32,
            });
            let resolve = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("conv timestamps resolve"),
                size: 16 * passes as u64,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let readback = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("conv timestamps read-back"),
                size: 16 * passes as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (set, resolve, readback)
        });

        let max_wg = ctx.limits().max_compute_workgroups_per_dimension;
        let t0 = Instant::now();
        let mut pending: Vec<wgpu::CommandBuffer> = Vec::new();
        let mut pass_index = 0u32;
        let mut pass_layer = Vec::with_capacity(passes);
        let mut enc =
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("input statistics") });
        self.encode_minmax(ctx, &mut enc, 0, &names, &shapes, &rb);
        pending.push(enc.finish());
        for (i, gl) in gnet.layers.iter().enumerate() {
            let (sin, sout) = (shapes[i], shapes[i + 1]);
            let name = &names[i + 1];
            let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(name.as_str()) });
            let (pipeline, what) = match (gl, kernel) {
                (GpuLayer::Conv(_), Kernel::Naive) => (self.naive.clone(), "naive"),
                (GpuLayer::Conv(g), Kernel::Tuned) => {
                    let c = &g.spec;
                    let key = TunedKey {
                        cin: c.cin,
                        cout: c.cout,
                        k: c.k,
                        stride: c.stride,
                        pad: c.pad,
                        input: sin,
                        output: sout,
                        block: gnet.block,
                    };
                    (self.tuned_pipeline(ctx, key).clone(), "tuned")
                }
                (GpuLayer::Pointwise(_), _) => (self.pointwise.clone(), "pointwise"),
                (GpuLayer::MaxPool { .. }, _) => (self.maxpool.clone(), "maxpool"),
            };
            for (j, &(olo, ohi)) in rb.ranges[i + 1].iter().enumerate() {
                let (ilo, ihi) = rb.ranges[i][j];
                let out_rows = ohi - olo;
                if out_rows == 0 {
                    continue;
                }
                let ts = queries.as_ref().map(|(set, _, _)| wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(2 * pass_index),
                    end_of_pass_write_index: Some(2 * pass_index + 1),
                });
                pass_index += 1;
                pass_layer.push(i);
                let uniform = |label: String, words: &[u32]| {
                    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(&label),
                        contents: bytemuck::cast_slice(words),
                        usage: wgpu::BufferUsages::UNIFORM,
                    })
                };
                let (inb, outb) = (&rb.buffers[i][j], &rb.buffers[i + 1][j]);
                let u = |v: usize| v as u32;
                let (bg, dispatch) = match (gl, kernel) {
                    (GpuLayer::Conv(g), Kernel::Naive) => {
                        let c = &g.spec;
                        let params = [
                            u(c.cin),
                            u(c.cout),
                            u(c.k),
                            u(c.stride),
                            u(c.pad),
                            u(sin.h),
                            u(sin.w),
                            u(sout.h),
                            u(sout.w),
                            u(olo),
                            u(out_rows),
                            u(ilo),
                            u(ihi - ilo),
                            0,
                            0,
                            0,
                        ];
                        let ubuf = uniform(format!("{name} band {j} naive params"), &params);
                        let bg = bind_group(
                            ctx,
                            &format!("{name} band {j} naive bind group"),
                            &self.naive_layout,
                            &[&ubuf, inb, &g.weight, &g.bias, outb],
                        );
                        (bg, (u(sout.w).div_ceil(64), u(out_rows), u(sout.c)))
                    }
                    (GpuLayer::Conv(g), Kernel::Tuned) => {
                        let ubuf =
                            uniform(format!("{name} band {j} rows"), &[u(olo), u(out_rows), u(ilo), u(ihi - ilo)]);
                        let bg = bind_group(
                            ctx,
                            &format!("{name} band {j} tuned bind group"),
                            &self.tuned_layout,
                            &[inb, &g.packed_weight, &g.packed_bias, outb, &ubuf],
                        );
                        let px = gnet.block.px as usize;
                        let invocations = sout.w.div_ceil(px) * out_rows;
                        let (x, y) = split_workgroups(invocations.div_ceil(64) as u32, max_wg);
                        let z = (g.packed_groups / gnet.block.ocv as usize) as u32;
                        (bg, (x, y, z))
                    }
                    (GpuLayer::Pointwise(pw), _) => {
                        let params = [
                            u(sout.c),
                            u(sout.w),
                            u(out_rows),
                            u(ihi - ilo),
                            u(olo - ilo),
                            pw.mode,
                            u32::from(pw.per_channel),
                            0,
                        ];
                        let ubuf = uniform(format!("{name} band {j} pointwise params"), &params);
                        let bg = bind_group(
                            ctx,
                            &format!("{name} band {j} pointwise bind group"),
                            &self.pointwise_layout,
                            &[&ubuf, inb, &pw.a, &pw.b, outb],
                        );
                        (bg, (u(sout.w).div_ceil(64), u(out_rows), u(sout.c)))
                    }
                    (GpuLayer::MaxPool { k, stride }, _) => {
                        let params = [
                            u(sout.c),
                            u(sin.h),
                            u(sin.w),
                            u(sout.w),
                            u(*k),
                            u(*stride),
                            u(olo),
                            u(out_rows),
                            u(ilo),
                            u(ihi - ilo),
                            0,
                            0,
                        ];
                        let ubuf = uniform(format!("{name} band {j} maxpool params"), &params);
                        let bg = bind_group(
                            ctx,
                            &format!("{name} band {j} maxpool bind group"),
                            &self.maxpool_layout,
                            &[&ubuf, inb, outb],
                        );
                        (bg, (u(sout.w).div_ceil(64), u(out_rows), u(sout.c)))
                    }
                };
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&format!("{name} band {j} {what}")),
                    timestamp_writes: ts,
                });
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(dispatch.0, dispatch.1, dispatch.2);
            }
            self.encode_minmax(ctx, &mut enc, i + 1, &names, &shapes, &rb);
            pending.push(enc.finish());
            if banded {
                ctx.queue.submit(pending.drain(..));
                ctx.wait()?;
                progress(i + 1, n_layers);
            }
        }
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("timestamps") });
        if let Some((set, resolve, readback)) = &queries {
            enc.resolve_query_set(set, 0..2 * pass_index, resolve, 0);
            enc.copy_buffer_to_buffer(resolve, 0, readback, 0, 16 * pass_index as u64);
        }
        pending.push(enc.finish());
        ctx.queue.submit(pending.drain(..));
        ctx.wait()?;
        let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
        let gpu_ms = match &queries {
            Some((_, _, readback)) => {
                let bytes = ctx.map_and_read(readback)?;
                let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
                let period = ctx.queue.get_timestamp_period() as f64;
                let mut ms = vec![0.0; n_layers];
                for (p, &layer) in pass_layer.iter().enumerate() {
                    ms[layer] += ticks[2 * p + 1].saturating_sub(ticks[2 * p]) as f64 * period / 1e6;
                }
                Some(ms)
            }
            None => None,
        };
        let bands = rb
            .ranges
            .iter()
            .zip(&rb.buffers)
            .zip(&shapes)
            .map(|((r, bufs), s)| {
                r.iter()
                    .zip(bufs)
                    .enumerate()
                    .map(|(j, (&(lo, hi), b))| {
                        let (own_lo, own_hi) = owned(r, j, s.h);
                        Band { buffer: b.clone(), row0: lo, rows: hi - lo, own_lo, own_hi }
                    })
                    .collect()
            })
            .collect();
        Ok(Activations { names, shapes, bands, stats: rb.stats.clone(), moments: rb.moments.clone(), gpu_ms, wall_ms })
    }

    /// Records the per-channel min/max of layer `i`, band by band over the rows each owns.
    fn encode_minmax(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        i: usize,
        names: &[String],
        shapes: &[Shape],
        rb: &RunBuffers,
    ) {
        let s = shapes[i];
        let r = &rb.ranges[i];
        let mut groups = Vec::new();
        for (j, &(lo, hi)) in r.iter().enumerate() {
            let (own_lo, own_hi) = owned(r, j, s.h);
            if own_hi <= own_lo {
                continue;
            }
            let params: [u32; 4] = [
                ((hi - lo) * s.w) as u32,
                ((own_lo - lo) * s.w) as u32,
                ((own_hi - own_lo) * s.w) as u32,
                u32::from(!groups.is_empty()),
            ];
            let ubuf = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&format!("{} band {j} minmax params", names[i])),
                contents: bytemuck::cast_slice(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            groups.push(bind_group(
                ctx,
                &format!("{} band {j} minmax bind group", names[i]),
                &self.minmax_layout,
                &[&ubuf, &rb.buffers[i][j], &rb.stats[i], &rb.moments[i]],
            ));
        }
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(&format!("{} channel min/max", names[i])),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.minmax);
        for bg in &groups {
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(s.c as u32, 1, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_puts_four_output_channels_in_a_vec4() {
        let c = Conv2d {
            cin: 2,
            cout: 5,
            k: 1,
            stride: 1,
            pad: 0,
            weight: (0..10).map(|v| v as f32).collect(),
            bias: vec![10.0, 11.0, 12.0, 13.0, 14.0],
        };
        let (w, b) = pack_weights(&c, 2);
        assert_eq!(b, vec![10.0, 11.0, 12.0, 13.0, 14.0, 0.0, 0.0, 0.0]);
        // group 0, ci 0: channels 0..3 at ci 0 → weights 0, 2, 4, 6
        assert_eq!(&w[0..4], &[0.0, 2.0, 4.0, 6.0]);
        assert_eq!(&w[4..8], &[1.0, 3.0, 5.0, 7.0]);
        assert_eq!(&w[8..12], &[8.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn bands_carry_the_halo_and_cover_every_row() {
        let net = Network::tutorial(0);
        let mut shapes = vec![Shape::new(3, 40, 30)];
        shapes.extend(net.shapes(shapes[0]).unwrap());
        let r = plan_bands(&net, &shapes, 4);
        // conv3 output (28 rows) split in 4; each earlier layer adds the 4-row halo.
        assert_eq!(r[3], vec![(0, 7), (7, 14), (14, 21), (21, 28)]);
        assert_eq!(r[2], vec![(0, 11), (7, 18), (14, 25), (21, 32)]);
        assert_eq!(r[0], vec![(0, 19), (7, 26), (14, 33), (21, 40)]);
        for (l, ranges) in r.iter().enumerate() {
            let mut next = 0;
            for j in 0..ranges.len() {
                let (lo, hi) = owned(ranges, j, shapes[l].h);
                assert_eq!(lo, next, "layer {l} band {j}");
                assert!(ranges[j].0 <= lo && hi <= ranges[j].1);
                next = hi;
            }
            assert_eq!(next, shapes[l].h);
        }
        // Stride and padding: band edges map through (a·s − p) and ((b−1)·s + k − p).
        let net = Network::seeded_convs(0, &[(3, 4, 5, 2, 2)]);
        let shapes = vec![Shape::new(3, 37, 53), Shape::new(4, 19, 27)];
        let r = plan_bands(&net, &shapes, 2);
        assert_eq!(r[1], vec![(0, 9), (9, 19)]);
        assert_eq!(r[0], vec![(0, 19), (16, 37)]);
    }

    #[test]
    fn workgroup_split() {
        assert_eq!(split_workgroups(10, 65535), (10, 1));
        assert_eq!(split_workgroups(0, 65535), (1, 1));
        assert_eq!(split_workgroups(70000, 65535), (65535, 2));
    }
}

//! The executor: runs a [`Plan`] on the GPU. Pipelines are cached by (op, specialisation),
//! buffers pooled by descriptor, bind groups cached by what they bind; the input is
//! uploaded, every step and every tensor's statistics are recorded, and the work goes in
//! one submission (or one per node when the caller wants progress or per-node wall time),
//! timed with GPU timestamps where the adapter has them.

pub mod activations;
pub mod autotune;
pub mod cache;
mod pipelines;
pub mod pool;
mod submit;
pub mod timing;

pub use activations::{Activations, Band, Timing};
pub use submit::Cancelled;
use submit::{Submitter, report};

use crate::env::EngineEnv;
use crate::gpu::GpuContext;
use crate::graph::Graph;
use crate::ops::conv_tuned::Block;
use crate::ops::{self, ConvKernel, GpuNode, Res, StepGeom};
use crate::plan::{Keep, Limits, Plan};
use crate::tensor::{Shape, Tensor};
use anyhow::{Result, bail};
pub use cache::CacheStats;
use cache::{Bound, Caches};
use pool::{BufferPool, Pooled};
use std::sync::Arc;
use timing::Timestamps;

/// A graph whose parameters live on the GPU, for one convolution kernel.
pub struct GpuNetwork {
    pub graph: Graph,
    pub nodes: Vec<GpuNode>,
    pub kernel: ConvKernel,
    pub block: Block,
    /// Unique per upload: bind groups cached for another network are dropped.
    id: u64,
}

/// Called when the run submits node by node, first after the input's statistics and then
/// after each node: (nodes done, nodes in all, the run's tensors: those of finished nodes
/// are readable). Returning false cancels the run (it ends with [`Cancelled`]).
pub type Progress<'a> = &'a dyn Fn(usize, usize, &Activations) -> bool;

/// How to run.
#[derive(Clone)]
pub struct RunOptions<'a> {
    /// Which tensors stay readable afterwards (default: all).
    pub keep: Keep,
    /// Submit and wait node by node, measuring each node's wall time and calling `progress`.
    /// Banded runs always do (each band's buffers are live only briefly).
    pub per_node: bool,
    pub progress: Option<Progress<'a>>,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions { keep: Keep::All, per_node: false, progress: None }
    }
}

/// Bytes of one step's params slot in the shared uniform buffer (the largest params struct
/// is 80 bytes; slots are aligned to the device's uniform offset alignment).
const PARAMS_SLOT: u64 = 256;
/// Timestamp queries per query set (wgpu's limit is 4096: 2048 passes).
const MAX_TIMED_PASSES: usize = 2048;

/// Runs plans; keeps pipelines, buffers and bind groups between runs.
pub struct Executor {
    caches: Caches,
    pool: BufferPool,
    /// The network the cached bind groups belong to.
    bound_net: u64,
    /// Largest buffer one band may use; defaults to the device's binding and buffer limits.
    /// Lower it to force banding (tests do).
    pub max_binding: Option<u64>,
    /// Largest total of all activation buffers of one run.
    pub memory_budget: u64,
    /// The tuned kernel's register block for this adapter.
    pub block: Block,
    /// Per-channel statistics in the subgroup form where the adapter is a CPU with
    /// subgroups (`ops::stats::pipeline`; on by default, tests compare both forms).
    pub subgroup_stats: bool,
    /// Stand-ins for the tuned conv's unused epilogue bindings.
    spare: Option<[wgpu::Buffer; 2]>,
    /// The image input bands are copied into (`pipelines::input_image`).
    image: Option<(wgpu::Texture, wgpu::TextureView)>,
    /// Per-layer block choices (None: autotuning off, a block was forced or turned off).
    tune: Option<autotune::TuneCache>,
}

/// A conv layer's block after [`Executor::autotune`].
#[derive(Clone, Debug, PartialEq)]
pub struct TunedLayer {
    pub node: String,
    pub block: Block,
    /// Measured just now (else taken from the cache).
    pub measured: bool,
}

impl Executor {
    /// An executor configured from the environment (`CONVSCOPE_*`; a bad value is an error).
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        Ok(Self::with_env(ctx, &EngineEnv::from_env()?))
    }

    pub fn with_env(ctx: &GpuContext, env: &EngineEnv) -> Self {
        let wide = ctx.int64 && env.wide.unwrap_or(ctx.info.device_type == wgpu::DeviceType::Cpu);
        Executor {
            caches: Caches::with_wide(wide),
            pool: BufferPool::default(),
            bound_net: 0,
            max_binding: env.max_binding,
            memory_budget: env.memory_budget,
            block: Block::for_adapter(&ctx.info, ctx.subgroups, env.block),
            subgroup_stats: true,
            spare: None,
            image: None,
            tune: (env.autotune && env.block.is_none()).then(|| {
                let dir = autotune::TuneCache::default_dir(|k| std::env::var(k).ok());
                autotune::TuneCache::open(dir.as_deref())
            }),
        }
    }

    /// Whether this executor's pipelines read and write vec4 arrays as 64-bit pairs
    /// (`ops::wide`).
    pub fn wide_access(&self) -> bool {
        self.caches.wide
    }

    /// How often caches were hit so far.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats { buffers_created: self.pool.created, buffers_reused: self.pool.reused, ..self.caches.stats }
    }

    /// Number of pipelines built so far (they are cached by op and specialisation).
    pub fn cached_pipelines(&self) -> usize {
        self.caches.pipelines()
    }

    /// Frees idle pooled buffers and cached bind groups (buffers held by live
    /// [`Activations`] stay until those are dropped).
    pub fn trim(&mut self) {
        self.caches.clear_bind_groups();
        self.pool.clear();
    }

    /// The limits plans are built against.
    pub fn limits(&self, ctx: &GpuContext) -> Limits {
        let l = ctx.limits();
        let device_cap = l.max_storage_buffer_binding_size.min(l.max_buffer_size);
        Limits {
            max_binding: self.max_binding.map_or(device_cap, |m| m.min(device_cap)),
            memory_budget: self.memory_budget,
            max_workgroups: l.max_compute_workgroups_per_dimension,
        }
    }

    /// Uploads a graph's parameters once, for `kernel` (with the executor's block).
    pub fn upload(&self, ctx: &GpuContext, graph: &Graph, kernel: ConvKernel) -> Result<GpuNetwork> {
        self.upload_with_block(ctx, graph, kernel, self.block)
    }

    /// As [`Executor::upload`] with another register block (bench compares blocks).
    pub fn upload_with_block(
        &self,
        ctx: &GpuContext,
        graph: &Graph,
        kernel: ConvKernel,
        block: Block,
    ) -> Result<GpuNetwork> {
        graph.validate()?;
        if kernel == ConvKernel::Tuned {
            block.check_device(ctx)?;
        }
        let nodes = graph.nodes.iter().map(|n| GpuNode::upload(ctx, &n.name, &n.op, kernel, block)).collect();
        ctx.check_errors()?;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(GpuNetwork { graph: graph.clone(), nodes, kernel, block, id })
    }

    /// The plan of running `net` on an input of `input` shape.
    pub fn plan(&self, ctx: &GpuContext, net: &GpuNetwork, input: Shape, keep: &Keep) -> Result<Plan> {
        let shapes = net.graph.infer_shapes(input)?;
        Plan::build_fused(&net.graph, &shapes, &self.limits(ctx), keep, net.kernel == ConvKernel::Tuned)
    }

    /// Runs `net` on `input` with default options: every tensor kept, one submission.
    pub fn run(&mut self, ctx: &GpuContext, net: &GpuNetwork, input: &Tensor) -> Result<Activations> {
        self.run_with(ctx, net, input, &RunOptions::default())
    }

    /// Plans and runs `net` on `input`: every step, then every tensor's channel statistics,
    /// with nothing read back between steps. GPU errors of this run are caught in this
    /// thread's error scope and returned.
    pub fn run_with(
        &mut self,
        ctx: &GpuContext,
        net: &GpuNetwork,
        input: &Tensor,
        opts: &RunOptions<'_>,
    ) -> Result<Activations> {
        let plan = self.plan(ctx, net, input.shape, &opts.keep)?;
        if self.bound_net != net.id {
            // Cached bind groups hold the old network's weights alive.
            self.caches.clear_bind_groups();
            self.bound_net = net.id;
        }
        let validation = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let result = self.execute(ctx, net, &plan, input, opts);
        if let Some(e) = pollster::block_on(oom.pop()) {
            bail!("out of GPU memory for this image ({e}); use a smaller image");
        }
        if let Some(e) = pollster::block_on(validation.pop()) {
            log::debug!("GPU validation error: {e:?}");
            bail!("GPU error: {}", e.to_string().lines().next().unwrap_or("unknown"));
        }
        result
    }

    fn execute(
        &mut self,
        ctx: &GpuContext,
        net: &GpuNetwork,
        plan: &Plan,
        input: &Tensor,
        opts: &RunOptions<'_>,
    ) -> Result<Activations> {
        let rb = self.allocate(ctx, net, plan);
        upload_input(ctx, plan, &rb, input);
        let passes = plan.steps.iter().filter(|s| plan.tensors[s.output].bands[s.band].rows > 0).count();
        // A node-by-node run reports wall times per node (below), so it writes no timestamps:
        // on lavapipe each one waits for the work before it, which made a whole
        // mobilenet_v3_small run 34–39 ms instead of 21–25.
        let timer = (!opts.per_node && ctx.timestamps && passes > 0 && passes <= MAX_TIMED_PASSES)
            .then(|| Timestamps::new(ctx, passes));
        let mut params = ParamsWriter::new(rb.uniforms.size(), rb.align);
        let mut pass_node = Vec::with_capacity(passes);
        let nodes = net.nodes.len();
        // Node by node, each node is encoded just before it is submitted: its pipelines are
        // built then, so the first pages are ready before the last node's shaders compile.
        let per_node = (opts.per_node || plan.banded()) && nodes > 0;
        let mut acts = rb.activations(plan);
        let mut sub = Submitter::default();
        // One command encoder for a whole run, or one a node when it goes node by node:
        // wgpu's submit costs per command buffer (tracking, barriers), and a run of
        // mobilenet_v3_small had been ~130 of them.
        let encoder =
            |label: &str| ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        let mut enc = encoder(if per_node { "input statistics" } else { "run" });
        self.encode_stats(ctx, &mut enc, plan, 0, &rb, &mut params);
        if per_node {
            sub.pending.push(enc.finish());
            sub.flush(ctx, &rb, &params)?;
            report(opts, 0, nodes, &acts)?;
            enc = encoder(&plan.tensors[1.min(nodes)].name);
        }
        let mut wall_node = Vec::with_capacity(if per_node { nodes } else { 0 });
        for i in 0..nodes {
            self.encode_node(ctx, &mut enc, plan, i, net, &rb, &mut params, timer.as_ref(), &mut pass_node);
            // Statistics only of tensors that stay readable (the others are never drawn).
            if plan.tensors[i + 1].kept {
                self.encode_stats(ctx, &mut enc, plan, i + 1, &rb, &mut params);
            }
            if i + 1 == nodes
                && let Some(t) = &timer
            {
                t.resolve(&mut enc, pass_node.len());
            }
            if per_node {
                let next = encoder(&plan.tensors[(i + 2).min(nodes)].name);
                sub.pending.push(std::mem::replace(&mut enc, next).finish());
                wall_node.push(sub.flush(ctx, &rb, &params)?);
                report(opts, i + 1, nodes, &acts)?;
            }
        }
        if !per_node {
            sub.pending.push(enc.finish());
        }
        if !sub.pending.is_empty() {
            sub.flush(ctx, &rb, &params)?;
        }
        let gpu_ms = match &timer {
            Some(t) => t.read(ctx, &pass_node, nodes)?,
            None => None,
        };
        // A caller that asked for node-by-node submission gets wall times (true even where
        // the adapter defers timestamps, as llvmpipe does while a window is bound); others
        // get GPU timestamps, or wall times where a banded run had to go node by node.
        acts.node_ms = match (opts.per_node, gpu_ms, per_node) {
            (true, _, _) => Some((wall_node, Timing::Wall)),
            (false, Some(ms), _) => Some((ms, Timing::Gpu)),
            (false, None, true) => Some((wall_node, Timing::Wall)),
            (false, None, false) => None,
        };
        acts.wall_ms = sub.wall_ms;
        if self.pool.retain_sizes(&rb.sizes()) > 0 {
            // Cached bind groups would keep the freed buffers alive.
            self.caches.clear_bind_groups();
        }
        Ok(acts)
    }

    /// Takes the run's buffers from the pool: one per plan buffer, statistics per tensor,
    /// and one uniform buffer with a params slot per pass.
    fn allocate(&mut self, ctx: &GpuContext, net: &GpuNetwork, plan: &Plan) -> RunBuffers {
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let bands = plan
            .buffers
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let first = &plan.tensors[b.holds[0].0].name;
                self.pool.get(ctx, &format!("activations {i} ({first} first)"), b.bytes, storage)
            })
            .collect();
        let stat = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let mut per_tensor = |what: &str, bytes: u64| -> Vec<Arc<Pooled>> {
            plan.tensors
                .iter()
                .map(|t| self.pool.get(ctx, &format!("{} channel {what}", t.name), t.shape.c as u64 * bytes, stat))
                .collect()
        };
        let stats = per_tensor("min/max", 8);
        let moments = per_tensor("moments", 16);
        let l = ctx.limits();
        let align =
            (l.min_uniform_buffer_offset_alignment.max(l.min_storage_buffer_offset_alignment) as u64).max(PARAMS_SLOT);
        let stat_passes: usize = plan.tensors.iter().map(|t| t.bands.len()).sum();
        // A step dispatches once, or once per input (Concat).
        let dispatches: usize = plan.steps.iter().map(|s| s.inputs.len().max(1)).sum();
        let slots = (dispatches + stat_passes).max(1) as u64;
        // Tables some steps pass after their params (Resize: its coordinates), whole slots each.
        let tables: u64 = plan
            .steps
            .iter()
            .map(|s| net.nodes[s.node].table_bytes(plan.tensors[s.output].shape).next_multiple_of(align))
            .sum();
        // Uniform for the tuned and depthwise convs, storage for the rest (`ops::PARAMS`).
        let usage = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let uniforms = self.pool.get(ctx, "step params", slots * align + tables, usage);
        RunBuffers { bands, stats, moments, uniforms, align }
    }

    /// Records node `i`'s steps, band by band.
    #[allow(clippy::too_many_arguments)]
    fn encode_node(
        &mut self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        plan: &Plan,
        i: usize,
        net: &GpuNetwork,
        rb: &RunBuffers,
        params: &mut ParamsWriter,
        timer: Option<&Timestamps>,
        pass_node: &mut Vec<usize>,
    ) {
        let node = &net.nodes[i];
        let out_t = i + 1;
        let name = &plan.tensors[out_t].name;
        let max_wg = ctx.limits().max_compute_workgroups_per_dimension;
        for step in plan.steps_of(i) {
            let ob = plan.tensors[out_t].bands[step.band];
            if ob.rows == 0 {
                continue;
            }
            let in_t = step.inputs[0];
            let ib = plan.tensors[in_t].bands[step.band];
            let g = StepGeom {
                input: plan.tensors[in_t].shape,
                output: plan.tensors[out_t].shape,
                in_row0: ib.row0,
                in_rows: ib.rows,
                out_row0: ob.row0,
                out_rows: ob.rows,
            };
            let fused = step.fusion.map(|f| &plan.fusions[f]);
            let (pipeline, shader) = pipelines::step_pipeline(&mut self.caches, ctx, net, node, &g, fused);
            let ins: Vec<Shape> = step.inputs.iter().map(|&t| plan.tensors[t].shape).collect();
            let mut groups = Vec::new();
            // Input bands read as images: copied into them before the pass (`ops::image`).
            let mut copies: Vec<(wgpu::Buffer, wgpu::Texture, u64)> = Vec::new();
            for (k, d) in node.dispatch(&g, &ins, max_wg).into_iter().enumerate() {
                let off = params.push(&d.params);
                let band_of = |n: usize| {
                    let t = step.inputs.get(n).copied().unwrap_or(in_t);
                    (*rb.bands[plan.tensors[t].bands[step.band].buffer]).clone()
                };
                let resources = d
                    .bindings
                    .iter()
                    .map(|r| match r {
                        Res::Params => Bound::Buffer((*rb.uniforms).clone(), off, Some(d.params.len() as u64)),
                        Res::Input(n) => Bound::Buffer(band_of(*n), 0, None),
                        Res::Output => Bound::Buffer((*rb.bands[ob.buffer]).clone(), 0, None),
                        Res::Buffer(b) => Bound::Buffer((*b).clone(), 0, None),
                        Res::Image(v) => Bound::Image((*v).clone()),
                        Res::InputImage(n, texels) => {
                            let (texture, view) = pipelines::input_image(&mut self.image, ctx, *texels);
                            copies.push((band_of(*n), texture, *texels));
                            Bound::Image(view)
                        }
                    })
                    .collect::<Vec<_>>();
                let mut resources = resources;
                if let GpuNode::ConvTuned(_) | GpuNode::Depthwise(_) = node {
                    let extra =
                        pipelines::epilogue_bindings(&mut self.spare, ctx, plan, net, rb, fused, step.band, &resources);
                    resources.extend(extra);
                } else if let GpuNode::Binary(_) = node {
                    // Only the activation's output (or a stand-in never written).
                    let extra =
                        pipelines::epilogue_bindings(&mut self.spare, ctx, plan, net, rb, fused, step.band, &resources);
                    resources.extend(extra.into_iter().last());
                }
                let label = format!("{name} band {} dispatch {k} bind group", step.band);
                groups.push((self.caches.bind_group(ctx, shader, &label, resources), d.workgroups));
            }
            let mut ts = timer.map(|t| t.writes(pass_node.len()));
            pass_node.push(i);
            if !copies.is_empty() {
                // The copies count in the step's time: its first timestamp is written by an
                // empty pass before them.
                if let Some(w) = &mut ts {
                    let begin = wgpu::ComputePassTimestampWrites { end_of_pass_write_index: None, ..w.clone() };
                    drop(enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&format!("{name} band {} copy start", step.band)),
                        timestamp_writes: Some(begin),
                    }));
                    w.beginning_of_pass_write_index = None;
                }
                for (buffer, texture, texels) in &copies {
                    ops::image::record_copy(enc, buffer, texture, *texels);
                }
            }
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&format!("{name} band {} {}", step.band, node.kind())),
                timestamp_writes: ts,
            });
            pass.set_pipeline(&pipeline);
            for (bg, (x, y, z)) in &groups {
                pass.set_bind_group(0, bg, &[]);
                pass.dispatch_workgroups(*x, *y, *z);
            }
        }
    }

    /// Records tensor `t`'s per-channel statistics, band by band over the rows each owns.
    fn encode_stats(
        &mut self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        plan: &Plan,
        t: usize,
        rb: &RunBuffers,
        params: &mut ParamsWriter,
    ) {
        let tensor = &plan.tensors[t];
        let (s, name) = (tensor.shape, &tensor.name);
        let cpu = ctx.info.device_type == wgpu::DeviceType::Cpu;
        let spec = ops::stats::pipeline(cpu && self.subgroup_stats, ctx.subgroups);
        let shader = spec.shader;
        let pipeline = self.caches.pipeline(ctx, &spec);
        let mut groups = Vec::new();
        for (j, b) in tensor.bands.iter().enumerate() {
            if b.own_hi <= b.own_lo {
                continue;
            }
            let p = ops::stats::Params {
                plane: (b.rows * s.w) as u32,
                offset: ((b.own_lo - b.row0) * s.w) as u32,
                count: ((b.own_hi - b.own_lo) * s.w) as u32,
                accumulate: u32::from(!groups.is_empty()),
            };
            let off = params.push(bytemuck::bytes_of(&p));
            let resources = vec![
                Bound::Buffer((*rb.uniforms).clone(), off, Some(std::mem::size_of_val(&p) as u64)),
                Bound::Buffer((*rb.bands[b.buffer]).clone(), 0, None),
                Bound::Buffer((*rb.stats[t]).clone(), 0, None),
                Bound::Buffer((*rb.moments[t]).clone(), 0, None),
            ];
            groups.push(self.caches.bind_group(ctx, shader, &format!("{name} band {j} statistics"), resources));
        }
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(&format!("{name} channel statistics")),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        for bg in &groups {
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(s.c as u32, 1, 1);
        }
    }
}

/// The buffers of one run.
struct RunBuffers {
    bands: Vec<Arc<Pooled>>,
    stats: Vec<Arc<Pooled>>,
    moments: Vec<Arc<Pooled>>,
    uniforms: Arc<Pooled>,
    align: u64,
}

impl RunBuffers {
    /// Every size in use, so the pool keeps those and frees the rest.
    fn sizes(&self) -> Vec<u64> {
        self.bands.iter().chain(&self.stats).chain(&self.moments).chain([&self.uniforms]).map(|b| b.size()).collect()
    }

    /// The run's tensors (sharing the run's buffers), before any of them is computed.
    fn activations(&self, plan: &Plan) -> Activations {
        let bands = plan
            .tensors
            .iter()
            .map(|t| match t.kept {
                false => Vec::new(),
                true => t
                    .bands
                    .iter()
                    .map(|b| Band {
                        buffer: self.bands[b.buffer].clone(),
                        row0: b.row0,
                        rows: b.rows,
                        own_lo: b.own_lo,
                        own_hi: b.own_hi,
                    })
                    .collect(),
            })
            .collect();
        Activations {
            names: plan.tensors.iter().map(|t| t.name.clone()).collect(),
            shapes: plan.tensors.iter().map(|t| t.shape).collect(),
            bands,
            stats: self.stats.clone(),
            moments: self.moments.clone(),
            node_ms: None,
            wall_ms: 0.0,
        }
    }
}

/// Every pass's params, each in its own aligned slot of one uniform buffer.
struct ParamsWriter {
    bytes: Vec<u8>,
    next: u64,
    align: u64,
}

impl ParamsWriter {
    fn new(size: u64, align: u64) -> Self {
        ParamsWriter { bytes: vec![0; size as usize], next: 0, align }
    }

    /// Writes `data` into the next slot (several, for params followed by a table); returns
    /// its offset.
    fn push(&mut self, data: &[u8]) -> u64 {
        let off = self.next;
        self.bytes[off as usize..off as usize + data.len()].copy_from_slice(data);
        self.next += (data.len() as u64).next_multiple_of(self.align).max(self.align);
        off
    }
}

/// Writes the input into its bands' buffers.
fn upload_input(ctx: &GpuContext, plan: &Plan, rb: &RunBuffers, input: &Tensor) {
    let s = input.shape;
    for b in &plan.tensors[0].bands {
        let mut rows = Vec::with_capacity(s.c * b.rows * s.w);
        for c in 0..s.c {
            let start = (c * s.h + b.row0) * s.w;
            rows.extend_from_slice(&input.data[start..start + b.rows * s.w]);
        }
        ctx.queue.write_buffer(&rb.bands[b.buffer], 0, bytemuck::cast_slice(&rows));
    }
}

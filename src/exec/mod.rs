//! The executor: runs a [`Plan`] on the GPU. Pipelines are cached by (op, specialisation),
//! buffers pooled by descriptor, bind groups cached by what they bind; the input is
//! uploaded, every step and every tensor's statistics are recorded, and the work goes in
//! one submission (or one per node when the caller wants progress or per-node wall time),
//! timed with GPU timestamps where the adapter has them.

pub mod activations;
pub mod pool;

pub use activations::{Activations, Band, Timing};

use crate::env::EngineEnv;
use crate::gpu::{self, GpuContext};
use crate::graph::Graph;
use crate::ops::conv_tuned::Block;
use crate::ops::{self, ConvKernel, GpuNode, PipelineSpec, Res, ShaderDesc, StepGeom};
use crate::plan::{Keep, Limits, Plan};
use crate::tensor::{Shape, Tensor};
use anyhow::{Result, bail};
use pool::{BufferPool, Pooled};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// A graph whose parameters live on the GPU, for one convolution kernel.
pub struct GpuNetwork {
    pub graph: Graph,
    pub nodes: Vec<GpuNode>,
    pub kernel: ConvKernel,
    pub block: Block,
    /// Unique per upload: bind groups cached for another network are dropped.
    id: u64,
}

/// Called after each node when the run submits node by node: (nodes done, nodes in all).
pub type Progress<'a> = &'a dyn Fn(usize, usize);

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
/// Bind groups cached before the cache is emptied (it holds buffers alive).
const MAX_BIND_GROUPS: usize = 4096;
/// Timestamp queries per query set (wgpu's limit is 4096: 2048 passes).
const MAX_TIMED_PASSES: usize = 2048;

/// Counts of cache use, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub pipelines_built: usize,
    pub pipeline_hits: usize,
    pub buffers_created: usize,
    pub buffers_reused: usize,
    pub bind_groups_built: usize,
    pub bind_group_hits: usize,
}

type BindKey = (&'static str, Vec<(wgpu::Buffer, u64)>);

/// Runs plans; keeps pipelines, buffers and bind groups between runs.
pub struct Executor {
    layouts: HashMap<&'static str, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: HashMap<String, wgpu::ComputePipeline>,
    bind_groups: HashMap<BindKey, wgpu::BindGroup>,
    pool: BufferPool,
    stats: CacheStats,
    /// The network the cached bind groups belong to.
    bound_net: u64,
    /// Largest buffer one band may use; defaults to the device's binding and buffer limits.
    /// Lower it to force banding (tests do).
    pub max_binding: Option<u64>,
    /// Largest total of all activation buffers of one run.
    pub memory_budget: u64,
    /// The tuned kernel's register block for this adapter.
    pub block: Block,
}

impl Executor {
    /// An executor configured from the environment (`CONVSCOPE_*`; a bad value is an error).
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        Ok(Self::with_env(ctx, &EngineEnv::from_env()?))
    }

    pub fn with_env(ctx: &GpuContext, env: &EngineEnv) -> Self {
        Executor {
            layouts: HashMap::new(),
            pipelines: HashMap::new(),
            bind_groups: HashMap::new(),
            pool: BufferPool::default(),
            stats: CacheStats::default(),
            bound_net: 0,
            max_binding: env.max_binding,
            memory_budget: env.memory_budget,
            block: Block::for_adapter(&ctx.info, env.block),
        }
    }

    /// How often caches were hit so far.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats { buffers_created: self.pool.created, buffers_reused: self.pool.reused, ..self.stats }
    }

    /// Number of pipelines built so far (they are cached by op and specialisation).
    pub fn cached_pipelines(&self) -> usize {
        self.pipelines.len()
    }

    /// Frees idle pooled buffers and cached bind groups (buffers held by live
    /// [`Activations`] stay until those are dropped).
    pub fn trim(&mut self) {
        self.bind_groups.clear();
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
        let nodes = graph.nodes.iter().map(|n| GpuNode::upload(ctx, &n.name, &n.op, kernel, block)).collect();
        ctx.check_errors()?;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(GpuNetwork { graph: graph.clone(), nodes, kernel, block, id })
    }

    /// The plan of running `net` on an input of `input` shape.
    pub fn plan(&self, ctx: &GpuContext, net: &GpuNetwork, input: Shape, keep: &Keep) -> Result<Plan> {
        let shapes = net.graph.infer_shapes(input)?;
        Plan::build(&net.graph, &shapes, &self.limits(ctx), keep)
    }

    fn layout(
        &mut self,
        ctx: &GpuContext,
        shader: &'static ShaderDesc,
    ) -> &(wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        self.layouts.entry(shader.file).or_insert_with(|| {
            let group = ctx.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(shader.file),
                entries: &ops::layout_entries(shader.bindings, wgpu::ShaderStages::COMPUTE),
            });
            let pl = gpu::pipeline_layout(ctx, shader.file, &group);
            (group, pl)
        })
    }

    fn pipeline(&mut self, ctx: &GpuContext, spec: &PipelineSpec) -> wgpu::ComputePipeline {
        if let Some(p) = self.pipelines.get(&spec.key) {
            self.stats.pipeline_hits += 1;
            return p.clone();
        }
        let pl = self.layout(ctx, spec.shader).1.clone();
        let p = gpu::compute_pipeline(ctx, &spec.key, &spec.source, "main", &pl);
        log::info!("pipeline built: {}", spec.key);
        self.stats.pipelines_built += 1;
        self.pipelines.insert(spec.key.clone(), p.clone());
        p
    }

    fn bind_group(
        &mut self,
        ctx: &GpuContext,
        shader: &'static ShaderDesc,
        label: &str,
        resources: Vec<(wgpu::Buffer, u64, Option<u64>)>,
    ) -> wgpu::BindGroup {
        let key: BindKey = (shader.file, resources.iter().map(|(b, o, _)| (b.clone(), *o)).collect());
        if let Some(bg) = self.bind_groups.get(&key) {
            self.stats.bind_group_hits += 1;
            return bg.clone();
        }
        if self.bind_groups.len() >= MAX_BIND_GROUPS {
            self.bind_groups.clear();
        }
        let layout = self.layout(ctx, shader).0.clone();
        let entries: Vec<wgpu::BindGroupEntry> = resources
            .iter()
            .enumerate()
            .map(|(i, (b, offset, size))| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b,
                    offset: *offset,
                    size: size.and_then(wgpu::BufferSize::new),
                }),
            })
            .collect();
        let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &layout,
            entries: &entries,
        });
        self.stats.bind_groups_built += 1;
        self.bind_groups.insert(key, bg.clone());
        bg
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
            self.bind_groups.clear();
            self.bound_net = net.id;
        }
        let validation = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let result = self.execute(ctx, net, &plan, input, opts);
        if let Some(e) = pollster::block_on(oom.pop()) {
            bail!("out of GPU memory for this image ({e}); use a smaller image");
        }
        if let Some(e) = pollster::block_on(validation.pop()) {
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
        let device = &ctx.device;
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let buffers: Vec<Arc<Pooled>> = plan
            .buffers
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (t, _) = b.holds[0];
                self.pool.get(ctx, &format!("activations {i} ({} first)", plan.tensors[t].name), b.bytes, storage)
            })
            .collect();
        let stat_usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let stats: Vec<Arc<Pooled>> = plan
            .tensors
            .iter()
            .map(|t| self.pool.get(ctx, &format!("{} channel min/max", t.name), t.shape.c as u64 * 8, stat_usage))
            .collect();
        let moments: Vec<Arc<Pooled>> = plan
            .tensors
            .iter()
            .map(|t| self.pool.get(ctx, &format!("{} channel moments", t.name), t.shape.c as u64 * 16, stat_usage))
            .collect();
        let mut sizes: Vec<u64> = buffers.iter().chain(&stats).chain(&moments).map(|b| b.size()).collect();

        // Every step's and every statistics pass's params in one uniform buffer.
        let align = (ctx.limits().min_uniform_buffer_offset_alignment as u64).max(PARAMS_SLOT);
        let stat_passes: usize = plan.tensors.iter().map(|t| t.bands.len()).sum();
        let slots = (plan.steps.len() + stat_passes).max(1) as u64;
        let uniforms = self.pool.get(
            ctx,
            "step params",
            slots * align,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        sizes.push(uniforms.size());
        let mut params = vec![0u8; (slots * align) as usize];
        let mut slot = 0u64;

        // Upload the input, band by band.
        let s0 = input.shape;
        for b in &plan.tensors[0].bands {
            let mut rows = Vec::with_capacity(s0.c * b.rows * s0.w);
            for c in 0..s0.c {
                let start = (c * s0.h + b.row0) * s0.w;
                rows.extend_from_slice(&input.data[start..start + b.rows * s0.w]);
            }
            ctx.queue.write_buffer(&buffers[b.buffer], 0, bytemuck::cast_slice(&rows));
        }

        let per_node = opts.per_node || plan.banded();
        let passes = plan.steps.iter().filter(|s| plan.tensors[s.output].bands[s.band].rows > 0).count();
        let timer = (ctx.timestamps && passes > 0 && passes <= MAX_TIMED_PASSES).then(|| Timestamps::new(ctx, passes));
        let max_wg = ctx.limits().max_compute_workgroups_per_dimension;

        // Record: input statistics, then per node its steps and its output's statistics.
        let mut encoders: Vec<wgpu::CommandEncoder> = Vec::new();
        let mut enc =
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("input statistics") });
        self.encode_stats(ctx, &mut enc, plan, 0, &buffers, &stats, &moments, &uniforms, &mut params, &mut slot, align);
        encoders.push(enc);
        let mut pass_node = Vec::with_capacity(passes);
        for (i, node) in net.nodes.iter().enumerate() {
            let out_t = i + 1;
            let name = plan.tensors[out_t].name.clone();
            let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(&name) });
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
                let spec = node.pipeline(&g);
                let pipeline = self.pipeline(ctx, &spec);
                let d = node.dispatch(&g, max_wg);
                let off = slot * align;
                params[off as usize..off as usize + d.params.len()].copy_from_slice(&d.params);
                slot += 1;
                let resources = d
                    .bindings
                    .iter()
                    .map(|r| match r {
                        Res::Params => ((*uniforms).clone(), off, Some(d.params.len() as u64)),
                        Res::Input => ((*buffers[ib.buffer]).clone(), 0, None),
                        Res::Output => ((*buffers[ob.buffer]).clone(), 0, None),
                        Res::Buffer(b) => ((*b).clone(), 0, None),
                    })
                    .collect();
                let bg = self.bind_group(ctx, spec.shader, &format!("{name} band {} bind group", step.band), resources);
                let ts = timer.as_ref().map(|t| t.writes(pass_node.len()));
                pass_node.push(i);
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&format!("{name} band {} {}", step.band, node.kind())),
                    timestamp_writes: ts,
                });
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(d.workgroups.0, d.workgroups.1, d.workgroups.2);
            }
            self.encode_stats(
                ctx,
                &mut enc,
                plan,
                out_t,
                &buffers,
                &stats,
                &moments,
                &uniforms,
                &mut params,
                &mut slot,
                align,
            );
            encoders.push(enc);
        }
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("timestamps") });
        if let Some(t) = &timer {
            t.resolve(&mut enc, pass_node.len());
        }
        encoders.push(enc);
        ctx.queue.write_buffer(&uniforms, 0, &params);

        // Submit: everything at once, or node by node (input statistics go with node 0,
        // the timestamp resolve with the last node).
        let n_nodes = net.nodes.len();
        let mut wall_node = Vec::with_capacity(n_nodes);
        let t0 = Instant::now();
        if per_node {
            let mut encs = encoders.into_iter();
            let first: Vec<wgpu::CommandBuffer> = encs.next().into_iter().map(|e| e.finish()).collect();
            let mut pending = first;
            for i in 0..n_nodes {
                pending.extend(encs.next().map(|e| e.finish()));
                if i + 1 == n_nodes {
                    pending.extend(encs.next().map(|e| e.finish()));
                }
                let t = Instant::now();
                ctx.queue.submit(pending.drain(..));
                ctx.wait()?;
                wall_node.push(t.elapsed().as_secs_f64() * 1e3);
                if let Some(p) = opts.progress {
                    p(i + 1, n_nodes);
                }
            }
            if n_nodes == 0 {
                ctx.queue.submit(pending.drain(..).chain(encs.map(|e| e.finish())));
                ctx.wait()?;
            }
        } else {
            ctx.queue.submit(encoders.into_iter().map(|e| e.finish()));
            ctx.wait()?;
        }
        let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
        let gpu_ms = match &timer {
            Some(t) => t.read(ctx, &pass_node, n_nodes)?,
            None => None,
        };
        let node_ms = match (gpu_ms, per_node) {
            (Some(ms), _) => Some((ms, Timing::Gpu)),
            (None, true) => Some((wall_node, Timing::Wall)),
            (None, false) => None,
        };
        if self.pool.retain_sizes(&sizes) > 0 {
            // Cached bind groups would keep the freed buffers alive.
            self.bind_groups.clear();
        }

        let bands = plan
            .tensors
            .iter()
            .map(|t| {
                if !t.kept {
                    return Vec::new();
                }
                t.bands
                    .iter()
                    .map(|b| Band {
                        buffer: buffers[b.buffer].clone(),
                        row0: b.row0,
                        rows: b.rows,
                        own_lo: b.own_lo,
                        own_hi: b.own_hi,
                    })
                    .collect()
            })
            .collect();
        Ok(Activations {
            names: plan.tensors.iter().map(|t| t.name.clone()).collect(),
            shapes: plan.tensors.iter().map(|t| t.shape).collect(),
            bands,
            stats,
            moments,
            node_ms,
            wall_ms,
        })
    }

    /// Records tensor `t`'s per-channel statistics, band by band over the rows each owns.
    #[allow(clippy::too_many_arguments)]
    fn encode_stats(
        &mut self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        plan: &Plan,
        t: usize,
        buffers: &[Arc<Pooled>],
        stats: &[Arc<Pooled>],
        moments: &[Arc<Pooled>],
        uniforms: &Pooled,
        params: &mut [u8],
        slot: &mut u64,
        align: u64,
    ) {
        let tensor = &plan.tensors[t];
        let (s, name) = (tensor.shape, tensor.name.clone());
        let spec = PipelineSpec {
            key: "minmax".into(),
            source: ops::stats::SHADER.source.into(),
            shader: &ops::stats::SHADER,
        };
        let pipeline = self.pipeline(ctx, &spec);
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
            let off = *slot * align;
            params[off as usize..off as usize + std::mem::size_of_val(&p)].copy_from_slice(bytemuck::bytes_of(&p));
            *slot += 1;
            let resources = vec![
                ((*uniforms).clone(), off, Some(std::mem::size_of_val(&p) as u64)),
                ((*buffers[b.buffer]).clone(), 0, None),
                ((*stats[t]).clone(), 0, None),
                ((*moments[t]).clone(), 0, None),
            ];
            groups.push(self.bind_group(ctx, &ops::stats::SHADER, &format!("{name} band {j} statistics"), resources));
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

/// Timestamp queries around each compute pass.
struct Timestamps {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
}

impl Timestamps {
    fn new(ctx: &GpuContext, passes: usize) -> Self {
        let device = &ctx.device;
        Timestamps {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("step timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * passes as u32,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("step timestamps resolve"),
                size: 16 * passes as u64,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("step timestamps read-back"),
                size: 16 * passes as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        }
    }

    fn writes(&self, pass: usize) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: Some(2 * pass as u32),
            end_of_pass_write_index: Some(2 * pass as u32 + 1),
        }
    }

    fn resolve(&self, enc: &mut wgpu::CommandEncoder, passes: usize) {
        if passes == 0 {
            return;
        }
        enc.resolve_query_set(&self.set, 0..2 * passes as u32, &self.resolve, 0);
        enc.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, 16 * passes as u64);
    }

    /// Milliseconds per node; None when any interval runs backwards (an adapter that
    /// reorders or defers timestamps), so no false figure is shown.
    fn read(&self, ctx: &GpuContext, pass_node: &[usize], nodes: usize) -> Result<Option<Vec<f64>>> {
        if pass_node.is_empty() {
            return Ok(Some(vec![0.0; nodes]));
        }
        let bytes = ctx.map_and_read(&self.readback)?;
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
        Ok(node_times(&ticks, pass_node, nodes, ctx.queue.get_timestamp_period() as f64))
    }
}

/// Sums each pass's `end − start` ticks into its node's time in ms; None if any is negative.
pub fn node_times(ticks: &[u64], pass_node: &[usize], nodes: usize, period_ns: f64) -> Option<Vec<f64>> {
    let mut ms = vec![0.0; nodes];
    for (p, &node) in pass_node.iter().enumerate() {
        let (start, end) = (*ticks.get(2 * p)?, *ticks.get(2 * p + 1)?);
        let d = end.checked_sub(start)?;
        *ms.get_mut(node)? += d as f64 * period_ns / 1e6;
    }
    Some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_times_sum_passes_and_refuse_backwards_intervals() {
        let t = node_times(&[0, 1_000_000, 5, 2_000_005, 10, 1_000_010], &[0, 1, 1], 2, 1.0).unwrap();
        assert_eq!(t, vec![1.0, 3.0]);
        assert_eq!(node_times(&[10, 5], &[0], 1, 1.0), None);
        assert_eq!(node_times(&[0], &[0], 1, 1.0), None, "missing ticks");
    }
}

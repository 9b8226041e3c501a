//! What the executor keeps between runs: bind group layouts per shader, pipelines per
//! (op, specialisation), and bind groups per bound resources.

use crate::gpu::{self, GpuContext};
use crate::ops::{self, PipelineSpec, ShaderDesc};
use std::collections::HashMap;

/// Bind groups cached before the cache is emptied (it holds buffers alive).
const MAX_BIND_GROUPS: usize = 4096;

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

/// A resource bound at one binding: a buffer range (offset, size; `None` to the end), or an
/// image (`ops::image`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Bound {
    Buffer(wgpu::Buffer, u64, Option<u64>),
    Image(wgpu::TextureView),
}

/// A layout's key: the shader file and its binding table (the tuned conv's image form binds
/// the same file another way).
type LayoutKey = (&'static str, &'static [ops::Bind]);

/// A bind group's key: its layout's and what is bound (sizes left out: the same buffer at
/// the same offset is bound to the same size).
type BindKey = (LayoutKey, Vec<Bound>);

/// Layouts, pipelines and bind groups, built once and looked up by key.
#[derive(Default)]
pub struct Caches {
    layouts: HashMap<LayoutKey, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: HashMap<String, wgpu::ComputePipeline>,
    bind_groups: HashMap<BindKey, wgpu::BindGroup>,
    pub stats: CacheStats,
    /// Build every pipeline with 64-bit storage access (`ops::wide`).
    pub wide: bool,
}

impl Caches {
    /// Empty caches whose pipelines use 64-bit storage access or not.
    pub fn with_wide(wide: bool) -> Self {
        Caches { wide, ..Caches::default() }
    }

    /// Number of pipelines built.
    pub fn pipelines(&self) -> usize {
        self.pipelines.len()
    }

    /// Forgets the bind groups (they hold their buffers alive).
    pub fn clear_bind_groups(&mut self) {
        self.bind_groups.clear();
    }

    pub fn layout(
        &mut self,
        ctx: &GpuContext,
        shader: &'static ShaderDesc,
    ) -> &(wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        self.layouts.entry((shader.file, shader.bindings)).or_insert_with(|| {
            let group = ctx.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(shader.file),
                entries: &ops::layout_entries(shader.bindings, wgpu::ShaderStages::COMPUTE),
            });
            let pl = gpu::pipeline_layout(ctx, shader.file, &group);
            (group, pl)
        })
    }

    /// The pipeline built under `key`, if any (a hit).
    pub fn cached(&mut self, key: &str) -> Option<wgpu::ComputePipeline> {
        let p = self.pipelines.get(key).cloned();
        if p.is_some() {
            self.stats.pipeline_hits += 1;
        }
        p
    }

    pub fn pipeline(&mut self, ctx: &GpuContext, spec: &PipelineSpec) -> wgpu::ComputePipeline {
        if let Some(p) = self.pipelines.get(&spec.key) {
            self.stats.pipeline_hits += 1;
            return p.clone();
        }
        let pl = self.layout(ctx, spec.shader).1.clone();
        let t0 = std::time::Instant::now();
        let source = if self.wide { ops::wide::widen(&spec.source) } else { std::borrow::Cow::Borrowed(&*spec.source) };
        let p = gpu::compute_pipeline(ctx, &spec.key, &source, "main", &pl);
        // (On lavapipe the shader's machine code is compiled here: seconds for big blocks.)
        log::info!("pipeline built: {} ({:.0} ms)", spec.key, t0.elapsed().as_secs_f64() * 1e3);
        self.stats.pipelines_built += 1;
        self.pipelines.insert(spec.key.clone(), p.clone());
        p
    }

    pub fn bind_group(
        &mut self,
        ctx: &GpuContext,
        shader: &'static ShaderDesc,
        label: &str,
        resources: Vec<Bound>,
    ) -> wgpu::BindGroup {
        let unsized_ = |r: &Bound| match r {
            Bound::Buffer(b, o, _) => Bound::Buffer(b.clone(), *o, None),
            Bound::Image(v) => Bound::Image(v.clone()),
        };
        let key: BindKey = ((shader.file, shader.bindings), resources.iter().map(unsized_).collect());
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
            .map(|(i, r)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: match r {
                    Bound::Buffer(b, offset, size) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: b,
                        offset: *offset,
                        size: size.and_then(wgpu::BufferSize::new),
                    }),
                    Bound::Image(v) => wgpu::BindingResource::TextureView(v),
                },
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
}

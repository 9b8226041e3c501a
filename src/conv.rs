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
        Block {
            px: 8,
            ocv: 2,
            unroll: true,
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

/// A network whose weights live on the GPU.
pub struct GpuNetwork {
    pub net: Network,
    pub layers: Vec<GpuConv>,
    pub block: Block,
}

/// The result of one run: every layer's output (index 0 is the input) and its
/// per-channel `(min, max)`, all still on the GPU.
pub struct Activations {
    pub names: Vec<String>,
    pub shapes: Vec<Shape>,
    pub buffers: Vec<wgpu::Buffer>,
    pub stats: Vec<wgpu::Buffer>,
    /// GPU time of each layer's convolution in ms (timestamp queries), if the adapter has them.
    pub gpu_ms: Option<Vec<f64>>,
    /// Wall time from submission to completion, in ms.
    pub wall_ms: f64,
}

impl Activations {
    /// Reads layer `i` (0 = input) back to the CPU.
    pub fn read(&self, ctx: &GpuContext, i: usize) -> Result<Tensor> {
        let s = self.shapes[i];
        let bytes = ctx.read_buffer(&self.buffers[i], 0, s.bytes())?;
        Ok(Tensor::new(s, bytemuck::pod_collect_to_vec(&bytes)))
    }

    /// Reads layer `i`'s per-channel `(min, max)`.
    pub fn read_stats(&self, ctx: &GpuContext, i: usize) -> Result<Vec<[f32; 2]>> {
        let bytes = ctx.read_buffer(&self.stats[i], 0, self.shapes[i].c as u64 * 8)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Reads one value of layer `i`.
    pub fn read_value(
        &self,
        ctx: &GpuContext,
        i: usize,
        c: usize,
        y: usize,
        x: usize,
    ) -> Result<f32> {
        let s = self.shapes[i];
        let off = (((c * s.h + y) * s.w + x) * 4) as u64;
        // Copies must be 4-byte aligned and sized; one f32 is exactly that.
        let bytes = ctx.read_buffer(&self.buffers[i], off, 4)?;
        Ok(f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

/// Pipelines, built once and cached by configuration.
pub struct Engine {
    naive: wgpu::ComputePipeline,
    naive_layout: wgpu::BindGroupLayout,
    tuned_layout: wgpu::BindGroupLayout,
    tuned_pipeline_layout: wgpu::PipelineLayout,
    tuned: HashMap<TunedKey, wgpu::ComputePipeline>,
    minmax: wgpu::ComputePipeline,
    minmax_layout: wgpu::BindGroupLayout,
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
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: b.as_entire_binding(),
        })
        .collect();
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

/// Splits `n` workgroups over x and y so neither exceeds the per-dimension limit.
pub fn split_workgroups(n: u32, max_per_dim: u32) -> (u32, u32) {
    if n <= max_per_dim {
        (n.max(1), 1)
    } else {
        (max_per_dim, n.div_ceil(max_per_dim))
    }
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
        let (naive, _) = compute_pipeline(
            ctx,
            "conv2d naive",
            shader::CONV2D_NAIVE,
            &[Some(&naive_layout)],
        );
        let tuned_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("conv2d tuned bind group layout"),
            entries: &[
                storage_entry(0, true),
                storage_entry(1, true),
                storage_entry(2, true),
                storage_entry(3, false),
            ],
        });
        let tuned_pipeline_layout =
            device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("conv2d tuned pipeline layout"),
                bind_group_layouts: &[Some(&tuned_layout)],
                immediate_size: 0,
            });
        let minmax_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("minmax bind group layout"),
            entries: &[
                uniform_entry(0),
                storage_entry(1, true),
                storage_entry(2, false),
            ],
        });
        let (minmax, _) = compute_pipeline(ctx, "minmax", shader::MINMAX, &[Some(&minmax_layout)]);
        Self {
            naive,
            naive_layout,
            tuned_layout,
            tuned_pipeline_layout,
            tuned: HashMap::new(),
            minmax,
            minmax_layout,
        }
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
                key.cin,
                key.cout,
                key.k,
                key.stride,
                key.pad,
                key.input.h,
                key.input.w,
                key.block.px,
                key.block.ocv
            );
            let module = ctx
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&label),
                    source: wgpu::ShaderSource::Wgsl(src.into()),
                });
            ctx.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
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
                    let groups =
                        c.cout.div_ceil(4).div_ceil(block.ocv as usize) * block.ocv as usize;
                    let (pw, pb) = pack_weights(c, groups);
                    let init = |label: String, data: &[f32]| {
                        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                            label: Some(&label),
                            contents: bytemuck::cast_slice(data),
                            usage: wgpu::BufferUsages::STORAGE,
                        })
                    };
                    layers.push(GpuConv {
                        spec: c.clone(),
                        weight: init(format!("{} weight", layer.name), &c.weight),
                        bias: init(format!("{} bias", layer.name), &c.bias),
                        packed_weight: init(format!("{} packed weight", layer.name), &pw),
                        packed_bias: init(format!("{} packed bias", layer.name), &pb),
                        packed_groups: groups,
                    });
                }
            }
        }
        ctx.check_errors()?;
        Ok(GpuNetwork {
            net: net.clone(),
            layers,
            block,
        })
    }

    /// Runs the whole chain on `input` in one submission: every layer, then every layer's
    /// channel statistics. Nothing is read back between layers.
    pub fn run(
        &mut self,
        ctx: &GpuContext,
        gnet: &GpuNetwork,
        input: &Tensor,
        kernel: Kernel,
    ) -> Result<Activations> {
        let device = &ctx.device;
        let mut shapes = vec![input.shape];
        shapes.extend(gnet.net.shapes(input.shape)?);
        let mut names = vec!["input".to_string()];
        names.extend(gnet.net.layers.iter().map(|l| l.name.clone()));
        check_sizes(ctx, &names, &shapes)?;

        let input_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("input tensor"),
            contents: bytemuck::cast_slice(&input.data),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        });
        let mut buffers = vec![input_buf];
        for (name, s) in names.iter().zip(&shapes).skip(1) {
            buffers.push(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("{name} output")),
                size: s.bytes().max(4),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }));
        }
        let stats: Vec<wgpu::Buffer> = names
            .iter()
            .zip(&shapes)
            .map(|(name, s)| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("{name} channel min/max")),
                    size: (s.c as u64 * 8).max(8),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                })
            })
            .collect();

        let n_layers = gnet.layers.len();
        let queries = (ctx.timestamps && n_layers > 0).then(|| {
            let set = device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("conv timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * n_layers as u32,
            });
            let resolve = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("conv timestamps resolve"),
                size: 16 * n_layers as u64,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let readback = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("conv timestamps read-back"),
                size: 16 * n_layers as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (set, resolve, readback)
        });

        let max_wg = ctx.limits().max_compute_workgroups_per_dimension;
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("conv chain"),
        });
        for (i, gl) in gnet.layers.iter().enumerate() {
            let c = &gl.spec;
            let (sin, sout) = (shapes[i], shapes[i + 1]);
            let name = &names[i + 1];
            let ts = queries
                .as_ref()
                .map(|(set, _, _)| wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                });
            match kernel {
                Kernel::Naive => {
                    let params: [u32; 12] = [
                        c.cin as u32,
                        c.cout as u32,
                        c.k as u32,
                        c.stride as u32,
                        c.pad as u32,
                        sin.h as u32,
                        sin.w as u32,
                        sout.h as u32,
                        sout.w as u32,
                        0,
                        0,
                        0,
                    ];
                    let ubuf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(&format!("{name} naive params")),
                        contents: bytemuck::cast_slice(&params),
                        usage: wgpu::BufferUsages::UNIFORM,
                    });
                    let bg = bind_group(
                        ctx,
                        &format!("{name} naive bind group"),
                        &self.naive_layout,
                        &[&ubuf, &buffers[i], &gl.weight, &gl.bias, &buffers[i + 1]],
                    );
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&format!("{name} naive")),
                        timestamp_writes: ts,
                    });
                    pass.set_pipeline(&self.naive);
                    pass.set_bind_group(0, &bg, &[]);
                    pass.dispatch_workgroups(
                        (sout.w as u32).div_ceil(64),
                        sout.h as u32,
                        sout.c as u32,
                    );
                }
                Kernel::Tuned => {
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
                    let pipeline = self.tuned_pipeline(ctx, key).clone();
                    let bg = bind_group(
                        ctx,
                        &format!("{name} tuned bind group"),
                        &self.tuned_layout,
                        &[
                            &buffers[i],
                            &gl.packed_weight,
                            &gl.packed_bias,
                            &buffers[i + 1],
                        ],
                    );
                    let px = gnet.block.px as usize;
                    let invocations = sout.w.div_ceil(px) * sout.h;
                    let (x, y) = split_workgroups(invocations.div_ceil(64) as u32, max_wg);
                    let z = (gl.packed_groups / gnet.block.ocv as usize) as u32;
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&format!("{name} tuned")),
                        timestamp_writes: ts,
                    });
                    pass.set_pipeline(&pipeline);
                    pass.set_bind_group(0, &bg, &[]);
                    pass.dispatch_workgroups(x, y, z);
                }
            }
        }
        self.encode_minmax(ctx, &mut enc, &names, &shapes, &buffers, &stats);
        if let Some((set, resolve, readback)) = &queries {
            enc.resolve_query_set(set, 0..2 * n_layers as u32, resolve, 0);
            enc.copy_buffer_to_buffer(resolve, 0, readback, 0, 16 * n_layers as u64);
        }
        let t0 = Instant::now();
        ctx.queue.submit([enc.finish()]);
        ctx.wait()?;
        let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
        let gpu_ms = match &queries {
            Some((_, _, readback)) => {
                let bytes = ctx.map_and_read(readback)?;
                let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
                let period = ctx.queue.get_timestamp_period() as f64;
                Some(
                    (0..n_layers)
                        .map(|i| {
                            ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period / 1e6
                        })
                        .collect(),
                )
            }
            None => None,
        };
        Ok(Activations {
            names,
            shapes,
            buffers,
            stats,
            gpu_ms,
            wall_ms,
        })
    }

    fn encode_minmax(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        names: &[String],
        shapes: &[Shape],
        buffers: &[wgpu::Buffer],
        stats: &[wgpu::Buffer],
    ) {
        let mut groups = Vec::new();
        for i in 0..shapes.len() {
            let params: [u32; 4] = [shapes[i].plane() as u32, shapes[i].c as u32, 0, 0];
            let ubuf = ctx
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(&format!("{} minmax params", names[i])),
                    contents: bytemuck::cast_slice(&params),
                    usage: wgpu::BufferUsages::UNIFORM,
                });
            groups.push(bind_group(
                ctx,
                &format!("{} minmax bind group", names[i]),
                &self.minmax_layout,
                &[&ubuf, &buffers[i], &stats[i]],
            ));
        }
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("channel min/max"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.minmax);
        for (i, bg) in groups.iter().enumerate() {
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(shapes[i].c as u32, 1, 1);
        }
    }
}

/// Refuses a run whose tensors would not fit the device's buffer limits, naming the layer.
fn check_sizes(ctx: &GpuContext, names: &[String], shapes: &[Shape]) -> Result<()> {
    let l = ctx.limits();
    let cap = l.max_storage_buffer_binding_size.min(l.max_buffer_size);
    for (name, s) in names.iter().zip(shapes) {
        if s.bytes() > cap {
            bail!(
                "{name} ({s}) needs {} MiB but this GPU allows {} MiB per buffer; use a smaller image",
                s.bytes() >> 20,
                cap >> 20
            );
        }
        if s.c as u32 > l.max_compute_workgroups_per_dimension {
            return Err(anyhow!(
                "{name} has {} channels, more than this GPU can dispatch",
                s.c
            ));
        }
    }
    Ok(())
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
    fn workgroup_split() {
        assert_eq!(split_workgroups(10, 65535), (10, 1));
        assert_eq!(split_workgroups(0, 65535), (1, 1));
        assert_eq!(split_workgroups(70000, 65535), (65535, 2));
    }
}

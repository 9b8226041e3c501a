//! GPU ops, one module each: its WGSL file, its bind group layout (as a [`Bind`] table), and
//! a `#[repr(C)]` params struct mirroring the WGSL struct (checked by naga reflection in
//! `tests/shaders.rs`). Network ops become [`GpuNode`]s (weights uploaded once) that tell the
//! executor, per band step, which pipeline to run, with which params, buffers and workgroups.
//! Adding an op: its WGSL file, its module here, a variant of `graph::Op`, an arm in
//! [`GpuNode::upload`], its CPU twin in `reference`, tests.

pub mod binary;
pub mod colormap;
pub mod conv_general;
pub mod conv_naive;
pub mod conv_tuned;
pub mod depthwise;
pub mod gemm;
pub mod image;
pub mod layout;
pub mod maxpool;
pub mod pointwise;
pub mod pool;
pub mod present;
pub mod resize;
pub mod stats;
pub mod wide;

use crate::gpu::GpuContext;
use crate::graph::Op;
use crate::tensor::Shape;
use std::borrow::Cow;

/// One binding of a shader's group 0, in binding order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bind {
    Uniform,
    Storage {
        read_only: bool,
    },
    /// A write-only storage texture of this format.
    StorageTexture(wgpu::TextureFormat),
    /// A sampled float texture (not filterable).
    Texture,
    /// A read-only `rgba32uint` storage texture: a tensor or weights read as an image
    /// ([`image`]).
    ReadImage,
}

/// How a pass's params (its `Params` struct) are bound: a read-only storage buffer, not a
/// uniform. lavapipe (Mesa 22.3) inlines uniform values that steer a shader's branches and
/// loops and, where that shrinks the shader by half (a `switch` on a mode, a loop over a
/// kernel size), compiles the shader again at every bind: a copy of 576 values took
/// 0.5–0.8 ms, most elementwise and pooling passes 0.1–0.6 ms (`bench --model … --nodes`).
/// The big specialised kernels (tuned conv, depthwise) keep uniforms: inlining barely
/// shrinks them, so lavapipe stops after the first try, and they already bind 8 storage
/// buffers, WebGPU's default limit.
pub const PARAMS: Bind = Bind::Storage { read_only: true };

/// params, input, output: the table of ops with no weights.
pub const PARAMS_IN_OUT: &[Bind] = &[PARAMS, Bind::Storage { read_only: true }, Bind::Storage { read_only: false }];

/// params, input, two parameter buffers, output: the table of elementwise-style ops.
pub const PARAMS_IN_TWO_OUT: &[Bind] = &[
    PARAMS,
    Bind::Storage { read_only: true },
    Bind::Storage { read_only: true },
    Bind::Storage { read_only: true },
    Bind::Storage { read_only: false },
];

/// A shader file and what the host binds to it.
#[derive(Debug)]
pub struct ShaderDesc {
    /// File name in `shaders/`.
    pub file: &'static str,
    pub source: &'static str,
    /// Group 0's bindings, in binding order.
    pub bindings: &'static [Bind],
    /// Name of the WGSL params struct and its Rust mirror's layout.
    pub params: Option<fn() -> ParamsLayout>,
}

/// A params struct's size and `(field, offset)` list, to compare with naga's reflection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamsLayout {
    pub wgsl_name: &'static str,
    pub size: usize,
    pub fields: Vec<(&'static str, usize)>,
}

/// A Rust struct that mirrors a WGSL struct.
pub trait WgslStruct: bytemuck::Pod {
    const WGSL_NAME: &'static str;
    fn fields() -> Vec<(&'static str, usize)>;
    fn layout() -> ParamsLayout {
        ParamsLayout { wgsl_name: Self::WGSL_NAME, size: std::mem::size_of::<Self>(), fields: Self::fields() }
    }
}

/// Declares a `#[repr(C)]` Pod params struct that mirrors the WGSL struct named `$wgsl`.
macro_rules! wgsl_struct {
    ($(#[$m:meta])* pub struct $name:ident as $wgsl:literal { $($(#[$fm:meta])* pub $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }
        impl $crate::ops::WgslStruct for $name {
            const WGSL_NAME: &'static str = $wgsl;
            fn fields() -> Vec<(&'static str, usize)> {
                vec![$((stringify!($f), std::mem::offset_of!($name, $f))),*]
            }
        }
    };
}
pub(crate) use wgsl_struct;

/// Every shader the program uses, for validation and reflection tests.
pub const ALL: &[&ShaderDesc] = &[
    &conv_naive::SHADER,
    &conv_tuned::SHADER,
    &pointwise::SHADER,
    &maxpool::SHADER,
    &stats::SHADER,
    &colormap::SHADER,
    &present::SHADER,
    &binary::SHADER,
    &conv_general::SHADER,
    &pool::SHADER,
    &resize::SHADER,
    &gemm::SHADER,
    &gemm::SOFTMAX,
    &layout::SHADER,
    &depthwise::SHADER,
    &conv_tuned::splitk::SHADER,
    &pool::GLOBAL,
];

/// The bind group layout entries of a binding table, visible to `stages`.
pub fn layout_entries(bindings: &[Bind], stages: wgpu::ShaderStages) -> Vec<wgpu::BindGroupLayoutEntry> {
    bindings
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: stages,
            ty: match *b {
                Bind::Uniform => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                Bind::Storage { read_only } => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                Bind::StorageTexture(format) => wgpu::BindingType::StorageTexture {
                    access: wgpu::StorageTextureAccess::WriteOnly,
                    format,
                    view_dimension: wgpu::TextureViewDimension::D2,
                },
                Bind::ReadImage => wgpu::BindingType::StorageTexture {
                    access: wgpu::StorageTextureAccess::ReadOnly,
                    format: image::FORMAT,
                    view_dimension: wgpu::TextureViewDimension::D2,
                },
                Bind::Texture => wgpu::BindingType::Texture {
                    sample_type: wgpu::TextureSampleType::Float { filterable: false },
                    view_dimension: wgpu::TextureViewDimension::D2,
                    multisampled: false,
                },
            },
            count: None,
        })
        .collect()
}

/// The geometry of one band step: input and output shapes, and which rows each band holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepGeom {
    pub input: Shape,
    pub output: Shape,
    /// First row of the whole input held in the input band, and how many.
    pub in_row0: usize,
    pub in_rows: usize,
    /// First output row this step computes, and how many.
    pub out_row0: usize,
    pub out_rows: usize,
}

/// What a step binds at each binding, in order.
pub enum Res<'a> {
    /// The step's params (a uniform the executor writes from [`Dispatch::params`]).
    Params,
    /// The step's input band (of the node's `k`-th input).
    Input(usize),
    /// The step's output band.
    Output,
    /// A buffer of the node's own (weights).
    Buffer(&'a wgpu::Buffer),
    /// The step's input band (of the node's `k`-th input) as an image of this many vec4s:
    /// the executor copies the band into an image ([`image::extent`]) before the step's pass.
    InputImage(usize, u64),
    /// A texture of the node's own (weights as an image).
    Image(&'a wgpu::TextureView),
}

/// A pipeline to run: its cache key, source and shader description.
pub struct PipelineSpec {
    /// Unique per (op, specialisation); also the pipeline's label.
    pub key: String,
    pub source: Cow<'static, str>,
    pub shader: &'static ShaderDesc,
}

/// One band step, ready to bind and dispatch.
pub struct Dispatch<'a> {
    pub params: Vec<u8>,
    pub bindings: Vec<Res<'a>>,
    pub workgroups: (u32, u32, u32),
}

/// A network node on the GPU: its parameters uploaded once.
pub enum GpuNode {
    ConvNaive(conv_naive::NaiveConv),
    ConvTuned(conv_tuned::TunedConv),
    ConvGeneral(conv_general::GeneralConv),
    Depthwise(depthwise::Depthwise),
    Pointwise(pointwise::Pointwise),
    MaxPool(maxpool::MaxPool),
    Pool(pool::GpuPool),
    Binary(binary::Binary),
    Layout(layout::Layout),
    Resize(crate::graph::Resize),
    Gemm(gemm::Gemm),
    Softmax,
}

/// Which convolution shader runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ConvKernel {
    /// One output per invocation, shapes in a uniform: the baseline.
    Naive,
    /// Register-blocked, shape-specialised.
    #[default]
    Tuned,
}

impl ConvKernel {
    pub fn name(self) -> &'static str {
        match self {
            ConvKernel::Naive => "naive",
            ConvKernel::Tuned => "tuned",
        }
    }
}

impl GpuNode {
    /// Bytes of the table a step of this node passes after its params struct, for an output
    /// of `output`: a Resize's input coordinate of every output row and column (f32), none
    /// for every other node. The executor sizes its params buffer by it.
    pub fn table_bytes(&self, output: crate::tensor::Shape) -> u64 {
        match self {
            GpuNode::Resize(_) => 4 * (output.h + output.w) as u64,
            _ => 0,
        }
    }

    /// Uploads `op`'s parameters (labelled with the node's `name`) in the layout its shader
    /// reads; convolutions for `kernel` with register block `block`.
    pub fn upload(ctx: &GpuContext, name: &str, op: &Op, kernel: ConvKernel, block: conv_tuned::Block) -> Self {
        use layout::Layout;
        match op {
            Op::Conv(c) => match kernel {
                ConvKernel::Naive => GpuNode::ConvNaive(conv_naive::NaiveConv::upload(ctx, name, c)),
                ConvKernel::Tuned => GpuNode::ConvTuned(conv_tuned::TunedConv::upload(ctx, name, c, block)),
            },
            Op::ConvG(c) => match (kernel, c.as_plain()) {
                (ConvKernel::Tuned, Some(plain)) => {
                    GpuNode::ConvTuned(conv_tuned::TunedConv::upload(ctx, name, &plain, block))
                }
                (ConvKernel::Tuned, None) if depthwise::fits(c) => {
                    GpuNode::Depthwise(depthwise::Depthwise::upload(ctx, name, c))
                }
                _ => GpuNode::ConvGeneral(conv_general::GeneralConv::upload(ctx, name, c)),
            },
            Op::MaxPool { k, stride, .. } => GpuNode::MaxPool(maxpool::MaxPool { k: *k, stride: *stride }),
            Op::Relu | Op::PRelu { .. } | Op::BatchNorm { .. } | Op::Unary(_) => {
                GpuNode::Pointwise(pointwise::Pointwise::upload(ctx, name, op))
            }
            Op::Pool(p) => GpuNode::Pool(pool::GpuPool { pool: Some(p.clone()), max: p.max }),
            Op::GlobalPool { max } => GpuNode::Pool(pool::GpuPool { pool: None, max: *max }),
            Op::Binary { kind, constant } => {
                GpuNode::Binary(binary::Binary::upload(ctx, name, *kind, constant.as_ref()))
            }
            Op::Concat => GpuNode::Layout(Layout::Concat),
            Op::SliceChannels { start, end } => GpuNode::Layout(Layout::Slice { start: *start, end: *end }),
            Op::Pad { pads, value } => GpuNode::Layout(Layout::Pad { pads: *pads, value: *value }),
            Op::Copy => GpuNode::Layout(Layout::Copy),
            Op::ChannelShuffle { groups } => GpuNode::Layout(Layout::Shuffle { groups: *groups }),
            Op::Resize(r) => GpuNode::Resize(r.clone()),
            Op::Gemm { k, n, weight, bias } => GpuNode::Gemm(gemm::Gemm::upload(ctx, name, *k, *n, weight, bias)),
            Op::Softmax => GpuNode::Softmax,
        }
    }

    /// The kind of kernel, for logs and timings.
    pub fn kind(&self) -> &'static str {
        match self {
            GpuNode::ConvNaive(_) => "naive",
            GpuNode::ConvTuned(_) => "tuned",
            GpuNode::ConvGeneral(_) => "conv general",
            GpuNode::Depthwise(_) => "depthwise",
            GpuNode::Pointwise(_) => "pointwise",
            GpuNode::MaxPool(_) => "maxpool",
            GpuNode::Pool(_) => "pool",
            GpuNode::Binary(_) => "binary",
            GpuNode::Layout(_) => "layout",
            GpuNode::Resize(_) => "resize",
            GpuNode::Gemm(_) => "gemm",
            GpuNode::Softmax => "softmax",
        }
    }

    /// The pipeline a step of geometry `g` runs.
    pub fn pipeline(&self, g: &StepGeom) -> PipelineSpec {
        match self {
            GpuNode::ConvNaive(_) => conv_naive::pipeline(),
            GpuNode::ConvTuned(c) => c.pipeline(g),
            GpuNode::ConvGeneral(_) => conv_general::pipeline(),
            GpuNode::Depthwise(d) => d.pipeline(g),
            GpuNode::Pointwise(_) => pointwise::pipeline(g),
            GpuNode::MaxPool(_) => maxpool::pipeline(),
            GpuNode::Pool(p) => p.pipeline(g),
            GpuNode::Binary(_) => binary::pipeline(g.output),
            GpuNode::Layout(_) => layout::pipeline(),
            GpuNode::Resize(_) => resize::pipeline(),
            GpuNode::Gemm(m) => m.pipeline(),
            GpuNode::Softmax => gemm::softmax_pipeline(),
        }
    }

    /// Params, bindings and workgroups of the dispatches of a step of geometry `g` whose
    /// inputs have shapes `ins` (one dispatch, except a Concat: one per input).
    pub fn dispatch(&self, g: &StepGeom, ins: &[Shape], max_workgroups: u32) -> Vec<Dispatch<'_>> {
        let one = |d| vec![d];
        match self {
            GpuNode::ConvNaive(c) => one(c.dispatch(g)),
            GpuNode::ConvTuned(c) => one(c.dispatch(g, max_workgroups)),
            GpuNode::ConvGeneral(c) => one(c.dispatch(g, max_workgroups)),
            GpuNode::Depthwise(d) => one(d.dispatch(g, max_workgroups)),
            GpuNode::Pointwise(p) => one(p.dispatch(g, max_workgroups)),
            GpuNode::MaxPool(m) => one(m.dispatch(g, max_workgroups)),
            GpuNode::Pool(p) => one(p.dispatch(g, max_workgroups)),
            GpuNode::Binary(b) => one(b.dispatch(g.output, ins, max_workgroups)),
            GpuNode::Layout(l) => layout::dispatches(*l, ins, g.output, max_workgroups),
            GpuNode::Resize(r) => one(resize::dispatch(r, g, max_workgroups)),
            GpuNode::Gemm(m) => one(m.dispatch()),
            GpuNode::Softmax => one(gemm::softmax_dispatch(g.output.len())),
        }
    }
}

/// A storage buffer initialised with `data`, labelled.
pub(crate) fn storage_init(ctx: &GpuContext, label: &str, data: &[f32]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt as _;
    ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::cast_slice(data),
        usage: wgpu::BufferUsages::STORAGE,
    })
}

/// `(x, y, z)` workgroups of 64 invocations along x covering `width × rows × channels`.
pub(crate) fn per_value_workgroups(width: usize, rows: usize, channels: usize) -> (u32, u32, u32) {
    ((width as u32).div_ceil(64), rows as u32, channels as u32)
}

/// Workgroups of 64 invocations covering `n` values as a flat index (x, then y).
pub(crate) fn flat_workgroups(n: usize, max_wg: u32) -> (u32, u32, u32) {
    let (x, y) = split_workgroups((n as u32).div_ceil(64), max_wg);
    (x, y, 1)
}

/// `src` with its entry point `entry` renamed `main` (and its `main` renamed `main_1`): the
/// executor builds every pipeline from `main`, and a shader file may hold a second form
/// of its op (the elementwise ops' vec4 `main4`).
pub fn as_main(src: &str, entry: &str) -> String {
    src.replace("fn main(", "fn main_1(").replace(&format!("fn {entry}("), "fn main(")
}

/// Splits `n` workgroups over x and y so neither exceeds the per-dimension limit.
pub fn split_workgroups(n: u32, max_per_dim: u32) -> (u32, u32) {
    if n <= max_per_dim { (n.max(1), 1) } else { (max_per_dim, n.div_ceil(max_per_dim)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workgroup_split() {
        assert_eq!(split_workgroups(10, 65535), (10, 1));
        assert_eq!(split_workgroups(0, 65535), (1, 1));
        assert_eq!(split_workgroups(70000, 65535), (65535, 2));
    }

    #[test]
    fn every_shader_file_is_listed_once() {
        let mut files: Vec<&str> = ALL.iter().map(|s| s.file).collect();
        files.sort();
        files.dedup();
        assert_eq!(files.len(), ALL.len());
    }
}

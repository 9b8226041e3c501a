//! Elementwise layers: ReLU, PReLU (one slope or one per channel), eval-mode BatchNorm as
//! a per-channel affine map, and the ONNX functions (Clip, LeakyRelu, Sigmoid, HardSigmoid,
//! HardSwish, Tanh, Erf); one output per invocation, or four adjacent ones on rows of whole
//! vec4s (the shader's `main4`: a quarter of the storage accesses, which on a CPU adapter
//! are loops over the lanes). CPU twins: `reference::apply`, `reference::graph_ops::unary`.

use super::{Dispatch, PipelineSpec, Res, ShaderDesc, StepGeom, WgslStruct, split_workgroups, storage_init};
use crate::gpu::GpuContext;
use crate::graph::{Op, Unary};
use std::borrow::Cow;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "pointwise.wgsl",
    source: include_str!("../../shaders/pointwise.wgsl"),
    // params, input, a, b, output
    bindings: super::PARAMS_IN_TWO_OUT,
    params: Some(Params::layout),
};

super::wgsl_struct! {
    /// Mirrors `Params` in `pointwise.wgsl`.
    pub struct Params as "Params" {
        pub channels: u32,
        pub width: u32,
        pub out_rows: u32,
        pub in_rows: u32,
        pub row_off: u32,
        pub mode: u32,
        pub per_channel: u32,
        pub p0: f32,
        pub p1: f32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

/// `mode` values of `pointwise.wgsl`.
pub const RELU: u32 = 0;
pub const PRELU: u32 = 1;
pub const AFFINE: u32 = 2;

/// An elementwise layer's parameters on the GPU (`a`: slopes or BatchNorm scale, `b`:
/// BatchNorm shift).
pub struct Pointwise {
    mode: u32,
    p: [f32; 2],
    per_channel: bool,
    a: wgpu::Buffer,
    b: wgpu::Buffer,
}

/// The shader's mode and parameters for an ONNX function.
pub fn unary_mode(u: Unary) -> (u32, [f32; 2]) {
    match u {
        Unary::Clip { min, max } => (3, [min, max]),
        Unary::LeakyRelu { alpha } => (4, [alpha, 0.0]),
        Unary::Sigmoid => (5, [0.0; 2]),
        Unary::HardSigmoid { alpha, beta } => (6, [alpha, beta]),
        Unary::HardSwish => (7, [0.0; 2]),
        Unary::Tanh => (8, [0.0; 2]),
        Unary::Erf => (9, [0.0; 2]),
    }
}

impl Pointwise {
    /// The batch norm's scale and shift buffers, for a fused epilogue.
    pub fn affine(&self) -> Option<(&wgpu::Buffer, &wgpu::Buffer)> {
        (self.mode == AFFINE).then_some((&self.a, &self.b))
    }

    /// The activation as the tuned conv's epilogue numbers it, with its parameters.
    pub fn fused_activation(&self) -> Option<(u32, [f32; 2])> {
        match self.mode {
            RELU => Some((10, [0.0; 2])),
            m if (3..=9).contains(&m) => Some((m, self.p)),
            _ => None,
        }
    }
}

/// Whether a step of geometry `g` runs the vec4 form (`main4`): rows of whole vec4s.
pub fn vec4_form(g: &StepGeom) -> bool {
    g.output.w.is_multiple_of(4)
}

/// The pipeline of a step of geometry `g`: the vec4 form where [`vec4_form`].
pub fn pipeline(g: &StepGeom) -> PipelineSpec {
    if vec4_form(g) {
        PipelineSpec {
            key: "pointwise vec4".into(),
            source: Cow::Owned(super::as_main(SHADER.source, "main4")),
            shader: &SHADER,
        }
    } else {
        PipelineSpec { key: "pointwise".into(), source: Cow::Borrowed(SHADER.source), shader: &SHADER }
    }
}

impl Pointwise {
    /// `op` must be ReLU, PReLU, BatchNorm or a [`Unary`] function.
    pub fn upload(ctx: &GpuContext, name: &str, op: &Op) -> Self {
        let none = || (vec![0.0], vec![0.0]);
        let (mode, p, (a, b)) = match op {
            Op::PRelu { slopes } => (PRELU, [0.0; 2], (slopes.clone(), vec![0.0])),
            Op::BatchNorm { .. } => (AFFINE, [0.0; 2], op.batchnorm_affine().unwrap_or_default()),
            Op::Unary(u) => {
                let (mode, p) = unary_mode(*u);
                (mode, p, none())
            }
            _ => (RELU, [0.0; 2], none()),
        };
        Pointwise {
            mode,
            p,
            per_channel: a.len() > 1,
            a: storage_init(ctx, &format!("{name} parameters a"), &a),
            b: storage_init(ctx, &format!("{name} parameters b"), &b),
        }
    }

    pub fn dispatch(&self, g: &StepGeom, max_workgroups: u32) -> Dispatch<'_> {
        let u = |v: usize| v as u32;
        let p = Params {
            channels: u(g.output.c),
            width: u(g.output.w),
            out_rows: u(g.out_rows),
            in_rows: u(g.in_rows),
            row_off: u(g.out_row0 - g.in_row0),
            mode: self.mode,
            per_channel: u32::from(self.per_channel),
            p0: self.p[0],
            p1: self.p[1],
            ..Default::default()
        };
        Dispatch {
            params: bytemuck::bytes_of(&p).to_vec(),
            bindings: vec![Res::Params, Res::Input(0), Res::Buffer(&self.a), Res::Buffer(&self.b), Res::Output],
            workgroups: {
                let per_row = if vec4_form(g) { g.output.w / 4 } else { g.output.w };
                let (x, y) = split_workgroups((per_row * g.out_rows).div_ceil(64) as u32, max_workgroups);
                (x, y, g.output.c as u32)
            },
        }
    }
}

//! `y = W x + b` on a flat input (ONNX Gemm, MatMul with a weight matrix) and Softmax over
//! a vector: a classifier's head. CPU twins: `reference::graph_ops::{gemm, softmax}`.

use super::{Dispatch, PipelineSpec, Res, ShaderDesc, WgslStruct, storage_init};
use crate::gpu::GpuContext;
use std::borrow::Cow;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "gemm.wgsl",
    source: include_str!("../../shaders/gemm.wgsl"),
    // params, input, weight, bias, output
    bindings: super::PARAMS_IN_TWO_OUT,
    params: Some(Params::layout),
};

pub const SOFTMAX: ShaderDesc = ShaderDesc {
    file: "softmax.wgsl",
    source: include_str!("../../shaders/softmax.wgsl"),
    // params, input, output
    bindings: super::PARAMS_IN_OUT,
    params: Some(SoftmaxParams::layout),
};

super::wgsl_struct! {
    /// Mirrors `Params` in `gemm.wgsl`.
    pub struct Params as "Params" {
        pub k: u32,
        pub n: u32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

super::wgsl_struct! {
    /// Mirrors `Params` in `softmax.wgsl`.
    pub struct SoftmaxParams as "Params" {
        pub n: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

/// A Gemm's weights on the GPU.
pub struct Gemm {
    k: usize,
    n: usize,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
}

pub fn pipeline() -> PipelineSpec {
    PipelineSpec { key: "gemm".into(), source: Cow::Borrowed(SHADER.source), shader: &SHADER }
}

pub fn softmax_pipeline() -> PipelineSpec {
    PipelineSpec { key: "softmax".into(), source: Cow::Borrowed(SOFTMAX.source), shader: &SOFTMAX }
}

/// Softmax over the `n` values of the input.
pub fn softmax_dispatch<'a>(n: usize) -> Dispatch<'a> {
    let p = SoftmaxParams { n: n as u32, ..Default::default() };
    Dispatch {
        params: bytemuck::bytes_of(&p).to_vec(),
        bindings: vec![Res::Params, Res::Input(0), Res::Output],
        workgroups: (1, 1, 1),
    }
}

impl Gemm {
    pub fn upload(ctx: &GpuContext, name: &str, k: usize, n: usize, weight: &[f32], bias: &[f32]) -> Self {
        let bias = if bias.is_empty() { vec![0.0; n] } else { bias.to_vec() };
        Gemm {
            k,
            n,
            weight: storage_init(ctx, &format!("{name} weight"), weight),
            bias: storage_init(ctx, &format!("{name} bias"), &bias),
        }
    }

    pub fn dispatch(&self) -> Dispatch<'_> {
        let p = Params { k: self.k as u32, n: self.n as u32, ..Default::default() };
        Dispatch {
            params: bytemuck::bytes_of(&p).to_vec(),
            bindings: vec![Res::Params, Res::Input(0), Res::Buffer(&self.weight), Res::Buffer(&self.bias), Res::Output],
            workgroups: ((self.n as u32).div_ceil(64), 1, 1),
        }
    }
}

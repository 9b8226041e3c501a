//! The general convolution: groups (depthwise included), dilation, per-axis strides,
//! asymmetric padding, rectangular kernels, and ConvTranspose; one output per invocation.
//! CPU twin: `reference::graph_ops::conv_general`.

use super::{Dispatch, PipelineSpec, Res, ShaderDesc, StepGeom, WgslStruct, flat_workgroups, storage_init};
use crate::gpu::GpuContext;
use crate::graph::ConvG;
use std::borrow::Cow;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "conv_general.wgsl",
    source: include_str!("../../shaders/conv_general.wgsl"),
    // params, input, weight, bias, output
    bindings: super::PARAMS_IN_TWO_OUT,
    params: Some(Params::layout),
};

super::wgsl_struct! {
    /// Mirrors `Params` in `conv_general.wgsl`.
    pub struct Params as "Params" {
        pub cin: u32,
        pub cout: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub out_h: u32,
        pub out_w: u32,
        pub kh: u32,
        pub kw: u32,
        pub stride_h: u32,
        pub stride_w: u32,
        pub dil_h: u32,
        pub dil_w: u32,
        pub pad_top: u32,
        pub pad_left: u32,
        pub groups: u32,
        pub transpose: u32,
    }
}

/// A general convolution's weights and attributes.
pub struct GeneralConv {
    attrs: ConvG,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
}

pub fn pipeline() -> PipelineSpec {
    PipelineSpec { key: "conv general".into(), source: Cow::Borrowed(SHADER.source), shader: &SHADER }
}

impl GeneralConv {
    pub fn upload(ctx: &GpuContext, name: &str, c: &ConvG) -> Self {
        let bias = if c.bias.is_empty() { vec![0.0; c.cout] } else { c.bias.clone() };
        GeneralConv {
            attrs: ConvG { weight: Vec::new(), bias: Vec::new(), ..c.clone() },
            weight: storage_init(ctx, &format!("{name} weight"), &c.weight),
            bias: storage_init(ctx, &format!("{name} bias"), &bias),
        }
    }

    pub fn dispatch(&self, g: &StepGeom, max_wg: u32) -> Dispatch<'_> {
        let c = &self.attrs;
        let u = |v: usize| v as u32;
        let p = Params {
            cin: u(c.cin),
            cout: u(c.cout),
            in_h: u(g.input.h),
            in_w: u(g.input.w),
            out_h: u(g.output.h),
            out_w: u(g.output.w),
            kh: u(c.kh),
            kw: u(c.kw),
            stride_h: u(c.stride[0]),
            stride_w: u(c.stride[1]),
            dil_h: u(c.dilation[0]),
            dil_w: u(c.dilation[1]),
            pad_top: u(c.pads[0]),
            pad_left: u(c.pads[1]),
            groups: u(c.groups),
            transpose: u32::from(c.transpose),
        };
        Dispatch {
            params: bytemuck::bytes_of(&p).to_vec(),
            bindings: vec![Res::Params, Res::Input(0), Res::Buffer(&self.weight), Res::Buffer(&self.bias), Res::Output],
            workgroups: flat_workgroups(g.output.w * g.output.h * g.output.c, max_wg),
        }
    }
}

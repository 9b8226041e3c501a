//! The naive convolution: one output value per invocation, shapes in a uniform. The
//! baseline the tuned kernel is benchmarked against. CPU twin: `reference::conv2d`.

use super::{Dispatch, PipelineSpec, Res, ShaderDesc, StepGeom, WgslStruct, per_value_workgroups, storage_init};
use crate::gpu::GpuContext;
use crate::graph::Conv2d;
use std::borrow::Cow;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "conv2d_naive.wgsl",
    source: include_str!("../../shaders/conv2d_naive.wgsl"),
    // params, input, weight, bias, output
    bindings: super::PARAMS_IN_TWO_OUT,
    params: Some(Params::layout),
};

super::wgsl_struct! {
    /// Mirrors `Params` in `conv2d_naive.wgsl`.
    pub struct Params as "Params" {
        pub cin: u32,
        pub cout: u32,
        pub k: u32,
        pub stride: u32,
        pub pad: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub out_h: u32,
        pub out_w: u32,
        pub out_row0: u32,
        pub out_rows: u32,
        pub in_row0: u32,
        pub in_rows: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

/// A conv layer's weights in PyTorch order.
pub struct NaiveConv {
    pub spec: ConvShape,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
}

/// The hyper-parameters of a convolution (no weights).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvShape {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvShape {
    pub fn of(c: &Conv2d) -> Self {
        ConvShape { cin: c.cin, cout: c.cout, k: c.k, stride: c.stride, pad: c.pad }
    }
}

/// The one naive pipeline (shapes are uniforms).
pub fn pipeline() -> PipelineSpec {
    PipelineSpec { key: "conv2d naive".into(), source: Cow::Borrowed(SHADER.source), shader: &SHADER }
}

impl NaiveConv {
    pub fn upload(ctx: &GpuContext, name: &str, c: &Conv2d) -> Self {
        NaiveConv {
            spec: ConvShape::of(c),
            weight: storage_init(ctx, &format!("{name} weight"), &c.weight),
            bias: storage_init(ctx, &format!("{name} bias"), &c.bias),
        }
    }

    pub fn dispatch(&self, g: &StepGeom) -> Dispatch<'_> {
        let c = &self.spec;
        let u = |v: usize| v as u32;
        let p = Params {
            cin: u(c.cin),
            cout: u(c.cout),
            k: u(c.k),
            stride: u(c.stride),
            pad: u(c.pad),
            in_h: u(g.input.h),
            in_w: u(g.input.w),
            out_h: u(g.output.h),
            out_w: u(g.output.w),
            out_row0: u(g.out_row0),
            out_rows: u(g.out_rows),
            in_row0: u(g.in_row0),
            in_rows: u(g.in_rows),
            ..Default::default()
        };
        Dispatch {
            params: bytemuck::bytes_of(&p).to_vec(),
            bindings: vec![Res::Params, Res::Input(0), Res::Buffer(&self.weight), Res::Buffer(&self.bias), Res::Output],
            workgroups: per_value_workgroups(g.output.w, g.out_rows, g.output.c),
        }
    }
}

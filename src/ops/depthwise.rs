//! Depthwise convolution (groups = channels) with a kernel of its own: the layer's shape
//! baked into the shader, neighbouring invocations on neighbouring x, the channel per
//! workgroup so weight loads are uniform. CPU twin: `reference::graph_ops::conv_general`.

use super::{Dispatch, PipelineSpec, Res, ShaderDesc, StepGeom, WgslStruct, per_value_workgroups, storage_init};
use crate::gpu::GpuContext;
use crate::graph::ConvG;
use std::borrow::Cow;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "depthwise.wgsl",
    source: include_str!("../../shaders/depthwise.wgsl"),
    // params, input, weight, bias, output
    bindings: super::PARAMS_IN_TWO_OUT,
    params: Some(Params::layout),
};

super::wgsl_struct! {
    /// Mirrors `Params` in `depthwise.wgsl`.
    pub struct Params as "Params" {
        pub channels: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

/// Whether `c` is a depthwise convolution this kernel runs.
pub fn fits(c: &ConvG) -> bool {
    !c.transpose && c.groups == c.cin && c.cout == c.cin && c.groups > 1
}

/// A depthwise convolution's weights and attributes.
pub struct Depthwise {
    attrs: ConvG,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
}

impl Depthwise {
    pub fn upload(ctx: &GpuContext, name: &str, c: &ConvG) -> Self {
        let bias = if c.bias.is_empty() { vec![0.0; c.cout] } else { c.bias.clone() };
        Depthwise {
            attrs: ConvG { weight: Vec::new(), bias: Vec::new(), ..c.clone() },
            weight: storage_init(ctx, &format!("{name} weight"), &c.weight),
            bias: storage_init(ctx, &format!("{name} bias"), &bias),
        }
    }

    /// The shader specialised to this layer at geometry `g`.
    pub fn pipeline(&self, g: &StepGeom) -> PipelineSpec {
        let c = &self.attrs;
        let u = |v: usize| v as u32;
        let values = [
            ("C", u(c.cin)),
            ("KH", u(c.kh)),
            ("KW", u(c.kw)),
            ("STRIDE_H", u(c.stride[0])),
            ("STRIDE_W", u(c.stride[1])),
            ("DIL_H", u(c.dilation[0])),
            ("DIL_W", u(c.dilation[1])),
            ("PAD_TOP", u(c.pads[0])),
            ("PAD_LEFT", u(c.pads[1])),
            ("IN_H", u(g.input.h)),
            ("IN_W", u(g.input.w)),
            ("OUT_H", u(g.output.h)),
            ("OUT_W", u(g.output.w)),
        ];
        let key = format!(
            "depthwise {}x{}x{} k{}x{} s{:?} d{:?} p{:?} {}x{}",
            c.cin, g.input.h, g.input.w, c.kh, c.kw, c.stride, c.dilation, c.pads, g.output.h, g.output.w
        );
        PipelineSpec { key, source: Cow::Owned(super::conv_tuned::specialise(SHADER.source, &values)), shader: &SHADER }
    }

    pub fn dispatch(&self, g: &StepGeom) -> Dispatch<'_> {
        let p = Params { channels: self.attrs.cin as u32, ..Default::default() };
        Dispatch {
            params: bytemuck::bytes_of(&p).to_vec(),
            bindings: vec![Res::Params, Res::Input(0), Res::Buffer(&self.weight), Res::Buffer(&self.bias), Res::Output],
            workgroups: per_value_workgroups(g.output.w, g.output.h, g.output.c),
        }
    }
}

//! Max pooling without padding, PyTorch semantics including `ceil_mode`, one output per
//! invocation. CPU twin: `reference::maxpool`.

use super::{Dispatch, PipelineSpec, Res, ShaderDesc, StepGeom, WgslStruct, flat_workgroups};
use std::borrow::Cow;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "maxpool.wgsl",
    source: include_str!("../../shaders/maxpool.wgsl"),
    // params, input, output
    bindings: super::PARAMS_IN_OUT,
    params: Some(Params::layout),
};

super::wgsl_struct! {
    /// Mirrors `Params` in `maxpool.wgsl`.
    pub struct Params as "Params" {
        pub channels: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub out_w: u32,
        pub k: u32,
        pub stride: u32,
        pub out_row0: u32,
        pub out_rows: u32,
        pub in_row0: u32,
        pub in_rows: u32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

/// A max-pooling node (no parameters to upload).
pub struct MaxPool {
    pub k: usize,
    pub stride: usize,
}

pub fn pipeline() -> PipelineSpec {
    PipelineSpec { key: "maxpool".into(), source: Cow::Borrowed(SHADER.source), shader: &SHADER }
}

impl MaxPool {
    pub fn dispatch(&self, g: &StepGeom, max_wg: u32) -> Dispatch<'_> {
        let u = |v: usize| v as u32;
        let p = Params {
            channels: u(g.output.c),
            in_h: u(g.input.h),
            in_w: u(g.input.w),
            out_w: u(g.output.w),
            k: u(self.k),
            stride: u(self.stride),
            out_row0: u(g.out_row0),
            out_rows: u(g.out_rows),
            in_row0: u(g.in_row0),
            in_rows: u(g.in_rows),
            ..Default::default()
        };
        Dispatch {
            params: bytemuck::bytes_of(&p).to_vec(),
            bindings: vec![Res::Params, Res::Input(0), Res::Output],
            workgroups: flat_workgroups(g.output.w * g.out_rows * g.output.c, max_wg),
        }
    }
}

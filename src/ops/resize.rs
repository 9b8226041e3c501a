//! ONNX Resize of H and W: nearest or bilinear, every coordinate transformation and
//! nearest rounding mode. CPU twin: `reference::graph_ops::resize`.

use super::{Dispatch, PipelineSpec, Res, ShaderDesc, StepGeom, WgslStruct, flat_workgroups};
use crate::graph::{CoordMode, NearestMode, Resize};
use std::borrow::Cow;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "resize.wgsl",
    source: include_str!("../../shaders/resize.wgsl"),
    // params, input, output
    bindings: super::PARAMS_IN_OUT,
    params: Some(Params::layout),
};

super::wgsl_struct! {
    /// Mirrors `Params` in `resize.wgsl`.
    pub struct Params as "Params" {
        pub channels: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub out_h: u32,
        pub out_w: u32,
        pub linear: u32,
        pub coord: u32,
        pub nearest: u32,
    }
}

pub fn pipeline() -> PipelineSpec {
    PipelineSpec { key: "resize".into(), source: Cow::Borrowed(SHADER.source), shader: &SHADER }
}

/// Params and workgroups of resizing `g.input` to `g.output` as `r` says.
pub fn dispatch<'a>(r: &Resize, g: &StepGeom, max_wg: u32) -> Dispatch<'a> {
    let u = |v: usize| v as u32;
    let p = Params {
        channels: u(g.input.c),
        in_h: u(g.input.h),
        in_w: u(g.input.w),
        out_h: u(g.output.h),
        out_w: u(g.output.w),
        linear: u32::from(r.linear),
        coord: match r.coord {
            CoordMode::HalfPixel => 0,
            CoordMode::PytorchHalfPixel => 1,
            CoordMode::Asymmetric => 2,
            CoordMode::AlignCorners => 3,
        },
        nearest: match r.nearest {
            NearestMode::RoundPreferFloor => 0,
            NearestMode::RoundPreferCeil => 1,
            NearestMode::Floor => 2,
            NearestMode::Ceil => 3,
        },
    };
    Dispatch {
        params: bytemuck::bytes_of(&p).to_vec(),
        bindings: vec![Res::Params, Res::Input(0), Res::Output],
        workgroups: flat_workgroups(g.output.w * g.output.h * g.output.c, max_wg),
    }
}

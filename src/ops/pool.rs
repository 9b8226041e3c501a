//! ONNX pooling: MaxPool and AveragePool with every attribute (`pool.wgsl`), and global
//! pooling (`global_pool.wgsl`: a workgroup per channel). CPU twins:
//! `reference::graph_ops::{pool, global_pool}`.

use super::{Dispatch, PipelineSpec, Res, ShaderDesc, StepGeom, WgslStruct, flat_workgroups, split_workgroups};
use crate::graph::Pool;
use std::borrow::Cow;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "pool.wgsl",
    source: include_str!("../../shaders/pool.wgsl"),
    // params, input, output
    bindings: super::PARAMS_IN_OUT,
    params: Some(Params::layout),
};

super::wgsl_struct! {
    /// Mirrors `Params` in `pool.wgsl`.
    pub struct Params as "Params" {
        pub channels: u32,
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
        pub pad_bottom: u32,
        pub pad_right: u32,
        pub is_max: u32,
        pub include_pad: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

pub const GLOBAL: ShaderDesc = ShaderDesc {
    file: "global_pool.wgsl",
    source: include_str!("../../shaders/global_pool.wgsl"),
    // params, input, output
    bindings: super::PARAMS_IN_OUT,
    params: Some(GlobalParams::layout),
};

super::wgsl_struct! {
    /// Mirrors `GlobalParams` in `global_pool.wgsl`.
    pub struct GlobalParams as "GlobalParams" {
        pub channels: u32,
        pub plane: u32,
        pub is_max: u32,
        pub _pad0: u32,
    }
}

/// A pooling node: its attributes, or None for global pooling.
pub struct GpuPool {
    pub pool: Option<Pool>,
    pub max: bool,
}

/// Planes of at least this many values are pooled globally by a workgroup each
/// (`global_pool.wgsl`), smaller ones by one invocation each, as a pool whose window is the
/// plane (`pool.wgsl`). One invocation per channel left a large GPU idle on large planes (an
/// SE block's squeeze of 32 channels of 112²: 1.5 ms on an H200), while on lavapipe, whose
/// workgroup barriers are thread switches, the workgroup form of mobilenet_v3_small's
/// squeezes of 7² to 28² took 0.7–1.7 ms each against a few hundredths.
pub const GLOBAL_WORKGROUP_FROM: usize = 1024;

impl GpuPool {
    /// Whether a step on an input of `plane` values per channel runs the workgroup form.
    fn by_workgroup(&self, plane: usize) -> bool {
        self.pool.is_none() && plane >= GLOBAL_WORKGROUP_FROM
    }

    pub fn pipeline(&self, g: &StepGeom) -> PipelineSpec {
        match self.by_workgroup(g.input.plane()) {
            false => PipelineSpec { key: "pool".into(), source: Cow::Borrowed(SHADER.source), shader: &SHADER },
            true => PipelineSpec { key: "global pool".into(), source: Cow::Borrowed(GLOBAL.source), shader: &GLOBAL },
        }
    }

    pub fn dispatch(&self, g: &StepGeom, max_wg: u32) -> Dispatch<'_> {
        let u = |v: usize| v as u32;
        let (i, o) = (g.input, g.output);
        if self.by_workgroup(i.plane()) {
            let p = GlobalParams { channels: u(i.c), plane: u(i.h * i.w), is_max: u32::from(self.max), _pad0: 0 };
            let (x, y) = split_workgroups(u(i.c), max_wg);
            return Dispatch {
                params: bytemuck::bytes_of(&p).to_vec(),
                bindings: vec![Res::Params, Res::Input(0), Res::Output],
                workgroups: (x, y, 1),
            };
        }
        let global = Pool {
            max: self.max,
            kernel: [i.h, i.w],
            stride: [1, 1],
            dilation: [1, 1],
            pads: [0; 4],
            ceil: false,
            count_include_pad: false,
        };
        let q = self.pool.as_ref().unwrap_or(&global);
        let p = Params {
            channels: u(i.c),
            in_h: u(i.h),
            in_w: u(i.w),
            out_h: u(o.h),
            out_w: u(o.w),
            kh: u(q.kernel[0]),
            kw: u(q.kernel[1]),
            stride_h: u(q.stride[0]),
            stride_w: u(q.stride[1]),
            dil_h: u(q.dilation[0]),
            dil_w: u(q.dilation[1]),
            pad_top: u(q.pads[0]),
            pad_left: u(q.pads[1]),
            pad_bottom: u(q.pads[2]),
            pad_right: u(q.pads[3]),
            is_max: u32::from(q.max),
            include_pad: u32::from(q.count_include_pad),
            ..Default::default()
        };
        Dispatch {
            params: bytemuck::bytes_of(&p).to_vec(),
            bindings: vec![Res::Params, Res::Input(0), Res::Output],
            workgroups: flat_workgroups(o.w * o.h * o.c, max_wg),
        }
    }
}

//! Moving values without arithmetic: contiguous copies with offsets (Reshape, Flatten,
//! Identity, each input of a Concat, a channel Slice), constant padding and the channel
//! shuffle. CPU twins in `reference::graph_ops`.

use super::{Dispatch, PipelineSpec, Res, ShaderDesc, WgslStruct, flat_workgroups};
use crate::tensor::Shape;
use std::borrow::Cow;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "layout.wgsl",
    source: include_str!("../../shaders/layout.wgsl"),
    // params, input, output
    bindings: super::PARAMS_IN_OUT,
    params: Some(Params::layout),
};

super::wgsl_struct! {
    /// Mirrors `Params` in `layout.wgsl`.
    pub struct Params as "Params" {
        pub mode: u32,
        pub count: u32,
        pub in_off: u32,
        pub out_off: u32,
        pub channels: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub out_h: u32,
        pub out_w: u32,
        pub pad_top: u32,
        pub pad_left: u32,
        pub groups: u32,
        pub value: f32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

/// What a layout node does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layout {
    /// Input `k` (all of it, or channels `start..end` of input 0) to the output.
    Concat,
    Slice {
        start: usize,
        end: usize,
    },
    Copy,
    Pad {
        pads: [usize; 4],
        value: f32,
    },
    Shuffle {
        groups: usize,
    },
}

pub fn pipeline() -> PipelineSpec {
    PipelineSpec { key: "layout".into(), source: Cow::Borrowed(SHADER.source), shader: &SHADER }
}

fn dispatch<'a>(p: Params, input: usize, max_wg: u32) -> Dispatch<'a> {
    Dispatch {
        params: bytemuck::bytes_of(&p).to_vec(),
        bindings: vec![Res::Params, Res::Input(input), Res::Output],
        workgroups: flat_workgroups(p.count as usize, max_wg),
    }
}

/// The dispatches of a layout node with inputs `ins` and output `out` (one per input for
/// a Concat).
pub fn dispatches<'a>(l: Layout, ins: &[Shape], out: Shape, max_wg: u32) -> Vec<Dispatch<'a>> {
    let u = |v: usize| v as u32;
    let copy = |count: usize, in_off: usize, out_off: usize| Params {
        mode: 0,
        count: u(count),
        in_off: u(in_off),
        out_off: u(out_off),
        ..Default::default()
    };
    match l {
        Layout::Concat => {
            let mut off = 0;
            ins.iter()
                .enumerate()
                .map(|(k, s)| {
                    let d = dispatch(copy(s.len(), 0, off), k, max_wg);
                    off += s.len();
                    d
                })
                .collect()
        }
        Layout::Slice { start, .. } => vec![dispatch(copy(out.len(), start * ins[0].plane(), 0), 0, max_wg)],
        Layout::Copy => vec![dispatch(copy(out.len(), 0, 0), 0, max_wg)],
        Layout::Pad { pads, value } => {
            let i = ins[0];
            let p = Params {
                mode: 1,
                count: u(out.len()),
                channels: u(i.c),
                in_h: u(i.h),
                in_w: u(i.w),
                out_h: u(out.h),
                out_w: u(out.w),
                pad_top: u(pads[0]),
                pad_left: u(pads[1]),
                value,
                ..Default::default()
            };
            vec![dispatch(p, 0, max_wg)]
        }
        Layout::Shuffle { groups } => {
            let i = ins[0];
            let p = Params {
                mode: 2,
                count: u(out.len()),
                channels: u(i.c),
                in_h: u(i.h),
                in_w: u(i.w),
                groups: u(groups),
                ..Default::default()
            };
            vec![dispatch(p, 0, max_wg)]
        }
    }
}

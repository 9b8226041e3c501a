//! ONNX Resize of H and W: nearest or bilinear, every coordinate transformation and
//! nearest rounding mode. The input coordinate of each output row and column is computed on
//! the host, by the CPU twin's own function, and passed after the params: a GPU's f32
//! division may be off by an ulp, which moves nearest-neighbour ties (an NVIDIA H200 picked
//! the other neighbour). CPU twin: `reference::graph_ops::resize`.

use super::{Dispatch, PipelineSpec, Res, ShaderDesc, StepGeom, WgslStruct, flat_workgroups};
use crate::graph::{NearestMode, Resize};
use crate::reference::graph_ops::resize_coord;
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
        pub nearest: u32,
    }
}

pub fn pipeline() -> PipelineSpec {
    PipelineSpec { key: "resize".into(), source: Cow::Borrowed(SHADER.source), shader: &SHADER }
}

/// Params (followed by each output row's and column's input coordinate, f32) and
/// workgroups of resizing `g.input` to `g.output` as `r` says.
pub fn dispatch<'a>(r: &Resize, g: &StepGeom, max_wg: u32) -> Dispatch<'a> {
    let u = |v: usize| v as u32;
    let p = Params {
        channels: u(g.input.c),
        in_h: u(g.input.h),
        in_w: u(g.input.w),
        out_h: u(g.output.h),
        out_w: u(g.output.w),
        linear: u32::from(r.linear),
        nearest: match r.nearest {
            NearestMode::RoundPreferFloor => 0,
            NearestMode::RoundPreferCeil => 1,
            NearestMode::Floor => 2,
            NearestMode::Ceil => 3,
        },
    };
    let (i, o) = (g.input, g.output);
    let coords: Vec<f32> = (0..o.h)
        .map(|y| resize_coord(r.coord, y, i.h, o.h))
        .chain((0..o.w).map(|x| resize_coord(r.coord, x, i.w, o.w)))
        .collect();
    let mut params = bytemuck::bytes_of(&p).to_vec();
    params.extend_from_slice(bytemuck::cast_slice(&coords));
    Dispatch {
        params,
        bindings: vec![Res::Params, Res::Input(0), Res::Output],
        workgroups: flat_workgroups(g.output.w * g.output.h * g.output.c, max_wg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::CoordMode;
    use crate::tensor::Shape;

    #[test]
    fn the_params_carry_each_rows_and_columns_coordinate_as_the_cpu_computes_it() {
        let r = Resize {
            linear: false,
            coord: CoordMode::HalfPixel,
            nearest: NearestMode::RoundPreferCeil,
            out_h: 7,
            out_w: 5,
        };
        let (i, o) = (Shape::new(3, 9, 4), Shape::new(3, 7, 5));
        let g = StepGeom { input: i, output: o, in_row0: 0, in_rows: 9, out_row0: 0, out_rows: 7 };
        let d = dispatch(&r, &g, 65535);
        let head = std::mem::size_of::<Params>();
        assert_eq!(d.params.len() as u64, head as u64 + crate::ops::GpuNode::Resize(r.clone()).table_bytes(o));
        let coords: &[f32] = bytemuck::cast_slice(&d.params[head..]);
        let want: Vec<f32> = (0..7)
            .map(|y| resize_coord(r.coord, y, 9, 7))
            .chain((0..5).map(|x| resize_coord(r.coord, x, 4, 5)))
            .collect();
        assert_eq!(coords, &want[..]);
    }
}

//! The split form of the tuned conv (blocks `1xOCVkS`, `conv2d_splitk.wgsl`): each output's
//! sum over input channels shared by S invocations of a workgroup and added up in workgroup
//! memory, for GPUs on layers whose outputs are too few to fill them. Same bindings, packed
//! weights and epilogues as the direct form. CPU twin: `reference::conv2d`.

use super::{
    BINDINGS, Band, Block, Epilogue, layer_key, replace_store, shape_values, specialise, store_fn, with_epilogue,
    with_erf,
};
use crate::ops::conv_naive::ConvShape;
use crate::ops::{PipelineSpec, ShaderDesc, StepGeom, WgslStruct, split_workgroups};
use std::borrow::Cow;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "conv2d_splitk.wgsl",
    source: include_str!("../../../shaders/conv2d_splitk.wgsl"),
    // As the direct form's: the executor binds both alike.
    bindings: BINDINGS,
    params: Some(Band::layout),
};

/// Invocations of a workgroup of the split form (output pixels × splits).
pub const WORKGROUP: u32 = 64;

/// The splits a block may ask for: powers of two that divide a workgroup, 2 to 64.
pub fn valid_split(s: u32) -> bool {
    s.is_power_of_two() && (2..=WORKGROUP).contains(&s)
}

/// The cache key of [`pipeline`]'s shader.
pub fn key(c: &ConvShape, b: &Block, g: &StepGeom, e: &Epilogue) -> String {
    with_epilogue(format!("{} block {}", layer_key("split", c, g), b.name()), e)
}

/// The split shader specialised to a conv of shape `c`, block `b` and epilogue `e` at
/// geometry `g`.
pub fn pipeline(c: &ConvShape, b: &Block, g: &StepGeom, e: &Epilogue) -> PipelineSpec {
    let mut values = shape_values(c, g);
    values.extend([("OCV", b.ocv), ("S", b.split)]);
    let src = specialise(SHADER.source, &values);
    let src = replace_store(&src, &with_erf(e, store_fn(e)));
    PipelineSpec { key: key(c, b, g, e), source: Cow::Owned(src), shader: &SHADER }
}

/// Workgroups of a step at geometry `g` for `blocks` output-channel blocks: tiles of
/// `64 / S` output pixels along x and y (split at `max_workgroups`), the blocks along z.
pub fn workgroups(b: &Block, g: &StepGeom, blocks: usize, max_workgroups: u32) -> (u32, u32, u32) {
    let tile = (WORKGROUP / b.split.max(1)) as usize;
    let (x, y) = split_workgroups((g.out_rows * g.output.w).div_ceil(tile) as u32, max_workgroups);
    (x, y, blocks as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Shape;

    #[test]
    fn tiles_cover_the_band_and_blocks_go_along_z() {
        let b = Block::parse("1x2k8").unwrap();
        let g = StepGeom {
            input: Shape::new(256, 16, 14),
            output: Shape::new(256, 14, 14),
            in_row0: 0,
            in_rows: 16,
            out_row0: 0,
            out_rows: 14,
        };
        // 196 pixels in tiles of 8: 25 workgroups; 256 channels in blocks of 8: 32.
        assert_eq!(workgroups(&b, &g, 32, 65535), (25, 1, 32));
        assert_eq!(workgroups(&b, &g, 32, 10), (10, 3, 32));
        let e = Epilogue { write_raw: false, bn: true, write_bn: false, act: 9, p: [0.0; 2], gate: false };
        let c = ConvShape { cin: 256, cout: 256, k: 3, stride: 1, pad: 1 };
        let spec = pipeline(&c, &b, &g, &e);
        assert_eq!(spec.key, key(&c, &b, &g, &e));
        assert!(spec.source.contains("const S: u32 = 8u;") && spec.source.contains("fn erf_as"));
        assert!(!spec.source.contains("output[") && spec.source.contains("out_act["), "the epilogue's writes");
        assert!((1..=64).filter(|&s| valid_split(s)).eq([2, 4, 8, 16, 32, 64]));
    }
}

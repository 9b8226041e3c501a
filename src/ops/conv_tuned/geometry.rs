//! The geometry a conv step runs at: a 1×1 stride-1 unpadded conv on its band's rows
//! flattened into one row. Pure data.

use super::super::StepGeom;
use super::super::conv_naive::ConvShape;
use crate::tensor::Shape;

/// The geometry a conv of shape `c` runs at for step `g`. A 1×1 stride-1 unpadded conv
/// is a matrix product over the plane, so it runs on the band's rows flattened into one row
/// (the same values in the same order, when its input band holds exactly its output rows):
/// rows of 14 or 28 values become one row of whole vec4s (vec4 loads and stores, 64-bit on
/// CPU adapters) and blocks no longer straddle row ends (8 columns over rows of 7 or 14).
pub fn run_geometry(c: &ConvShape, g: &StepGeom) -> StepGeom {
    let same_rows = g.in_row0 == g.out_row0 && g.in_rows == g.out_rows && g.input.w == g.output.w;
    if c.k != 1 || c.stride != 1 || c.pad != 0 || !same_rows || g.out_rows <= 1 {
        return *g;
    }
    let w = g.out_rows * g.output.w;
    StepGeom {
        input: Shape { c: g.input.c, h: 1, w },
        output: Shape { c: g.output.c, h: 1, w },
        in_row0: 0,
        in_rows: 1,
        out_row0: 0,
        out_rows: 1,
    }
}

/// The geometry of a whole (unbanded) conv of shape `c` on an input of `h`×`w` (tests).
#[cfg(test)]
pub(crate) fn whole(c: &ConvShape, h: usize, w: usize) -> StepGeom {
    let o = |n: usize| (n + 2 * c.pad - c.k) / c.stride + 1;
    StepGeom {
        input: Shape::new(c.cin, h, w),
        output: Shape::new(c.cout, o(h), o(w)),
        in_row0: 0,
        in_rows: h,
        out_row0: 0,
        out_rows: o(h),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Block, Epilogue, pipeline_key};
    use super::*;

    #[test]
    fn only_1x1_stride_1_unpadded_convs_on_their_own_rows_run_flattened() {
        let pw = ConvShape { cin: 16, cout: 24, k: 1, stride: 1, pad: 0 };
        let g = whole(&pw, 14, 14);
        let f = run_geometry(&pw, &g);
        assert_eq!((f.input, f.output), (Shape::new(16, 1, 196), Shape::new(24, 1, 196)));
        assert_eq!((f.in_row0, f.in_rows, f.out_row0, f.out_rows), (0, 1, 0, 1));
        // A band: its own rows, flattened.
        let band = StepGeom { in_row0: 4, in_rows: 5, out_row0: 4, out_rows: 5, ..g };
        assert_eq!(run_geometry(&pw, &band).output, Shape::new(24, 1, 70));
        // An input band holding other rows than the output band (a halo for another
        // consumer), a strided, padded or larger kernel: rows kept.
        for (c, g) in [
            (pw, StepGeom { in_row0: 3, in_rows: 7, out_row0: 4, out_rows: 5, ..g }),
            (ConvShape { stride: 2, ..pw }, whole(&ConvShape { stride: 2, ..pw }, 14, 14)),
            (ConvShape { pad: 1, ..pw }, whole(&ConvShape { pad: 1, ..pw }, 14, 14)),
            (ConvShape { k: 3, ..pw }, whole(&ConvShape { k: 3, ..pw }, 14, 14)),
        ] {
            assert_eq!(run_geometry(&c, &g), g, "{c:?}");
        }
        // Keys and dispatches agree on the flattened form.
        let b = Block::parse("8x8s").expect("block");
        assert!(pipeline_key(&pw, &b, &g, &Epilogue::default()).contains(" 1x196 "));
    }
}

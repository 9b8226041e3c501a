//! The tuned 1×1 conv's image form (blocks `PXx8si`), for CPU adapters: the input band and
//! the packed weights read as images (`ops::image`), the outputs written two vec4s at a
//! time. Same products in the same order as the subgroup form, so bit-identical to it.
//!
//! Why: on lavapipe (Mesa 22.3) a storage-buffer read is a loop over the lanes with a
//! branch per lane; an image read is straight-line code. 1×1 64→256 at 56² (8x8s against
//! 8x8si, one shader each, interleaved, the band's copy into an image included): 2.04–2.19
//! → 1.77–1.82 ms. Pairs of vec4 writes become one write of four u64s with 64-bit access.

use super::{Block, ConvShape, SHADER, StepGeom, run_geometry};
use crate::ops::{Bind, ShaderDesc, image};

/// The image form's binding table: [`super::BINDINGS`] with the input (0) and the packed
/// weights (1) as images.
pub const IMAGE_BINDINGS: &[Bind] = &[
    Bind::ReadImage,
    Bind::ReadImage,
    Bind::Storage { read_only: true },
    Bind::Storage { read_only: false },
    Bind::Uniform,
    Bind::Storage { read_only: true },
    Bind::Storage { read_only: true },
    Bind::Storage { read_only: false },
    Bind::Storage { read_only: false },
];

/// The tuned shader as the image form binds it (the same file, its text written by
/// [`super::tuned_source`] with `Form::image`).
pub const IMAGE_SHADER: ShaderDesc = ShaderDesc { bindings: IMAGE_BINDINGS, ..SHADER };

/// Whether block `b` has an image form for a conv of kernel `k` and `stride`: a 1×1
/// stride-1 subgroup block of 8 vec4 groups (its weights one vec4 a lane), one row per
/// invocation, adjacent outputs, PX a multiple of 4.
pub fn image_block(b: &Block, k: usize, stride: usize) -> bool {
    k == 1
        && stride == 1
        && b.sg
        && b.unroll
        && b.ocv == 8
        && b.lanes <= 1
        && b.py <= 1
        && b.px.is_multiple_of(4)
        && b.split <= 1
        && !b.wino
}

/// Texels of a conv's packed weights in the image form: per block of 32 output channels,
/// 8 a input channel.
pub fn weight_texels(c: &ConvShape) -> u64 {
    (c.cout.div_ceil(32) * c.cin * 8) as u64
}

/// Texels of the input band a step at geometry `g` reads (its run geometry, [`run_geometry`]).
pub fn input_texels(c: &ConvShape, g: &StepGeom) -> u64 {
    let g = run_geometry(c, g);
    (c.cin * g.in_rows * g.input.w / 4) as u64
}

/// Whether a conv of shape `c` with block `b` runs its image form at geometry `g`: the
/// block has one ([`image_block`]), the conv is unpadded, the rows hold whole vec4s and
/// both images fit ([`image::extent`]). Else it runs the subgroup form.
pub fn image_form(c: &ConvShape, b: &Block, g: &StepGeom) -> bool {
    let b = b.for_layer(c.k, c.stride);
    let rg = run_geometry(c, g);
    b.image
        && image_block(&b, c.k, c.stride)
        && c.pad == 0
        && rg.input.w.is_multiple_of(4)
        && image::extent(input_texels(c, g)).is_some()
        && image::extent(weight_texels(c)).is_some()
}

/// Whether a block specialised to `values` writes its outputs in pairs of vec4s: PX and the
/// output width multiples of 8, so each pair starts at an even vec4 of its row.
pub fn store_pairs(values: &[(&str, u32)]) -> bool {
    let get = |n: &str| values.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    get("PX").is_some_and(|p| p % 8 == 0) && get("OUT_W").is_some_and(|w| w % 8 == 0)
}

/// `src` with the input and weight declarations (`input`, `weight`: the subgroup form's
/// vec4 arrays) replaced by images and the functions that read them, `ldi` and `ldw`.
pub fn image_declarations(src: &str, input: &str, weight: &str) -> String {
    let input_image = format!("{}\n{}", image::declaration(0, "input_image"), image::load_fn("ldi", "input_image"));
    let weight_image = format!("{}\n{}", image::declaration(1, "weight_image"), image::load_fn("ldw", "weight_image"));
    assert!(src.contains(input) && src.contains(weight), "the image form replaces {input} and {weight}");
    src.replacen(input, &input_image, 1).replacen(weight, &weight_image, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Shape;

    #[test]
    fn only_unpadded_1x1_blocks_of_eight_groups_have_an_image_form() {
        let b = |s: &str| Block::parse(s).expect("block");
        assert!(image_block(&b("8x8si"), 1, 1) && image_block(&b("4x8si"), 1, 1));
        assert!(!image_block(&b("8x8si"), 3, 1) && !image_block(&b("8x8si"), 1, 2));
        assert!(!image_block(&b("8x6si"), 1, 1) && !image_block(&b("6x8si"), 1, 1));
        assert_eq!(b("8x6si").for_layer(1, 1).name(), "8x6s");
        assert_eq!(b("8x8si").for_layer(1, 1).name(), "8x8si");
        let c = ConvShape { cin: 64, cout: 256, k: 1, stride: 1, pad: 0 };
        let whole = |h: usize, w: usize| StepGeom {
            input: Shape { c: 64, h, w },
            output: Shape { c: 256, h, w },
            in_row0: 0,
            in_rows: h,
            out_row0: 0,
            out_rows: h,
        };
        assert!(image_form(&c, &b("8x8si"), &whole(56, 56)));
        assert_eq!(input_texels(&c, &whole(56, 56)), 64 * 56 * 56 / 4);
        assert_eq!(weight_texels(&c), 8 * 64 * 8);
        assert!(!image_form(&c, &b("8x8s"), &whole(56, 56)));
        // Rows of whole vec4s only: a 7×7 plane is one row of 49 values.
        assert!(!image_form(&c, &b("8x8si"), &whole(7, 7)));
        assert!(!image_form(&ConvShape { pad: 1, ..c }, &b("8x8si"), &whole(56, 56)));
        let pairs = |px: u32, w: u32| store_pairs(&[("PX", px), ("OUT_W", w)]);
        assert!(pairs(8, 3136) && !pairs(4, 3136) && !pairs(8, 196));
    }
}

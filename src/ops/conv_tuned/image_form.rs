//! The tuned conv's image form (blocks with a trailing `i`: `8x8si`, `12x4si`, `8x4wi`), for
//! CPU adapters: the input band read as an image (`ops::image`), and the packed weights too
//! where a lane loads them a vec4 at a time (1×1 blocks of 8 vec4 groups, Winograd blocks);
//! outputs written two vec4s at a time where PX and the row are multiples of 8. The same
//! products in the same order as the form without images, so bit-identical to it.
//!
//! Why: on lavapipe (Mesa 22.3) a storage-buffer read is a loop over the lanes with a
//! branch per lane; an image read is straight-line code. One shader each, interleaved, the
//! band's copy into an image included: 1×1 64→256 at 56² 8x8s 2.04–2.19 → 8x8si 1.77–1.82
//! ms; Winograd 3×3 64→64 at 56² 8x4w 3.11–3.14 → 8x4wi 2.45–2.68. Pairs of vec4 writes
//! become one write of four u64s with 64-bit access.

use super::{Block, ConvShape, MAX_UNROLLED_K, SHADER, StepGeom, run_geometry, wide_weights};
use crate::ops::{Bind, ShaderDesc, image};

/// [`super::BINDINGS`] with the input (0) and the packed weights (1) bound as given.
const fn bindings_with(input: Bind, weight: Bind) -> [Bind; 9] {
    let mut b = [Bind::Uniform; 9];
    let mut i = 0;
    while i < 9 {
        b[i] = super::BINDINGS[i];
        i += 1;
    }
    b[0] = input;
    b[1] = weight;
    b
}

/// The image form's binding table where the weights are an image too.
pub const IMAGE_BINDINGS: &[Bind] = &bindings_with(Bind::ReadImage, Bind::ReadImage);

/// The image form's binding table where only the input is an image (weights read a float
/// per lane: blocks of other than 8 vec4 groups with kernels wider than 1).
pub const INPUT_IMAGE_BINDINGS: &[Bind] = &bindings_with(Bind::ReadImage, Bind::Storage { read_only: true });

/// The tuned shader as the image form binds it, input and weights as images (the same
/// file, its text written by [`super::tuned_source`] with `Form::image`).
pub const IMAGE_SHADER: ShaderDesc = ShaderDesc { bindings: IMAGE_BINDINGS, ..SHADER };

/// The same with only the input as an image.
pub const INPUT_IMAGE_SHADER: ShaderDesc = ShaderDesc { bindings: INPUT_IMAGE_BINDINGS, ..SHADER };

/// Whether block `b` has an image form for a conv of kernel `k` and `stride`: an unrolled
/// subgroup or Winograd block on adjacent outputs, PX a multiple of 4, stride 1 (its input
/// rows read as aligned vec4s).
pub fn image_block(b: &Block, k: usize, stride: usize) -> bool {
    stride == 1
        && k <= MAX_UNROLLED_K
        && (b.sg || b.wino)
        && b.unroll
        && b.lanes <= 1
        && b.px.is_multiple_of(4)
        && b.split <= 1
}

/// Whether block `b` of a conv with kernel `k` reads its weights a vec4 per lane (as an
/// image in the image form): Winograd blocks, and 1×1 subgroup blocks of 8 vec4 groups.
pub fn image_weights(b: &Block, k: usize) -> bool {
    b.wino || (b.sg && b.py <= 1 && wide_weights(k as u32, b.ocv))
}

/// Texels of the input band a step at geometry `g` reads (its run geometry, [`run_geometry`]).
pub fn input_texels(c: &ConvShape, g: &StepGeom) -> u64 {
    let g = run_geometry(c, g);
    (c.cin * g.in_rows * g.input.w / 4) as u64
}

/// Whether a conv of shape `c` with block `b` runs its image form at geometry `g`: the
/// block has one ([`image_block`]), its input rows hold whole vec4s and the band fits an
/// image ([`image::extent`]), and so do the packed weights. Else it runs without images.
pub fn image_form(c: &ConvShape, b: &Block, g: &StepGeom) -> bool {
    let b = b.for_layer(c.k, c.stride);
    // Packed weights: at most 16 floats (Winograd's) per input channel and output channel,
    // those padded by less than 32.
    let weights = (c.cin as u64) * (c.cout as u64 + 32) * 16 / 4;
    b.image
        && image_block(&b, c.k, c.stride)
        && run_geometry(c, g).input.w.is_multiple_of(4)
        && image::extent(input_texels(c, g)).is_some()
        && image::extent(weights).is_some()
}

/// Whether a block specialised to `values` writes its outputs in pairs of vec4s: PX and the
/// output width multiples of 8, so each pair starts at an even vec4 of its row.
pub fn store_pairs(values: &[(&str, u32)]) -> bool {
    let get = |n: &str| values.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    get("PX").is_some_and(|p| p % 8 == 0) && get("OUT_W").is_some_and(|w| w % 8 == 0)
}

/// `src` (a block written with vec4 input rows, `input4`, and maybe vec4 weights,
/// `weight4`) reading them from images instead: the declarations replaced by images and the
/// functions that read them (`ldi`, `ldw`), every `input4[X]` by `ldi(X)` and every
/// `weight4[X]` by `ldw(X)` (vec4 `X` is texel `X` of the image).
pub fn image_source(src: &str, input_decl: &str, weight_decl: &str) -> String {
    let input_image = format!("{}\n{}", image::declaration(0, "input_image"), image::load_fn("ldi", "input_image"));
    assert!(src.contains(input_decl), "the image form replaces {input_decl}");
    let mut out = calls(&src.replacen(input_decl, &input_image, 1), "input4", "ldi");
    if out.contains(weight_decl) {
        let weight_image =
            format!("{}\n{}", image::declaration(1, "weight_image"), image::load_fn("ldw", "weight_image"));
        out = calls(&out.replacen(weight_decl, &weight_image, 1), "weight4", "ldw");
    }
    out
}

/// `src` with every index `name[X]` (`X` without brackets of its own) written `f(X)`.
fn calls(src: &str, name: &str, f: &str) -> String {
    let pat = format!("{name}[");
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(i) = rest.find(&pat) {
        let word = i == 0 || !rest[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        let after = &rest[i + pat.len()..];
        match after.find(']') {
            Some(j) if word && !after[..j].contains('[') => {
                out += &rest[..i];
                out += &format!("{f}({})", &after[..j]);
                rest = &after[j + 1..];
            }
            _ => {
                out += &rest[..i + pat.len()];
                rest = after;
            }
        }
    }
    out += rest;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Shape;

    #[test]
    fn subgroup_and_winograd_blocks_on_vec4_rows_have_an_image_form() {
        let b = |s: &str| Block::parse(s).expect("block");
        for (name, k) in [("8x8si", 1), ("4x8si", 1), ("12x4si", 3), ("16x4si", 5), ("8x4wi", 3)] {
            assert!(image_block(&b(name), k, 1), "{name} k{k}");
            assert!(!image_block(&b(name), k, 2), "{name} at stride 2");
        }
        assert!(!image_block(&b("6x8si"), 1, 1) && !image_block(&b("8x4l8s"), 1, 1));
        assert_eq!(b("6x8si").for_layer(1, 1).name(), "6x8s");
        assert_eq!(b("8x4wi").for_layer(1, 1).name(), "8x4si", "Winograd's direct form, still with images");
        assert!(image_weights(&b("8x8si"), 1) && image_weights(&b("8x4wi"), 3));
        assert!(!image_weights(&b("8x8si"), 3) && !image_weights(&b("12x4si"), 1));
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
        assert!(!image_form(&c, &b("8x8s"), &whole(56, 56)));
        // Rows of whole vec4s only: a 7×7 plane is one row of 49 values.
        assert!(!image_form(&c, &b("8x8si"), &whole(7, 7)));
        let c3 = ConvShape { k: 3, pad: 1, ..c };
        assert!(image_form(&c3, &b("8x4wi"), &whole(56, 56)) && !image_form(&c3, &b("8x4wi"), &whole(56, 54)));
        let pairs = |px: u32, w: u32| store_pairs(&[("PX", px), ("OUT_W", w)]);
        assert!(pairs(8, 3136) && !pairs(4, 3136) && !pairs(8, 196));
    }

    #[test]
    fn indexes_become_calls() {
        let src = "let a = input4[q0 + 1u] + input4[max(q0, 1u) - 1u]; let b = my_input4[2]; let c = weight4[w[0]];";
        assert_eq!(
            calls(src, "input4", "ldi"),
            "let a = ldi(q0 + 1u) + ldi(max(q0, 1u) - 1u); let b = my_input4[2]; let c = weight4[w[0]];"
        );
    }
}

//! The tuned convolution: register-blocked (PX x-outputs × 4·OCV output channels per
//! invocation), weights packed as vec4 over output channels, the layer's shape baked into
//! the shader's `const` block and the block written out unrolled. Pipelines are cached
//! per (shape, block) by the executor. CPU twin: `reference::conv2d`.

use super::conv_naive::ConvShape;
use super::{Bind, Dispatch, PipelineSpec, Res, ShaderDesc, StepGeom, WgslStruct, split_workgroups, storage_init};
use crate::gpu::GpuContext;
use crate::graph::Conv2d;
use std::borrow::Cow;

mod block;
mod codegen;
mod epilogue;
mod geometry;
mod grouped;
mod halo;
mod image_form;
mod pack;
pub mod splitk;
mod winograd;
pub use block::*;
pub use codegen::*;
pub use epilogue::*;
pub use geometry::*;
pub use grouped::*;
pub use halo::*;
pub use image_form::*;
pub use pack::*;
pub use winograd::*;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "conv2d_tuned.wgsl",
    source: include_str!("../../shaders/conv2d_tuned.wgsl"),
    bindings: BINDINGS,
    params: Some(Band::layout),
};

/// The binding table of the tuned conv's shaders (direct and split forms): input, packed
/// weight, packed bias, output, band rows; the fused epilogue's batch norm scale and shift,
/// and its two extra outputs.
pub const BINDINGS: &[Bind] = &[
    Bind::Storage { read_only: true },
    Bind::Storage { read_only: true },
    Bind::Storage { read_only: true },
    Bind::Storage { read_only: false },
    Bind::Uniform,
    Bind::Storage { read_only: true },
    Bind::Storage { read_only: true },
    Bind::Storage { read_only: false },
    Bind::Storage { read_only: false },
];

super::wgsl_struct! {
    /// Mirrors `Band` in `conv2d_tuned.wgsl`: which rows one dispatch computes and holds.
    pub struct Band as "Band" {
        pub out_row0: u32,
        pub out_rows: u32,
        pub in_row0: u32,
        pub in_rows: u32,
    }
}

/// Kernels larger than this are compiled in loop form: the unrolled block grows with K²
/// and would make shaders of megabytes for a huge kernel.
pub const MAX_UNROLLED_K: usize = 7;

/// A conv layer's weights packed for the tuned kernel.
pub struct TunedConv {
    pub spec: ConvShape,
    pub block: Block,
    packed_weight: wgpu::Buffer,
    /// The packed weights as an image, for image blocks that read them a vec4 per lane
    /// ([`image_weights`]).
    weight_image: Option<(wgpu::Texture, wgpu::TextureView)>,
    packed_bias: wgpu::Buffer,
    /// vec4 output-channel groups, padded to whole blocks.
    groups: usize,
}

impl TunedConv {
    pub fn upload(ctx: &GpuContext, name: &str, c: &Conv2d, block: Block) -> Self {
        let block = block.for_layer(c.k, c.stride);
        let groups = c.cout.div_ceil(4).div_ceil(block.ocv as usize) * block.ocv as usize;
        let (pw, pb) = pack_weights(c, groups);
        let pw = if block.wino {
            pack_weights_winograd(c, groups, block.ocv as usize)
        } else if block.subgroup_form(c.k) {
            pack_weights_subgroup(c, groups, block.ocv as usize)
        } else {
            pw
        };
        let weight_image = if block.image && image_weights(&block, c.k) {
            super::image::upload(ctx, &format!("{name} packed weight image"), &pw)
        } else {
            None
        };
        TunedConv {
            spec: ConvShape::of(c),
            block,
            weight_image,
            packed_weight: storage_init(ctx, &format!("{name} packed weight"), &pw),
            packed_bias: storage_init(ctx, &format!("{name} packed bias"), &pb),
            groups,
        }
    }

    /// The shader specialised to this layer at geometry `g`.
    pub fn pipeline(&self, g: &StepGeom) -> PipelineSpec {
        pipeline_for(&self.spec, &self.block, g)
    }

    /// The shader file and binding table this layer's block runs at geometry `g`.
    pub fn shader(&self, g: &StepGeom) -> &'static ShaderDesc {
        if self.block.split > 1 { &splitk::SHADER } else { image_shader(&self.spec, &self.block, g) }
    }
}

/// The shader description (binding table) of a conv of shape `c` with block `b` (not a
/// split block) at geometry `g`: with images ([`image_form`]; weights too where
/// [`image_weights`]), else plain.
fn image_shader(c: &ConvShape, b: &Block, g: &StepGeom) -> &'static ShaderDesc {
    let b = b.for_layer(c.k, c.stride);
    match (image_form(c, &b, g), image_weights(&b, c.k)) {
        (true, true) => &IMAGE_SHADER,
        (true, false) => &INPUT_IMAGE_SHADER,
        (false, _) => &SHADER,
    }
}

/// The tuned shader specialised to a conv of shape `c` with block `b` at geometry `g`
/// (loop form above [`MAX_UNROLLED_K`]).
pub fn pipeline_for(c: &ConvShape, b: &Block, g: &StepGeom) -> PipelineSpec {
    pipeline_fused(c, b, g, &Epilogue::default())
}

/// The block a conv of shape `c` runs at geometry `g`, whether unrolled, whether packed.
fn effective(c: &ConvShape, b: &Block, g: &StepGeom) -> (Block, bool, bool) {
    let b = b.for_layer(c.k, c.stride);
    let unroll = b.unroll && c.k <= MAX_UNROLLED_K;
    // The loop form is written for adjacent outputs.
    let b = Block { lanes: if unroll { b.lanes.max(1) } else { 1 }, py: if unroll { b.py.max(1) } else { 1 }, ..b };
    let packed = packs_blocks(&b, c.k, invocations(g.output.w, g.out_rows, &b));
    (b, unroll, packed)
}

/// The cache key of [`pipeline_fused`]'s shader, without writing the shader: a run whose
/// pipelines are built looks them up by it (writing an unrolled block's text for every
/// step of every run took ~9 ms of each resnet18 or mobilenet_v3_small run on the CPU).
pub fn pipeline_key(c: &ConvShape, b: &Block, g: &StepGeom, e: &Epilogue) -> String {
    let g = &run_geometry(c, g);
    if b.split > 1 {
        return splitk::key(c, b, g, e);
    }
    let (b, unroll, packed) = effective(c, b, g);
    let key = format!(
        "{} block {}{}{}{}",
        layer_key("tuned", c, g),
        b.name(),
        if unroll { "" } else { " loops" },
        if packed { " packed" } else { "" },
        if image_form(c, &b, g) { " image" } else { "" }
    );
    with_epilogue(key, e)
}

/// The part of a conv pipeline's key that names the layer: form, channels, kernel, stride,
/// padding and input size.
pub fn layer_key(form: &str, c: &ConvShape, g: &StepGeom) -> String {
    format!("conv2d {form} {}->{} k{} s{} p{} {}x{}", c.cin, c.cout, c.k, c.stride, c.pad, g.input.h, g.input.w)
}

/// `key`, naming epilogue `e` unless it is the plain store.
pub fn with_epilogue(key: String, e: &Epilogue) -> String {
    if *e == Epilogue::default() { key } else { format!("{key} fused {e:?}") }
}

/// The layer's shape as the conv shaders' `const` blocks name it.
pub fn shape_values(c: &ConvShape, g: &StepGeom) -> Vec<(&'static str, u32)> {
    let u = |v: usize| v as u32;
    vec![
        ("CIN", u(c.cin)),
        ("COUT", u(c.cout)),
        ("K", u(c.k)),
        ("STRIDE", u(c.stride)),
        ("PAD", u(c.pad)),
        ("IN_H", u(g.input.h)),
        ("IN_W", u(g.input.w)),
        ("OUT_H", u(g.output.h)),
        ("OUT_W", u(g.output.w)),
    ]
}

/// As [`pipeline_for`] with a fused epilogue.
pub fn pipeline_fused(c: &ConvShape, b: &Block, g: &StepGeom, e: &Epilogue) -> PipelineSpec {
    let g = &run_geometry(c, g);
    if b.split > 1 {
        return splitk::pipeline(c, b, g, e);
    }
    let key = pipeline_key(c, b, g, e);
    let (b, unroll, packed) = effective(c, b, g);
    let b = &b;
    let u = |v: usize| v as u32;
    let mut values = shape_values(c, g);
    values.extend([
        ("PX", b.px),
        ("OCV", b.ocv),
        ("L", b.lanes),
        ("NBX", u(invocations_per_row(g.output.w, b))),
        ("PY", b.py),
        ("WG", workgroup_size(packed)),
        ("WRITE_RAW", u32::from(e.write_raw)),
        ("FUSE_BN", u32::from(e.bn)),
        ("WRITE_BN", u32::from(e.write_bn)),
        ("ACT", e.act),
        ("ACT_P0", e.p[0].to_bits()),
        ("ACT_P1", e.p[1].to_bits()),
    ]);
    let image = image_form(c, b, g);
    let form = Form { unroll, subgroup: b.subgroup_form(c.k), packed, winograd: b.wino, image };
    let src = tuned_source(&values, e, form);
    PipelineSpec { key, source: Cow::Owned(src), shader: image_shader(c, b, g) }
}

impl TunedConv {
    pub fn dispatch(&self, g: &StepGeom, max_workgroups: u32) -> Dispatch<'_> {
        let g = &run_geometry(&self.spec, g);
        let u = |v: usize| v as u32;
        let band =
            Band { out_row0: u(g.out_row0), out_rows: u(g.out_rows), in_row0: u(g.in_row0), in_rows: u(g.in_rows) };
        let unroll = self.block.unroll && self.spec.k <= MAX_UNROLLED_K;
        let block = Block {
            lanes: if unroll { self.block.lanes.max(1) } else { 1 },
            py: if unroll { self.block.py.max(1) } else { 1 },
            ..self.block
        };
        let invocations = invocations(g.output.w, g.out_rows, &block);
        let blocks = self.groups / self.block.ocv as usize;
        let ((x, y), z) = if block.split > 1 {
            let (x, y, z) = splitk::workgroups(&block, g, blocks, max_workgroups);
            ((x, y), z)
        } else if packs_blocks(&block, self.spec.k, invocations) {
            // Every output-channel block in the invocation index (see SUBGROUP_EDITS).
            let wg = workgroup_size(true) as usize;
            (split_workgroups((invocations.next_multiple_of(8) * blocks).div_ceil(wg) as u32, max_workgroups), 1)
        } else {
            let wg = workgroup_size(false) as usize;
            (split_workgroups(invocations.div_ceil(wg) as u32, max_workgroups), blocks as u32)
        };
        // The image form where it applies; its weights as an image where it reads them a
        // vec4 per lane (then `upload` made one: `image_form` checked they fit).
        let (input, weight) = match (image_form(&self.spec, &self.block, g), &self.weight_image) {
            (true, Some((_, view))) => (Res::InputImage(0, input_texels(&self.spec, g)), Res::Image(view)),
            (true, None) => (Res::InputImage(0, input_texels(&self.spec, g)), Res::Buffer(&self.packed_weight)),
            (false, _) => (Res::Input(0), Res::Buffer(&self.packed_weight)),
        };
        Dispatch {
            params: bytemuck::bytes_of(&band).to_vec(),
            bindings: vec![input, weight, Res::Buffer(&self.packed_bias), Res::Output, Res::Params],
            workgroups: (x, y, z),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::geometry::whole;
    use super::*;

    #[test]
    fn pipeline_keys_are_the_keys_of_the_written_shaders() {
        // The executor looks pipelines up by `pipeline_key` and writes the shader only on a
        // miss: both must name the same shader for every block form, kernel and epilogue.
        let fused = Epilogue { write_raw: false, bn: true, write_bn: true, act: 10, p: [0.0; 2], gate: false };
        for c in [
            ConvShape { cin: 64, cout: 64, k: 3, stride: 1, pad: 1 },
            ConvShape { cin: 3, cout: 12, k: 5, stride: 1, pad: 0 },
            ConvShape { cin: 8, cout: 8, k: 9, stride: 2, pad: 4 },
            ConvShape { cin: 64, cout: 256, k: 1, stride: 1, pad: 0 },
        ] {
            for b in ["8x4w", "12x4s", "8x2", "4x8s", "8x3l8", "8x4y3s"] {
                let b = Block::parse(b).expect("block");
                for (h, w) in [(56, 56), (9, 7), (40, 64)] {
                    let g = whole(&c, h, w);
                    for e in [Epilogue::default(), fused] {
                        let spec = pipeline_fused(&c, &b, &g, &e);
                        assert_eq!(pipeline_key(&c, &b, &g, &e), spec.key, "{c:?} {} {h}x{w} {e:?}", b.name());
                    }
                }
            }
        }
    }

    #[test]
    fn only_unpadded_1x1_convs_load_their_inputs_without_masks() {
        for (c, masked) in [
            (ConvShape { cin: 8, cout: 16, k: 1, stride: 1, pad: 0 }, false),
            (ConvShape { cin: 8, cout: 16, k: 1, stride: 2, pad: 0 }, false),
            (ConvShape { cin: 8, cout: 16, k: 1, stride: 1, pad: 1 }, true),
            (ConvShape { cin: 8, cout: 16, k: 5, stride: 1, pad: 0 }, true),
            (ConvShape { cin: 8, cout: 16, k: 3, stride: 1, pad: 1 }, true),
        ] {
            for b in ["8x8s", "8x2", "4x2l8", "3x1"] {
                let src = pipeline_for(&c, &Block::parse(b).unwrap(), &whole(&c, 20, 26)).source;
                assert_eq!(src.contains("select(0.0, "), masked, "{c:?} {b}");
            }
        }
    }

    #[test]
    fn specialise_replaces_only_named_constants() {
        let s = specialise(SHADER.source, &[("CIN", 3), ("OUT_W", 77)]);
        assert!(s.contains("const CIN: u32 = 3u;"));
        assert!(s.contains("const OUT_W: u32 = 77u;"));
        assert!(s.contains("const COUT: u32 = 24u;"));
    }

    #[test]
    #[should_panic(expected = "NOPE")]
    fn unknown_constant_is_a_bug() {
        specialise(SHADER.source, &[("NOPE", 1)]);
    }

    #[test]
    fn subgroup_blocks_are_refused_where_there_are_no_subgroups() {
        let b = Block::parse("12x4s").unwrap();
        let e = b.unsupported(false, "some GPU").unwrap();
        assert!(e.contains("12x4s") && e.contains("some GPU") && e.contains("e.g. 12x4"), "{e}");
        assert_eq!(b.unsupported(true, "lavapipe"), None);
        assert_eq!(Block::parse("12x4").unwrap().unsupported(false, "some GPU"), None);
    }

    #[test]
    fn blocks_parse() {
        assert_eq!(
            Block::parse("8x2").unwrap(),
            Block { px: 8, ocv: 2, unroll: true, lanes: 1, sg: false, py: 1, wino: false, split: 1, image: false }
        );
        assert_eq!(
            Block::parse("8x3l8").unwrap(),
            Block { px: 8, ocv: 3, unroll: true, lanes: 8, sg: false, py: 1, wino: false, split: 1, image: false }
        );
        assert_eq!(Block::parse("8x3l8").unwrap().name(), "8x3l8");
        assert_eq!(
            Block::parse("8x6s").unwrap(),
            Block { px: 8, ocv: 6, unroll: true, lanes: 1, sg: true, py: 1, wino: false, split: 1, image: false }
        );
        assert_eq!(Block::parse("8x3l8S").unwrap().name(), "8x3l8s");
        assert_eq!(Block::parse("12x4s").unwrap().name(), "12x4s");
        assert!(Block::parse("s").is_err() && Block::parse("8x4ss").is_err() && Block::parse("8s").is_err());
        let e = Block::parse("8x9s").unwrap_err().to_string();
        assert!(e.contains("\"8x9s\""), "the error quotes the block as given: {e}");
        assert!(Block::parse("8x6s").unwrap().subgroup_form(MAX_UNROLLED_K));
        assert!(!Block::parse("8x6s").unwrap().subgroup_form(MAX_UNROLLED_K + 1), "huge kernels run in loop form");
        assert!(!Block::parse("8x6").unwrap().subgroup_form(3));
        assert!(Block::parse("8x3l0").is_err() && Block::parse("8x3lx").is_err());
        assert_eq!(invocations_per_row(100, &Block::parse("4x2l8").unwrap()), 32);
        assert_eq!(invocations_per_row(100, &Block::parse("4x2").unwrap()), 25);
        assert!(Block::parse("0x2").is_err());
        assert!(Block::parse("8x9").is_err());
        assert!(Block::parse("33x1").is_err());
        assert!(Block::parse("8").is_err());
        // Split blocks: one pixel, S a power of two from 2 to 64, no other suffix.
        let k = Block::parse("1x2k16").unwrap();
        assert_eq!((k.px, k.ocv, k.split, k.sg, k.wino), (1, 2, 16, false, false));
        assert_eq!(k.name(), "1x2k16");
        assert_eq!(Block::parse(" 1x3K4 ").unwrap().name(), "1x3k4");
        for bad in
            ["2x2k8", "1x2k7", "1x2k1", "1x2k128", "1x2k8s", "1x2sk8", "1x2l8k8", "1x2y2k8", "1x2wk8", "1x9k8", "1xk8"]
        {
            let e = Block::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")) && e.contains("1xOCVkS"), "{bad}: {e}");
        }
        // Several output rows per invocation.
        let b = Block::parse("8x4y3s").unwrap();
        assert_eq!(
            b,
            Block { px: 8, ocv: 4, unroll: true, lanes: 1, sg: true, py: 3, wino: false, split: 1, image: false }
        );
        assert_eq!(b.name(), "8x4y3s");
        assert_eq!(Block::parse("4x2l8y2").unwrap().name(), "4x2l8y2");
        assert_eq!(invocations(100, 10, &b), 13 * 4, "ceil(10 / 3) row blocks of 13");
        assert!(Block::parse("8x4y0").is_err() && Block::parse("8x4y9").is_err() && Block::parse("8x4yzs").is_err());
        // Winograd blocks: subgroup form and 2 rows implied; the direct form where it does
        // not apply.
        let w = Block::parse("8x4w").unwrap();
        assert_eq!(
            w,
            Block { px: 8, ocv: 4, unroll: true, lanes: 1, sg: true, py: 2, wino: true, split: 1, image: false }
        );
        assert_eq!((w.name(), Block::parse(" 6x1W ").unwrap().name()), ("8x4w".to_string(), "6x1w".to_string()));
        for bad in ["7x4w", "8x4sw", "8x4y2w", "8x4l8w", "8x9w", "w"] {
            let e = Block::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        assert_eq!(w.for_layer(3, 1), w);
        for (k, stride) in [(3, 2), (5, 1), (1, 1)] {
            assert_eq!(w.for_layer(k, stride).name(), "8x4s", "k {k} stride {stride}");
        }
        let e = w.unsupported(false, "a GPU").expect("needs subgroups");
        assert!(e.contains("8x4w") && e.contains("e.g. 8x4"), "{e}");
        // Image blocks: a subgroup block with a trailing i.
        let i = Block::parse("8x8si").unwrap();
        assert!(i.image && i.sg && !i.wino);
        assert_eq!((i.name(), Block::parse(" 4x8SI ").unwrap().name()), ("8x8si".to_string(), "4x8si".to_string()));
        let wi = Block::parse("8x4wi").unwrap();
        assert!(wi.image && wi.wino && wi.name() == "8x4wi");
        for bad in ["8x8i", "8x8is", "8x4iw", "8x8sii", "i"] {
            let e = Block::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        let e = i.unsupported(false, "a GPU").expect("needs subgroups");
        assert!(e.contains("8x8si") && e.contains("trailing si") && e.contains("e.g. 8x8"), "{e}");
    }
}

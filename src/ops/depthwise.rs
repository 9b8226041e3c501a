//! Depthwise convolution (groups = channels) with a kernel of its own: the layer's shape
//! baked into the shader, neighbouring invocations on neighbouring x, the channel per
//! workgroup so weight loads are uniform. CPU twin: `reference::graph_ops::conv_general`.

use super::conv_tuned::Epilogue;
use super::{Bind, Dispatch, PipelineSpec, Res, ShaderDesc, StepGeom, WgslStruct, split_workgroups, storage_init};
use crate::gpu::GpuContext;
use crate::graph::ConvG;
use std::borrow::Cow;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "depthwise.wgsl",
    source: include_str!("../../shaders/depthwise.wgsl"),
    // params, input, weight, bias, output; the fused epilogue's batch norm scale and shift,
    // and its two extra outputs (as the tuned conv's)
    bindings: &[
        Bind::Uniform,
        Bind::Storage { read_only: true },
        Bind::Storage { read_only: true },
        Bind::Storage { read_only: true },
        Bind::Storage { read_only: false },
        Bind::Storage { read_only: true },
        Bind::Storage { read_only: true },
        Bind::Storage { read_only: false },
        Bind::Storage { read_only: false },
    ],
    params: Some(Params::layout),
};

super::wgsl_struct! {
    /// Mirrors `Params` in `depthwise.wgsl`.
    pub struct Params as "Params" {
        pub channels: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

/// Outputs along x each invocation computes: blocks share loaded inputs between
/// neighbouring outputs (written out unrolled: indexed arrays live in memory on llvmpipe).
/// Measured on lavapipe (`bench --shape`, 3×3, stride 1, rows flattened, subgroup form, 96
/// channels at 56² and 32 at 112²): four outputs 1.18 and 1.56 ms against two's 1.92 and
/// 2.5; eight with vec4 stores 0.89–0.93 and 1.18–1.25. At stride 2 (the shared inputs
/// are fewer) four: 72 channels 3×3 at 56² 1.63 → 0.25–0.34 ms against one output's (with
/// the subgroup weights, vec4 stores and rows of the blocks), 16 at 112² 1.49 → 0.24–0.31,
/// eight 0.75 and 0.6 (mobilenet_v3_small's stride-2 layers).
pub fn outputs_per_invocation(c: &ConvG) -> u32 {
    match c.stride[1] {
        1 if c.kw <= 7 => 8,
        2 if c.kw <= 7 && c.dilation[1] == 1 => 4,
        _ => 1,
    }
}

/// Output rows each invocation computes (blocks of more than one output along x only):
/// neighbouring rows share input rows, each loaded once for the block. Measured as above
/// (8 outputs along x): 3 rows 0.61–0.64 and 0.77–0.80 ms against one row's 0.91 and 1.23,
/// 5×5 ×144 at 28² 0.59–0.63 against 2 rows' 0.83; 4 rows no better; but at 7×7 (512
/// channels, 5×5) one row 0.20–0.22 ms against 3 rows' 0.28–0.29 (7 rows in blocks of 3
/// compute 9).
pub fn rows_per_invocation(c: &ConvG, g: &StepGeom) -> u32 {
    if outputs_per_invocation(c) > 1 && g.output.h >= 16 { 3 } else { 1 }
}

/// The lines of `depthwise.wgsl` the subgroup form replaces, and what with (as the tuned
/// conv's: every lane of a subgroup takes part in the weights' broadcast).
const SUBGROUP_EDITS: [(&str, &str); 2] = [
    (
        "    @builtin(num_workgroups) nwg: vec3<u32>,\n",
        "    @builtin(num_workgroups) nwg: vec3<u32>,\n    @builtin(subgroup_invocation_id) sgl: u32,\n",
    ),
    (
        "    if (iw >= PER || cw >= C) {\n        return;\n    }\n    let c = cw;\n    let idx = iw;\n",
        "    let c = min(cw, C - 1u);\n    let idx = min(iw, PER - 1u);\n",
    ),
];

/// Blocks per channel below which the channels are packed into the invocation index
/// (`PACK` in `depthwise.wgsl`): a 7×7 layer has 14 blocks a channel, and its workgroups
/// of 64 ran 50 idle lanes each.
pub const PACK_BELOW: usize = 1024;

/// Whether a depthwise conv with `blocks` blocks of outputs per channel packs its channels.
pub fn packs_channels(blocks: usize) -> bool {
    blocks < PACK_BELOW
}

/// The body for PX × PY outputs per invocation with every value a named variable: the same
/// sums, in the same order, as the loop form for each output. Each input row the block
/// reads is loaded once and used by every output row that reads it. In subgroup form
/// (`subgroup`) lane `i` of each subgroup loads the channel's taps `8q + i` and
/// `subgroupBroadcast` hands every lane each tap: one storage load per 8 taps instead of
/// one per tap (on lavapipe each storage load is a loop over the lanes; see
/// `conv_tuned::unrolled_block`). With `vec4` ([`vec4_output`]) the outputs are written as
/// vec4s (`store4`): one such loop per 4 outputs instead of 4.
///
/// With `halo` ([`halo_rows`]: subgroup form, 8 outputs along x at stride and dilation 1,
/// rows of whole vec4s) each lane loads its own 8 columns of a row as two aligned vec4s and
/// takes the columns left and right of them (the padding's width) from its neighbouring
/// lanes, which hold the neighbouring blocks of the same row: `nb_left`/`nb_right` select
/// among the 8 lanes' broadcasts. A lane whose neighbour holds another row, channel or the
/// same block (the subgroup's ends, a row's ends, lanes past the end) loads them itself.
/// Per row: two vec4 loads and mostly idle loads at the edges, instead of 10 scalar loads.
pub fn unrolled_body(c: &ConvG, px: u32, py: u32, subgroup: bool, vec4: bool, halo: bool) -> String {
    use std::fmt::Write as _;
    let (kh, kw, sh, sw, dh, dw) =
        (c.kh as u32, c.kw as u32, c.stride[0] as u32, c.stride[1] as u32, c.dilation[0] as u32, c.dilation[1] as u32);
    let mut offsets: Vec<u32> = (0..px).flat_map(|p| (0..kw).map(move |kx| p * sw + kx * dw)).collect();
    offsets.sort_unstable();
    offsets.dedup();
    let mut rows: Vec<u32> = (0..py).flat_map(|y| (0..kh).map(move |ky| y * sh + ky * dh)).collect();
    rows.sort_unstable();
    rows.dedup();
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "    // unrolled: {px} outputs along x, {py} rows");
    for y in 0..py {
        for p in 0..px {
            let _ = writeln!(w, "    var a{y}_{p} = bias[c];");
        }
    }
    let taps = kh * kw;
    if subgroup {
        for q in 0..taps.div_ceil(8) {
            let _ = writeln!(w, "    let t{q} = weight[min(c * KH * KW + {}u + sgl % 8u, C * KH * KW - 1u)];", q * 8);
        }
    }
    for ky in 0..kh {
        for kx in 0..kw {
            if subgroup {
                let t = ky * kw + kx;
                let _ = writeln!(w, "    let w{ky}_{kx} = subgroupBroadcast(t{}, {}u);", t / 8, t % 8);
            } else {
                let _ = writeln!(w, "    let w{ky}_{kx} = weight[(c * KH + {ky}u) * KW + {kx}u];");
            }
        }
    }
    let (pad_l, pad_r) = (c.pads[1] as u32, (kw - 1).saturating_sub(c.pads[1] as u32));
    if halo {
        // Whether the neighbouring lanes hold the neighbouring blocks of this row.
        let _ = writeln!(w, "    let key = c * PER + idx;");
        let _ = writeln!(w, "    let xb = idx % NBX;");
        let _ = writeln!(w, "    let lfetch = xb > 0u && !(sgl > 0u && nb_left_u(key, sgl) + 1u == key);");
        let _ = writeln!(w, "    let rfetch = !(sgl < 7u && xb + 1u < NBX && nb_right_u(key, sgl) == key + 1u);");
        let _ = writeln!(w, "    let ox0 = ox;");
    }
    for &r in &rows {
        let _ = writeln!(w, "    {{");
        let _ = writeln!(w, "        let iy = iy0 + {r};");
        let _ = writeln!(w, "        let rowok = iy >= 0 && iy < i32(IN_H);");
        let _ = writeln!(w, "        let row = (c * IN_H + u32(clamp(iy, 0, i32(IN_H) - 1))) * IN_W;");
        if halo {
            let _ = writeln!(w, "        let rbase = row;");
            super::conv_tuned::halo_row(w, "        ", &offsets, (px, pad_l, pad_r), false);
        }
        for &j in offsets.iter().filter(|_| !halo) {
            let _ = writeln!(
                w,
                "        let r{j} = select(0.0, input[row + u32(clamp(ix0 + {j}, 0, i32(IN_W) - 1))], rowok && ix0 + {j} >= 0 && ix0 + {j} < i32(IN_W));"
            );
        }
        // Output row y reads input row r with tap row ky where y·SH + ky·DH = r; ky grows
        // with r for each y, so every output sums its taps in ky, kx order.
        for y in 0..py {
            for ky in 0..kh {
                if y * sh + ky * dh != r {
                    continue;
                }
                for kx in 0..kw {
                    for p in 0..px {
                        let _ = writeln!(w, "        a{y}_{p} = a{y}_{p} + w{ky}_{kx} * r{};", p * sw + kx * dw);
                    }
                }
            }
        }
        let _ = writeln!(w, "    }}");
    }
    for y in 0..py {
        if vec4 {
            for p in (0..px).step_by(4) {
                let v: Vec<String> = (p..p + 4).map(|q| format!("a{y}_{q}")).collect();
                let _ = writeln!(w, "    store4(c, oy + {y}u, ox + {p}u, vec4<f32>({}));", v.join(", "));
            }
        } else {
            for p in 0..px {
                let _ = writeln!(w, "    store(c, oy + {y}u, ox + {p}u, a{y}_{p});");
            }
        }
    }
    s
}

/// Whether a depthwise conv `c` at geometry `g` with `px` outputs per invocation, in
/// subgroup form when `subgroup`, reads its rows in halo form (see [`unrolled_body`]).
pub fn halo_rows(c: &ConvG, g: &StepGeom, px: u32, subgroup: bool) -> bool {
    let pad_r = (c.kw - 1).saturating_sub(c.pads[1]);
    subgroup
        && px == 8
        && c.stride[1] == 1
        && c.dilation[1] == 1
        && c.pads[1] <= 4
        && pad_r <= 4
        && g.input.w.is_multiple_of(4)
}

/// Whether a depthwise conv at geometry `g` with `px` outputs per invocation writes its
/// rows as aligned vec4s: PX and the output width multiples of 4.
pub fn vec4_output(g: &StepGeom, px: u32) -> bool {
    px.is_multiple_of(4) && g.output.w.is_multiple_of(4)
}

/// The input declaration the halo form replaces (rows read as vec4s).
const HALO_INPUT_EDIT: (&str, &str) = (
    "@group(0) @binding(1) var<storage, read> input: array<f32>;",
    "@group(0) @binding(1) var<storage, read> input4: array<vec4<f32>>;",
);

/// The output declarations the vec4 form replaces.
const VEC4_EDITS: [(&str, &str); 3] = [
    (
        "@group(0) @binding(4) var<storage, read_write> output: array<f32>;",
        "@group(0) @binding(4) var<storage, read_write> output: array<vec4<f32>>;",
    ),
    (
        "@group(0) @binding(7) var<storage, read_write> out_bn: array<f32>;",
        "@group(0) @binding(7) var<storage, read_write> out_bn: array<vec4<f32>>;",
    ),
    (
        "@group(0) @binding(8) var<storage, read_write> out_act: array<f32>;",
        "@group(0) @binding(8) var<storage, read_write> out_act: array<vec4<f32>>;",
    ),
];

/// The `store4` function of the depthwise shader's vec4 form with epilogue `e`.
pub fn store4_fn(e: &Epilogue) -> String {
    let store = super::conv_tuned::epilogue_store4(
        e,
        "fn store4(co: u32, oy: u32, ox: u32, v: vec4<f32>) {\n    if (ox < OUT_W && oy < OUT_H) {\n        let i = ((co * OUT_H + oy) * OUT_W + ox) / 4u;\n",
    );
    super::conv_tuned::with_erf(e, store)
}

/// The `store` function of the depthwise shader with epilogue `e`.
pub fn store_fn(e: &Epilogue) -> String {
    let store = super::conv_tuned::epilogue_store(
        e,
        "fn store(co: u32, oy: u32, ox: u32, v: f32) {\n    if (ox < OUT_W && oy < OUT_H) {\n        let i = (co * OUT_H + oy) * OUT_W + ox;\n",
    );
    super::conv_tuned::with_erf(e, store)
}

/// The cache key of [`pipeline_for`]'s shader, without writing the shader (see
/// `conv_tuned::pipeline_key`).
pub fn pipeline_key(c: &ConvG, g: &StepGeom, subgroup: bool, e: &Epilogue) -> String {
    let (px, py) = (outputs_per_invocation(c), rows_per_invocation(c, g));
    let vec4 = px > 1 && vec4_output(g, px);
    let key = format!(
        "depthwise {}x{}x{} k{}x{} s{:?} d{:?} p{:?} {}x{} px{px} py{py}{}{}",
        c.cin,
        g.input.h,
        g.input.w,
        c.kh,
        c.kw,
        c.stride,
        c.dilation,
        c.pads,
        g.output.h,
        g.output.w,
        if subgroup { " subgroups" } else { "" },
        if vec4 { " vec4" } else { "" }
    );
    if *e == Epilogue::default() { key } else { format!("{key} fused {e:?}") }
}

/// The depthwise shader specialised to `c` at geometry `g`, in subgroup form when
/// `subgroup` (blocks of more than one output only), with the fused epilogue `e`.
pub fn pipeline_for(c: &ConvG, g: &StepGeom, subgroup: bool, e: &Epilogue) -> PipelineSpec {
    let key = pipeline_key(c, g, subgroup, e);
    let u = |v: usize| v as u32;
    let px = outputs_per_invocation(c);
    let py = rows_per_invocation(c, g);
    let values = [
        ("C", u(c.cin)),
        ("KH", u(c.kh)),
        ("KW", u(c.kw)),
        ("STRIDE_H", u(c.stride[0])),
        ("STRIDE_W", u(c.stride[1])),
        ("DIL_H", u(c.dilation[0])),
        ("DIL_W", u(c.dilation[1])),
        ("PAD_TOP", u(c.pads[0])),
        ("PAD_LEFT", u(c.pads[1])),
        ("IN_H", u(g.input.h)),
        ("IN_W", u(g.input.w)),
        ("OUT_H", u(g.output.h)),
        ("OUT_W", u(g.output.w)),
        ("PX", px),
        ("PY", py),
        ("NBX", u(g.output.w.div_ceil(px as usize))),
        ("NBY", u(g.output.h.div_ceil(py as usize))),
        ("PACK", u32::from(packs_channels(blocks_per_channel(px, py, g)))),
    ];
    let vec4 = px > 1 && vec4_output(g, px);
    let halo = px > 1 && halo_rows(c, g, px, subgroup);
    let mut src = super::conv_tuned::specialise(SHADER.source, &values);
    if px > 1 {
        let begin = src.find("    // @body-begin").expect("@body-begin marker");
        let end = src.find("    // @body-end").expect("@body-end marker");
        src = format!("{}{}{}", &src[..begin], unrolled_body(c, px, py, subgroup, vec4, halo), &src[end..]);
        if halo {
            let (from, to) = HALO_INPUT_EDIT;
            assert!(src.contains(from), "depthwise.wgsl no longer has the declaration the halo form replaces: {from}");
            src = src.replacen(from, &format!("{to}\n\n{}", super::conv_tuned::neighbours()), 1);
        }
        if vec4 {
            for (from, to) in VEC4_EDITS {
                assert!(
                    src.contains(from),
                    "depthwise.wgsl no longer has the declaration the vec4 form replaces: {from}"
                );
                src = src.replacen(from, to, 1);
            }
        }
        if subgroup {
            for (from, to) in SUBGROUP_EDITS {
                assert!(src.contains(from), "depthwise.wgsl no longer has the line the subgroup form replaces: {from}");
                src = src.replacen(from, to, 1);
            }
        }
    }
    let store = if vec4 { store4_fn(e) } else { store_fn(e) };
    let src = super::conv_tuned::replace_store(&src, &store);
    PipelineSpec { key, source: Cow::Owned(src), shader: &SHADER }
}

/// Invocations per channel: blocks of `px` outputs by `py` rows.
pub fn blocks_per_channel(px: u32, py: u32, g: &StepGeom) -> usize {
    g.output.w.div_ceil(px as usize) * g.output.h.div_ceil(py as usize)
}

/// Whether `c` is a depthwise convolution this kernel runs.
pub fn fits(c: &ConvG) -> bool {
    c.is_depthwise()
}

/// A depthwise convolution's weights and attributes.
pub struct Depthwise {
    attrs: ConvG,
    /// Run in subgroup form (a CPU adapter with subgroups, a block written out unrolled).
    subgroup: bool,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
}

impl Depthwise {
    pub fn upload(ctx: &GpuContext, name: &str, c: &ConvG) -> Self {
        let bias = if c.bias.is_empty() { vec![0.0; c.cout] } else { c.bias.clone() };
        let cpu = ctx.info.device_type == wgpu::DeviceType::Cpu;
        Depthwise {
            subgroup: cpu && ctx.subgroups && outputs_per_invocation(c) > 1,
            attrs: ConvG { weight: Vec::new(), bias: Vec::new(), ..c.clone() },
            weight: storage_init(ctx, &format!("{name} weight"), &c.weight),
            bias: storage_init(ctx, &format!("{name} bias"), &bias),
        }
    }

    /// The shader specialised to this layer at geometry `g`.
    pub fn pipeline(&self, g: &StepGeom) -> PipelineSpec {
        pipeline_for(&self.attrs, g, self.subgroup, &Epilogue::default())
    }

    /// As [`Depthwise::pipeline`] with a fused batch norm and/or activation.
    pub fn pipeline_fused(&self, g: &StepGeom, e: &Epilogue) -> PipelineSpec {
        pipeline_for(&self.attrs, g, self.subgroup, e)
    }

    /// The key of [`Depthwise::pipeline_fused`]'s shader (`e` default: of `pipeline`).
    pub fn pipeline_key(&self, g: &StepGeom, e: &Epilogue) -> String {
        pipeline_key(&self.attrs, g, self.subgroup, e)
    }

    pub fn dispatch(&self, g: &StepGeom, max_workgroups: u32) -> Dispatch<'_> {
        let p = Params { channels: self.attrs.cin as u32, ..Default::default() };
        Dispatch {
            params: bytemuck::bytes_of(&p).to_vec(),
            bindings: vec![Res::Params, Res::Input(0), Res::Buffer(&self.weight), Res::Buffer(&self.bias), Res::Output],
            workgroups: {
                let blocks =
                    blocks_per_channel(outputs_per_invocation(&self.attrs), rows_per_invocation(&self.attrs, g), g);
                if packs_channels(blocks) {
                    let total = blocks.next_multiple_of(8) * g.output.c;
                    let (x, y) = split_workgroups(total.div_ceil(64) as u32, max_workgroups);
                    (x, y, 1)
                } else {
                    let (x, y) = split_workgroups(blocks.div_ceil(64) as u32, max_workgroups);
                    (x, y, g.output.c as u32)
                }
            },
        }
    }
}

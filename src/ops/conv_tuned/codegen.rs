//! The tuned convolution's shader text: the layer's constants written in and the register
//! block written out unrolled (subgroup form, vec4 and halo rows, packed channel blocks,
//! sums before accumulating); the store functions are `epilogue`'s, the halo rows
//! `halo`'s. Pure strings, validated by naga in `tests/shaders.rs`.

use super::epilogue::{VEC4_OUTPUT_EDITS, replace_store, store_fn, store4_fn, store8_fn};
use super::grouped::{grouped_1x1, wide_weights};
use super::halo::{halo_input, halo_row, neighbours};
use super::image_form::{image_source, store_pairs};
use super::winograd::winograd_block;
use super::{Block, Epilogue, SHADER, subgroup_run};

/// Replaces the value of each `const NAME: u32 = ...;` line between the
/// `// @constants-begin` and `// @constants-end` markers with the given one.
/// Panics if a name is not declared there: that is a programming error, not user input.
pub fn specialise(src: &str, values: &[(&str, u32)]) -> String {
    let mut inside = false;
    let mut seen = vec![false; values.len()];
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let t = line.trim();
        if t == "// @constants-begin" {
            inside = true;
        } else if t == "// @constants-end" {
            inside = false;
        }
        let mut replaced = false;
        if inside && let Some(rest) = t.strip_prefix("const ") {
            let name = rest.split(':').next().unwrap_or("").trim();
            if let Some(i) = values.iter().position(|(n, _)| *n == name) {
                out.push_str(&format!("const {name}: u32 = {}u;\n", values[i].1));
                seen[i] = true;
                replaced = true;
            }
        }
        if !replaced {
            out.push_str(line);
            out.push('\n');
        }
    }
    for (i, s) in seen.iter().enumerate() {
        assert!(s, "shader constant {} is not declared in the @constants block", values[i].0);
    }
    out
}

/// Which of a block's rows are whole aligned vec4s: the input's (then its padding, see
/// [`vec4_input`]) and the output's ([`vec4_output`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Vec4Rows {
    pub input: Option<u32>,
    pub output: bool,
    /// Halo form ([`halo_input`]): own columns loaded, those beside them from the
    /// neighbouring lanes.
    pub halo: bool,
    /// Every stored output reads only inputs inside the input (the layer has no padding),
    /// so loaded values need no mask: values past a row's end reach only outputs past it,
    /// which are not stored. The masks' selects were 8% of a 1×1 64→256 conv's time on
    /// lavapipe (2.46–2.50 → 2.23–2.36 ms; `tuned_source` sets it for 1×1 convs only).
    pub inside: bool,
    /// Image form (`image_form`): the input's vec4s (and vec4 weights) read from images
    /// (`image_source` rewrites the loads; 1×1 blocks index unpadded rows unsigned).
    pub image: bool,
    /// Outputs written two vec4s at a time (`store8`: PX and the output width multiples of
    /// 8), which 64-bit access makes one write of four u64s (`ops::wide`).
    pub pairs: bool,
}

/// Input value `src` at offset `j` from `ix0`, masked to zero outside the input unless
/// every stored output's inputs lie inside it (`inside`).
pub fn masked(src: &str, j: u32, inside: bool) -> String {
    if inside {
        src.to_string()
    } else {
        format!("select(0.0, {src}, ix0 + {j} >= 0 && ix0 + {j} < i32(IN_W) && rowok)")
    }
}

/// The tuned convolution's `@block-begin`..`@block-end` region written out unrolled for
/// one register block (`px` x outputs × `ocv` vec4 channel groups), kernel size `k` and
/// stride: the same arithmetic in the same order as the loop form, with every register
/// a named variable so no driver has to keep an indexed array in memory.
///
/// In subgroup form (`subgroup`) the weights of one (input channel, kernel row) step are
/// one run of [`subgroup_run`] floats: lane `i` of each subgroup loads float `8q + i` of
/// it and `subgroupBroadcast` hands every lane each weight. On lavapipe (Mesa 22.3) every
/// storage-buffer load is a loop over the 8 lanes with a bounds check and a branch per lane,
/// even when all lanes read the same address; this way one such load brings 8 weights
/// instead of one (measured: the 5×5 chain layers 1.4–1.6× faster).
///
/// With `vec4_input` = `Some(pad)` (stride 1, PX a multiple of 4, rows of a multiple of 4
/// values: see [`vec4_input`]) an invocation's inputs of a row are aligned vec4 loads: its
/// first input `ix0 = ox0 − pad` lies `(−pad) mod 4` into a vec4, known when the shader is
/// written, so each value is a fixed component of a fixed load. A vec4 either lies wholly in
/// the row or wholly outside (masked, its index clamped). On lavapipe a vec4 load is one loop
/// over the lanes instead of four (1×1 convs 15–25% faster, measured with `bench --shape`).
///
/// With `py` > 1 an invocation computes `py` output rows (`oyl`, `oyl + 1`, …): each
/// input row the block reads is loaded once per input channel for every output row that
/// reads it (K + (py − 1)·stride rows for py·K row reads), and the weights of an input
/// channel once for all its rows. Each output still sums ky then kx in order.
pub fn unrolled_block(
    (px, py, ocv): (u32, u32, u32),
    k: u32,
    stride: u32,
    lanes: u32,
    subgroup: bool,
    rows: Vec4Rows,
) -> String {
    let Vec4Rows { output: vec4_output, halo, pairs, .. } = rows;
    use std::fmt::Write as _;
    let l = lanes.max(1);
    let py = py.max(1);
    let acc = |y: u32, p: u32, o: u32| if py == 1 { format!("a{p}_{o}") } else { format!("a{y}_{p}_{o}") };
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "    // unrolled: {px} x outputs (spacing {l}) x {py} rows x {ocv} vec4 channel groups, k {k}, stride {stride}"
    );
    for o in 0..ocv {
        let _ = writeln!(w, "    let b{o} = bias[g0 + {o}u];");
        for y in 0..py {
            for p in 0..px {
                let _ = writeln!(w, "    var {} = b{o};", acc(y, p, o));
            }
        }
    }
    let _ = writeln!(w, "    let ix0 = i32(ox0 * STRIDE) - i32(PAD);");
    if halo {
        // Whether the neighbouring lanes hold this row's neighbouring blocks (same channel
        // block, same row, the next block along x).
        let _ = writeln!(w, "    let key = ocb * NBX * ((band.out_rows + PY - 1u) / PY) + idx;");
        let _ = writeln!(w, "    let lfetch = xi > 0u && !(sgl > 0u && nb_left_u(key, sgl) + 1u == key);");
        let _ = writeln!(w, "    let rfetch = !(sgl < 7u && xi + 1u < NBX && nb_right_u(key, sgl) == key + 1u);");
    }
    if k == 1 && py == 1 {
        grouped_1x1(w, (px, ocv), l, stride, subgroup, rows);
    } else {
        rows_loop(w, (px, py, ocv), k, stride, l, subgroup, rows);
    }
    store_block(w, (px, py, ocv), l, vec4_output, pairs);
    s
}

/// The block's stores: accumulator `a{p}_{o}` (`a{y}_{p}_{o}` over several rows) written to
/// output channels `4·(g0 + o)` … `+ 3`, row `oyl + y`, column `ox0 + p·l` (as vec4s along x
/// with `vec4_output`, two at a time with `pairs`).
pub(super) fn store_block(w: &mut String, (px, py, ocv): (u32, u32, u32), l: u32, vec4_output: bool, pairs: bool) {
    use std::fmt::Write as _;
    let acc = |y: u32, p: u32, o: u32| if py == 1 { format!("a{p}_{o}") } else { format!("a{y}_{p}_{o}") };
    for o in 0..ocv {
        let _ = writeln!(w, "    let co{o} = (g0 + {o}u) * 4u;");
        for y in 0..py {
            if vec4_output && pairs {
                for (lane, c) in ["x", "y", "z", "w"].iter().enumerate() {
                    for p in (0..px).step_by(8) {
                        let v = |from: u32| {
                            let v: Vec<String> = (from..from + 4).map(|q| format!("{}.{c}", acc(y, q, o))).collect();
                            format!("vec4<f32>({})", v.join(", "))
                        };
                        let _ =
                            writeln!(w, "    store8(co{o} + {lane}u, oyl + {y}u, ox0 + {p}u, {}, {});", v(p), v(p + 4));
                    }
                }
                continue;
            }
            if vec4_output {
                for (lane, c) in ["x", "y", "z", "w"].iter().enumerate() {
                    for p in (0..px).step_by(4) {
                        let v: Vec<String> = (p..p + 4).map(|q| format!("{}.{c}", acc(y, q, o))).collect();
                        let _ = writeln!(
                            w,
                            "    store4(co{o} + {lane}u, oyl + {y}u, ox0 + {p}u, vec4<f32>({}));",
                            v.join(", ")
                        );
                    }
                }
                continue;
            }
            for p in 0..px {
                for (lane, c) in ["x", "y", "z", "w"].iter().enumerate() {
                    let _ = writeln!(
                        w,
                        "    store(co{o} + {lane}u, oyl + {y}u, ox0 + {}u, {}.{c});",
                        p * l,
                        acc(y, p, o),
                        lane = lane
                    );
                }
            }
        }
    }
}

/// One input row of a step (its offset from `oy·STRIDE` as WGSL) and the (output row,
/// kernel row) pairs that read it; the kernel row is `None` for the loop's `ky`.
type RowStep = (String, Vec<(u32, Option<u32>)>);

/// The input-channel loop of [`unrolled_block`] for kernels wider than 1 or several rows:
/// per channel and kernel row (or input row), loads, then each output's taps summed and
/// added to its accumulator.
fn rows_loop(
    w: &mut String,
    (px, py, ocv): (u32, u32, u32),
    k: u32,
    stride: u32,
    l: u32,
    subgroup: bool,
    rows: Vec4Rows,
) {
    use std::fmt::Write as _;
    let acc = |y: u32, p: u32, o: u32| if py == 1 { format!("a{p}_{o}") } else { format!("a{y}_{p}_{o}") };
    let mut offsets: Vec<u32> = (0..px).flat_map(|p| (0..k).map(move |kx| p * l * stride + kx)).collect();
    offsets.sort_unstable();
    offsets.dedup();
    let run = subgroup_run(k as usize, ocv as usize) as u32;
    let _ = writeln!(w, "    for (var ci = 0u; ci < CIN; ci++) {{");
    // The input rows a step reads (relative to oy·STRIDE), and the (output row, kernel row)
    // pairs that read each. One row (`py` = 1): the kernel rows in a loop.
    let row_steps: Vec<RowStep> = if py == 1 {
        let _ = writeln!(w, "        for (var ky = 0u; ky < K; ky++) {{");
        vec![("ky".to_string(), vec![(0, None)])]
    } else {
        if subgroup {
            for ky in 0..k {
                let _ = writeln!(w, "        let wbase{ky} = ((ocb * CIN + ci) * K + {ky}u) * {run}u + sgl % 8u;");
                for q in 0..run / 8 {
                    let _ = writeln!(w, "        let c{ky}_{q} = weight[wbase{ky} + {}u];", q * 8);
                }
            }
        }
        let _ = writeln!(w, "        {{");
        (0..(py - 1) * stride + k)
            .map(|r| {
                let readers = (0..py)
                    .filter(|y| r >= y * stride && r - y * stride < k)
                    .map(|y| (y, Some(r - y * stride)))
                    .collect();
                (format!("{r}u"), readers)
            })
            .collect()
    };
    for (ri, (r, readers)) in row_steps.iter().enumerate() {
        let ind = "            ";
        if py > 1 {
            let _ = writeln!(w, "{ind}// input row {ri}");
            let _ = writeln!(w, "{ind}{{");
        }
        load_row(w, ind, r, &offsets, (px, k), rows);
        if py == 1 {
            if subgroup {
                let _ = writeln!(w, "{ind}let wbase = ((ocb * CIN + ci) * K + ky) * {run}u + sgl % 8u;");
                for q in 0..run / 8 {
                    let _ = writeln!(w, "{ind}let c{q} = weight[wbase + {}u];", q * 8);
                }
            } else {
                let _ = writeln!(w, "{ind}let wbase = ((g0 * CIN + ci) * K + ky) * K;");
            }
        }
        for &(y, ky) in readers {
            let ky_text = ky.map_or("ky".to_string(), |v| format!("{v}u"));
            for kx in 0..k {
                for o in 0..ocv {
                    let wname = format!("w{y}_{kx}_{o}");
                    if subgroup {
                        // The step's weights: c{q} (one row), c{ky}_{q} (all rows loaded).
                        let cname = |q: u32| match ky {
                            Some(row) if py > 1 => format!("c{row}_{q}"),
                            _ => format!("c{q}"),
                        };
                        let f = |c: u32| {
                            let i = (kx * ocv + o) * 4 + c;
                            format!("subgroupBroadcast({}, {}u)", cname(i / 8), i % 8)
                        };
                        let _ = writeln!(w, "{ind}let {wname} = vec4<f32>({}, {}, {}, {});", f(0), f(1), f(2), f(3));
                    } else if py == 1 {
                        let _ = writeln!(w, "{ind}let {wname} = weight[wbase + {o}u * CIN * K * K + {kx}u];");
                    } else {
                        let _ = writeln!(
                            w,
                            "{ind}let {wname} = weight[((g0 + {o}u) * CIN + ci) * K * K + {ky_text} * K + {kx}u];"
                        );
                    }
                }
            }
            // Each output's taps of this kernel row summed first, then added to its
            // accumulator: one update of a (spilled) accumulator per row instead of per tap.
            for o in 0..ocv {
                for p in 0..px {
                    let mut sum = format!("vec4<f32>(r{}) * w{y}_0_{o}", p * l * stride);
                    for kx in 1..k {
                        sum = format!("fma(vec4<f32>(r{}), w{y}_{kx}_{o}, {sum})", p * l * stride + kx);
                    }
                    let a = acc(y, p, o);
                    let _ = writeln!(w, "{ind}{a} = {a} + {sum};");
                }
            }
        }
        if py > 1 {
            let _ = writeln!(w, "{ind}}}");
        }
    }
    let _ = writeln!(w, "        }}");
    let _ = writeln!(w, "    }}");
}

/// One input row of a block (its offset from `oy·STRIDE` as WGSL, e.g. `ky` or `2u`): `iy`,
/// `rowok` and `rbase`, then `r{j}` for every offset `j` from `ix0`, masked to zero outside
/// the input; loaded in halo form, as aligned vec4s or value by value (see [`Vec4Rows`]).
pub(super) fn load_row(w: &mut String, ind: &str, r: &str, offsets: &[u32], (px, k): (u32, u32), rows: Vec4Rows) {
    use std::fmt::Write as _;
    let Vec4Rows { input: vec4_input, halo, inside, .. } = rows;
    // No branch on rows of the padding (each lane's row can differ): the row is clamped
    // into the band and its values masked to zero, like the columns (5-10% faster on
    // lavapipe, measured with `bench --shape`).
    let _ = writeln!(w, "{ind}let iy = i32(oy * STRIDE + {r}) - i32(PAD);");
    let _ = writeln!(w, "{ind}let rowok = iy >= 0 && iy < i32(IN_H);");
    let _ = writeln!(
        w,
        "{ind}let rbase = (ci * in_rows + u32(clamp(iy, in_row0, in_row0 + i32(in_rows) - 1) - in_row0)) * IN_W;"
    );
    if halo {
        let pad = vec4_input.unwrap_or(0);
        halo_row(w, ind, offsets, (px, pad, k - 1 - pad.min(k - 1)), inside);
    }
    // Values before ix0 in its vec4.
    let lead = vec4_input.map_or(0, |pad| (4 - pad % 4) % 4);
    if vec4_input.is_some() && !halo {
        let last = offsets.last().copied().unwrap_or(0);
        let _ = writeln!(w, "{ind}let q0 = (i32(rbase) + ix0 - {lead}) / 4;");
        for q in 0..(lead + last + 1).div_ceil(4) {
            let _ = writeln!(w, "{ind}let v{q} = input4[u32(max(q0 + {q}, 0))];");
        }
    }
    for &j in offsets.iter().filter(|_| !halo) {
        if vec4_input.is_some() {
            let (q, c) = ((lead + j) / 4, ["x", "y", "z", "w"][((lead + j) % 4) as usize]);
            let _ = writeln!(w, "{ind}let r{j} = {};", masked(&format!("v{q}.{c}"), j, inside));
            continue;
        }
        let src = format!("input[rbase + u32(clamp(ix0 + {j}, 0, i32(IN_W) - 1))]");
        let _ = writeln!(w, "{ind}let r{j} = {};", masked(&src, j, inside));
    }
}

/// The input-channel loop in groups of `cig` channels from `ci0`: whole groups, then the
/// remaining channels as one shorter group (CIN is a constant: the driver drops the
/// branches not taken). `group(w, n, indent)` writes one group of `n` channels.
pub(super) fn channel_groups(w: &mut String, cig: u32, group: impl Fn(&mut String, u32, &str)) {
    use std::fmt::Write as _;
    let _ = writeln!(w, "    for (var ci0 = 0u; ci0 + {cig}u <= CIN; ci0 += {cig}u) {{");
    group(w, cig, "        ");
    let _ = writeln!(w, "    }}");
    for rem in 1..cig {
        let _ = writeln!(w, "    if (CIN % {cig}u == {rem}u) {{");
        let _ = writeln!(w, "        let ci0 = CIN - {rem}u;");
        group(w, rem, "        ");
        let _ = writeln!(w, "    }}");
    }
}

/// Invocations per output-channel block below which the subgroup form takes the block from
/// the invocation index ([`PACKED_EDITS`]). Measured on lavapipe (`bench --shape`): 512→512
/// 1×1 at 7×7 5.0 → 1.3 ms, 512→1280 at 1×1 5.5 → 0.9–1.2 ms, 3×3 64→64 at 56² (280 a
/// block) 6.7 → 5.4 ms; but the 5×5 chain layers (7000 a block) 20–30% slower with 12x4s.
pub const PACK_BELOW: usize = 1024;

/// Invocations per workgroup (`WG` in `conv2d_tuned.wgsl`): one subgroup of 8 where the
/// channel blocks are packed ([`packs_blocks`]), else 64. On lavapipe a workgroup runs on
/// one thread: 576→96 1×1 at 7×7 (48 invocations) ran as one workgroup on one of the two
/// cores, 0.48 ms; in workgroups of 8, 0.22–0.25 ms. 3×3 64→64 at 56² (8x4w, 13 workgroups
/// of 64) 3.85 → 3.5–3.7 ms, its work now split evenly; 1×1 64→256 at 56² the same.
pub fn workgroup_size(packed: bool) -> u32 {
    if packed { 8 } else { 64 }
}

/// Whether a conv with kernel size `k` and `invocations` per output-channel block runs with
/// its blocks packed into the invocation index.
pub fn packs_blocks(b: &Block, k: usize, invocations: usize) -> bool {
    b.subgroup_form(k) && invocations < PACK_BELOW
}

/// The lines of `conv2d_tuned.wgsl` the subgroup form replaces, and what with: weights read
/// as floats (packed by [`pack_weights_subgroup`]), each lane's index in its subgroup, and
/// no early return (every lane of a subgroup must take part in a broadcast: lanes past the
/// end compute the last output again and store the same values); the output-channel block
/// `ocb` is the workgroup's.
const SUBGROUP_EDITS: [(&str, &str); 3] = [
    (
        "@group(0) @binding(1) var<storage, read> weight: array<vec4<f32>>;",
        "@group(0) @binding(1) var<storage, read> weight: array<f32>;",
    ),
    (
        "    @builtin(num_workgroups) nwg: vec3<u32>,\n",
        "    @builtin(num_workgroups) nwg: vec3<u32>,\n    @builtin(subgroup_invocation_id) sgl: u32,\n",
    ),
    (
        "    let idx = gid.x + gid.y * nwg.x * WG;\n    if (idx >= NBX * ((band.out_rows + PY - 1u) / PY)) {\n        return;\n    }\n",
        "    let idx = min(gid.x + gid.y * nwg.x * WG, NBX * ((band.out_rows + PY - 1u) / PY) - 1u);\n    let ocb = wid.z;\n",
    ),
];

/// As [`SUBGROUP_EDITS`] for a small layer ([`packs_blocks`]): the output-channel block
/// taken from the invocation index rather than the workgroup, each block's outputs padded
/// to whole subgroups of 8 and the blocks one after another, so a 7×7 layer (14 invocations
/// a block) fills its workgroups of 64 instead of running 50 idle lanes a block.
const PACKED_EDITS: [(&str, &str); 2] = [
    (
        "    let idx = min(gid.x + gid.y * nwg.x * WG, NBX * ((band.out_rows + PY - 1u) / PY) - 1u);\n    let ocb = wid.z;\n",
        "    let per = NBX * ((band.out_rows + PY - 1u) / PY);\n    let per8 = (per + 7u) / 8u * 8u;\n    let flat = gid.x + gid.y * nwg.x * WG;\n    let ocb = min(flat / per8, NOCB - 1u);\n    let idx = min(flat % per8, per - 1u);\n",
    ),
    ("    let g0 = wid.z * OCV;\n", "    let g0 = ocb * OCV;\n"),
];

/// The weight declaration of 1×1 blocks with [`wide_weights`].
const WIDE_WEIGHT_EDIT: (&str, &str) = (
    "@group(0) @binding(1) var<storage, read> weight: array<f32>;",
    "@group(0) @binding(1) var<storage, read> weight4: array<vec4<f32>>;",
);

/// The input declaration the vec4 form replaces (see [`unrolled_block`]).
const VEC4_INPUT_EDIT: (&str, &str) = (
    "@group(0) @binding(0) var<storage, read> input: array<f32>;",
    "@group(0) @binding(0) var<storage, read> input4: array<vec4<f32>>;",
);

/// Whether an unrolled block of a kernel specialised to `values` reads its input rows as
/// aligned vec4s, and then the padding: stride 1, adjacent outputs, PX and the input width
/// multiples of 4 (so every row starts on a vec4, and every invocation's first input at
/// the same place in one).
pub fn vec4_input(values: &[(&str, u32)]) -> Option<u32> {
    let get = |n: &str| values.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let fits = get("STRIDE") == Some(1)
        && get("L").unwrap_or(1) == 1
        && get("PX").is_some_and(|p| p % 4 == 0)
        && get("IN_W").is_some_and(|w| w % 4 == 0);
    if fits { get("PAD") } else { None }
}

/// Whether an unrolled block of a kernel specialised to `values` writes its outputs as
/// aligned vec4s: adjacent outputs, PX and the output width multiples of 4 (every
/// invocation's first output starts a vec4). On lavapipe every storage write is a loop over
/// the 8 lanes with a bounds check and a branch per lane, as loads are: a 1×1 conv from 64
/// channels spent half its time in its 256 scalar stores per invocation (`perf`).
pub fn vec4_output(values: &[(&str, u32)]) -> bool {
    let get = |n: &str| values.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    get("L").unwrap_or(1) == 1 && get("PX").is_some_and(|p| p % 4 == 0) && get("OUT_W").is_some_and(|w| w % 4 == 0)
}

/// How the tuned kernel's block is written: unrolled (`unroll`), in subgroup form
/// (`subgroup`, which needs `unroll`), its output-channel blocks packed into the invocation
/// index (`packed`, subgroup form only: [`PACKED_EDITS`]), as Winograd F(2×2, 3×3)
/// (`winograd`, subgroup form, PY = 2, 3×3 stride 1: `winograd_block`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Form {
    pub unroll: bool,
    pub subgroup: bool,
    pub packed: bool,
    pub winograd: bool,
    /// The image form (`image_form`: a subgroup or Winograd block on vec4 rows).
    pub image: bool,
}

/// The tuned kernel specialised to `values` with epilogue `e`, its block written in form `f`.
pub fn tuned_source(values: &[(&str, u32)], e: &Epilogue, f: Form) -> String {
    let Form { unroll, subgroup, packed, winograd, image } = f;
    assert!(!winograd || (subgroup && unroll), "the Winograd form is an unrolled subgroup form");
    let src = specialise(SHADER.source, values);
    if !unroll {
        return replace_store(&src, &store_fn(e));
    }
    let get = |n: &str| values.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let (Some(px), Some(ocv), Some(k), Some(stride)) = (get("PX"), get("OCV"), get("K"), get("STRIDE")) else {
        panic!("unrolling needs PX, OCV, K and STRIDE");
    };
    let lanes = get("L").unwrap_or(1);
    let py = get("PY").unwrap_or(1);
    let begin = src.find("    // @block-begin").expect("@block-begin marker");
    let end = src.find("    // @block-end").expect("@block-end marker");
    let v4 = vec4_input(values);
    let v4out = vec4_output(values);
    let halo = halo_input(values, subgroup);
    // Unmasked loads only for unpadded 1×1 convs: the chain's unpadded 5×5 conv2 (16x3s)
    // ran 4% slower without its masks on lavapipe (19.2 → 20.0 ms; LLVM's schedule).
    let image = image && v4.is_some();
    assert!(!image || subgroup, "the image form is a subgroup form");
    let pairs = image && v4out && store_pairs(values);
    let rows = Vec4Rows { input: v4, output: v4out, halo, inside: k == 1 && get("PAD") == Some(0), image, pairs };
    let block = if winograd {
        assert!(k == 3 && stride == 1 && py == 2 && lanes == 1, "Winograd blocks are 3×3, stride 1, 2 rows");
        winograd_block(px, ocv, rows)
    } else {
        unrolled_block((px, py, ocv), k, stride, lanes, subgroup, rows)
    };
    let mut out = format!("{}{}{}", &src[..begin], block, &src[end..]);
    if v4out {
        for (from, to) in VEC4_OUTPUT_EDITS {
            assert!(out.contains(from), "conv2d_tuned.wgsl no longer has the output declaration: {from}");
            out = out.replacen(from, to, 1);
        }
        out = replace_store(&out, &if pairs { store8_fn(e) } else { store4_fn(e) });
    } else {
        out = replace_store(&out, &store_fn(e));
    }
    if v4.is_some() {
        let (from, to) = VEC4_INPUT_EDIT;
        assert!(out.contains(from), "conv2d_tuned.wgsl no longer has the input declaration: {from}");
        out = out.replacen(from, to, 1);
    }
    if halo {
        out.push('\n');
        out.push_str(&neighbours());
    }
    if subgroup {
        let packed_edits: &[(&str, &str)] = if packed { &PACKED_EDITS } else { &[] };
        for (from, to) in SUBGROUP_EDITS.iter().chain(packed_edits) {
            assert!(out.contains(from), "conv2d_tuned.wgsl no longer has the line the subgroup form replaces: {from}");
            out = out.replacen(from, to, 1);
        }
        if winograd || (py == 1 && wide_weights(k, ocv)) {
            let (from, to) = WIDE_WEIGHT_EDIT;
            assert!(out.contains(from), "the subgroup form no longer declares: {from}");
            out = out.replacen(from, to, 1);
        }
    }
    if image {
        out = image_source(&out, VEC4_INPUT_EDIT.1, WIDE_WEIGHT_EDIT.1);
    }
    out
}

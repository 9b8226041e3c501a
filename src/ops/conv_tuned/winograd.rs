//! The tuned conv's Winograd F(2×2, 3×3) form (blocks `PXxOCVw`, 3×3 stride-1 convs): each
//! invocation computes PX/2 tiles of 2×2 outputs (PX columns × 2 rows) for 4·OCV output
//! channels, with 16 products per tile and input channel instead of 36. Weights are
//! transformed and packed on the host; the shader text is written here. CPU port of every
//! stage: `reference::winograd`.

use super::codegen::{Vec4Rows, channel_groups, load_row, store_block};
use super::subgroup_run;
use crate::graph::Conv2d;
use crate::reference::winograd::weight_transform;

/// Input channels whose products are summed before they are added to a tile's sums: the
/// sums (16 per tile and channel group) live in memory on lavapipe, so each update is a
/// reload and a store. Measured with 8x4w on 3×3 64→64 at 56² (lavapipe): 1 channel
/// 4.2 ms, 2 channels 3.85, 4 channels 4.1 (the group's loads spill).
pub const WINO_CIG: u32 = 2;

/// Floats of transformed weights per (block of `4·ocv` output channels, input channel):
/// 16 per output channel, a whole number of vec4 loads for the 8 lanes.
pub fn winograd_run(ocv: usize) -> usize {
    64 * ocv
}

/// Whether the Winograd form computes a conv of kernel `k` and `stride` (else a `w` block
/// runs as its direct subgroup form).
pub fn winograd_applies(k: usize, stride: usize) -> bool {
    k == 3 && stride == 1
}

/// Packs transformed weights `U = G g Gᵀ` for the Winograd form: for each block of `4·ocv`
/// output channels and input channel, one run of [`winograd_run`] floats ordered
/// (ξ = 4i + j, group, lane) and zero beyond `cout`, so lane `l` of a subgroup loads vec4
/// `8q + l` of the run and float `f` is component `f % 4` of lane `(f / 4) % 8`'s load `q =
/// f / 32`.
pub fn pack_weights_winograd(c: &Conv2d, groups: usize, ocv: usize) -> Vec<f32> {
    let run = winograd_run(ocv);
    let blocks = groups / ocv;
    let mut w = vec![0.0f32; blocks * c.cin * run];
    for co in 0..c.cout {
        let (g, lane) = (co / 4, co % 4);
        let (b, o) = (g / ocv, g % ocv);
        for ci in 0..c.cin {
            let at = (co * c.cin + ci) * 9;
            let u = weight_transform(&c.weight[at..at + 9]);
            for (xi, v) in u.iter().enumerate() {
                w[(b * c.cin + ci) * run + (xi * ocv + o) * 4 + lane] = *v;
            }
        }
    }
    w
}

/// The `@block-begin`..`@block-end` region of `conv2d_tuned.wgsl` for a Winograd block of
/// `px` columns (even) × 2 rows × `ocv` vec4 channel groups, in subgroup form: per input
/// channel, its 4 input rows (`load_row`: halo, vec4 or value by value) each transformed
/// along x as loaded, then along the rows; the transformed weights loaded a vec4 per lane
/// and broadcast; each tile's 16 sums per channel group updated once per [`WINO_CIG`]
/// channels; at the end the output transform, the bias, and the block's stores.
pub fn winograd_block(px: u32, ocv: u32, rows: Vec4Rows) -> String {
    use std::fmt::Write as _;
    assert!(px >= 2 && px.is_multiple_of(2), "Winograd blocks take whole 2×2 tiles");
    let tiles = px / 2;
    let run = subgroup_run(1, 16 * ocv as usize) as u32;
    debug_assert_eq!(run as usize, winograd_run(ocv as usize));
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "    // Winograd F(2x2, 3x3): {tiles} tiles of 2x2 outputs x {ocv} vec4 channel groups");
    for o in 0..ocv {
        let _ = writeln!(w, "    let b{o} = bias[g0 + {o}u];");
    }
    let _ = writeln!(w, "    let ix0 = i32(ox0 * STRIDE) - i32(PAD);");
    if rows.halo {
        let _ = writeln!(w, "    let key = ocb * NBX * ((band.out_rows + PY - 1u) / PY) + idx;");
        let _ = writeln!(w, "    let lfetch = xi > 0u && !(sgl > 0u && nb_left_u(key, sgl) + 1u == key);");
        let _ = writeln!(w, "    let rfetch = !(sgl < 7u && xi + 1u < NBX && nb_right_u(key, sgl) == key + 1u);");
    }
    // m{t}_{ij}_{o}: tile t's sum of products at transform position (i, j).
    for t in 0..tiles {
        for xi in 0..16 {
            for o in 0..ocv {
                let _ = writeln!(w, "    var m{t}_{xi}_{o} = vec4<f32>(0.0);");
            }
        }
    }
    let offsets: Vec<u32> = (0..px + 2).collect();
    let group = |w: &mut String, n: u32, ind: &str| {
        for g in 0..n {
            // e{g}_{r}_{t}_{j}: row r of the tile's patch transformed along x.
            for r in 0..4 {
                for t in 0..tiles {
                    for j in 0..4 {
                        let _ = writeln!(w, "{ind}var e{g}_{r}_{t}_{j} = 0.0;");
                    }
                }
            }
            for r in 0..4 {
                let _ = writeln!(w, "{ind}{{");
                let inner = format!("{ind}    ");
                let _ = writeln!(w, "{inner}let ci = ci0 + {g}u;");
                load_row(w, &inner, &format!("{r}u"), &offsets, (px, 3), rows);
                for t in 0..tiles {
                    let b = 2 * t;
                    let e = |j: u32| format!("e{g}_{r}_{t}_{j}");
                    let _ = writeln!(w, "{inner}{} = r{} - r{};", e(0), b, b + 2);
                    let _ = writeln!(w, "{inner}{} = r{} + r{};", e(1), b + 1, b + 2);
                    let _ = writeln!(w, "{inner}{} = r{} - r{};", e(2), b + 2, b + 1);
                    let _ = writeln!(w, "{inner}{} = r{} - r{};", e(3), b + 1, b + 3);
                }
                let _ = writeln!(w, "{ind}}}");
            }
            // Along the rows: V{g}_{t}_{ξ}, ξ = 4i + j.
            for t in 0..tiles {
                for j in 0..4 {
                    let e = |r: u32| format!("e{g}_{r}_{t}_{j}");
                    let _ = writeln!(w, "{ind}let v{g}_{t}_{} = {} - {};", j, e(0), e(2));
                    let _ = writeln!(w, "{ind}let v{g}_{t}_{} = {} + {};", 4 + j, e(1), e(2));
                    let _ = writeln!(w, "{ind}let v{g}_{t}_{} = {} - {};", 8 + j, e(2), e(1));
                    let _ = writeln!(w, "{ind}let v{g}_{t}_{} = {} - {};", 12 + j, e(1), e(3));
                }
            }
            let _ = writeln!(w, "{ind}let wq{g} = (ocb * CIN + ci0 + {g}u) * {}u + sgl % 8u;", run / 4);
            for q in 0..run / 32 {
                let _ = writeln!(w, "{ind}let c{q}_{g} = weight4[wq{g} + {}u];", q * 8);
            }
        }
        for xi in 0..16 {
            for o in 0..ocv {
                for g in 0..n {
                    let f = |c: u32| {
                        let i = (xi * ocv + o) * 4 + c;
                        let comp = ["x", "y", "z", "w"][(i % 4) as usize];
                        format!("subgroupBroadcast(c{}_{g}.{comp}, {}u)", i / 32, (i % 32) / 4)
                    };
                    let _ = writeln!(w, "{ind}let u{g}_{xi}_{o} = vec4<f32>({}, {}, {}, {});", f(0), f(1), f(2), f(3));
                }
                for t in 0..tiles {
                    let mut sum = format!("vec4<f32>(v0_{t}_{xi}) * u0_{xi}_{o}");
                    for g in 1..n {
                        sum = format!("fma(vec4<f32>(v{g}_{t}_{xi}), u{g}_{xi}_{o}, {sum})");
                    }
                    let _ = writeln!(w, "{ind}m{t}_{xi}_{o} = m{t}_{xi}_{o} + {sum};");
                }
            }
        }
    };
    channel_groups(w, WINO_CIG, group);
    // Output transform: along the rows (s{t}_{y}{j}), then along x, plus the bias.
    for o in 0..ocv {
        for t in 0..tiles {
            let m = |i: u32, j: u32| format!("m{t}_{}_{o}", 4 * i + j);
            for j in 0..4 {
                let _ = writeln!(w, "    let s{t}_0{j}_{o} = {} + {} + {};", m(0, j), m(1, j), m(2, j));
                let _ = writeln!(w, "    let s{t}_1{j}_{o} = {} - {} - {};", m(1, j), m(2, j), m(3, j));
            }
            for y in 0..2 {
                let sv = |j: u32| format!("s{t}_{y}{j}_{o}");
                let (p0, p1) = (2 * t, 2 * t + 1);
                let _ = writeln!(w, "    let a{y}_{p0}_{o} = b{o} + ({} + {} + {});", sv(0), sv(1), sv(2));
                let _ = writeln!(w, "    let a{y}_{p1}_{o} = b{o} + ({} - {} - {});", sv(1), sv(2), sv(3));
            }
        }
    }
    store_block(w, (px, 2, ocv), 1, rows.output, rows.pairs);
    s
}

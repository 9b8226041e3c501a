//! The input-channel loop of the tuned conv's unrolled 1×1 blocks: channels in groups, each
//! group's loads (input rows as vec4s or values, weights a vec4 or a float per lane in
//! subgroup form, or from images in the image form), then each output's products summed
//! and added to its accumulator.

use super::codegen::{Vec4Rows, channel_groups, masked};
use super::subgroup_run;

/// Input channels summed per group for 1×1 convs (`CIG` in `conv2d_tuned.wgsl`): a group's
/// products are summed in registers and added to the (spilled, in wide blocks)
/// accumulators once per group instead of once per channel.
pub const CIG_1X1: u32 = 4;

/// Whether a subgroup-form 1×1 block (kernel `k`, `ocv` vec4 groups) loads its weights as a
/// vec4 per lane: its runs are whole multiples of 32 floats (8 lanes × 4).
pub fn wide_weights(k: u32, ocv: u32) -> bool {
    k == 1 && (subgroup_run(1, ocv as usize) as u32).is_multiple_of(32)
}

/// The input-channel loop of [`super::unrolled_block`] for 1×1 convs: channels in groups of
/// [`CIG_1X1`] (the last group the remainder), each group's loads first, then each output's
/// products summed in channel order and added to its accumulator (as the loop form).
pub(super) fn grouped_1x1(w: &mut String, (px, ocv): (u32, u32), l: u32, stride: u32, subgroup: bool, rows: Vec4Rows) {
    let Vec4Rows { input: vec4_input, inside, image, .. } = rows;
    use std::fmt::Write as _;
    let run = subgroup_run(1, ocv as usize) as u32;
    // Runs of whole 32s: each lane loads a vec4 of weights (32 a load for the subgroup).
    let wide = wide_weights(1, ocv);
    let offsets: Vec<u32> = (0..px).map(|p| p * l * stride).collect();
    let _ = writeln!(w, "    let iy = i32(oy * STRIDE) - i32(PAD);");
    let _ = writeln!(w, "    let rowok = iy >= 0 && iy < i32(IN_H);");
    let _ = writeln!(w, "    let rrow = u32(clamp(iy, in_row0, in_row0 + i32(in_rows) - 1) - in_row0);");
    let group = |w: &mut String, n: u32, ind: &str| {
        for g in 0..n {
            let _ = writeln!(w, "{ind}let rbase{g} = ((ci0 + {g}u) * in_rows + rrow) * IN_W;");
            let lead = vec4_input.map_or(0, |pad| (4 - pad % 4) % 4);
            if vec4_input.is_some() {
                let last = offsets.last().copied().unwrap_or(0);
                if image && inside {
                    // Unpadded, read from an image: `ix0` ≥ 0 and `lead` 0, so unsigned
                    // arithmetic (a shift, not a signed division and a clamp per load).
                    let _ = writeln!(w, "{ind}let q0_{g} = (rbase{g} + u32(ix0)) / 4u;");
                } else {
                    let _ = writeln!(w, "{ind}let q0_{g} = (i32(rbase{g}) + ix0 - {lead}) / 4;");
                }
                for q in 0..(lead + last + 1).div_ceil(4) {
                    let v = if image && inside {
                        format!("input4[q0_{g} + {q}u]")
                    } else {
                        format!("input4[u32(max(q0_{g} + {q}, 0))]")
                    };
                    let _ = writeln!(w, "{ind}let v{q}_{g} = {v};");
                }
            }
            for &j in &offsets {
                let src = if vec4_input.is_some() {
                    format!("v{}_{g}.{}", (lead + j) / 4, ["x", "y", "z", "w"][((lead + j) % 4) as usize])
                } else {
                    format!("input[rbase{g} + u32(clamp(ix0 + {j}, 0, i32(IN_W) - 1))]")
                };
                let _ = writeln!(w, "{ind}let r{j}_{g} = {};", masked(&src, j, inside));
            }
            if subgroup && wide {
                let _ = writeln!(w, "{ind}let wq{g} = (ocb * CIN + ci0 + {g}u) * {}u + sgl % 8u;", run / 4);
                for q in 0..run / 32 {
                    let _ = writeln!(w, "{ind}let c{q}_{g} = weight4[wq{g} + {}u];", q * 8);
                }
            } else if subgroup {
                let _ = writeln!(w, "{ind}let wbase{g} = (ocb * CIN + ci0 + {g}u) * {run}u + sgl % 8u;");
                for q in 0..run / 8 {
                    let _ = writeln!(w, "{ind}let c{q}_{g} = weight[wbase{g} + {}u];", q * 8);
                }
            }
            for o in 0..ocv {
                if subgroup && wide {
                    let f = |c: u32| {
                        let i = o * 4 + c;
                        let comp = ["x", "y", "z", "w"][(i % 4) as usize];
                        format!("subgroupBroadcast(c{}_{g}.{comp}, {}u)", i / 32, (i % 32) / 4)
                    };
                    let _ = writeln!(w, "{ind}let w{g}_{o} = vec4<f32>({}, {}, {}, {});", f(0), f(1), f(2), f(3));
                } else if subgroup {
                    let f = |c: u32| {
                        let i = o * 4 + c;
                        format!("subgroupBroadcast(c{}_{g}, {}u)", i / 8, i % 8)
                    };
                    let _ = writeln!(w, "{ind}let w{g}_{o} = vec4<f32>({}, {}, {}, {});", f(0), f(1), f(2), f(3));
                } else {
                    let _ = writeln!(w, "{ind}let w{g}_{o} = weight[(g0 + {o}u) * CIN + ci0 + {g}u];");
                }
            }
        }
        for o in 0..ocv {
            for (p, &j) in offsets.iter().enumerate() {
                let mut sum = format!("vec4<f32>(r{j}_0) * w0_{o}");
                for g in 1..n {
                    sum = format!("fma(vec4<f32>(r{j}_{g}), w{g}_{o}, {sum})");
                }
                let _ = writeln!(w, "{ind}a{p}_{o} = a{p}_{o} + {sum};");
            }
        }
    };
    channel_groups(w, CIG_1X1, group);
}

//! Halo rows: a block's input row loaded as its own aligned vec4s, the columns beside them
//! taken from the neighbouring lanes of its subgroup (tuned and depthwise convs). Pure
//! strings, validated by naga in `tests/shaders.rs`.

use super::vec4_input;

/// One input row in halo form: the block's own `px` columns (from `ox0`, a multiple of 4)
/// as aligned vec4s, the `pad_l` columns left of them from the left neighbour's last vec4
/// and the `pad_r` right of them from the right neighbour's first (`nb_left`/`nb_right`),
/// loaded instead where `lfetch`/`rfetch` say the neighbour holds something else; then
/// `r{j}` for every offset `j` from `ix0 = ox0 − pad_l`, masked outside the row unless
/// `inside` (see `Vec4Rows::inside`).
pub fn halo_row(w: &mut String, ind: &str, offsets: &[u32], (px, pad_l, pad_r): (u32, u32, u32), inside: bool) {
    use std::fmt::Write as _;
    let comp = ["x", "y", "z", "w"];
    let _ = writeln!(w, "{ind}let q0 = (rbase + ox0) / 4u;");
    for m in 0..px / 4 {
        let _ = writeln!(w, "{ind}let v{m} = input4[q0 + {m}u];");
    }
    let _ = writeln!(w, "{ind}var lv = vec4<f32>(0.0);");
    for c in 4 - pad_l..4 {
        let _ = writeln!(w, "{ind}lv.{0} = nb_left_f(v{1}.{0}, sgl);", comp[c as usize], px / 4 - 1);
    }
    let _ = writeln!(w, "{ind}if (lfetch) {{\n{ind}    lv = input4[max(q0, 1u) - 1u];\n{ind}}}");
    let _ = writeln!(w, "{ind}var rv = vec4<f32>(0.0);");
    for c in 0..pad_r {
        let _ = writeln!(w, "{ind}rv.{0} = nb_right_f(v0.{0}, sgl);", comp[c as usize]);
    }
    let _ = writeln!(w, "{ind}if (rfetch) {{\n{ind}    rv = input4[q0 + {}u];\n{ind}}}", px / 4);
    for &j in offsets {
        let col = j as i32 - pad_l as i32;
        let src = if col < 0 {
            format!("lv.{}", comp[(4 + col) as usize])
        } else if col < px as i32 {
            format!("v{}.{}", col / 4, comp[(col % 4) as usize])
        } else {
            format!("rv.{}", comp[(col - px as i32) as usize])
        };
        let _ = writeln!(w, "{ind}let r{j} = {};", super::masked(&src, j, inside));
    }
}

/// The neighbouring lanes' values for the halo forms (tuned and depthwise convs): lane `i`
/// gets lane `i − 1`'s (`nb_left`) or lane `i + 1`'s (`nb_right`), selected among the 8
/// lanes' broadcasts (on lavapipe a broadcast from a fixed lane is an extract and a splat;
/// a storage load is a loop over the lanes); lanes 0 and 7 get a value they do not use.
pub fn neighbours() -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    // Lane i takes lane i + d's value (d = −1 left, +1 right).
    for (name, d) in [("nb_left_f", -1i32), ("nb_right_f", 1)] {
        let _ = writeln!(s, "fn {name}(x: f32, sgl: u32) -> f32 {{");
        let first = if d < 0 { 0 } else { 7 };
        let _ = writeln!(s, "    var r = subgroupBroadcast(x, {first}u);");
        for lane in 0..8i32 {
            let from = lane + d;
            if (0..8).contains(&from) && from != first {
                let _ = writeln!(s, "    r = select(r, subgroupBroadcast(x, {from}u), sgl == {lane}u);");
            }
        }
        let _ = writeln!(s, "    return r;\n}}\n");
    }
    for (u, f) in [("nb_left_u", "nb_left_f"), ("nb_right_u", "nb_right_f")] {
        let _ = writeln!(
            s,
            "fn {u}(x: u32, sgl: u32) -> u32 {{\n    return bitcast<u32>({f}(bitcast<f32>(x), sgl));\n}}\n"
        );
    }
    s
}

/// Whether an unrolled subgroup-form block of a kernel specialised to `values` reads its
/// input rows in halo form: vec4 rows ([`vec4_input`]), a kernel wider than 1 whose
/// padding on each side is at most 4 (one neighbour's vec4).
pub fn halo_input(values: &[(&str, u32)], subgroup: bool) -> bool {
    let get = |n: &str| values.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let (Some(pad), Some(k)) = (vec4_input(values), get("K")) else { return false };
    subgroup && k > 1 && pad <= 4 && k - 1 - pad.min(k - 1) <= 4
}

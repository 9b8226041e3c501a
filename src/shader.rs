//! The WGSL sources in `shaders/`, embedded at build time, and the specialisation step
//! that bakes a layer's shape into the tuned convolution's `const` block.

/// Every shader file: (file name, source).
pub const ALL: &[(&str, &str)] = &[
    ("conv2d_naive.wgsl", CONV2D_NAIVE),
    ("conv2d_tuned.wgsl", CONV2D_TUNED),
    ("minmax.wgsl", MINMAX),
    ("colormap.wgsl", COLORMAP),
    ("present.wgsl", PRESENT),
    ("pointwise.wgsl", POINTWISE),
    ("maxpool.wgsl", MAXPOOL),
];

pub const CONV2D_NAIVE: &str = include_str!("../shaders/conv2d_naive.wgsl");
pub const CONV2D_TUNED: &str = include_str!("../shaders/conv2d_tuned.wgsl");
pub const MINMAX: &str = include_str!("../shaders/minmax.wgsl");
pub const COLORMAP: &str = include_str!("../shaders/colormap.wgsl");
pub const PRESENT: &str = include_str!("../shaders/present.wgsl");
pub const POINTWISE: &str = include_str!("../shaders/pointwise.wgsl");
pub const MAXPOOL: &str = include_str!("../shaders/maxpool.wgsl");

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

/// The tuned convolution's `@block-begin`..`@block-end` region written out unrolled for
/// one register block (`px` x outputs × `ocv` vec4 channel groups), kernel size `k` and
/// stride: the same arithmetic in the same order as the loop form, with every register
/// a named variable so no driver has to keep an indexed array in memory.
pub fn unrolled_block(px: u32, ocv: u32, k: u32, stride: u32) -> String {
    use std::fmt::Write as _;
    let rw = (px - 1) * stride + k;
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "    // unrolled: {px} x outputs x {ocv} vec4 channel groups, k {k}, stride {stride}");
    for o in 0..ocv {
        let _ = writeln!(w, "    let b{o} = bias[g0 + {o}u];");
        for p in 0..px {
            let _ = writeln!(w, "    var a{p}_{o} = b{o};");
        }
    }
    let _ = writeln!(w, "    let ix0 = i32(ox0 * STRIDE) - i32(PAD);");
    let _ = writeln!(w, "    for (var ci = 0u; ci < CIN; ci++) {{");
    let _ = writeln!(w, "        for (var ky = 0u; ky < K; ky++) {{");
    let _ = writeln!(w, "            let iy = i32(oy * STRIDE + ky) - i32(PAD);");
    let _ = writeln!(w, "            if (iy < 0 || iy >= i32(IN_H)) {{ continue; }}");
    let _ = writeln!(w, "            let rbase = (ci * in_rows + u32(iy - in_row0)) * IN_W;");
    for j in 0..rw {
        let _ = writeln!(
            w,
            "            let r{j} = select(0.0, input[rbase + u32(clamp(ix0 + {j}, 0, i32(IN_W) - 1))], ix0 + {j} >= 0 && ix0 + {j} < i32(IN_W));"
        );
    }
    let _ = writeln!(w, "            let wbase = ((g0 * CIN + ci) * K + ky) * K;");
    for kx in 0..k {
        for o in 0..ocv {
            let _ = writeln!(w, "            let w{kx}_{o} = weight[wbase + {o}u * CIN * K * K + {kx}u];");
            for p in 0..px {
                let r = p * stride + kx;
                let _ = writeln!(w, "            a{p}_{o} = fma(vec4<f32>(r{r}), w{kx}_{o}, a{p}_{o});");
            }
        }
    }
    let _ = writeln!(w, "        }}");
    let _ = writeln!(w, "    }}");
    for o in 0..ocv {
        let _ = writeln!(w, "    let co{o} = (g0 + {o}u) * 4u;");
        for p in 0..px {
            for (l, c) in ["x", "y", "z", "w"].iter().enumerate() {
                let _ = writeln!(w, "    store(co{o} + {l}u, oyl, ox0 + {p}u, a{p}_{o}.{c});");
            }
        }
    }
    s
}

/// The tuned kernel specialised to `values`, with its block unrolled when `unroll`.
pub fn tuned_source(values: &[(&str, u32)], unroll: bool) -> String {
    let src = specialise(CONV2D_TUNED, values);
    if !unroll {
        return src;
    }
    let get = |n: &str| values.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let (Some(px), Some(ocv), Some(k), Some(stride)) = (get("PX"), get("OCV"), get("K"), get("STRIDE")) else {
        panic!("unrolling needs PX, OCV, K and STRIDE");
    };
    let begin = src.find("    // @block-begin").expect("@block-begin marker");
    let end = src.find("    // @block-end").expect("@block-end marker");
    format!("{}{}{}", &src[..begin], unrolled_block(px, ocv, k, stride), &src[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specialise_replaces_only_named_constants() {
        let s = specialise(CONV2D_TUNED, &[("CIN", 3), ("OUT_W", 77)]);
        assert!(s.contains("const CIN: u32 = 3u;"));
        assert!(s.contains("const OUT_W: u32 = 77u;"));
        assert!(s.contains("const COUT: u32 = 24u;"));
    }

    #[test]
    #[should_panic(expected = "NOPE")]
    fn unknown_constant_is_a_bug() {
        specialise(CONV2D_TUNED, &[("NOPE", 1)]);
    }
}

//! The WGSL sources in `shaders/`, embedded at build time, and the specialisation step
//! that bakes a layer's shape into the tuned convolution's `const` block.

/// Every shader file: (file name, source).
pub const ALL: &[(&str, &str)] = &[
    ("conv2d_naive.wgsl", CONV2D_NAIVE),
    ("conv2d_tuned.wgsl", CONV2D_TUNED),
    ("minmax.wgsl", MINMAX),
    ("colormap.wgsl", COLORMAP),
    ("present.wgsl", PRESENT),
];

pub const CONV2D_NAIVE: &str = include_str!("../shaders/conv2d_naive.wgsl");
pub const CONV2D_TUNED: &str = include_str!("../shaders/conv2d_tuned.wgsl");
pub const MINMAX: &str = include_str!("../shaders/minmax.wgsl");
pub const COLORMAP: &str = include_str!("../shaders/colormap.wgsl");
pub const PRESENT: &str = include_str!("../shaders/present.wgsl");

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
        assert!(
            s,
            "shader constant {} is not declared in the @constants block",
            values[i].0
        );
    }
    out
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

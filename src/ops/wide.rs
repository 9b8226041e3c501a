//! 64-bit storage access for CPU adapters: a shader's `array<vec4<f32>>` storage bindings
//! rewritten to be read and written as `array<vec2<u64>>`, the same bytes moved in half as
//! many accesses, bit for bit the same values.
//!
//! Why: lavapipe as Debian 12 ships it (Mesa 22.3) turns every storage-buffer access into a
//! loop over the SIMD lanes with a bounds check and a masked insert *per component*, so a
//! vec4 costs four of those and a `vec2<u64>` two; unpacking the halves is two vector
//! instructions for all lanes. A binding written only in aligned pairs of vec4s (lines
//! `NAME[i] = a; NAME[i + 1u] = b;`, `i` even: the tuned 1×1 conv's image form) becomes
//! `array<vec4<u64>>`, each pair one access of four components. Measured with the generated shaders (`bench --shape`-style,
//! one run, interleaved): 1×1 64→256 at 56² 2.24 → 2.09 ms, Winograd 3×3 64→64 at 56²
//! 3.49 → 3.04 ms. Applied by the executor when `CONVSCOPE_WIDE_ACCESS` or the adapter says
//! so (see `exec::Executor::with_env`); the shaders themselves are written with vec4s.

use std::borrow::Cow;

/// The helpers a widened shader calls: the four f32s of a `vec2<u64>` (little-endian: the
/// first f32 in memory is the low half), and back.
const HELPERS: &str = "
// Added by convscope's 64-bit access (`ops/wide.rs`): the four f32s of two u64s, and back.
fn wide_f32x4(v: vec2<u64>) -> vec4<f32> {
    return bitcast<vec4<f32>>(vec4<u32>(u32(v.x), u32(v.x >> 32u), u32(v.y), u32(v.y >> 32u)));
}
fn wide_u64x2(v: vec4<f32>) -> vec2<u64> {
    let b = bitcast<vec4<u32>>(v);
    return vec2<u64>(u64(b.x) | (u64(b.y) << 32u), u64(b.z) | (u64(b.w) << 32u));
}
";

const VEC4: &str = ": array<vec4<f32>>;";

/// `src` with every `var<storage, …> NAME: array<vec4<f32>>` that the shader only indexes
/// whole (`NAME[i]` read, `NAME[i] = v;` written, `arrayLength(&NAME)`) turned into
/// `array<vec2<u64>>`, its reads wrapped in `wide_f32x4` and its writes in `wide_u64x2`;
/// one only written in pairs (`NAME[i] = a; NAME[i + 1u] = b;` on one line, `i` even)
/// into `array<vec4<u64>>`, each pair one write. A binding used any other way (a component
/// written, a compound assignment, an index spanning lines) is left as it is. Borrowed when
/// nothing changes.
pub fn widen(src: &str) -> Cow<'_, str> {
    let declared: Vec<&str> = src
        .lines()
        .filter_map(|l| {
            let code = code_of(l);
            (code.contains("var<storage") && code.trim_end().ends_with(VEC4))
                .then(|| code.trim_end().strip_suffix(VEC4)?.rsplit([' ', '>']).next())
                .flatten()
        })
        .filter(|n| !n.is_empty())
        .collect();
    let pairs: Vec<&str> = declared.iter().copied().filter(|n| pair_binding(src, n)).collect();
    let names: Vec<&str> = declared
        .into_iter()
        .filter(|n| !pairs.contains(n) && src.lines().all(|l| rewrite_line(l, n).is_some()))
        .collect();
    if names.is_empty() && pairs.is_empty() {
        return Cow::Borrowed(src);
    }
    let mut out = String::with_capacity(src.len() + names.len() * 64 + HELPERS.len());
    for l in src.lines() {
        let mut line = l.to_string();
        for n in &pairs {
            if let Some(r) = pair_store(&line, n) {
                line = r;
            } else if find_word(code_of(&line), n).is_some() {
                // The declaration (`pair_binding` allows nothing else).
                line = line.replacen("array<vec4<f32>>", "array<vec4<u64>>", 1);
            }
        }
        for n in &names {
            if let Some(r) = rewrite_line(&line, n) {
                line = r;
            }
        }
        out += &line;
        out.push('\n');
    }
    out += HELPERS;
    Cow::Owned(out)
}

/// Whether binding `name` is written only in pairs ([`pair_store`]) apart from its
/// declaration, at least once.
fn pair_binding(src: &str, name: &str) -> bool {
    let mut stores = 0;
    for l in src.lines() {
        let code = code_of(l);
        if find_word(code, name).is_none() {
            continue;
        }
        if pair_store(l, name).is_some() {
            stores += 1;
        } else if !(code.contains("var<storage") && code.trim_end().ends_with(VEC4)) {
            return false;
        }
    }
    stores > 0
}

/// Line `l` rewritten when it is exactly a pair write of `name` (`NAME[X] = A; NAME[X + 1u]
/// = B;`): `NAME[(X) / 2u] = vec4<u64>(wide_u64x2(A), wide_u64x2(B));`.
fn pair_store(l: &str, name: &str) -> Option<String> {
    let code = code_of(l);
    let indent = &code[..code.len() - code.trim_start().len()];
    let after = code.trim().strip_prefix(name)?;
    let close = matching_bracket(after)?;
    let x = &after[1..close];
    let rest = after[close + 1..].strip_prefix(" = ")?;
    let second = format!("; {name}[{x} + 1u] = ");
    let j = rest.find(&second)?;
    let (a, b) = (&rest[..j], rest[j + second.len()..].strip_suffix(';')?);
    if a.contains(';') || b.contains(';') || a.trim().is_empty() || b.trim().is_empty() {
        return None;
    }
    let (trail, comment) = (&code[code.trim_end().len()..], &l[code.len()..]);
    Some(format!("{indent}{name}[({x}) / 2u] = vec4<u64>(wide_u64x2({a}), wide_u64x2({b}));{trail}{comment}"))
}

/// A line without its `//` comment.
fn code_of(l: &str) -> &str {
    l.find("//").map_or(l, |i| &l[..i])
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Line `l` with binding `name` widened, or `None` where it uses `name` in a way this
/// cannot rewrite.
fn rewrite_line(l: &str, name: &str) -> Option<String> {
    let code = code_of(l);
    let comment = &l[code.len()..];
    let mut out = String::new();
    let mut rest = code;
    while let Some(i) = find_word(rest, name) {
        out += &rest[..i];
        let after = &rest[i + name.len()..];
        if after.trim() == VEC4 {
            // The declaration.
            out += name;
            out += &after.replacen("array<vec4<f32>>", "array<vec2<u64>>", 1);
            rest = "";
            break;
        }
        if out.trim_end().ends_with("arrayLength(&") && after.trim_start().starts_with(')') {
            // Same stride (16 bytes), same length.
            out += name;
            rest = after;
            continue;
        }
        let close = matching_bracket(after)?;
        let access = &rest[i..i + name.len() + close + 1];
        let tail = &after[close + 1..];
        let t = tail.trim_start();
        if t.starts_with('=') && !t.starts_with("==") {
            // A whole-element write: `name[i] = value;`, the value up to the `;`.
            let value = &t[1..];
            let end = value.find(';')?;
            out += &format!("{access} = wide_u64x2({});", value[..end].trim());
            rest = &value[end + 1..];
        } else if t.starts_with('.')
            && t[1..].trim_start_matches(is_ident).trim_start().starts_with('=')
            && !t[1..].trim_start_matches(is_ident).trim_start().starts_with("==")
            || ["+=", "-=", "*=", "/="].iter().any(|op| t.starts_with(op))
        {
            return None;
        } else {
            out += &format!("wide_f32x4({access})");
            rest = tail;
        }
    }
    out += rest;
    out += comment;
    Some(out)
}

/// Where `name` occurs in `s` as a whole identifier.
fn find_word(s: &str, name: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(j) = s[from..].find(name) {
        let i = from + j;
        let before = s[..i].chars().next_back().is_some_and(is_ident);
        let after = s[i + name.len()..].chars().next().is_some_and(is_ident);
        if !before && !after {
            return Some(i);
        }
        from = i + name.len();
    }
    None
}

/// In `after` (the text following a binding's name), the index of the `]` closing an
/// index that starts right there; `None` if it is not an index or does not close.
fn matching_bracket(after: &str) -> Option<usize> {
    if !after.starts_with('[') {
        return None;
    }
    let mut depth = 0;
    for (i, c) in after.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "@group(0) @binding(0) var<storage, read> input4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> output: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
fn f(i: u32) {
    let v = input4[u32(max(i32(i), 0))] + input4[i + 1u].x; // input4[no] stays
    output[i / 4u] = v * bias[0];
    let n = arrayLength(&input4);
}
";

    #[test]
    fn reads_and_whole_writes_are_widened() {
        let w = widen(SRC);
        assert!(w.contains("var<storage, read> input4: array<vec2<u64>>;"), "{w}");
        assert!(w.contains("var<storage, read_write> output: array<vec2<u64>>;"), "{w}");
        assert!(w.contains("var<storage, read> bias: array<f32>;"), "{w}");
        assert!(
            w.contains(
                "let v = wide_f32x4(input4[u32(max(i32(i), 0))]) + wide_f32x4(input4[i + 1u]).x; // input4[no] stays"
            ),
            "{w}"
        );
        assert!(w.contains("output[i / 4u] = wide_u64x2(v * bias[0]);"), "{w}");
        assert!(w.contains("arrayLength(&input4)"), "{w}");
        assert!(w.contains("fn wide_f32x4"), "{w}");
    }

    #[test]
    fn bindings_used_otherwise_stay() {
        for bad in ["    output[i].x = 1.0;", "    output[i] += v;", "    let k = output[\n"] {
            let src = SRC.replace("    let n", &format!("{bad}\n    let n"));
            let w = widen(&src);
            assert!(w.contains("var<storage, read_write> output: array<vec4<f32>>;"), "{bad}: {w}");
            assert!(w.contains("var<storage, read> input4: array<vec2<u64>>;"), "{bad}: {w}");
        }
        let plain = "@group(0) @binding(0) var<storage, read> x: array<f32>;\n";
        assert!(matches!(widen(plain), Cow::Borrowed(_)));
    }

    const PAIRS: &str = "@group(0) @binding(1) var<storage, read_write> output: array<vec4<f32>>;
fn g(i: u32, v0: vec4<f32>, v1: vec4<f32>) {
    output[i] = v0; output[i + 1u] = v1 * 2.0; // a pair
}
";

    #[test]
    fn pair_writes_become_one_write_of_four_u64s() {
        let w = widen(PAIRS);
        assert!(w.contains("var<storage, read_write> output: array<vec4<u64>>;"), "{w}");
        assert!(w.contains("    output[(i) / 2u] = vec4<u64>(wide_u64x2(v0), wide_u64x2(v1 * 2.0)); // a pair"), "{w}");
        // Used otherwise too: each vec4 on its own, as 64-bit pairs.
        let mixed = PAIRS.replace("// a pair", "\n    output[i] = v0;");
        let w = widen(&mixed);
        assert!(w.contains("output: array<vec2<u64>>;"), "{w}");
        assert!(w.contains("output[i] = wide_u64x2(v0); output[i + 1u] = wide_u64x2(v1 * 2.0);"), "{w}");
        // Not a pair: another index, or a third write.
        for bad in ["output[i] = v0; output[i + 2u] = v1;", "output[i] = v0; output[i + 1u] = v1; output[i] = v0;"] {
            let src = PAIRS.replace("output[i] = v0; output[i + 1u] = v1 * 2.0; // a pair", bad);
            assert!(!widen(&src).contains("vec4<u64>"), "{bad}");
        }
    }
}

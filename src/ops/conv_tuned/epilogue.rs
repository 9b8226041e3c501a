//! The fused epilogue's store functions of the convolution shaders (tuned, depthwise,
//! binary): the writes a layer needs, scalar or a vec4 at a time, the activation as a WGSL
//! expression. Pure strings, validated by naga in `tests/shaders.rs`.

/// What the fused epilogue does (see `conv2d_tuned.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Epilogue {
    pub write_raw: bool,
    pub bn: bool,
    pub write_bn: bool,
    /// The activation as the shader numbers it (0 none, 3..9 as `pointwise.wgsl`, 10 ReLU)
    /// and its two parameters.
    pub act: u32,
    pub p: [f32; 2],
    /// The activation's output is not written; its product with the activation's input
    /// is (a `Mul(y, act(y))` folded in: SiLU, `y · sigmoid(y)`, as ONNX exports it).
    pub gate: bool,
}

impl Default for Epilogue {
    fn default() -> Self {
        Epilogue { write_raw: true, bn: false, write_bn: false, act: 0, p: [0.0; 2], gate: false }
    }
}

/// The `store` function with only the writes epilogue `e` needs (the constants select the
/// same, but a function inlined hundreds of times should not carry dead branches).
pub fn store_fn(e: &Epilogue) -> String {
    epilogue_store(
        e,
        "fn store(co: u32, oyl: u32, ox: u32, v: f32) {\n    if (co < COUT && ox < OUT_W && oyl < band.out_rows) {\n        let i = (co * band.out_rows + oyl) * OUT_W + ox;\n",
    )
}

/// `erf_as` as `pointwise.wgsl` computes it (Abramowitz & Stegun 7.1.26), for shaders
/// whose fused activation is Erf ([`with_erf`]).
pub const ERF_AS: &str = "fn erf_as(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let p = ((((1.0614054 * t - 1.4531521) * t + 1.4214138) * t - 0.28449674) * t + 0.2548296) * t;
    return sign(x) * (1.0 - p * exp(-a * a));
}
";

/// `store` preceded by [`ERF_AS`] when the epilogue's activation is Erf (9), for the
/// shaders that do not define it themselves (depthwise, binary).
pub fn with_erf(e: &Epilogue, store: String) -> String {
    if e.act == 9 { format!("{ERF_AS}\n{store}") } else { store }
}

/// A `store` function: `head` (its signature, the bounds test, the index `i` and the
/// channel `co`), then the epilogue's writes.
pub fn epilogue_store(e: &Epilogue, head: &str) -> String {
    epilogue_writes(e, head, false)
}

/// The epilogue's writes of `v` after `head`: scalar, or (`vec4`) a vec4 whose activation
/// is applied per component by `act1`, the expression the scalar form uses.
fn epilogue_writes(e: &Epilogue, head: &str, vec4: bool) -> String {
    let mut s = String::new();
    if vec4 && e.act != 0 {
        s += &format!("fn act1(y: f32) -> f32 {{\n    return {};\n}}\n\n", activation_expr(e.act, e.p));
    }
    s += head;
    if e.write_raw {
        s += "        output[i] = v;\n";
    }
    s += if e.bn { "        let y = v * alpha[co] + beta[co];\n" } else { "        let y = v;\n" };
    if e.bn && e.write_bn {
        s += "        out_bn[i] = y;\n";
    }
    // With a gate, the activation's input times its output (the same product the Mul
    // node computes from the two tensors).
    let gate = if e.gate { "y * " } else { "" };
    if e.act != 0 && vec4 {
        s += &format!("        out_act[i] = {gate}vec4<f32>(act1(y.x), act1(y.y), act1(y.z), act1(y.w));\n");
    } else if e.act != 0 {
        s += &format!("        out_act[i] = {gate}({});\n", activation_expr(e.act, e.p));
    }
    s += "    }\n}\n";
    s
}

/// The WGSL expression of activation `act` (as `activate` in the shader numbers it) of `y`,
/// parameters written as exact f32 bit casts.
pub fn activation_expr(act: u32, p: [f32; 2]) -> String {
    let (p0, p1) = (format!("bitcast<f32>({}u)", p[0].to_bits()), format!("bitcast<f32>({}u)", p[1].to_bits()));
    match act {
        3 => format!("min(max(y, {p0}), {p1})"),
        4 => format!("select({p0} * y, y, y >= 0.0)"),
        5 => "1.0 / (1.0 + exp(-y))".to_string(),
        6 => format!("clamp({p0} * y + {p1}, 0.0, 1.0)"),
        7 => "y * clamp(y / 6.0 + 0.5, 0.0, 1.0)".to_string(),
        8 => "tanh(y)".to_string(),
        9 => "erf_as(y)".to_string(),
        _ => "max(y, 0.0)".to_string(),
    }
}

/// The vec4 form of [`store_fn`] (see [`vec4_output`]): `store4` writes four adjacent
/// outputs of channel `co` as one vec4 to each output the epilogue writes (declared as
/// vec4 arrays by [`VEC4_OUTPUT_EDITS`]); `ox` is a multiple of 4 and `OUT_W` too, so the
/// four lie wholly inside the row or wholly past it. The activation is applied per
/// component by `act1`, the same expression `store` uses.
pub fn store4_fn(e: &Epilogue) -> String {
    epilogue_store4(
        e,
        "fn store4(co: u32, oyl: u32, ox: u32, v: vec4<f32>) {\n    if (co < COUT && ox < OUT_W && oyl < band.out_rows) {\n        let i = ((co * band.out_rows + oyl) * OUT_W + ox) / 4u;\n",
    )
}

/// A `store4` function: `head` (its signature, the bounds test, the vec4 index `i` and the
/// channel `co`), then the epilogue's writes of `v`, the activation applied per component
/// by `act1` (the expression `store` uses).
pub fn epilogue_store4(e: &Epilogue, head: &str) -> String {
    epilogue_writes(e, head, true)
}

/// The pair form of [`store4_fn`] (the image form's, see `store_pairs`): `store8` writes
/// the vec4s `v0` and `v1` of channel `co` at vec4 `i` (even) and `i + 1` of each output,
/// both on one line, which 64-bit access makes one write of four u64s (`ops::wide`). `ox`
/// is a multiple of 8 and `OUT_W` too, so the pair lies wholly inside the row or past it.
pub fn store8_fn(e: &Epilogue) -> String {
    let mut s = String::new();
    if e.act != 0 {
        s += &format!("fn act1(y: f32) -> f32 {{\n    return {};\n}}\n\n", activation_expr(e.act, e.p));
    }
    s += "fn store8(co: u32, oyl: u32, ox: u32, v0: vec4<f32>, v1: vec4<f32>) {\n    if (co < COUT && ox < OUT_W && oyl < band.out_rows) {\n        let i = ((co * band.out_rows + oyl) * OUT_W + ox) / 4u;\n";
    if e.write_raw {
        s += "        output[i] = v0; output[i + 1u] = v1;\n";
    }
    for h in 0..2 {
        s += &if e.bn {
            format!("        let y{h} = v{h} * alpha[co] + beta[co];\n")
        } else {
            format!("        let y{h} = v{h};\n")
        };
    }
    if e.bn && e.write_bn {
        s += "        out_bn[i] = y0; out_bn[i + 1u] = y1;\n";
    }
    if e.act != 0 {
        let act = |h: u32| {
            let gate = if e.gate { format!("y{h} * ") } else { String::new() };
            format!("{gate}vec4<f32>(act1(y{h}.x), act1(y{h}.y), act1(y{h}.z), act1(y{h}.w))")
        };
        s += &format!("        out_act[i] = {}; out_act[i + 1u] = {};\n", act(0), act(1));
    }
    s += "    }\n}\n";
    s
}

/// The output declarations the vec4-output form replaces (see [`vec4_output`]).
pub(super) const VEC4_OUTPUT_EDITS: [(&str, &str); 3] = [
    (
        "@group(0) @binding(3) var<storage, read_write> output: array<f32>;",
        "@group(0) @binding(3) var<storage, read_write> output: array<vec4<f32>>;",
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

/// `src` with its `@store-begin`..`@store-end` region replaced by `store`.
pub fn replace_store(src: &str, store: &str) -> String {
    match (src.find("// @store-begin"), src.find("// @store-end")) {
        (Some(b), Some(end)) => format!("{}{}{}", &src[..b], store, &src[end..]),
        _ => src.to_string(),
    }
}

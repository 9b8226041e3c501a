// Elementwise layers on NCHW f32 buffers: ReLU, PReLU (one slope, or one per channel),
// eval-mode BatchNorm as a per-channel affine map `x · alpha[c] + beta[c]`, and the ONNX
// functions Clip, LeakyRelu, Sigmoid, HardSigmoid, HardSwish, Tanh, Erf (parameters p0,
// p1). Works on a horizontal band: output band row r reads input row r + row_off of the
// input band. Two entry points: `main` one value per invocation, `main4` four adjacent
// values (rows of whole vec4s).

struct Params {
    channels: u32,
    width: u32,
    out_rows: u32,
    in_rows: u32,
    // Output band's first row minus the input band's first row.
    row_off: u32,
    // 0 ReLU, 1 PReLU, 2 affine (BatchNorm), 3 Clip(p0, p1), 4 LeakyRelu(p0), 5 Sigmoid,
    // 6 HardSigmoid(p0, p1), 7 HardSwish, 8 Tanh, 9 Erf.
    mode: u32,
    // 1 when `a` (and `b`) hold one value per channel, 0 when `a[0]` applies to all.
    per_channel: u32,
    p0: f32,
    p1: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// erf, Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), of each component; the CPU twin
// computes the same.
fn erf_as4(x: vec4<f32>) -> vec4<f32> {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let p = ((((1.0614054 * t - 1.4531521) * t + 1.4214138) * t - 0.28449674) * t + 0.2548296) * t;
    return sign(x) * (1.0 - p * exp(-a * a));
}

@group(0) @binding(0) var<storage, read> params: Params;
// The params, copied once per invocation (see `ops::PARAMS`).
var<private> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;
// The input and output as vec4s, for `main4` (an entry point uses one or the other).
@group(0) @binding(1) var<storage, read> input4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> output4: array<vec4<f32>>;

// The layer's function of value(s) `v`, channel parameters `a[i]`, `b[i]`.
fn apply(v: vec4<f32>, i: u32) -> vec4<f32> {
    switch p.mode {
        case 0u: { return max(v, vec4<f32>(0.0)); }
        case 1u: { return select(a[i] * v, v, v >= vec4<f32>(0.0)); }
        case 2u: { return v * a[i] + b[i]; }
        case 3u: { return min(max(v, vec4<f32>(p.p0)), vec4<f32>(p.p1)); }
        case 4u: { return select(p.p0 * v, v, v >= vec4<f32>(0.0)); }
        case 5u: { return 1.0 / (1.0 + exp(-v)); }
        case 6u: { return clamp(p.p0 * v + p.p1, vec4<f32>(0.0), vec4<f32>(1.0)); }
        case 7u: { return v * clamp(v / 6.0 + 0.5, vec4<f32>(0.0), vec4<f32>(1.0)); }
        case 8u: { return tanh(v); }
        default: { return erf_as4(v); }
    }
}

// One output value: channel gid.z, value gid.x (+ gid.y rows of workgroups) of the band.
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    p = params;
    let flat = gid.x + gid.y * nwg.x * 64u;
    let c = gid.z;
    if (flat >= p.width * p.out_rows || c >= p.channels) {
        return;
    }
    let x = flat % p.width;
    let r = flat / p.width;
    let v = input[(c * p.in_rows + r + p.row_off) * p.width + x];
    output[(c * p.out_rows + r) * p.width + x] = apply(vec4<f32>(v), select(0u, c, p.per_channel == 1u)).x;
}

// The vec4 form, for rows of whole vec4s (`pointwise::pipeline`, which compiles this entry
// point as `main`): four adjacent output values of channel gid.z, vec4 gid.x (+ gid.y
// rows of workgroups) of the band.
@compute @workgroup_size(64, 1, 1)
fn main4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    p = params;
    let w4 = p.width / 4u;
    let flat = gid.x + gid.y * nwg.x * 64u;
    let c = gid.z;
    if (flat >= w4 * p.out_rows || c >= p.channels) {
        return;
    }
    let x4 = flat % w4;
    let r = flat / w4;
    let v = input4[(c * p.in_rows + r + p.row_off) * w4 + x4];
    output4[(c * p.out_rows + r) * w4 + x4] = apply(v, select(0u, c, p.per_channel == 1u));
}

// Elementwise arithmetic with broadcasting on flat f32 buffers: out = a ∘ b, where each
// operand is the full tensor, one value per channel ([1,C,1,1]) or a scalar; an activation
// that directly follows may be fused (the host rewrites `store` and `store4`). Two entry
// points: `main` one value per invocation, `main4` four adjacent values (planes of whole
// vec4s; every operand buffer holds whole vec4s).

struct Params {
    // Output values, values per channel plane.
    n: u32,
    plane: u32,
    // 0 full, 1 per channel, 2 scalar.
    a_mode: u32,
    b_mode: u32,
    // 0 add, 1 sub, 2 mul, 3 div.
    kind: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> params: Params;
// The params, copied once per invocation (see `ops::PARAMS`).
var<private> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
// The fused activation's output.
@group(0) @binding(4) var<storage, read_write> out_act: array<f32>;
// The same buffers as vec4s, for `main4` (an entry point uses one or the other).
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> output4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out_act4: array<vec4<f32>>;

// Writes output value i. The host rewrites this function with a fused activation's write
// (`binary::store_fn`).
// @store-begin
fn store(i: u32, y: f32) {
    output[i] = y;
}
fn store4(i4: u32, y: vec4<f32>) {
    output4[i4] = y;
}
// @store-end

fn operand_index(mode: u32, i: u32) -> u32 {
    switch mode {
        case 0u: { return i; }
        case 1u: { return i / p.plane; }
        default: { return 0u; }
    }
}

// One invocation computes one output value, flat index gid.x + gid.y · 64 · nwg.x.
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    p = params;
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.n) {
        return;
    }
    let x = a[operand_index(p.a_mode, i)];
    let y = b[operand_index(p.b_mode, i)];
    store(i, combine(vec4<f32>(x), vec4<f32>(y)).x);
}

// `x ∘ y`, the op `p.kind`.
fn combine(x: vec4<f32>, y: vec4<f32>) -> vec4<f32> {
    switch p.kind {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        default: { return x / y; }
    }
}

// Value `i` of an operand as `mode` reads it, from its vec4s `v` (a full operand's four
// values at once: `i` a multiple of 4).
fn operand4(mode: u32, v: vec4<f32>, i: u32) -> vec4<f32> {
    switch mode {
        case 0u: { return v; }
        default: { return vec4<f32>(v[operand_index(mode, i) % 4u]); }
    }
}

// The vec4 form (`binary::pipeline`, which compiles this entry point as `main`): one
// invocation computes output values 4·i4 .. 4·i4 + 3, i4 = gid.x + gid.y · 64 · nwg.x;
// planes of whole vec4s, so a per-channel operand is one value for all four.
@compute @workgroup_size(64, 1, 1)
fn main4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    p = params;
    let i4 = gid.x + gid.y * nwg.x * 64u;
    if (i4 * 4u >= p.n) {
        return;
    }
    let i = i4 * 4u;
    let x = operand4(p.a_mode, a4[operand_index(p.a_mode, i) / 4u], i);
    let y = operand4(p.b_mode, b4[operand_index(p.b_mode, i) / 4u], i);
    store4(i4, combine(x, y));
}

// Elementwise arithmetic with broadcasting on flat f32 buffers: out = a ∘ b, where each
// operand is the full tensor, one value per channel ([1,C,1,1]) or a scalar; an activation
// that directly follows may be fused (the host rewrites `store`).

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

// Writes output value i. The host rewrites this function with a fused activation's write
// (`binary::store_fn`).
// @store-begin
fn store(i: u32, y: f32) {
    output[i] = y;
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
    var r: f32;
    switch p.kind {
        case 0u: { r = x + y; }
        case 1u: { r = x - y; }
        case 2u: { r = x * y; }
        default: { r = x / y; }
    }
    store(i, r);
}

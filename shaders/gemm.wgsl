// y = W x + b on a flat input of k values, W as [n][k] (ONNX Gemm, MatMul with a weight).
// CPU twin: reference::graph_ops::gemm.

struct Params {
    k: u32,
    n: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> params: Params;
// The params, copied once per invocation (see `ops::PARAMS`).
var<private> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

// One invocation computes output j = gid.x: bias, then the k products in order. (The host
// replaces this function with a subgroup form where it can: `gemm::subgroup_source`.)
// @main-begin
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    p = params;
    let j = gid.x;
    if (j >= p.n) {
        return;
    }
    var acc = bias[j];
    for (var i = 0u; i < p.k; i++) {
        acc = acc + weight[j * p.k + i] * input[i];
    }
    output[j] = acc;
}
// @main-end

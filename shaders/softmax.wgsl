// Softmax over all n values of a flat f32 buffer (a classifier's [1, N] scores).
// CPU twin: reference::graph_ops::softmax.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> params: Params;
// The params, copied once per invocation (see `ops::PARAMS`).
var<private> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

// One invocation computes the whole vector: the max, the sum of exp(x - max), then each
// value (n is a class count, small).
@compute @workgroup_size(1, 1, 1)
fn main() {
    p = params;
    var m = -3.4028235e38;
    for (var i = 0u; i < p.n; i++) {
        m = max(m, input[i]);
    }
    var s = 0.0;
    for (var i = 0u; i < p.n; i++) {
        s = s + exp(input[i] - m);
    }
    for (var i = 0u; i < p.n; i++) {
        output[i] = exp(input[i] - m) / s;
    }
}

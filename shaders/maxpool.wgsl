// 2-D max pooling without padding on NCHW f32 buffers, PyTorch semantics including
// ceil_mode (windows that run past the bottom or right edge take the max of the part
// inside). Works on a horizontal band like the convolutions.

struct Params {
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_w: u32,
    k: u32,
    stride: u32,
    // This dispatch computes output rows out_row0 .. out_row0 + out_rows; the input buffer
    // holds rows in_row0 .. in_row0 + in_rows.
    out_row0: u32,
    out_rows: u32,
    in_row0: u32,
    in_rows: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> params: Params;
// The params, copied once per invocation (see `ops::PARAMS`).
var<private> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

// One invocation computes one output value, flat index i = gid.x + gid.y · 64 · nwg.x over
// (channel, band row, column).
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    p = params;
    let i = gid.x + gid.y * nwg.x * 64u;
    let ox = i % p.out_w;
    let r = (i / p.out_w) % max(p.out_rows, 1u);
    let c = i / (p.out_w * max(p.out_rows, 1u));
    if (ox >= p.out_w || r >= p.out_rows || c >= p.channels) {
        return;
    }
    let oy = p.out_row0 + r;
    let y0 = oy * p.stride;
    let x0 = ox * p.stride;
    let y1 = min(y0 + p.k, p.in_h);
    let x1 = min(x0 + p.k, p.in_w);
    var m = -3.4028235e38;
    for (var y = y0; y < y1; y++) {
        let base = (c * p.in_rows + (y - p.in_row0)) * p.in_w;
        for (var x = x0; x < x1; x++) {
            m = max(m, input[base + x]);
        }
    }
    output[(c * p.out_rows + r) * p.out_w + ox] = m;
}

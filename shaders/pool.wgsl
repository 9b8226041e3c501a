// Max or average pooling on NCHW f32 buffers with ONNX's attributes: rectangular kernels,
// per-axis strides and dilation, asymmetric padding (padding never wins a max), ceil mode,
// and count_include_pad. Global pooling is the same with the whole plane as the window.
// CPU twin: reference::graph_ops::pool.

struct Params {
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    dil_h: u32,
    dil_w: u32,
    pad_top: u32,
    pad_left: u32,
    pad_bottom: u32,
    pad_right: u32,
    // 1: max, 0: average.
    is_max: u32,
    // 1: average divides by the window's positions inside the padded input.
    include_pad: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> params: Params;
// The params, copied once per invocation (see `ops::PARAMS`).
var<private> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

// One invocation computes one output value, flat index i = gid.x + gid.y · 64 · nwg.x over
// (channel, row, column): a global pool's 1×1 outputs fill whole workgroups.
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    p = params;
    let i = gid.x + gid.y * nwg.x * 64u;
    let ox = i % p.out_w;
    let oy = (i / p.out_w) % p.out_h;
    let c = i / (p.out_w * p.out_h);
    if (ox >= p.out_w || oy >= p.out_h || c >= p.channels) {
        return;
    }
    let y0 = i32(oy * p.stride_h) - i32(p.pad_top);
    let x0 = i32(ox * p.stride_w) - i32(p.pad_left);
    var m = -3.4028235e38;
    var sum = 0.0;
    var n = 0u;
    var n_pad = 0u;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = y0 + i32(ky * p.dil_h);
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = x0 + i32(kx * p.dil_w);
            if (iy < i32(p.in_h + p.pad_bottom) && ix < i32(p.in_w + p.pad_right)) {
                n_pad += 1u;
            }
            if (iy < 0 || ix < 0 || iy >= i32(p.in_h) || ix >= i32(p.in_w)) {
                continue;
            }
            let v = input[(c * p.in_h + u32(iy)) * p.in_w + u32(ix)];
            m = max(m, v);
            sum = sum + v;
            n += 1u;
        }
    }
    var r = m;
    if (p.is_max == 0u) {
        let d = select(n, n_pad, p.include_pad == 1u);
        r = sum / f32(max(d, 1u));
    }
    output[(c * p.out_h + oy) * p.out_w + ox] = r;
}

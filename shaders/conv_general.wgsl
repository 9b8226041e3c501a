// General 2-D convolution on NCHW f32 buffers with everything ONNX Conv allows (groups,
// including depthwise; dilation; per-axis strides; asymmetric padding; rectangular
// kernels), or its transpose (ConvTranspose). Weights in ONNX order: [cout, cin/g, kh, kw]
// for Conv, [cin, cout/g, kh, kw] for ConvTranspose. CPU twin: reference::graph_ops::conv_general.

struct Params {
    cin: u32,
    cout: u32,
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
    groups: u32,
    // 1: ConvTranspose.
    transpose: u32,
}

@group(0) @binding(0) var<storage, read> params: Params;
// The params, copied once per invocation (see `ops::PARAMS`).
var<private> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

// One invocation computes one output value, flat index i = gid.x + gid.y · 64 · nwg.x over
// (channel, row, column); it accumulates over its group's input channels, then ky, then kx.
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    p = params;
    let i = gid.x + gid.y * nwg.x * 64u;
    let ox = i % p.out_w;
    let oy = (i / p.out_w) % p.out_h;
    let co = i / (p.out_w * p.out_h);
    if (ox >= p.out_w || oy >= p.out_h || co >= p.cout) {
        return;
    }
    let cin_g = p.cin / p.groups;
    let cout_g = p.cout / p.groups;
    let g = co / cout_g;
    var acc = bias[co];
    for (var cl = 0u; cl < cin_g; cl++) {
        let ci = g * cin_g + cl;
        for (var ky = 0u; ky < p.kh; ky++) {
            for (var kx = 0u; kx < p.kw; kx++) {
                var iy: i32;
                var ix: i32;
                var w: f32;
                if (p.transpose == 1u) {
                    let ny = i32(oy + p.pad_top) - i32(ky * p.dil_h);
                    let nx = i32(ox + p.pad_left) - i32(kx * p.dil_w);
                    if (ny < 0 || nx < 0 || ny % i32(p.stride_h) != 0 || nx % i32(p.stride_w) != 0) {
                        continue;
                    }
                    iy = ny / i32(p.stride_h);
                    ix = nx / i32(p.stride_w);
                    w = weight[((ci * cout_g + (co - g * cout_g)) * p.kh + ky) * p.kw + kx];
                } else {
                    iy = i32(oy * p.stride_h + ky * p.dil_h) - i32(p.pad_top);
                    ix = i32(ox * p.stride_w + kx * p.dil_w) - i32(p.pad_left);
                    w = weight[((co * cin_g + cl) * p.kh + ky) * p.kw + kx];
                }
                if (iy < 0 || ix < 0 || iy >= i32(p.in_h) || ix >= i32(p.in_w)) {
                    continue;
                }
                acc = acc + w * input[(ci * p.in_h + u32(iy)) * p.in_w + u32(ix)];
            }
        }
    }
    output[(co * p.out_h + oy) * p.out_w + ox] = acc;
}

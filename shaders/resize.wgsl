// Resize of H and W on NCHW f32 buffers, nearest or bilinear, with ONNX's coordinate
// transformations (half_pixel, pytorch_half_pixel, asymmetric, align_corners: applied on
// the host, see `Bound`) and nearest rounding modes. CPU twin: reference::graph_ops::resize.

struct Params {
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    // 1: bilinear, 0: nearest.
    linear: u32,
    // 0 round_prefer_floor, 1 round_prefer_ceil, 2 floor, 3 ceil.
    nearest: u32,
}

// The params, then the input coordinate of every output row and then of every output
// column, which the host computes as the CPU twin does (ONNX's coordinate transformations
// in f32): a GPU's division may be an ulp or two off, enough to move a coordinate off a
// tie between two nearest neighbours (an NVIDIA H200 picked the other neighbour for
// half_pixel with round_prefer_ceil).
struct Bound {
    p: Params,
    coords: array<f32>,
}

@group(0) @binding(0) var<storage, read> params: Bound;
// The params, copied once per invocation (see `ops::PARAMS`).
var<private> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

fn nearest_index(v: f32, n: u32) -> u32 {
    var i: f32;
    let half_tie = abs(fract(abs(v)) - 0.5) == 0.0;
    switch p.nearest {
        case 0u: { i = select(round(v), floor(v), half_tie); }
        case 1u: { i = select(round(v), ceil(v), half_tie); }
        case 2u: { i = floor(v); }
        default: { i = ceil(v); }
    }
    return u32(clamp(i, 0.0, f32(n - 1u)));
}

fn at(c: u32, y: u32, x: u32) -> f32 {
    return input[(c * p.in_h + y) * p.in_w + x];
}

// One invocation computes one output value, flat index i = gid.x + gid.y · 64 · nwg.x over
// (channel, row, column).
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    p = params.p;
    let i = gid.x + gid.y * nwg.x * 64u;
    let ox = i % p.out_w;
    let oy = (i / p.out_w) % p.out_h;
    let c = i / (p.out_w * p.out_h);
    if (ox >= p.out_w || oy >= p.out_h || c >= p.channels) {
        return;
    }
    let fy = params.coords[oy];
    let fx = params.coords[p.out_h + ox];
    var v: f32;
    if (p.linear == 1u) {
        let cy = clamp(fy, 0.0, f32(p.in_h - 1u));
        let cx = clamp(fx, 0.0, f32(p.in_w - 1u));
        let y0 = u32(floor(cy));
        let x0 = u32(floor(cx));
        let y1 = min(y0 + 1u, p.in_h - 1u);
        let x1 = min(x0 + 1u, p.in_w - 1u);
        let dy = cy - f32(y0);
        let dx = cx - f32(x0);
        let top = at(c, y0, x0) * (1.0 - dx) + at(c, y0, x1) * dx;
        let bottom = at(c, y1, x0) * (1.0 - dx) + at(c, y1, x1) * dx;
        v = top * (1.0 - dy) + bottom * dy;
    } else {
        v = at(c, nearest_index(fy, p.in_h), nearest_index(fx, p.in_w));
    }
    output[(c * p.out_h + oy) * p.out_w + ox] = v;
}

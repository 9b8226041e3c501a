// Moving values without arithmetic on flat f32 buffers: a contiguous copy with offsets
// (Reshape, Flatten, Identity, one input of a Concat, a channel Slice), constant padding of
// H and W, and the ShuffleNet channel shuffle. CPU twins in reference::graph_ops.

struct Params {
    // 0 copy, 1 pad, 2 channel shuffle.
    mode: u32,
    // Output values this dispatch writes.
    count: u32,
    // copy: first value read and first value written.
    in_off: u32,
    out_off: u32,
    // pad and shuffle: input channels, height, width; output height, width.
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    pad_top: u32,
    pad_left: u32,
    groups: u32,
    value: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> params: Params;
// The params, copied once per invocation (see `ops::PARAMS`).
var<private> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

// One invocation writes one output value, flat index gid.x + gid.y · 64 · nwg.x.
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    p = params;
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.count) {
        return;
    }
    switch p.mode {
        case 0u: {
            output[p.out_off + i] = input[p.in_off + i];
        }
        case 1u: {
            let x = i % p.out_w;
            let y = (i / p.out_w) % p.out_h;
            let c = i / (p.out_w * p.out_h);
            let iy = i32(y) - i32(p.pad_top);
            let ix = i32(x) - i32(p.pad_left);
            var v = p.value;
            if (iy >= 0 && ix >= 0 && iy < i32(p.in_h) && ix < i32(p.in_w)) {
                v = input[(c * p.in_h + u32(iy)) * p.in_w + u32(ix)];
            }
            output[i] = v;
        }
        default: {
            let plane = p.in_h * p.in_w;
            let oc = i / plane;
            let per = p.channels / p.groups;
            let ic = (oc % p.groups) * per + oc / p.groups;
            output[i] = input[ic * plane + i % plane];
        }
    }
}

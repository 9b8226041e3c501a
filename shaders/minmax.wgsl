// Per-channel minimum and maximum of an NCHW f32 tensor, for the colormap's normalisation.

struct Params {
    // Values per channel (H·W).
    plane: u32,
    channels: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<vec2<f32>>;

const WG: u32 = 256u;
var<workgroup> smin: array<f32, WG>;
var<workgroup> smax: array<f32, WG>;

// One workgroup reduces one channel (workgroup_id.x); each invocation first folds a strided
// slice of the plane, then the workgroup folds the 256 partial results in a tree.
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x;
    let base = c * p.plane;
    var lo = 3.4028235e38;
    var hi = -3.4028235e38;
    for (var i = lid; i < p.plane; i += WG) {
        let v = data[base + i];
        lo = min(lo, v);
        hi = max(hi, v);
    }
    smin[lid] = lo;
    smax[lid] = hi;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            smin[lid] = min(smin[lid], smin[lid + s]);
            smax[lid] = max(smax[lid], smax[lid + s]);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        stats[c] = vec2<f32>(smin[0], smax[0]);
    }
}

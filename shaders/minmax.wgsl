// Per-channel minimum, maximum, sum, sum of squares and count of zeros of an NCHW f32 tensor (or of the rows of one horizontal
// band that the band owns), for the colormap's normalisation. Bands after the first fold
// their result into what the earlier bands wrote. min/max drive the colormap; the moments
// feed the HUD's mean, standard deviation and fraction of zeros.

struct Params {
    // Values per channel held in `data` (rows in the buffer × width).
    plane: u32,
    // First owned value of each channel's plane (owned first row × width), and how many.
    offset: u32,
    count: u32,
    // 1: combine with the existing stats (a later band); 0: overwrite (the first band).
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<vec2<f32>>;
// (sum, sum of squares, zeros, count) per channel.
@group(0) @binding(3) var<storage, read_write> moments: array<vec4<f32>>;

const WG: u32 = 256u;
var<workgroup> smin: array<f32, WG>;
var<workgroup> smax: array<f32, WG>;
var<workgroup> ssum: array<vec3<f32>, WG>;

// One workgroup reduces one channel (workgroup_id.x); each invocation first folds a strided
// slice of the owned values, then the workgroup folds the 256 partial results in a tree.
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x;
    let base = c * p.plane + p.offset;
    var lo = 3.4028235e38;
    var hi = -3.4028235e38;
    var acc = vec3<f32>(0.0);
    for (var i = lid; i < p.count; i += WG) {
        let v = data[base + i];
        lo = min(lo, v);
        hi = max(hi, v);
        acc += vec3<f32>(v, v * v, select(0.0, 1.0, v == 0.0));
    }
    smin[lid] = lo;
    smax[lid] = hi;
    ssum[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            smin[lid] = min(smin[lid], smin[lid + s]);
            smax[lid] = max(smax[lid], smax[lid + s]);
            ssum[lid] = ssum[lid] + ssum[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        var r = vec2<f32>(smin[0], smax[0]);
        var m = vec4<f32>(ssum[0], f32(p.count));
        if (p.accumulate == 1u) {
            let old = stats[c];
            r = vec2<f32>(min(old.x, r.x), max(old.y, r.y));
            m = m + moments[c];
        }
        stats[c] = r;
        moments[c] = m;
    }
}

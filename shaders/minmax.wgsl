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
// The tensor's values as vec4s (buffers are whole vec4s long); a channel's owned values
// need not start or end on one, so each component is masked to [base, base + count).
@group(0) @binding(1) var<storage, read> data: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> stats: array<vec2<f32>>;
// (sum, sum of squares, zeros, count) per channel.
@group(0) @binding(3) var<storage, read_write> moments: array<vec4<f32>>;

// 64, not 256: on lavapipe every barrier of the reduction below switches between the
// workgroup's SIMD groups, and every shared-memory access is a loop over the lanes.
const WG: u32 = 64u;
var<workgroup> smin: array<f32, WG>;
var<workgroup> smax: array<f32, WG>;
var<workgroup> ssum: array<vec3<f32>, WG>;

// An invocation's fold of every `stride`-th vec4 of channel `c`'s owned values, from the
// `first`-th: minimum, maximum, and (sum, sum of squares, zeros).
struct Partial {
    lo: f32,
    hi: f32,
    acc: vec3<f32>,
}

fn fold(c: u32, first: u32, stride: u32) -> Partial {
    let base = c * p.plane + p.offset;
    let end = base + p.count;
    var lo = 3.4028235e38;
    var hi = -3.4028235e38;
    var acc = vec3<f32>(0.0);
    for (var q = base / 4u + first; q * 4u < end; q += stride) {
        let v = data[q];
        let i = vec4<u32>(q * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
        let inside = i >= vec4<u32>(base) & i < vec4<u32>(end);
        let big = vec4<f32>(3.4028235e38);
        let l4 = select(big, v, inside);
        let h4 = select(-big, v, inside);
        let z4 = select(vec4<f32>(0.0), v, inside);
        lo = min(lo, min(min(l4.x, l4.y), min(l4.z, l4.w)));
        hi = max(hi, max(max(h4.x, h4.y), max(h4.z, h4.w)));
        let zeros = select(vec4<f32>(0.0), vec4<f32>(1.0), inside & v == vec4<f32>(0.0));
        acc += vec3<f32>(dot(z4, vec4<f32>(1.0)), dot(z4, z4), dot(zeros, vec4<f32>(1.0)));
    }
    return Partial(lo, hi, acc);
}

// Channel `c`'s statistics written (or folded into what an earlier band wrote).
fn write(c: u32, lo: f32, hi: f32, acc: vec3<f32>) {
    var r = vec2<f32>(lo, hi);
    var m = vec4<f32>(acc, f32(p.count));
    if (p.accumulate == 1u) {
        let old = stats[c];
        r = vec2<f32>(min(old.x, r.x), max(old.y, r.y));
        m = m + moments[c];
    }
    stats[c] = r;
    moments[c] = m;
}

// One workgroup reduces one channel (workgroup_id.x); each invocation first folds every
// WG-th vec4 of the owned values, then the workgroup folds the 64 partial results in a
// tree.
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x;
    let part = fold(c, lid, WG);
    smin[lid] = part.lo;
    smax[lid] = part.hi;
    ssum[lid] = part.acc;
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
        write(c, smin[0], smax[0], ssum[0]);
    }
}

// The subgroup form (adapters with subgroups of 8 or more; the host compiles it as `main`
// on CPU adapters): one workgroup of 8, a single subgroup, reduces one channel (workgroup_id.x);
// each invocation folds every 8th vec4 of the owned values, then subgroup operations fold
// the 8 partial results. No workgroup memory and no barriers: on lavapipe each barrier is a
// switch between the workgroup's SIMD groups and each workgroup-memory access a loop over
// the lanes.
@compute @workgroup_size(8, 1, 1)
fn main8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x;
    let part = fold(c, lid, 8u);
    let lo = subgroupMin(part.lo);
    let hi = subgroupMax(part.hi);
    let acc = subgroupAdd(part.acc);
    if (lid == 0u) {
        write(c, lo, hi, acc);
    }
}

// Global max or average pooling on NCHW f32 buffers: each channel's whole plane reduced to
// one value. CPU twin: reference::graph_ops::global_pool (which sums in plane order; this
// sums 64 strided partial sums in a tree, so averages differ by float rounding).

struct GlobalParams {
    channels: u32,
    // Values per channel (H · W).
    plane: u32,
    // 1: max, 0: average.
    is_max: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> params: GlobalParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

var<workgroup> part_sum: array<f32, 64>;
var<workgroup> part_max: array<f32, 64>;

// One workgroup reduces one channel c = wid.x + wid.y · nwg.x; invocation li sums (and
// maxes) values li, li + 64, … of the plane, so neighbouring invocations read neighbouring
// values; the 64 partial results are then halved in workgroup memory, and invocation 0
// writes the channel's value. One invocation per channel (the plain pool's global form)
// left a large GPU idle: an SE block's squeeze of 32 channels of 112² took 1.5 ms on an H200.
@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let channels = params.channels;
    let n = params.plane;
    let c = wid.x + wid.y * nwg.x;
    var m = -3.4028235e38;
    var s = 0.0;
    if (c < channels) {
        let base = c * n;
        for (var i = li; i < n; i += 64u) {
            let v = input[base + i];
            m = max(m, v);
            s += v;
        }
    }
    part_sum[li] = s;
    part_max[li] = m;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half >>= 1u) {
        if (li < half) {
            part_sum[li] += part_sum[li + half];
            part_max[li] = max(part_max[li], part_max[li + half]);
        }
        workgroupBarrier();
    }
    if (li == 0u && c < channels) {
        output[c] = select(part_sum[0] / f32(n), part_max[0], params.is_max == 1u);
    }
}

// Elementwise layers on NCHW f32 buffers: ReLU, PReLU (one slope, or one per channel) and
// eval-mode BatchNorm as a per-channel affine map `x · alpha[c] + beta[c]`. Works on a
// horizontal band: output band row r reads input row r + row_off of the input band.

struct Params {
    channels: u32,
    width: u32,
    out_rows: u32,
    in_rows: u32,
    // Output band's first row minus the input band's first row.
    row_off: u32,
    // 0 = ReLU, 1 = PReLU, 2 = affine (BatchNorm).
    mode: u32,
    // 1 when `a` (and `b`) hold one value per channel, 0 when `a[0]` applies to all.
    per_channel: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

// One invocation computes one output value: column gid.x, band row gid.y, channel gid.z.
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = gid.x;
    let r = gid.y;
    let c = gid.z;
    if (x >= p.width || r >= p.out_rows || c >= p.channels) {
        return;
    }
    let v = input[(c * p.in_rows + r + p.row_off) * p.width + x];
    let i = select(0u, c, p.per_channel == 1u);
    var y: f32;
    if (p.mode == 0u) {
        y = max(v, 0.0);
    } else if (p.mode == 1u) {
        y = select(a[i] * v, v, v >= 0.0);
    } else {
        y = v * a[i] + b[i];
    }
    output[(c * p.out_rows + r) * p.width + x] = y;
}

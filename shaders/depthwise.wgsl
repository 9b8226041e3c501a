// Depthwise 2-D convolution (groups = channels, one filter per channel), specialised to one
// layer shape: the host replaces the `const` block below (see `conv_tuned::specialise`).
// Invocations run over the channel's output blocks row after row (x and y flattened, so a
// workgroup of 64 is full even when a row has fewer blocks), and the channel comes from
// workgroup_id.z, so every weight load is uniform. Weights as ONNX stores them:
// [C, 1, KH, KW]. CPU twin: reference::graph_ops::conv_general.

// @constants-begin
const C: u32 = 32u;
const KH: u32 = 3u;
const KW: u32 = 3u;
const STRIDE_H: u32 = 1u;
const STRIDE_W: u32 = 1u;
const DIL_H: u32 = 1u;
const DIL_W: u32 = 1u;
const PAD_TOP: u32 = 1u;
const PAD_LEFT: u32 = 1u;
const IN_H: u32 = 56u;
const IN_W: u32 = 56u;
const OUT_H: u32 = 56u;
const OUT_W: u32 = 56u;
// Outputs along x and rows per invocation (1 and 1 in this loop form; the host writes
// blocks of PX > 1 out unrolled, see `depthwise::unrolled_body`).
const PX: u32 = 1u;
const PY: u32 = 1u;
// Blocks of PX outputs per row, ceil(OUT_W / PX), and of PY rows, ceil(OUT_H / PY) (the
// host computes them).
const NBX: u32 = 56u;
const NBY: u32 = 56u;
// 1: the channel comes from the invocation index, each channel's blocks padded to whole
// subgroups of 8 (a small layer's workgroups are then full); 0: from workgroup_id.z.
const PACK: u32 = 0u;
// @constants-end

// Blocks of one channel, and the same padded to whole subgroups of 8.
const PER: u32 = NBX * NBY;
const PER8: u32 = (PER + 7u) / 8u * 8u;

struct Params {
    // Unused by the shader (the shape is in the constants); keeps the binding table the
    // same as the other convolutions'.
    channels: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;
// The fused epilogue (a batch norm and/or an activation that directly follow the conv, as
// the tuned conv's): the batch norm's scale and shift, and the two extra outputs.
@group(0) @binding(5) var<storage, read> alpha: array<f32>;
@group(0) @binding(6) var<storage, read> beta: array<f32>;
@group(0) @binding(7) var<storage, read_write> out_bn: array<f32>;
@group(0) @binding(8) var<storage, read_write> out_act: array<f32>;

// Writes output (c, oy, ox), if it exists. The host rewrites this function with the writes
// of a fused batch norm and activation (`depthwise::store_fn`).
// @store-begin
fn store(c: u32, oy: u32, ox: u32, v: f32) {
    if (ox < OUT_W && oy < OUT_H) {
        output[(c * OUT_H + oy) * OUT_W + ox] = v;
    }
}
// @store-end

// One invocation computes PX × PY outputs of channel c: columns (idx % NBX)·PX .. + PX of
// rows (idx / NBX)·PY .. + PY (this loop form: PX = PY = 1); the taps in ky, kx order.
@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let flat = gid.x + gid.y * nwg.x * 64u;
    let cw = select(wid.z, flat / PER8, PACK == 1u);
    let iw = select(flat, flat % PER8, PACK == 1u);
    if (iw >= PER || cw >= C) {
        return;
    }
    let c = cw;
    let idx = iw;
    let oy = (idx / NBX) * PY;
    let ox = (idx % NBX) * PX;
    let iy0 = i32(oy * STRIDE_H) - i32(PAD_TOP);
    let ix0 = i32(ox * STRIDE_W) - i32(PAD_LEFT);
    // @body-begin
    var acc = bias[c];
    for (var ky = 0u; ky < KH; ky++) {
        let iy = iy0 + i32(ky * DIL_H);
        if (iy < 0 || iy >= i32(IN_H)) {
            continue;
        }
        let row = (c * IN_H + u32(iy)) * IN_W;
        for (var kx = 0u; kx < KW; kx++) {
            let ix = ix0 + i32(kx * DIL_W);
            let w = weight[(c * KH + ky) * KW + kx];
            let v = select(0.0, input[row + u32(clamp(ix, 0, i32(IN_W) - 1))], ix >= 0 && ix < i32(IN_W));
            acc = acc + w * v;
        }
    }
    store(c, oy, ox, acc);
    // @body-end
}

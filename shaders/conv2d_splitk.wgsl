// Direct 2-D convolution with the input channels split across a workgroup, for GPUs on
// layers with few outputs and many input channels (a ResNet's 14×14 and 7×7 stages): there
// one invocation per block of outputs leaves most of a large GPU idle, while here each
// output's sum over input channels is shared by S invocations and added up in workgroup
// memory. Blocks `1xOCVkS` of the tuned kernel (`conv_tuned::splitk`). The host replaces
// the `const` block with the layer's shape and the `store` function with the layer's
// epilogue (as for `conv2d_tuned.wgsl`); the values written here are defaults for validation.
// Weights are packed as `conv2d_tuned.wgsl` packs them: vec4 over output channels,
// weight[((g * CIN + ci) * K + ky) * K + kx] holds output channels 4g .. 4g+3.

// @constants-begin
const CIN: u32 = 256u;
const COUT: u32 = 256u;
const K: u32 = 3u;
const STRIDE: u32 = 1u;
const PAD: u32 = 1u;
const IN_H: u32 = 14u;
const IN_W: u32 = 14u;
const OUT_H: u32 = 14u;
const OUT_W: u32 = 14u;
// vec4 output-channel groups per invocation.
const OCV: u32 = 2u;
// Input-channel splits: invocation (tx, s) sums input channels s, s + S, s + 2S, …
const S: u32 = 8u;
// @constants-end

// Output pixels per workgroup (a workgroup is TX × S = 64 invocations).
const TX: u32 = 64u / S;

struct Band {
    // First output row (of the whole layer) this dispatch computes, and how many.
    out_row0: u32,
    out_rows: u32,
    // First input row held in `input`, and how many rows it holds.
    in_row0: u32,
    in_rows: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
@group(0) @binding(4) var<uniform> band: Band;
@group(0) @binding(5) var<storage, read> alpha: array<f32>;
@group(0) @binding(6) var<storage, read> beta: array<f32>;
@group(0) @binding(7) var<storage, read_write> out_bn: array<f32>;
@group(0) @binding(8) var<storage, read_write> out_act: array<f32>;

// Partial sums: invocation (tx, s) writes its OCV vec4s at ((s * TX) + tx) * OCV.
var<workgroup> part: array<vec4<f32>, 64u * OCV>;

// Writes output channel `co`, band row `oyl`, column `ox`, if they exist. The host
// rewrites this function with the writes of the layer's fused epilogue
// (`conv_tuned::store_fn`).
// @store-begin
fn store(co: u32, oyl: u32, ox: u32, v: f32) {
    if (co < COUT && ox < OUT_W && oyl < band.out_rows) {
        output[(co * band.out_rows + oyl) * OUT_W + ox] = v;
    }
}
// @store-end

// One invocation (tx, s) sums, for output pixel p = tile · TX + tx of the band (row p /
// OUT_W, column p % OUT_W) and the 4·OCV output channels of block wid.z, the products of
// input channels s, s + S, … (taps in ky, kx order); then the workgroup's s = 0 invocations
// add the bias and the S partial sums of their pixel in s order and store the outputs.
@compute @workgroup_size(TX, S, 1)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let tx = lid.x;
    let s = lid.y;
    let p = (wid.x + wid.y * nwg.x) * TX + tx;
    let live = p < band.out_rows * OUT_W;
    let oyl = p / OUT_W;
    let ox = p % OUT_W;
    let g0 = wid.z * OCV;
    var acc: array<vec4<f32>, OCV>;
    if (live) {
        let ix0 = i32(ox * STRIDE) - i32(PAD);
        let iy0 = i32((band.out_row0 + oyl) * STRIDE) - i32(PAD);
        for (var ci = s; ci < CIN; ci += S) {
            for (var ky = 0u; ky < K; ky++) {
                let iy = iy0 + i32(ky);
                if (iy < 0 || iy >= i32(IN_H)) {
                    continue;
                }
                let rbase = (ci * band.in_rows + u32(iy - i32(band.in_row0))) * IN_W;
                for (var kx = 0u; kx < K; kx++) {
                    let ix = ix0 + i32(kx);
                    if (ix < 0 || ix >= i32(IN_W)) {
                        continue;
                    }
                    let x = vec4<f32>(input[rbase + u32(ix)]);
                    for (var o = 0u; o < OCV; o++) {
                        acc[o] = fma(x, weight[(((g0 + o) * CIN + ci) * K + ky) * K + kx], acc[o]);
                    }
                }
            }
        }
    }
    for (var o = 0u; o < OCV; o++) {
        part[(s * TX + tx) * OCV + o] = acc[o];
    }
    workgroupBarrier();
    if (s == 0u && live) {
        for (var o = 0u; o < OCV; o++) {
            var v = bias[g0 + o];
            for (var j = 0u; j < S; j++) {
                v += part[(j * TX + tx) * OCV + o];
            }
            let co = (g0 + o) * 4u;
            store(co, oyl, ox, v.x);
            store(co + 1u, oyl, ox, v.y);
            store(co + 2u, oyl, ox, v.z);
            store(co + 3u, oyl, ox, v.w);
        }
    }
}

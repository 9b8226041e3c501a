// Direct 2-D convolution, register-blocked and specialised to one layer shape.
// The host replaces the `const` block below with the layer's shape before compiling
// (see `shader::specialise`); the values written here are only defaults for validation.
// Large layers run in horizontal bands: `band` says which output rows this dispatch
// computes and which input rows its input buffer holds (zero padding applies only at the
// real top and bottom edges, rows 0 and IN_H).
// Weights are packed as vec4 over output channels: weight[((g * CIN + ci) * K + ky) * K + kx]
// holds output channels 4g .. 4g+3 (zero beyond COUT).

// @constants-begin
const CIN: u32 = 12u;
const COUT: u32 = 24u;
const K: u32 = 5u;
const STRIDE: u32 = 1u;
const PAD: u32 = 0u;
const IN_H: u32 = 221u;
const IN_W: u32 = 396u;
const OUT_H: u32 = 217u;
const OUT_W: u32 = 392u;
// Outputs along x per invocation, and vec4 output-channel groups per invocation.
const PX: u32 = 8u;
const OCV: u32 = 2u;
// Spacing of an invocation's outputs along x. 1: PX adjacent outputs. L > 1: L neighbouring
// invocations interleave their outputs (invocation j of a segment of PX·L outputs takes
// j, j + L, j + 2L, …), so at every load and store the L invocations touch L consecutive
// addresses: one vector access on a CPU adapter rather than a gather.
const L: u32 = 1u;
// Invocations per output row: ceil(OUT_W / (PX·L))·L (the host computes it).
const NBX: u32 = 49u;
// Output rows per invocation (1 in the loop form; see `unrolled_block`).
const PY: u32 = 1u;
// Invocations per workgroup: 64, or 8 (one subgroup on lavapipe) where the host packs the
// channel blocks of a small layer into the invocation index: a 7×7 layer's few dozen
// invocations then make several workgroups, which the CPU adapter's threads share, instead
// of one that a single thread runs.
const WG: u32 = 64u;
// Fused epilogue (a batch norm and/or an activation that directly follow the conv): 1 to
// write the conv's own output, 1 to apply the batch norm `y = v · alpha[c] + beta[c]`, 1
// to write its result; the activation (0 none, else `pointwise.wgsl`'s modes 3..9 and 10
// for ReLU) with its parameters as f32 bits.
const WRITE_RAW: u32 = 1u;
const FUSE_BN: u32 = 0u;
const WRITE_BN: u32 = 0u;
const ACT: u32 = 0u;
const ACT_P0: u32 = 0u;
const ACT_P1: u32 = 0u;
// @constants-end

// Output-channel blocks (of 4·OCV channels).
const NOCB: u32 = ((COUT + 3u) / 4u + OCV - 1u) / OCV;

// Input values one row of the block reads.
const RW: u32 = (PX - 1u) * STRIDE + K;

// Input channels summed together before their sum is added to an accumulator.
const CIG: u32 = 1u + 3u / (K * K);

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

// erf, Abramowitz & Stegun 7.1.26, as pointwise.wgsl computes it.
fn erf_as(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let p = ((((1.0614054 * t - 1.4531521) * t + 1.4214138) * t - 0.28449674) * t + 0.2548296) * t;
    return sign(x) * (1.0 - p * exp(-a * a));
}

// The fused activation, as pointwise.wgsl applies it.
fn activate(v: f32) -> f32 {
    let p0 = bitcast<f32>(ACT_P0);
    let p1 = bitcast<f32>(ACT_P1);
    switch ACT {
        case 3u: { return min(max(v, p0), p1); }
        case 4u: { return select(p0 * v, v, v >= 0.0); }
        case 5u: { return 1.0 / (1.0 + exp(-v)); }
        case 6u: { return clamp(p0 * v + p1, 0.0, 1.0); }
        case 7u: { return v * clamp(v / 6.0 + 0.5, 0.0, 1.0); }
        case 8u: { return tanh(v); }
        case 9u: { return erf_as(v); }
        default: { return max(v, 0.0); }
    }
}

// Writes output channel `co`, band row `oyl`, column `ox`, if they exist: the conv's value
// and, fused, the batch norm's and the activation's. The host rewrites this function with
// only the writes a layer needs (`conv_tuned::store_fn`): the unrolled block calls it
// hundreds of times, and dead branches there cost compile time.
// @store-begin
fn store(co: u32, oyl: u32, ox: u32, v: f32) {
    if (co < COUT && ox < OUT_W && oyl < band.out_rows) {
        let i = (co * band.out_rows + oyl) * OUT_W + ox;
        if (WRITE_RAW == 1u) {
            output[i] = v;
        }
        var y = v;
        if (FUSE_BN == 1u) {
            y = v * alpha[co] + beta[co];
            if (WRITE_BN == 1u) {
                out_bn[i] = y;
            }
        }
        if (ACT != 0u) {
            out_act[i] = activate(y);
        }
    }
}
// @store-end

// One invocation computes PX x outputs (ox0, ox0 + L, …) of one row for 4·OCV output
// channels; the channel block comes from workgroup_id.z so every weight load is uniform.
@compute @workgroup_size(WG, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let idx = gid.x + gid.y * nwg.x * WG;
    if (idx >= NBX * ((band.out_rows + PY - 1u) / PY)) {
        return;
    }
    let oyl = (idx / NBX) * PY;
    let oy = band.out_row0 + oyl;
    let in_rows = band.in_rows;
    let in_row0 = i32(band.in_row0);
    let xi = idx % NBX;
    let ox0 = (xi / L) * (PX * L) + xi % L;
    let g0 = wid.z * OCV;

    // @block-begin: the host may replace this region with the same computation unrolled
    // (see `shader::unrolled_block`); this loop form is the readable reference (L = 1 only:
    // the host compiles interleaved blocks unrolled).
    var acc: array<vec4<f32>, PX * OCV>;
    for (var o = 0u; o < OCV; o++) {
        let b = bias[g0 + o];
        for (var px = 0u; px < PX; px++) {
            acc[px * OCV + o] = b;
        }
    }
    let ix0 = i32(ox0 * STRIDE) - i32(PAD);
    // Input channels in groups of CIG (4 for 1×1 convs, else 1); per group and kernel row,
    // each output's products summed first (channel, then kx order), then added to its
    // accumulator: the unrolled block sums in this order too.
    for (var ci0 = 0u; ci0 < CIN; ci0 += CIG) {
        let n = min(CIG, CIN - ci0);
        for (var ky = 0u; ky < K; ky++) {
            let iy = i32(oy * STRIDE + ky) - i32(PAD);
            if (iy < 0 || iy >= i32(IN_H)) {
                continue;
            }
            var t: array<vec4<f32>, PX * OCV>;
            for (var gi = 0u; gi < n; gi++) {
                let ci = ci0 + gi;
                let rbase = (ci * in_rows + u32(iy - in_row0)) * IN_W;
                var row: array<f32, RW>;
                for (var j = 0u; j < RW; j++) {
                    let ix = ix0 + i32(j);
                    let inside = ix >= 0 && ix < i32(IN_W);
                    let v = input[rbase + u32(clamp(ix, 0, i32(IN_W) - 1))];
                    row[j] = select(0.0, v, inside);
                }
                for (var o = 0u; o < OCV; o++) {
                    let wrow = (((g0 + o) * CIN + ci) * K + ky) * K;
                    for (var px = 0u; px < PX; px++) {
                        for (var kx = 0u; kx < K; kx++) {
                            let x = vec4<f32>(row[px * STRIDE + kx]);
                            let w = weight[wrow + kx];
                            let i = px * OCV + o;
                            t[i] = select(fma(x, w, t[i]), x * w, gi == 0u && kx == 0u);
                        }
                    }
                }
            }
            for (var i = 0u; i < PX * OCV; i++) {
                acc[i] = acc[i] + t[i];
            }
        }
    }
    for (var o = 0u; o < OCV; o++) {
        let co = (g0 + o) * 4u;
        for (var px = 0u; px < PX; px++) {
            let a = acc[px * OCV + o];
            let ox = ox0 + px;
            store(co, oyl, ox, a.x);
            store(co + 1u, oyl, ox, a.y);
            store(co + 2u, oyl, ox, a.z);
            store(co + 3u, oyl, ox, a.w);
        }
    }
    // @block-end
}

//! Plain CPU twins of every GPU stage (convolution, channel statistics, colormapped
//! grid). Readable rather than fast: tests and `--verify` compare the GPU against them.

use crate::graph::Graph;
use crate::grid::{self, BACKGROUND, Colormap, GridLayout, Norm};
use crate::network::{Conv2d, Network, Op};
use crate::tensor::{Shape, Tensor};
use anyhow::Result;

/// Direct 2-D convolution with bias, zero padding and stride, in f32:
/// `acc = bias`, then for ci, ky, kx in that order `acc += w · x`.
pub fn conv2d(input: &Tensor, conv: &Conv2d) -> Tensor {
    let s = input.shape;
    let (ho, wo) =
        (conv.out_len(s.h).expect("input smaller than kernel"), conv.out_len(s.w).expect("input smaller than kernel"));
    let k = conv.k;
    let mut out = Tensor::zeros(Shape::new(conv.cout, ho, wo));
    for co in 0..conv.cout {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut acc = conv.bias[co];
                for ci in 0..conv.cin {
                    for ky in 0..k {
                        let iy = (oy * conv.stride + ky) as isize - conv.pad as isize;
                        if iy < 0 || iy >= s.h as isize {
                            continue;
                        }
                        for kx in 0..k {
                            let ix = (ox * conv.stride + kx) as isize - conv.pad as isize;
                            if ix < 0 || ix >= s.w as isize {
                                continue;
                            }
                            let w = conv.weight[((co * conv.cin + ci) * k + ky) * k + kx];
                            acc += w * input.at(ci, iy as usize, ix as usize);
                        }
                    }
                }
                out.data[(co * ho + oy) * wo + ox] = acc;
            }
        }
    }
    out
}

pub mod graph_ops;
pub mod winograd;

/// Applies one single-input layer.
pub fn apply(input: &Tensor, op: &Op) -> Tensor {
    apply_n(&[input], op, None)
}

/// Applies one node to its inputs; `out` is its inferred output shape (needed by ops whose
/// output shape is not a function of the first input alone).
pub fn apply_n(inputs: &[&Tensor], op: &Op, out: Option<Shape>) -> Tensor {
    let input = inputs[0];
    let s = input.shape;
    let map = |f: &dyn Fn(usize, f32) -> f32| {
        let mut out = input.clone();
        for c in 0..s.c {
            for v in &mut out.data[c * s.plane()..(c + 1) * s.plane()] {
                *v = f(c, *v);
            }
        }
        out
    };
    match op {
        Op::Conv(c) => conv2d(input, c),
        Op::Relu => map(&|_, v| v.max(0.0)),
        Op::PRelu { slopes } => map(&|c, v| {
            let a = if slopes.len() == 1 { slopes[0] } else { slopes[c] };
            if v >= 0.0 { v } else { a * v }
        }),
        Op::BatchNorm { .. } => {
            let (alpha, beta) = op.batchnorm_affine().expect("a batchnorm");
            map(&|c, v| v * alpha[c] + beta[c])
        }
        Op::MaxPool { k, stride, ceil } => maxpool(input, *k, *stride, *ceil),
        _ => {
            let shapes: Vec<Shape> = inputs.iter().map(|t| t.shape).collect();
            let out =
                out.unwrap_or_else(|| crate::graph::shape_of(op, &shapes).expect("shapes were checked before the run"));
            apply_graph_op(inputs, op, out)
        }
    }
}

/// The ONNX-level ops.
fn apply_graph_op(inputs: &[&Tensor], op: &Op, out: Shape) -> Tensor {
    use graph_ops as g;
    let x = inputs[0];
    match op {
        Op::ConvG(c) => g::conv_general(x, c, out),
        Op::Unary(u) => Tensor::new(x.shape, x.data.iter().map(|&v| g::unary(*u, v)).collect()),
        Op::Binary { kind, constant } => {
            let owned;
            let b = match constant {
                Some((v, s)) => {
                    owned = Tensor::new(*s, v.clone());
                    &owned
                }
                None => inputs[1],
            };
            g::binary(*kind, x, b, out)
        }
        Op::Pool(p) => g::pool(x, p, out),
        Op::GlobalPool { max } => g::global_pool(x, *max),
        Op::Concat => g::concat(inputs, out),
        Op::SliceChannels { start, end } => {
            let p = x.shape.plane();
            Tensor::new(out, x.data[start * p..end * p].to_vec())
        }
        Op::Pad { pads, value } => g::pad(x, *pads, *value, out),
        Op::Resize(r) => g::resize(x, r),
        Op::Copy => Tensor::new(out, x.data.clone()),
        Op::ChannelShuffle { groups } => g::channel_shuffle(x, *groups),
        Op::Gemm { k, n, weight, bias } => g::gemm(x, *k, *n, weight, bias),
        Op::Softmax => g::softmax(x),
        Op::Conv(_) | Op::Relu | Op::PRelu { .. } | Op::BatchNorm { .. } | Op::MaxPool { .. } => {
            unreachable!("handled by apply_n")
        }
    }
}

/// Max pooling without padding (PyTorch semantics, `ceil_mode` included).
pub fn maxpool(input: &Tensor, k: usize, stride: usize, ceil: bool) -> Tensor {
    let s = input.shape;
    let ho = crate::network::pool_out_len(s.h, k, stride, ceil).expect("input smaller than the window");
    let wo = crate::network::pool_out_len(s.w, k, stride, ceil).expect("input smaller than the window");
    let mut out = Tensor::zeros(Shape::new(s.c, ho, wo));
    for c in 0..s.c {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut m = f32::NEG_INFINITY;
                for y in oy * stride..(oy * stride + k).min(s.h) {
                    for x in ox * stride..(ox * stride + k).min(s.w) {
                        m = m.max(input.at(c, y, x));
                    }
                }
                out.data[(c * ho + oy) * wo + ox] = m;
            }
        }
    }
    out
}

/// Every layer's output, in order.
pub fn forward(net: &Network, input: &Tensor) -> Result<Vec<Tensor>> {
    forward_graph(&net.graph(), input)
}

/// Every node's output of `graph` on `input`, in node order (the CPU twin of a run).
pub fn forward_graph(graph: &Graph, input: &Tensor) -> Result<Vec<Tensor>> {
    let inputs = graph.input_indices()?;
    let mut outs: Vec<Tensor> = Vec::with_capacity(graph.nodes.len());
    let shapes = graph.infer_shapes(input.shape)?;
    for (i, (node, ins)) in graph.nodes.iter().zip(&inputs).enumerate() {
        let xs: Vec<&Tensor> = ins.iter().map(|&t| if t == 0 { input } else { &outs[t - 1] }).collect();
        let y = apply_n(&xs, &node.op, Some(shapes[i + 1]));
        outs.push(y);
    }
    Ok(outs)
}

/// `(min, max)` of every channel.
pub fn channel_minmax(t: &Tensor) -> Vec<[f32; 2]> {
    (0..t.shape.c)
        .map(|c| t.channel(c).iter().fold([f32::INFINITY, f32::NEG_INFINITY], |[lo, hi], &v| [lo.min(v), hi.max(v)]))
        .collect()
}

/// Byte of a colour-tile value: identity `v·255` when the layer lies in [0, 1] (an 8-bit
/// image / 255), else the layer's min..max stretched to 0..255. Rounded half up.
pub fn colour_byte(v: f32, lo: f32, hi: f32) -> u8 {
    let t = if lo >= 0.0 && hi <= 1.0 {
        v
    } else if hi > lo {
        (v - lo) / (hi - lo)
    } else {
        0.0
    };
    (t.clamp(0.0, 1.0) * 255.0 + 0.5).floor() as u8
}

/// The layer drawn as a grid of colormapped tiles, RGBA8 row-major (CPU twin of
/// `colormap.wgsl`). With `colour = Some([r, g, b])` the first tile is the colour image
/// built from those channel indices and the channels follow it.
pub fn render_grid(
    t: &Tensor,
    stats: &[[f32; 2]],
    layout: &GridLayout,
    cmap: Colormap,
    norm: Norm,
    colour: Option<[usize; 3]>,
) -> Vec<u8> {
    let lut = cmap.lut();
    let (llo, lhi) = grid::layer_range(stats);
    let mut img = vec![0u8; layout.width * layout.height * 4];
    for gy in 0..layout.height {
        for gx in 0..layout.width {
            let px = match layout.hit(gx, gy) {
                None => BACKGROUND,
                Some((tile, y, x)) => match colour {
                    Some(rgb) if tile == 0 => {
                        let b = |c: usize| colour_byte(t.at(c, y, x), llo, lhi);
                        [b(rgb[0]), b(rgb[1]), b(rgb[2]), 255]
                    }
                    _ => {
                        let c = if colour.is_some() { tile - 1 } else { tile };
                        let (lo, hi) = grid::norm_range(norm, stats, c);
                        lut[grid::lut_index(t.at(c, y, x), lo, hi)]
                    }
                },
            };
            let o = (gy * layout.width + gx) * 4;
            img[o..o + 4].copy_from_slice(&px);
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_of_identity_kernel_is_shifted_input() {
        // 1x1 input channel, 3x3 kernel with a single 1 at (1, 2): out[y][x] = in[y+1][x+2].
        let mut weight = vec![0.0; 9];
        weight[5] = 1.0;
        let c = Conv2d { cin: 1, cout: 1, k: 3, stride: 1, pad: 0, weight, bias: vec![0.5] };
        let input = Tensor::new(Shape::new(1, 4, 5), (0..20).map(|v| v as f32).collect());
        let out = conv2d(&input, &c);
        assert_eq!(out.shape, Shape::new(1, 2, 3));
        assert_eq!(out.data, vec![7.5, 8.5, 9.5, 12.5, 13.5, 14.5]);
    }

    #[test]
    fn padding_reads_zeros() {
        let c = Conv2d { cin: 1, cout: 1, k: 3, stride: 2, pad: 1, weight: vec![1.0; 9], bias: vec![0.0] };
        let input = Tensor::new(Shape::new(1, 3, 3), vec![1.0; 9]);
        let out = conv2d(&input, &c);
        assert_eq!(out.shape, Shape::new(1, 2, 2));
        assert_eq!(out.data, vec![4.0, 4.0, 4.0, 4.0]);
    }

    #[test]
    fn pointwise_and_pool_ops() {
        let t =
            Tensor::new(Shape::new(2, 2, 3), vec![-1.0, 2.0, -3.0, 4.0, -5.0, 6.0, 1.0, -2.0, 3.0, -4.0, 5.0, -6.0]);
        assert_eq!(apply(&t, &Op::Relu).data[..3], [0.0, 2.0, 0.0]);
        let p = apply(&t, &Op::PRelu { slopes: vec![0.5, 0.25] });
        assert_eq!(p.data[..3], [-0.5, 2.0, -1.5]);
        assert_eq!(p.data[7], -0.5);
        let bn = Op::BatchNorm {
            weight: vec![2.0, 1.0],
            bias: vec![1.0, 0.0],
            mean: vec![1.0, 0.0],
            var: vec![3.0, 1.0],
            eps: 1.0,
        };
        let b = apply(&t, &bn);
        assert_eq!(b.data[1], (2.0 - 1.0) / 2.0 * 2.0 + 1.0);
        // 2x3 input, 2x2 windows with stride 2 and ceil: the right column is a partial window.
        let m = maxpool(&t, 2, 2, true);
        assert_eq!(m.shape, Shape::new(2, 1, 2));
        assert_eq!(m.data, vec![4.0, 6.0, 5.0, 3.0]);
        assert_eq!(maxpool(&t, 2, 2, false).shape, Shape::new(2, 1, 1));
    }

    #[test]
    fn grid_pixels() {
        let t = Tensor::new(Shape::new(2, 1, 2), vec![0.0, 1.0, 5.0, 5.0]);
        let stats = channel_minmax(&t);
        assert_eq!(stats, vec![[0.0, 1.0], [5.0, 5.0]]);
        let layout = GridLayout::with_rows_cols(2, 1, 2, 1, 2, 1);
        let img = render_grid(&t, &stats, &layout, Colormap::Viridis, Norm::PerChannel, None);
        let px = |x: usize, y: usize| {
            let o = (y * layout.width + x) * 4;
            [img[o], img[o + 1], img[o + 2], img[o + 3]]
        };
        let lut = Colormap::Viridis.lut();
        assert_eq!(px(0, 0), BACKGROUND);
        assert_eq!(px(1, 1), lut[0]);
        assert_eq!(px(2, 1), lut[255]);
        assert_eq!(px(4, 1), lut[0]); // constant channel: bottom colour
        assert_eq!(px(5, 1), lut[0]);
    }

    #[test]
    fn colour_bytes_are_exact_for_8_bit_input() {
        for u in 0..=255u8 {
            assert_eq!(colour_byte(u as f32 / 255.0, 0.0, 1.0), u);
        }
        assert_eq!(colour_byte(2.0, -2.0, 2.0), 255);
        assert_eq!(colour_byte(-2.0, -2.0, 2.0), 0);
    }
}

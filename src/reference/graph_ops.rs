//! CPU twins of the ONNX-level ops: general and transposed convolution, elementwise
//! functions, broadcasting arithmetic, pooling, concatenation, slicing, padding, resizing,
//! channel shuffle, Gemm and Softmax. Plain loops in the order the shaders accumulate.

use crate::graph::{BinKind, ConvG, CoordMode, NearestMode, Pool, Resize, Unary};
use crate::tensor::{Shape, Tensor};

/// `erf(x)`, Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), as the shader computes it.
pub fn erf(x: f32) -> f32 {
    let s = if x < 0.0 { -1.0 } else { 1.0 };
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_7) * t - 0.284_496_74) * t + 0.254_829_6) * t;
    s * (1.0 - p * (-a * a).exp())
}

/// One elementwise function.
pub fn unary(u: Unary, x: f32) -> f32 {
    match u {
        Unary::Clip { min, max } => x.max(min).min(max),
        Unary::LeakyRelu { alpha } => {
            if x >= 0.0 {
                x
            } else {
                alpha * x
            }
        }
        Unary::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Unary::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
        Unary::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        Unary::Tanh => x.tanh(),
        Unary::Erf => erf(x),
    }
}

/// Index into an operand of shape `s` broadcast to `out` at output (c, flat index i).
fn bcast(s: Shape, out: Shape, c: usize, i: usize) -> usize {
    if s == out {
        i
    } else if s.len() == 1 {
        0
    } else {
        c
    }
}

/// `a ∘ b` with broadcasting.
pub fn binary(kind: BinKind, a: &Tensor, b: &Tensor, out: Shape) -> Tensor {
    let mut t = Tensor::zeros(out);
    let plane = out.plane();
    for i in 0..out.len() {
        let c = i / plane;
        let x = a.data[bcast(a.shape, out, c, i)];
        let y = b.data[bcast(b.shape, out, c, i)];
        t.data[i] = match kind {
            BinKind::Add => x + y,
            BinKind::Sub => x - y,
            BinKind::Mul => x * y,
            BinKind::Div => x / y,
        };
    }
    t
}

/// General convolution (groups, dilation, asymmetric pads) or its transpose.
pub fn conv_general(x: &Tensor, c: &ConvG, out: Shape) -> Tensor {
    let s = x.shape;
    let (cin_g, cout_g) = (c.cin / c.groups, c.cout / c.groups);
    let mut t = Tensor::zeros(out);
    for co in 0..c.cout {
        let g = co / cout_g;
        for oy in 0..out.h {
            for ox in 0..out.w {
                let mut acc = c.bias.get(co).copied().unwrap_or(0.0);
                for cl in 0..cin_g {
                    let ci = g * cin_g + cl;
                    for ky in 0..c.kh {
                        for kx in 0..c.kw {
                            let (iy, ix, w) = if c.transpose {
                                let ny = oy as isize + c.pads[0] as isize - (ky * c.dilation[0]) as isize;
                                let nx = ox as isize + c.pads[1] as isize - (kx * c.dilation[1]) as isize;
                                let (sh, sw) = (c.stride[0] as isize, c.stride[1] as isize);
                                if ny < 0 || nx < 0 || ny % sh != 0 || nx % sw != 0 {
                                    continue;
                                }
                                let w = c.weight[((ci * cout_g + (co - g * cout_g)) * c.kh + ky) * c.kw + kx];
                                (ny / sh, nx / sw, w)
                            } else {
                                let iy = (oy * c.stride[0] + ky * c.dilation[0]) as isize - c.pads[0] as isize;
                                let ix = (ox * c.stride[1] + kx * c.dilation[1]) as isize - c.pads[1] as isize;
                                (iy, ix, c.weight[((co * cin_g + cl) * c.kh + ky) * c.kw + kx])
                            };
                            if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                continue;
                            }
                            acc += w * x.at(ci, iy as usize, ix as usize);
                        }
                    }
                }
                t.data[(co * out.h + oy) * out.w + ox] = acc;
            }
        }
    }
    t
}

/// ONNX MaxPool / AveragePool.
pub fn pool(x: &Tensor, p: &Pool, out: Shape) -> Tensor {
    let s = x.shape;
    let mut t = Tensor::zeros(out);
    for c in 0..s.c {
        for oy in 0..out.h {
            for ox in 0..out.w {
                let y0 = (oy * p.stride[0]) as isize - p.pads[0] as isize;
                let x0 = (ox * p.stride[1]) as isize - p.pads[1] as isize;
                let (mut m, mut sum, mut n, mut n_pad) = (f32::NEG_INFINITY, 0.0f32, 0usize, 0usize);
                for ky in 0..p.kernel[0] {
                    let iy = y0 + (ky * p.dilation[0]) as isize;
                    for kx in 0..p.kernel[1] {
                        let ix = x0 + (kx * p.dilation[1]) as isize;
                        // Positions inside the padded input count for count_include_pad.
                        if iy < (s.h + p.pads[2]) as isize && ix < (s.w + p.pads[3]) as isize {
                            n_pad += 1;
                        }
                        if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                            continue;
                        }
                        let v = x.at(c, iy as usize, ix as usize);
                        m = m.max(v);
                        sum += v;
                        n += 1;
                    }
                }
                let d = if p.count_include_pad { n_pad } else { n };
                t.data[(c * out.h + oy) * out.w + ox] = if p.max { m } else { sum / d.max(1) as f32 };
            }
        }
    }
    t
}

/// Mean or max over each channel's plane.
pub fn global_pool(x: &Tensor, max: bool) -> Tensor {
    let s = x.shape;
    let data = (0..s.c)
        .map(|c| {
            let ch = x.channel(c);
            if max {
                ch.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
            } else {
                ch.iter().sum::<f32>() / s.plane() as f32
            }
        })
        .collect();
    Tensor::new(Shape::new(s.c, 1, 1), data)
}

/// The inputs' channels one after the other.
pub fn concat(xs: &[&Tensor], out: Shape) -> Tensor {
    let mut data = Vec::with_capacity(out.len());
    for x in xs {
        data.extend_from_slice(&x.data);
    }
    Tensor::new(out, data)
}

/// Constant padding of H and W.
pub fn pad(x: &Tensor, pads: [usize; 4], value: f32, out: Shape) -> Tensor {
    let s = x.shape;
    let mut t = Tensor::new(out, vec![value; out.len()]);
    for c in 0..s.c {
        for y in 0..s.h {
            for xx in 0..s.w {
                t.data[(c * out.h + y + pads[0]) * out.w + xx + pads[1]] = x.at(c, y, xx);
            }
        }
    }
    t
}

/// The input coordinate of output coordinate `o` along an axis of `inn` → `out` values.
pub fn resize_coord(mode: CoordMode, o: usize, inn: usize, out: usize) -> f32 {
    let scale = out as f32 / inn as f32;
    match mode {
        CoordMode::HalfPixel => (o as f32 + 0.5) / scale - 0.5,
        CoordMode::PytorchHalfPixel if out > 1 => (o as f32 + 0.5) / scale - 0.5,
        CoordMode::PytorchHalfPixel => 0.0,
        CoordMode::Asymmetric => o as f32 / scale,
        CoordMode::AlignCorners if out > 1 => o as f32 * (inn - 1) as f32 / (out - 1) as f32,
        CoordMode::AlignCorners => 0.0,
    }
}

/// The nearest input index to coordinate `v` on an axis of `len` values.
pub fn nearest_index(mode: NearestMode, v: f32, len: usize) -> usize {
    let i = match mode {
        NearestMode::RoundPreferFloor => {
            if v.fract().abs() == 0.5 {
                v.floor()
            } else {
                v.round()
            }
        }
        NearestMode::RoundPreferCeil => {
            if v.fract().abs() == 0.5 {
                v.ceil()
            } else {
                v.round()
            }
        }
        NearestMode::Floor => v.floor(),
        NearestMode::Ceil => v.ceil(),
    };
    i.clamp(0.0, (len - 1) as f32) as usize
}

/// ONNX Resize of H and W, nearest or bilinear.
pub fn resize(x: &Tensor, r: &Resize) -> Tensor {
    let s = x.shape;
    let out = Shape::new(s.c, r.out_h, r.out_w);
    let mut t = Tensor::zeros(out);
    for c in 0..s.c {
        for oy in 0..r.out_h {
            let fy = resize_coord(r.coord, oy, s.h, r.out_h);
            for ox in 0..r.out_w {
                let fx = resize_coord(r.coord, ox, s.w, r.out_w);
                let v = if r.linear {
                    let (fy, fx) = (fy.clamp(0.0, (s.h - 1) as f32), fx.clamp(0.0, (s.w - 1) as f32));
                    let (y0, x0) = (fy.floor() as usize, fx.floor() as usize);
                    let (y1, x1) = ((y0 + 1).min(s.h - 1), (x0 + 1).min(s.w - 1));
                    let (dy, dx) = (fy - y0 as f32, fx - x0 as f32);
                    let top = x.at(c, y0, x0) * (1.0 - dx) + x.at(c, y0, x1) * dx;
                    let bottom = x.at(c, y1, x0) * (1.0 - dx) + x.at(c, y1, x1) * dx;
                    top * (1.0 - dy) + bottom * dy
                } else {
                    x.at(c, nearest_index(r.nearest, fy, s.h), nearest_index(r.nearest, fx, s.w))
                };
                t.data[(c * r.out_h + oy) * r.out_w + ox] = v;
            }
        }
    }
    t
}

/// Channel shuffle of `groups` groups.
pub fn channel_shuffle(x: &Tensor, groups: usize) -> Tensor {
    let s = x.shape;
    let per = s.c / groups;
    let mut t = Tensor::zeros(s);
    for oc in 0..s.c {
        let (a, b) = (oc / groups, oc % groups);
        let ic = b * per + a;
        t.data[oc * s.plane()..(oc + 1) * s.plane()].copy_from_slice(x.channel(ic));
    }
    t
}

/// `y = W x + b`, `W` as `[n][k]`.
pub fn gemm(x: &Tensor, k: usize, n: usize, w: &[f32], b: &[f32]) -> Tensor {
    let data = (0..n)
        .map(|j| {
            let mut acc = b.get(j).copied().unwrap_or(0.0);
            for i in 0..k {
                acc += w[j * k + i] * x.data[i];
            }
            acc
        })
        .collect();
    Tensor::new(Shape::new(n, 1, 1), data)
}

/// Softmax over all values.
pub fn softmax(x: &Tensor) -> Tensor {
    let m = x.data.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let e: Vec<f32> = x.data.iter().map(|&v| (v - m).exp()).collect();
    let sum: f32 = e.iter().sum();
    Tensor::new(x.shape, e.into_iter().map(|v| v / sum).collect())
}

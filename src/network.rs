//! Layer specifications, the default (tutorial) network and its weights from a seed.

use crate::tensor::Shape;
use crate::torch_init::{Mt19937, conv2d_default_init};
use anyhow::{Result, bail};

/// A 2-D convolution: `[cout, cin, k, k]` weights in PyTorch order, one bias per output.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2d {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Conv2d {
    /// Output size along one axis, or None when the (padded) input is smaller than the kernel.
    pub fn out_len(&self, len: usize) -> Option<usize> {
        let padded = len + 2 * self.pad;
        (padded >= self.k).then(|| (padded - self.k) / self.stride + 1)
    }
    /// FLOPs of one forward pass on `out` (multiply and add counted separately).
    pub fn flops(&self, out: Shape) -> f64 {
        2.0 * (self.cout * self.cin * self.k * self.k) as f64 * out.plane() as f64
    }
}

/// What a layer does.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Conv(Conv2d),
    /// `max(x, 0)`.
    Relu,
    /// `x` if `x >= 0`, else `slope[c] · x`; one slope for all channels or one per channel.
    PRelu {
        slopes: Vec<f32>,
    },
    /// Max over `k × k` windows every `stride` pixels, no padding; `ceil` rounds the output
    /// size up (PyTorch `ceil_mode=True`: a window that starts inside the input but runs past
    /// its edge takes the max of the part inside).
    MaxPool {
        k: usize,
        stride: usize,
        ceil: bool,
    },
    /// BatchNorm2d in eval mode: `(x − mean) / sqrt(var + eps) · weight + bias`.
    BatchNorm {
        weight: Vec<f32>,
        bias: Vec<f32>,
        mean: Vec<f32>,
        var: Vec<f32>,
        eps: f32,
    },
}

/// PyTorch's pooling output size along one axis (no padding, dilation 1).
pub fn pool_out_len(len: usize, k: usize, stride: usize, ceil: bool) -> Option<usize> {
    if len < k || stride == 0 {
        return None;
    }
    let span = len - k;
    let mut out = if ceil { span.div_ceil(stride) + 1 } else { span / stride + 1 };
    // The last window must start inside the input.
    if ceil && (out - 1) * stride >= len {
        out -= 1;
    }
    Some(out)
}

impl Op {
    /// The kind, as the HUD and errors name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv(_) => "conv",
            Op::Relu => "relu",
            Op::PRelu { .. } => "prelu",
            Op::MaxPool { .. } => "maxpool",
            Op::BatchNorm { .. } => "batchnorm",
        }
    }

    /// Per-channel scale and shift `(alpha, beta)` of a BatchNorm, computed as PyTorch's CPU
    /// inference does: `alpha = weight / sqrt(var + eps)`, `beta = bias − mean · alpha`.
    pub fn batchnorm_affine(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        let Op::BatchNorm { weight, bias, mean, var, eps } = self else { return None };
        let alpha: Vec<f32> = weight.iter().zip(var).map(|(w, v)| (1.0 / (v + eps).sqrt()) * w).collect();
        let beta = bias.iter().zip(mean).zip(&alpha).map(|((b, m), a)| b - m * a).collect();
        Some((alpha, beta))
    }

    /// Input rows `[lo, hi)` that output rows `[a, b)` depend on, for an input of `h` rows.
    pub fn input_rows(&self, a: usize, b: usize, h: usize) -> (usize, usize) {
        let (s, p, k) = match self {
            Op::Conv(c) => (c.stride as isize, c.pad as isize, c.k as isize),
            Op::MaxPool { k, stride, .. } => (*stride as isize, 0, *k as isize),
            _ => (1, 0, 1),
        };
        let (a, b, h) = (a as isize, b as isize, h as isize);
        let lo = (a * s - p).clamp(0, h);
        let hi = ((b - 1) * s + k - p).clamp(0, h);
        (lo as usize, hi.max(lo) as usize)
    }

    /// FLOPs of one forward pass producing `out` (multiply and add counted separately).
    pub fn flops(&self, out: Shape) -> f64 {
        match self {
            Op::Conv(c) => c.flops(out),
            Op::MaxPool { k, .. } => (k * k) as f64 * out.len() as f64,
            _ => 2.0 * out.len() as f64,
        }
    }
}

/// A named layer of the network.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub name: String,
    pub op: Op,
}

impl Layer {
    /// A short description of the operation and its parameters, for the HUD and logs.
    pub fn describe(&self) -> String {
        match &self.op {
            Op::Conv(c) => {
                let mut s = format!("Conv2d({}, {}, {})", c.cin, c.cout, c.k);
                if c.stride != 1 {
                    s += &format!(" stride {}", c.stride);
                }
                if c.pad != 0 {
                    s += &format!(" pad {}", c.pad);
                }
                s
            }
            Op::Relu => "ReLU".to_string(),
            Op::PRelu { slopes } => format!("PReLU({})", slopes.len()),
            Op::MaxPool { k, stride, ceil } => {
                format!("MaxPool2d({k}, {stride}{})", if *ceil { ", ceil_mode" } else { "" })
            }
            Op::BatchNorm { weight, eps, .. } => format!("BatchNorm2d({}, eps {eps:e}, eval)", weight.len()),
        }
    }

    /// The layer's parameters as `(name, shape, values)`, named as in a PyTorch state_dict.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>, &[f32])> {
        let n = &self.name;
        match &self.op {
            Op::Conv(c) => vec![
                (format!("{n}.weight"), vec![c.cout, c.cin, c.k, c.k], c.weight.as_slice()),
                (format!("{n}.bias"), vec![c.cout], c.bias.as_slice()),
            ],
            Op::PRelu { slopes } => vec![(format!("{n}.weight"), vec![slopes.len()], slopes.as_slice())],
            Op::BatchNorm { weight, bias, mean, var, .. } => vec![
                (format!("{n}.weight"), vec![weight.len()], weight.as_slice()),
                (format!("{n}.bias"), vec![bias.len()], bias.as_slice()),
                (format!("{n}.running_mean"), vec![mean.len()], mean.as_slice()),
                (format!("{n}.running_var"), vec![var.len()], var.as_slice()),
            ],
            Op::Relu | Op::MaxPool { .. } => vec![],
        }
    }
}

/// A chain of layers applied one after the other to a `[1, 3, H, W]` input.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub layers: Vec<Layer>,
}

/// `(cin, cout, k)` of the tutorial's three convolutions.
pub const TUTORIAL_CONVS: [(usize, usize, usize); 3] = [(3, 12, 5), (12, 24, 5), (24, 48, 5)];

impl Network {
    /// The tutorial's network, initialised as `torch.manual_seed(seed)` + three `nn.Conv2d`.
    pub fn tutorial(seed: i64) -> Self {
        let specs: Vec<(usize, usize, usize, usize, usize)> =
            TUTORIAL_CONVS.iter().map(|&(ci, co, k)| (ci, co, k, 1, 0)).collect();
        Self::seeded_convs(seed, &specs)
    }

    /// Convolutions `(cin, cout, k, stride, pad)` named conv1, conv2, ..., initialised in
    /// construction order from one generator seeded with `seed`.
    pub fn seeded_convs(seed: i64, specs: &[(usize, usize, usize, usize, usize)]) -> Self {
        let mut rng = Mt19937::new(seed);
        let layers = specs
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout, k, stride, pad))| {
                let (weight, bias) = conv2d_default_init(&mut rng, cin, cout, k);
                Layer {
                    name: format!("conv{}", i + 1),
                    op: Op::Conv(Conv2d { cin, cout, k, stride, pad, weight, bias }),
                }
            })
            .collect();
        Self { layers }
    }

    /// The shape after every layer for an input of `input` shape; a clear error when the
    /// channels do not chain or a layer's input is smaller than its window.
    pub fn shapes(&self, input: Shape) -> Result<Vec<Shape>> {
        let mut shapes = Vec::with_capacity(self.layers.len());
        let mut cur = input;
        for (i, layer) in self.layers.iter().enumerate() {
            let from = if i == 0 { "the input image".to_string() } else { self.layers[i - 1].name.clone() };
            let channels = |want: usize, what: &str| -> Result<()> {
                if cur.c != want {
                    bail!("{} ({what}) expects {want} input channels but {from} has {}", layer.name, cur.c);
                }
                Ok(())
            };
            let too_small = |need: usize| -> anyhow::Error {
                let what = if i == 0 {
                    format!("the image is {}x{}; use a larger image", cur.w, cur.h)
                } else {
                    format!("{from} produced {}x{}; use a larger image", cur.w, cur.h)
                };
                anyhow::anyhow!("{} needs at least {need}x{need} input, {what}", layer.name)
            };
            cur = match &layer.op {
                Op::Conv(c) => {
                    channels(c.cin, "conv")?;
                    let (Some(h), Some(w)) = (c.out_len(cur.h), c.out_len(cur.w)) else {
                        return Err(too_small(c.k.saturating_sub(2 * c.pad).max(1)));
                    };
                    Shape::new(c.cout, h, w)
                }
                Op::PRelu { slopes } => {
                    if slopes.len() != 1 {
                        channels(slopes.len(), "prelu")?;
                    }
                    cur
                }
                Op::BatchNorm { weight, .. } => {
                    channels(weight.len(), "batchnorm")?;
                    cur
                }
                Op::Relu => cur,
                Op::MaxPool { k, stride, ceil } => {
                    let (Some(h), Some(w)) =
                        (pool_out_len(cur.h, *k, *stride, *ceil), pool_out_len(cur.w, *k, *stride, *ceil))
                    else {
                        return Err(too_small(*k));
                    };
                    Shape::new(cur.c, h, w)
                }
            };
            shapes.push(cur);
        }
        Ok(shapes)
    }

    /// Fails when any parameter is NaN or infinite, naming the tensor.
    pub fn check_finite(&self) -> Result<()> {
        for layer in &self.layers {
            for (name, _, values) in layer.tensors() {
                if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                    bail!("weights file: {name} holds {} at element {i}; the network cannot be shown", values[i]);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tutorial_shapes_trim_four_pixels_per_layer() {
        let net = Network::tutorial(0);
        let s = net.shapes(Shape::new(3, 225, 400)).unwrap();
        assert_eq!(s, [Shape::new(12, 221, 396), Shape::new(24, 217, 392), Shape::new(48, 213, 388)]);
    }

    #[test]
    fn too_small_names_layer_and_sizes() {
        let net = Network::tutorial(0);
        let e = net.shapes(Shape::new(3, 9, 9)).unwrap_err().to_string();
        assert!(e.starts_with("conv3 needs at least 5x5 input, conv2 produced 1x1"), "{e}");
        let e = net.shapes(Shape::new(3, 5, 4)).unwrap_err().to_string();
        assert!(e.starts_with("conv1 needs at least 5x5 input, the image is 4x5"), "{e}");
    }

    #[test]
    fn pool_sizes_follow_pytorch() {
        assert_eq!(pool_out_len(94, 3, 2, true), Some(47));
        assert_eq!(pool_out_len(45, 3, 2, true), Some(22));
        assert_eq!(pool_out_len(20, 2, 2, true), Some(10));
        assert_eq!(pool_out_len(61, 2, 2, false), Some(30));
        assert_eq!(pool_out_len(15, 3, 2, true), Some(7));
        assert_eq!(pool_out_len(4, 3, 2, true), Some(2)); // last window starts inside
        assert_eq!(pool_out_len(3, 2, 2, true), Some(2));
        assert_eq!(pool_out_len(2, 3, 2, true), None);
    }

    #[test]
    fn stride_and_padding_shapes() {
        let net = Network::seeded_convs(0, &[(3, 12, 5, 2, 2)]);
        assert_eq!(net.shapes(Shape::new(3, 37, 53)).unwrap(), [Shape::new(12, 19, 27)]);
    }
}

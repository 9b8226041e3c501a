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
    /// channels do not chain or a layer's input is smaller than its kernel.
    pub fn shapes(&self, input: Shape) -> Result<Vec<Shape>> {
        let mut shapes = Vec::with_capacity(self.layers.len());
        let mut cur = input;
        for (i, layer) in self.layers.iter().enumerate() {
            let from = if i == 0 { "the input image".to_string() } else { self.layers[i - 1].name.clone() };
            match &layer.op {
                Op::Conv(c) => {
                    if cur.c != c.cin {
                        bail!("{} expects {} input channels but {} has {}", layer.name, c.cin, from, cur.c);
                    }
                    let (Some(h), Some(w)) = (c.out_len(cur.h), c.out_len(cur.w)) else {
                        let need = c.k.saturating_sub(2 * c.pad).max(1);
                        let what = if i == 0 {
                            format!("the image is {}x{}; use a larger image", cur.w, cur.h)
                        } else {
                            format!("{from} produced {}x{}; use a larger image", cur.w, cur.h)
                        };
                        bail!("{} needs at least {need}x{need} input, {what}", layer.name);
                    };
                    cur = Shape::new(c.cout, h, w);
                }
            }
            shapes.push(cur);
        }
        Ok(shapes)
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
    fn stride_and_padding_shapes() {
        let net = Network::seeded_convs(0, &[(3, 12, 5, 2, 2)]);
        assert_eq!(net.shapes(Shape::new(3, 37, 53)).unwrap(), [Shape::new(12, 19, 27)]);
    }
}

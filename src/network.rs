//! A chain of named layers (what `--arch`, `--weights` and the tutorial describe), the
//! tutorial network with its weights from a seed, and the chain as a [`Graph`].

pub use crate::graph::{Conv2d, Op, pool_out_len};
use crate::graph::{Graph, INPUT, Node};
use crate::tensor::Shape;
use crate::torch_init::{Mt19937, conv2d_default_init};
use anyhow::{Result, bail};

/// A named layer of the network.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub name: String,
    pub op: Op,
}

impl Layer {
    /// A short description of the operation and its parameters, for the HUD and logs.
    pub fn describe(&self) -> String {
        self.op.describe()
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
            _ => vec![],
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

    /// The chain as a graph with one path: layer `i` reads layer `i − 1`'s output (the
    /// input for the first) and writes a tensor named after the layer.
    pub fn graph(&self) -> Graph {
        let mut prev = INPUT.to_string();
        let nodes = self
            .layers
            .iter()
            .map(|l| {
                let n =
                    Node { name: l.name.clone(), op: l.op.clone(), inputs: vec![prev.clone()], output: l.name.clone() };
                prev = l.name.clone();
                n
            })
            .collect();
        Graph { input: INPUT.to_string(), nodes }
    }

    /// The shape after every layer for an input of `input` shape; a clear error when the
    /// channels do not chain or a layer's input is smaller than its window.
    pub fn shapes(&self, input: Shape) -> Result<Vec<Shape>> {
        let mut s = self.graph().infer_shapes(input)?;
        s.remove(0);
        Ok(s)
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

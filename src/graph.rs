//! The network as a graph: nodes in topological order, each an [`Op`] reading named tensors
//! and writing one, with every tensor's shape inferred before anything runs. A chain
//! (`--arch`, `--weights`, the tutorial) is a graph with one path.

use crate::tensor::Shape;
use anyhow::{Result, anyhow, bail};
use std::collections::HashMap;

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

    /// A short description of the operation and its parameters, for the HUD and logs.
    pub fn describe(&self) -> String {
        match self {
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

/// One node: `op` applied to the tensors named `inputs`, writing the tensor `output`.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The node's display name (a page in the viewer).
    pub name: String,
    pub op: Op,
    pub inputs: Vec<String>,
    pub output: String,
}

/// Nodes over named tensors, in topological order; `input` names the image tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    pub input: String,
    pub nodes: Vec<Node>,
}

/// The tensor name a chain gives the input image.
pub const INPUT: &str = "input";

impl Graph {
    /// Checks that every node reads tensors defined before it and that no tensor is written
    /// twice (the graph is in topological order and acyclic).
    pub fn validate(&self) -> Result<()> {
        let mut defined: HashMap<&str, usize> = HashMap::new();
        defined.insert(self.input.as_str(), 0);
        for (i, n) in self.nodes.iter().enumerate() {
            if n.inputs.is_empty() {
                bail!("node {} has no input", n.name);
            }
            for t in &n.inputs {
                if !defined.contains_key(t.as_str()) {
                    bail!("node {} reads {t}, which no earlier node produces", n.name);
                }
            }
            if defined.insert(n.output.as_str(), i + 1).is_some() {
                bail!("node {} writes {}, which is already defined", n.name, n.output);
            }
        }
        Ok(())
    }

    /// Index (0 = the graph input, i + 1 = node i's output) of the tensor called `name`.
    pub fn tensor_index(&self, name: &str) -> Option<usize> {
        if name == self.input {
            return Some(0);
        }
        self.nodes.iter().position(|n| n.output == name).map(|i| i + 1)
    }

    /// The tensors each node reads, as tensor indices (see [`Graph::tensor_index`]).
    pub fn input_indices(&self) -> Result<Vec<Vec<usize>>> {
        self.validate()?;
        let mut index: HashMap<&str, usize> = HashMap::new();
        index.insert(self.input.as_str(), 0);
        for (i, n) in self.nodes.iter().enumerate() {
            index.insert(n.output.as_str(), i + 1);
        }
        Ok(self.nodes.iter().map(|n| n.inputs.iter().map(|t| index[t.as_str()]).collect()).collect())
    }

    /// True when every node reads the previous node's output (or the input, for the first).
    pub fn is_chain(&self) -> bool {
        self.nodes.iter().enumerate().all(|(i, n)| {
            let prev = if i == 0 { &self.input } else { &self.nodes[i - 1].output };
            n.inputs.len() == 1 && &n.inputs[0] == prev
        })
    }

    /// The shape of every tensor (index 0 the input, then each node's output) for an input
    /// of shape `input`; a clear error naming the node when channels do not match or a
    /// tensor is smaller than a window.
    pub fn infer_shapes(&self, input: Shape) -> Result<Vec<Shape>> {
        let inputs = self.input_indices()?;
        let mut shapes = vec![input];
        for (i, node) in self.nodes.iter().enumerate() {
            let src = inputs[i][0];
            let cur = shapes[src];
            let from = if src == 0 { "the input image".to_string() } else { self.nodes[src - 1].name.clone() };
            shapes.push(infer_one(&node.name, &node.op, cur, &from, src == 0)?);
        }
        Ok(shapes)
    }
}

/// The output shape of `op` named `name` on an input of shape `cur` coming from `from`.
fn infer_one(name: &str, op: &Op, cur: Shape, from: &str, from_image: bool) -> Result<Shape> {
    let channels = |want: usize, what: &str| -> Result<()> {
        if cur.c != want {
            bail!("{name} ({what}) expects {want} input channels but {from} has {}", cur.c);
        }
        Ok(())
    };
    let too_small = |need: usize| -> anyhow::Error {
        let what = if from_image {
            format!("the image is {}x{}; use a larger image", cur.w, cur.h)
        } else {
            format!("{from} produced {}x{}; use a larger image", cur.w, cur.h)
        };
        anyhow!("{name} needs at least {need}x{need} input, {what}")
    };
    Ok(match op {
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
            let (Some(h), Some(w)) = (pool_out_len(cur.h, *k, *stride, *ceil), pool_out_len(cur.w, *k, *stride, *ceil))
            else {
                return Err(too_small(*k));
            };
            Shape::new(cur.c, h, w)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, input: &str) -> Node {
        Node { name: name.into(), op: Op::Relu, inputs: vec![input.into()], output: format!("{name}.out") }
    }

    #[test]
    fn validation_refuses_unknown_inputs_and_redefinitions() {
        let g = Graph { input: INPUT.into(), nodes: vec![node("a", INPUT), node("b", "a.out")] };
        assert!(g.validate().is_ok());
        assert!(g.is_chain());
        assert_eq!(g.input_indices().unwrap(), vec![vec![0], vec![1]]);
        let g = Graph { input: INPUT.into(), nodes: vec![node("a", "b.out"), node("b", "a.out")] };
        assert!(g.validate().unwrap_err().to_string().contains("no earlier node"));
        let mut dup = node("c", INPUT);
        dup.output = INPUT.into();
        let g = Graph { input: INPUT.into(), nodes: vec![dup] };
        assert!(g.validate().unwrap_err().to_string().contains("already defined"));
    }

    #[test]
    fn branches_are_not_chains_and_shapes_follow_each_input() {
        let g = Graph { input: INPUT.into(), nodes: vec![node("a", INPUT), node("b", INPUT)] };
        assert!(!g.is_chain());
        let s = g.infer_shapes(Shape::new(3, 4, 5)).unwrap();
        assert_eq!(s, vec![Shape::new(3, 4, 5); 3]);
    }
}

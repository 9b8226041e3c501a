//! The network as a graph: nodes in topological order, each an [`Op`] reading named tensors
//! and writing one, with every tensor's shape inferred before anything runs. A chain
//! (`--arch`, `--weights`, the tutorial) is a graph with one path.

use crate::tensor::Shape;
use anyhow::{Result, bail};
use std::collections::HashMap;

mod op;
mod shape;

pub use shape::broadcast;

/// The output shape of `op` on inputs of `shapes` (for callers outside a graph).
pub fn shape_of(op: &Op, shapes: &[Shape]) -> Result<Shape> {
    shape::infer_one(op.kind(), op, shapes, "its input", false)
}

pub use op::*;

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

    /// True when every node reads the previous node's output (or the input, for the first)
    /// and every op can run in row bands.
    pub fn is_bandable_chain(&self) -> bool {
        self.is_chain() && self.nodes.iter().all(|n| n.op.bandable())
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
            let ins: Vec<Shape> = inputs[i].iter().map(|&t| shapes[t]).collect();
            let from = if src == 0 { "the input image".to_string() } else { self.nodes[src - 1].name.clone() };
            shapes.push(shape::infer_one(&node.name, &node.op, &ins, &from, src == 0)?);
        }
        Ok(shapes)
    }
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

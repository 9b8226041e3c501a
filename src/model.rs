//! An ONNX model ready to run on one input: the file parsed, the input prepared, the graph
//! lowered for that input's size, the pages (nodes whose output is an image-shaped
//! `[1,C,H,W]` tensor) and the output that holds the predictions. The CLI and the viewer
//! use it the same way.

use crate::graph::Graph;
use crate::onnx::lower::Lowered;
use crate::onnx::{HostTensor, Model};
use crate::source::{Input, Source};
use anyhow::{Result, anyhow};
use std::collections::HashMap;

/// A model lowered for one input.
pub struct Prepared {
    pub model: Model,
    pub input: Input,
    pub graph: Graph,
    /// ONNX dims of every GPU tensor.
    pub dims: HashMap<String, Vec<usize>>,
    /// Float values folded on the host.
    pub folded: Vec<(String, HostTensor)>,
    /// Tensor indices (0 = input, i + 1 = node i) of the pages, in graph order.
    pub pages: Vec<usize>,
    /// The tensor index holding class scores (`[1,N]` or `[1,N,1,1]`), if any, and whether
    /// it is already a softmax.
    pub scores: Option<(usize, bool)>,
    /// Labels: the model's metadata, else `--labels`.
    pub labels: Option<Vec<String>>,
}

impl Prepared {
    /// Loads `source.model`, prepares the input and lowers the graph; every refusal happens
    /// here, before any GPU work.
    pub fn new(source: &Source) -> Result<Prepared> {
        let path = source.model.as_ref().ok_or_else(|| anyhow!("no --model given"))?;
        let model = Model::load(path)?;
        let input = source.load_model_input(&model)?;
        let s = input.tensor.shape;
        let lowered: Lowered = model.lower(&[1, s.c, s.h, s.w]).map_err(|e| anyhow!("{}: {e:#}", path.display()))?;
        let graph = lowered.graph;
        graph.infer_shapes(s).map_err(|e| anyhow!("{}: {e:#}", path.display()))?;
        let dims = lowered.dims;
        let four_d = |name: &str| dims.get(name).is_some_and(|d| d.len() == 4);
        let pages = std::iter::once(0)
            .chain(graph.nodes.iter().enumerate().filter(|(_, n)| four_d(&n.output)).map(|(i, _)| i + 1))
            .collect();
        let is_scores = |d: &Vec<usize>| matches!(d.as_slice(), [1, n] | [1, n, 1, 1] if *n > 1);
        let scores = model.outputs.iter().chain(graph.nodes.iter().rev().map(|n| &n.output)).find_map(|o| {
            let i = graph.nodes.iter().position(|n| &n.output == o)?;
            is_scores(dims.get(o)?).then(|| (i + 1, matches!(graph.nodes[i].op, crate::graph::Op::Softmax)))
        });
        let labels = match (&model.labels, &source.labels) {
            (Some(l), _) => Some(l.clone()),
            (None, Some(p)) => Some(crate::predict::read_labels(p)?),
            (None, None) => None,
        };
        Ok(Prepared { model, input, graph, dims, folded: lowered.folded, pages, scores, labels })
    }

    /// Tensors a viewer or export keeps readable: the pages and the scores.
    pub fn kept(&self) -> Vec<usize> {
        let mut k = self.pages.clone();
        k.extend(self.scores.map(|s| s.0));
        k
    }

    /// The ONNX dims of tensor `t` (0 = input).
    pub fn dims_of(&self, t: usize) -> Vec<usize> {
        let name = if t == 0 { &self.graph.input } else { &self.graph.nodes[t - 1].output };
        self.dims.get(name).cloned().unwrap_or_default()
    }
}

/// A file name for a page: `NNN-<node name>` with anything but letters, digits, `-`, `_`
/// and `.` replaced by `_`.
pub fn page_file(index: usize, name: &str) -> String {
    format!("{index:03}-{}", page_file_name(name))
}

/// `<node name>.png`, the name made [`file_safe`].
pub fn page_file_name(name: &str) -> String {
    format!("{}.png", file_safe(name))
}

/// A node name usable in a file name: anything but letters, digits, `-`, `_` and `.`
/// becomes `_` (a leading `/` is dropped).
pub fn file_safe(name: &str) -> String {
    name.trim_start_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn page_files_are_safe_names() {
        assert_eq!(super::page_file(7, "/layer1/layer1.0/conv1/Conv"), "007-layer1_layer1.0_conv1_Conv.png");
        assert_eq!(super::page_file(12, "../x y"), "012-.._x_y.png");
    }
}

//! ONNX models: the file parsed with prost (messages in `proto`), weights decoded (raw,
//! typed and external data), nodes sorted topologically, labels taken from the metadata;
//! then, for one input size, lowered to convscope's graph (`lower`) with constant subgraphs
//! folded on the host (`fold`).

pub mod attrs;
pub mod fold;
pub mod lower;
pub mod op_attrs;
pub mod proto;
pub mod tensor;

use anyhow::{Context as _, Result, anyhow, bail};
use attrs::Attrs;
use prost::Message as _;
use std::collections::{HashMap, HashSet};
use std::path::Path;
pub use tensor::HostTensor;

/// The opsets convscope reads (of the default domain).
pub const OPSETS: std::ops::RangeInclusive<i64> = 7..=21;

/// A node of the file.
#[derive(Clone, Debug)]
pub struct ModelNode {
    pub name: String,
    pub op: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: Attrs,
}

/// A parsed ONNX model.
#[derive(Clone, Debug)]
pub struct Model {
    /// The image input's name and its declared dims (None: dynamic).
    pub input: String,
    pub input_dims: Vec<Option<usize>>,
    pub initializers: HashMap<String, HostTensor>,
    /// Nodes in topological order.
    pub nodes: Vec<ModelNode>,
    /// Class labels from the metadata (`character` as PaddleOCR/PaddleClas export them, or
    /// `labels`), one per line.
    pub labels: Option<Vec<String>>,
    pub opset: i64,
    pub producer: String,
    /// The graph's declared outputs.
    pub outputs: Vec<String>,
}

impl Model {
    /// Reads and checks an ONNX file; external data is resolved inside its folder.
    pub fn load(path: &Path) -> Result<Model> {
        let bytes = std::fs::read(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
        let dir = path.parent().map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
        Self::from_bytes(&bytes, &dir).with_context(|| format!("{}", path.display()))
    }

    /// Parses a model from bytes; `dir` is where external data lives.
    pub fn from_bytes(bytes: &[u8], dir: &Path) -> Result<Model> {
        if bytes.is_empty() {
            bail!("the file is empty; give an .onnx model");
        }
        let m = proto::ModelProto::decode(bytes)
            .map_err(|e| anyhow!("not an ONNX model (cannot decode it: {e}); is the file complete?"))?;
        let g = m.graph.ok_or_else(|| anyhow!("not an ONNX model: it has no graph"))?;
        if g.node.is_empty() {
            bail!("the model's graph has no nodes");
        }
        let opset =
            m.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(0, |o| o.version);
        if opset < *OPSETS.start() {
            bail!(
                "opset {opset}; convscope reads opsets {}–{} (re-export the model with a newer opset)",
                OPSETS.start(),
                OPSETS.end()
            );
        }
        if opset > *OPSETS.end() {
            log::warn!("opset {opset} is newer than {}; reading it as opset {}", OPSETS.end(), OPSETS.end());
        }
        let mut initializers = HashMap::new();
        for t in &g.initializer {
            initializers.insert(t.name.clone(), HostTensor::from_proto(t, dir)?);
        }
        let images: Vec<&proto::ValueInfoProto> =
            g.input.iter().filter(|i| !initializers.contains_key(&i.name)).collect();
        let input = match images.as_slice() {
            [one] => *one,
            [] => bail!("the model has no input to feed an image to"),
            more => bail!(
                "the model has {} inputs ({}); convscope feeds one image",
                more.len(),
                more.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        };
        let input_dims = declared_dims(input)?;
        let nodes = g
            .node
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let op = if n.domain.is_empty() || n.domain == "ai.onnx" {
                    n.op_type.clone()
                } else {
                    format!("{}:{}", n.domain, n.op_type)
                };
                Ok(ModelNode {
                    name: if n.name.is_empty() { format!("{}_{i}", n.op_type) } else { n.name.clone() },
                    op,
                    inputs: n.input.clone(),
                    outputs: n.output.clone(),
                    attrs: Attrs::new(&n.attribute, dir)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let known: HashSet<String> = initializers.keys().cloned().chain([input.name.clone()]).collect();
        let nodes = topo_sort(nodes, &known)?;
        let meta = |k: &str| m.metadata_props.iter().find(|p| p.key == k).map(|p| p.value.clone());
        let labels = meta("character").or_else(|| meta("labels")).map(|v| v.lines().map(str::to_string).collect());
        Ok(Model {
            input: input.name.clone(),
            input_dims,
            initializers,
            nodes,
            labels,
            opset,
            producer: m.producer_name,
            outputs: g.output.iter().map(|o| o.name.clone()).collect(),
        })
    }

    /// `[C, H, W]` the model declares for its input (None where dynamic).
    pub fn declared_chw(&self) -> [Option<usize>; 3] {
        let d = &self.input_dims;
        [d.get(1).copied().flatten(), d.get(2).copied().flatten(), d.get(3).copied().flatten()]
    }
}

/// The declared dims of an input; a dynamic batch counts as 1.
fn declared_dims(v: &proto::ValueInfoProto) -> Result<Vec<Option<usize>>> {
    let t = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
    let Some(t) = t else { bail!("input {:?} is not a tensor", v.name) };
    if t.elem_type != proto::dtype::FLOAT {
        bail!("input {:?} has element type {}; convscope feeds a float image", v.name, t.elem_type);
    }
    let dims: Vec<Option<usize>> = t
        .shape
        .as_ref()
        .map(|s| s.dim.iter().map(|d| d.dim_value.filter(|&v| v > 0).map(|v| v as usize)).collect())
        .unwrap_or_default();
    if !dims.is_empty() && dims.len() != 4 {
        bail!("input {:?} has {} dimensions; convscope feeds an image [1,C,H,W]", v.name, dims.len());
    }
    if let Some(Some(n)) = dims.first()
        && *n != 1
    {
        bail!("input {:?} has batch {n}; convscope runs batch 1", v.name);
    }
    Ok(dims)
}

/// Kahn's algorithm, keeping the file's order among ready nodes; a cycle or an input no node
/// produces is refused.
fn topo_sort(nodes: Vec<ModelNode>, known: &HashSet<String>) -> Result<Vec<ModelNode>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in n.outputs.iter().filter(|o| !o.is_empty()) {
            if producer.insert(o, i).is_some() || known.contains(o) {
                bail!("the value {o:?} is produced twice (node {})", n.name);
            }
        }
    }
    let mut deps: Vec<usize> = vec![0; nodes.len()];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for input in n.inputs.iter().filter(|s| !s.is_empty()) {
            match producer.get(input.as_str()) {
                Some(&p) => {
                    deps[i] += 1;
                    users[p].push(i);
                }
                None if known.contains(input) => {}
                None => bail!("node {} reads {input:?}, which no node, initializer or input provides", n.name),
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..nodes.len()).filter(|&i| deps[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &u in &users[i] {
            deps[u] -= 1;
            if deps[u] == 0 {
                ready.insert(u);
            }
        }
    }
    if order.len() != nodes.len() {
        let stuck: Vec<&str> =
            (0..nodes.len()).filter(|i| !order.contains(i)).map(|i| nodes[i].name.as_str()).take(5).collect();
        bail!("the graph has a cycle (through {})", stuck.join(", "));
    }
    let mut slots: Vec<Option<ModelNode>> = nodes.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ins: &[&str], outs: &[&str]) -> ModelNode {
        ModelNode {
            name: name.into(),
            op: "Relu".into(),
            inputs: ins.iter().map(|s| s.to_string()).collect(),
            outputs: outs.iter().map(|s| s.to_string()).collect(),
            attrs: Attrs::default(),
        }
    }

    #[test]
    fn nodes_are_sorted_and_cycles_refused() {
        let known: HashSet<String> = ["x".to_string()].into();
        let sorted = topo_sort(vec![node("b", &["a"], &["b"]), node("a", &["x"], &["a"])], &known).unwrap();
        assert_eq!(sorted.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let e = topo_sort(vec![node("a", &["b"], &["a"]), node("b", &["a"], &["b"])], &known).unwrap_err();
        assert!(e.to_string().contains("cycle"), "{e}");
        let e = topo_sort(vec![node("a", &["nope"], &["a"])], &known).unwrap_err();
        assert!(e.to_string().contains("no node, initializer or input"), "{e}");
    }

    #[test]
    fn garbage_and_empty_files_are_refused() {
        let e = Model::from_bytes(b"", Path::new(".")).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = Model::from_bytes(b"\xff\xff\xff\xff not protobuf", Path::new(".")).unwrap_err().to_string();
        assert!(e.contains("not an ONNX model"), "{e}");
    }
}

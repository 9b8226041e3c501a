//! Lowering an ONNX graph to convscope's graph for one input size: nodes in topological
//! order, constant subgraphs folded on the host, every other node turned into a
//! [`graph::Op`](crate::graph::Op) over tensors whose ONNX shapes are tracked, and anything
//! unsupported refused with the node, the op and what is supported.

use super::fold::{self, FOLDABLE, axis, reshape_dims};
use super::tensor::HostTensor;
mod ops;

pub use super::op_attrs::gpu_shape;
use super::op_attrs::{constant, pool};
use super::{Model, ModelNode};
use crate::graph::{BinKind, Graph, Node, Op, Unary};
use anyhow::{Result, anyhow, bail};
use ops::{conv, resize};
use std::collections::HashMap;

/// ONNX ops convscope runs on the GPU (besides those folded on the host).
pub const SUPPORTED: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "BatchNormalization",
    "Relu",
    "Clip",
    "LeakyRelu",
    "PRelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Erf",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Sum",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "ReduceMean",
    "Concat",
    "Split",
    "Slice",
    "Pad",
    "Resize",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Transpose",
    "Gemm",
    "MatMul",
    "Softmax",
    "Identity",
    "Dropout",
];

/// A value during lowering: known on the host, or computed on the GPU with these ONNX dims.
#[derive(Clone, Debug)]
enum Val {
    Const(HostTensor),
    Dyn(Vec<usize>),
}

/// The lowered graph of one input size.
pub struct Lowered {
    pub graph: Graph,
    /// The ONNX dims of every GPU tensor (the input and each node's output).
    pub dims: HashMap<String, Vec<usize>>,
    /// Float values folded on the host, by ONNX value name (exported with `--tensors`).
    pub folded: Vec<(String, HostTensor)>,
    /// For each graph node, the ONNX node it stands for.
    pub origin: Vec<usize>,
}

struct Lowering {
    vals: HashMap<String, Val>,
    nodes: Vec<Node>,
    origin: Vec<usize>,
    folded: Vec<(String, HostTensor)>,
}

impl Model {
    /// Lowers the model for an input of `dims` (`[1,C,H,W]`).
    pub fn lower(&self, input_dims: &[usize]) -> Result<Lowered> {
        let mut l = Lowering {
            vals: self.initializers.iter().map(|(k, v)| (k.clone(), Val::Const(v.clone()))).collect(),
            nodes: Vec::new(),
            origin: Vec::new(),
            folded: Vec::new(),
        };
        l.vals.insert(self.input.clone(), Val::Dyn(input_dims.to_vec()));
        for (i, n) in self.nodes.iter().enumerate() {
            l.node(i, n).map_err(|e| anyhow!("node {} ({}): {e:#}", n.name, n.op))?;
        }
        let mut dims = HashMap::new();
        dims.insert(self.input.clone(), input_dims.to_vec());
        for n in &l.nodes {
            if let Some(Val::Dyn(d)) = l.vals.get(&n.output) {
                dims.insert(n.output.clone(), d.clone());
            }
        }
        let graph = Graph { input: self.input.clone(), nodes: l.nodes };
        graph.validate()?;
        Ok(Lowered { graph, dims, folded: l.folded, origin: l.origin })
    }
}

impl Lowering {
    fn val(&self, name: &str) -> Result<&Val> {
        self.vals.get(name).ok_or_else(|| anyhow!("input {name:?} is produced by no node and is no initializer"))
    }

    fn konst(&self, name: &str, what: &str) -> Result<&HostTensor> {
        match self.val(name)? {
            Val::Const(t) => Ok(t),
            Val::Dyn(_) => bail!("{what} ({name}) must be a constant (a weight or a folded value)"),
        }
    }

    fn opt_const(&self, n: &ModelNode, i: usize, what: &str) -> Result<Option<&HostTensor>> {
        match n.inputs.get(i).filter(|s| !s.is_empty()) {
            Some(name) => self.konst(name, what).map(Some),
            None => Ok(None),
        }
    }

    fn dyn_dims(&self, name: &str) -> Result<Vec<usize>> {
        match self.val(name)? {
            Val::Dyn(d) => Ok(d.clone()),
            Val::Const(t) => Ok(t.dims.clone()),
        }
    }

    /// Adds a GPU node computing `output` (ONNX dims `dims`) from `inputs`.
    fn emit(
        &mut self,
        origin: usize,
        name: String,
        op: Op,
        inputs: Vec<String>,
        output: &str,
        dims: Vec<usize>,
    ) -> Result<()> {
        for i in &inputs {
            if matches!(self.val(i)?, Val::Const(_)) {
                bail!("{i} is a constant where convscope expects a computed tensor");
            }
        }
        gpu_shape(&dims, output)?;
        self.vals.insert(output.to_string(), Val::Dyn(dims));
        self.nodes.push(Node { name, op, inputs, output: output.to_string() });
        self.origin.push(origin);
        Ok(())
    }

    fn node(&mut self, idx: usize, n: &ModelNode) -> Result<()> {
        let a = &n.attrs;
        if self.fold_node(n)? {
            return Ok(());
        }
        let out = n.outputs.first().ok_or_else(|| anyhow!("no output"))?.clone();
        let x = n.inputs.first().cloned().unwrap_or_default();
        let xd = self.dyn_dims(&x)?;
        let name = n.name.clone();
        match n.op.as_str() {
            "Conv" | "ConvTranspose" => {
                let c = conv(self, n, &xd)?;
                let shape = crate::graph::shape_of(&Op::ConvG(c.clone()), &[gpu_shape(&xd, &x)?])?;
                self.emit(idx, name, Op::ConvG(c), vec![x], &out, vec![1, shape.c, shape.h, shape.w])
            }
            "BatchNormalization" => {
                let g = |i: usize, w: &str| -> Result<Vec<f32>> { Ok(self.konst(&n.inputs[i], w)?.as_f32()) };
                let op = Op::BatchNorm {
                    weight: g(1, "scale")?,
                    bias: g(2, "bias")?,
                    mean: g(3, "mean")?,
                    var: g(4, "variance")?,
                    eps: a.float("epsilon", 1e-5),
                };
                self.emit(idx, name, op, vec![x], &out, xd)
            }
            "Relu" => self.emit(idx, name, Op::Relu, vec![x], &out, xd),
            "Clip" => {
                let min = self.opt_const(n, 1, "min")?.map_or(a.float("min", f32::MIN), |t| t.as_f32()[0]);
                let max = self.opt_const(n, 2, "max")?.map_or(a.float("max", f32::MAX), |t| t.as_f32()[0]);
                self.emit(idx, name, Op::Unary(Unary::Clip { min, max }), vec![x], &out, xd)
            }
            "LeakyRelu" => {
                self.emit(idx, name, Op::Unary(Unary::LeakyRelu { alpha: a.float("alpha", 0.01) }), vec![x], &out, xd)
            }
            "Sigmoid" => self.emit(idx, name, Op::Unary(Unary::Sigmoid), vec![x], &out, xd),
            "HardSigmoid" => {
                let u = Unary::HardSigmoid { alpha: a.float("alpha", 0.2), beta: a.float("beta", 0.5) };
                self.emit(idx, name, Op::Unary(u), vec![x], &out, xd)
            }
            "HardSwish" => self.emit(idx, name, Op::Unary(Unary::HardSwish), vec![x], &out, xd),
            "Tanh" => self.emit(idx, name, Op::Unary(Unary::Tanh), vec![x], &out, xd),
            "Erf" => self.emit(idx, name, Op::Unary(Unary::Erf), vec![x], &out, xd),
            "PRelu" => {
                let slopes = self.konst(&n.inputs[1], "slope")?.as_f32();
                self.emit(idx, name, Op::PRelu { slopes }, vec![x], &out, xd)
            }
            "Add" | "Sub" | "Mul" | "Div" => self.binary(idx, n, &out),
            "Sum" => {
                let mut acc = n.inputs[0].clone();
                let dims = self.dyn_dims(&acc)?;
                for (k, next) in n.inputs.iter().enumerate().skip(1) {
                    let target = if k + 1 == n.inputs.len() { out.clone() } else { format!("{out}/sum{k}") };
                    let op = Op::Binary { kind: BinKind::Add, constant: None };
                    self.emit(idx, format!("{name}/sum{k}"), op, vec![acc, next.clone()], &target, dims.clone())?;
                    acc = target;
                }
                if n.inputs.len() == 1 {
                    self.emit(idx, name, Op::Copy, vec![acc], &out, dims)?;
                }
                Ok(())
            }
            "MaxPool" | "AveragePool" => {
                if n.outputs.len() > 1 && !n.outputs[1].is_empty() {
                    bail!("MaxPool's indices output is not supported");
                }
                let p = pool(n, &xd)?;
                let s = crate::graph::shape_of(&Op::Pool(p.clone()), &[gpu_shape(&xd, &x)?])?;
                self.emit(idx, name, Op::Pool(p), vec![x], &out, vec![1, s.c, s.h, s.w])
            }
            "GlobalAveragePool" | "GlobalMaxPool" => {
                let op = Op::GlobalPool { max: n.op == "GlobalMaxPool" };
                self.emit(idx, name, op, vec![x], &out, vec![1, xd[1], 1, 1])
            }
            "ReduceMean" => {
                let axes = match self.opt_const(n, 1, "axes")? {
                    Some(t) => t.as_i64(),
                    None => a.ints("axes"),
                };
                let mut axes: Vec<usize> = axes.iter().map(|&v| axis(v, xd.len(), "axes")).collect::<Result<_>>()?;
                axes.sort_unstable();
                if xd.len() != 4 || axes != [2, 3] {
                    bail!("ReduceMean over axes {axes:?} of {xd:?}; convscope reduces H and W of [1,C,H,W]");
                }
                let dims = if a.int("keepdims", 1) == 1 { vec![1, xd[1], 1, 1] } else { vec![1, xd[1]] };
                self.emit(idx, name, Op::GlobalPool { max: false }, vec![x], &out, dims)
            }
            _ => self.lower_structure(idx, n, x, xd, out),
        }
    }

    /// Evaluates `n` on the host when it is foldable and its inputs are constant (a
    /// computed tensor's Shape is known too); true when it was.
    fn fold_node(&mut self, n: &ModelNode) -> Result<bool> {
        let a = &n.attrs;
        let ins: Vec<Option<&Val>> = n
            .inputs
            .iter()
            .map(|s| if s.is_empty() { Ok(None) } else { self.val(s).map(Some) })
            .collect::<Result<_>>()?;
        let all_const = ins.iter().all(|v| !matches!(v, Some(Val::Dyn(_))));
        // Shape of a computed tensor is known here: fold it too.
        if n.op == "Shape" || n.op == "Constant" || (all_const && FOLDABLE.contains(&n.op.as_str())) {
            let owned: Vec<Option<HostTensor>> = ins
                .iter()
                .map(|v| match v {
                    Some(Val::Const(t)) => Some(t.clone()),
                    Some(Val::Dyn(d)) => Some(HostTensor::f32(d.clone(), Vec::new())),
                    None => None,
                })
                .collect();
            let refs: Vec<Option<&HostTensor>> = owned.iter().map(Option::as_ref).collect();
            let outs = if n.op == "Constant" { vec![constant(a)?] } else { fold::eval(&n.op, &refs, a, &n.name)? };
            for (name, t) in n.outputs.iter().zip(outs) {
                if matches!(t.data, super::tensor::Data::F32(_)) && !t.is_empty() {
                    self.folded.push((name.clone(), t.clone()));
                }
                self.vals.insert(name.clone(), Val::Const(t));
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Nodes that move, combine or reshape tensors, and the classifier head.
    fn lower_structure(&mut self, idx: usize, n: &ModelNode, x: String, xd: Vec<usize>, out: String) -> Result<()> {
        let a = &n.attrs;
        let name = n.name.clone();
        match n.op.as_str() {
            "Concat" => {
                let ax = axis(a.int("axis", 1), xd.len(), "axis")?;
                if ax != 1 {
                    bail!("Concat along axis {ax} of {xd:?}; convscope concatenates channels (axis 1)");
                }
                let mut dims = xd.clone();
                dims[1] = n
                    .inputs
                    .iter()
                    .map(|i| self.dyn_dims(i).map(|d| d.get(1).copied().unwrap_or(0)))
                    .sum::<Result<usize>>()?;
                self.emit(idx, name, Op::Concat, n.inputs.clone(), &out, dims)
            }
            "Split" => self.split(idx, n, &xd),
            "Slice" => self.slice(idx, n, &xd, &out),
            "Pad" => {
                let mode = a.string("mode", "constant");
                if mode != "constant" {
                    bail!("Pad mode {mode:?}; convscope pads with a constant");
                }
                let pads = match self.opt_const(n, 1, "pads")? {
                    Some(t) => t.as_i64(),
                    None => a.ints("pads"),
                };
                let value = self.opt_const(n, 2, "constant_value")?.map_or(a.float("value", 0.0), |t| t.as_f32()[0]);
                if xd.len() != 4
                    || pads.len() != 8
                    || pads.iter().any(|&p| p < 0)
                    || pads[0] != 0
                    || pads[1] != 0
                    || pads[4] != 0
                    || pads[5] != 0
                {
                    bail!("Pad {pads:?} of {xd:?}; convscope pads H and W of [1,C,H,W] by zero or more");
                }
                let p = [pads[2] as usize, pads[3] as usize, pads[6] as usize, pads[7] as usize];
                let dims = vec![1, xd[1], xd[2] + p[0] + p[2], xd[3] + p[1] + p[3]];
                self.emit(idx, name, Op::Pad { pads: p, value }, vec![x], &out, dims)
            }
            "Resize" => {
                let r = resize(self, n, &xd)?;
                let dims = vec![1, xd[1], r.out_h, r.out_w];
                self.emit(idx, name, Op::Resize(r), vec![x], &out, dims)
            }
            "Flatten" => {
                let ax = axis(a.int("axis", 1), xd.len() + 1, "axis")?;
                let dims = vec![xd[..ax].iter().product(), xd[ax..].iter().product()];
                self.emit(idx, name, Op::Copy, vec![x], &out, dims)
            }
            "Reshape" => {
                let target = self.konst(&n.inputs[1], "shape")?.as_i64();
                let dims = reshape_dims(&xd, &target, a.int("allowzero", 0) == 1, &n.name)?;
                self.emit(idx, name, Op::Copy, vec![x], &out, dims)
            }
            "Squeeze" | "Unsqueeze" => {
                let t = HostTensor::f32(xd.clone(), Vec::new());
                let axes = self.opt_const(n, 1, "axes")?.cloned();
                let refs = [Some(&t), axes.as_ref()];
                let dims = fold::eval(&n.op, &refs, a, &n.name)?.remove(0).dims;
                self.emit(idx, name, Op::Copy, vec![x], &out, dims)
            }
            "Transpose" => {
                let perm = a.ints("perm");
                let identity = perm.iter().enumerate().all(|(i, &p)| p == i as i64);
                if identity {
                    self.emit(idx, name, Op::Copy, vec![x], &out, xd)
                } else if xd.len() == 5 && perm == [0, 2, 1, 3, 4] {
                    let dims = vec![1, xd[2], xd[1], xd[3], xd[4]];
                    self.emit(idx, name, Op::ChannelShuffle { groups: xd[1] }, vec![x], &out, dims)
                } else {
                    bail!(
                        "Transpose {perm:?} of {xd:?}; convscope runs identity and the 5-D channel shuffle [0,2,1,3,4]"
                    )
                }
            }
            "Gemm" | "MatMul" => self.gemm(idx, n, &xd, &out),
            "Softmax" => {
                let ax = axis(a.int("axis", -1), xd.len(), "axis")?;
                if xd[..ax].iter().product::<usize>() != 1 || xd.len() > 4 {
                    bail!("Softmax over axis {ax} of {xd:?}; convscope applies softmax to a [1, N] vector");
                }
                self.emit(idx, name, Op::Softmax, vec![x], &out, xd)
            }
            "Identity" | "Dropout" => self.emit(idx, name, Op::Copy, vec![x], &out, xd),
            other => bail!(
                "{other} is not supported; convscope runs {} (and folds constant {} on the host)",
                SUPPORTED.join(", "),
                FOLDABLE.join(", ")
            ),
        }
    }
}

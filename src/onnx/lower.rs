//! Lowering an ONNX graph to convscope's graph for one input size: nodes in topological
//! order, constant subgraphs folded on the host, every other node turned into a
//! [`graph::Op`](crate::graph::Op) over tensors whose ONNX shapes are tracked, and anything
//! unsupported refused with the node, the op and what is supported.

use super::attrs::Attrs;
use super::fold::{self, FOLDABLE, axis, reshape_dims};
use super::tensor::{HostTensor, numel};
use super::{Model, ModelNode};
use crate::graph::{BinKind, ConvG, CoordMode, Graph, NearestMode, Node, Op, Pool, Resize, Unary};
use crate::tensor::Shape;
use anyhow::{Result, anyhow, bail};
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

/// convscope's [`Shape`] of ONNX dims: `[1,C,H,W]` → C×H×W; `[1,N]` → N×1×1; `[1,a,b,H,W]`
/// (a channel shuffle's middle) → (a·b)×H×W; `[1,C,H]` → C×H×1.
pub fn gpu_shape(dims: &[usize], what: &str) -> Result<Shape> {
    match dims {
        [1, c, h, w] => Ok(Shape::new(*c, *h, *w)),
        [1] | [] => Ok(Shape::new(1, 1, 1)),
        [1, n] | [n] => Ok(Shape::new(*n, 1, 1)),
        [1, a, b, h, w] => Ok(Shape::new(a * b, *h, *w)),
        [1, c, h] => Ok(Shape::new(*c, *h, 1)),
        d => bail!("{what} has shape {d:?}; convscope runs batch-1 tensors of rank 1 to 5 (batch must be 1)"),
    }
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

    fn binary(&mut self, idx: usize, n: &ModelNode, out: &str) -> Result<()> {
        let kind = match n.op.as_str() {
            "Add" => BinKind::Add,
            "Sub" => BinKind::Sub,
            "Mul" => BinKind::Mul,
            _ => BinKind::Div,
        };
        let (a, b) = (&n.inputs[0], &n.inputs[1]);
        let (va, vb) = (self.val(a)?.clone(), self.val(b)?.clone());
        match (va, vb) {
            (Val::Dyn(da), Val::Dyn(db)) => {
                let sa = gpu_shape(&da, a)?;
                let sb = gpu_shape(&db, b)?;
                let s = crate::graph::broadcast(&n.name, sa, sb)?;
                let dims = if s == sa { da } else { db };
                self.emit(
                    idx,
                    n.name.clone(),
                    Op::Binary { kind, constant: None },
                    vec![a.clone(), b.clone()],
                    out,
                    dims,
                )
            }
            (Val::Dyn(da), Val::Const(t)) => {
                let s = const_operand_shape(&t.dims, &da)?;
                let op = Op::Binary { kind, constant: Some((t.as_f32(), s)) };
                self.emit(idx, n.name.clone(), op, vec![a.clone()], out, da)
            }
            (Val::Const(t), Val::Dyn(db)) if matches!(kind, BinKind::Add | BinKind::Mul) => {
                let s = const_operand_shape(&t.dims, &db)?;
                let op = Op::Binary { kind, constant: Some((t.as_f32(), s)) };
                self.emit(idx, n.name.clone(), op, vec![b.clone()], out, db)
            }
            _ => bail!("a constant first operand of {}; convscope takes it second (x {} c)", n.op, n.op),
        }
    }

    fn split(&mut self, idx: usize, n: &ModelNode, xd: &[usize]) -> Result<()> {
        let ax = axis(n.attrs.int("axis", 0), xd.len(), "axis")?;
        if ax != 1 {
            bail!("Split along axis {ax}; convscope splits channels (axis 1)");
        }
        let parts = match self.opt_const(n, 1, "split")? {
            Some(t) => t.as_i64(),
            None if n.attrs.has("split") => n.attrs.ints("split"),
            None => vec![(xd[1] / n.outputs.len().max(1)) as i64; n.outputs.len()],
        };
        if parts.len() != n.outputs.len() || parts.iter().any(|&p| p < 0) || parts.iter().sum::<i64>() as usize != xd[1]
        {
            bail!("split {parts:?} does not cut {} channels into {} outputs", xd[1], n.outputs.len());
        }
        let mut start = 0;
        for (k, (o, &p)) in n.outputs.iter().zip(&parts).enumerate() {
            let end = start + p as usize;
            let mut dims = xd.to_vec();
            dims[1] = p as usize;
            let op = Op::SliceChannels { start, end };
            self.emit(idx, format!("{}/{k}", n.name), op, vec![n.inputs[0].clone()], o, dims)?;
            start = end;
        }
        Ok(())
    }

    fn slice(&mut self, idx: usize, n: &ModelNode, xd: &[usize], out: &str) -> Result<()> {
        let starts = self.konst(&n.inputs[1], "starts")?.as_i64();
        let ends = self.konst(&n.inputs[2], "ends")?.as_i64();
        let axes: Vec<usize> = match self.opt_const(n, 3, "axes")? {
            Some(t) => t.as_i64().iter().map(|&v| axis(v, xd.len(), "axes")).collect::<Result<_>>()?,
            None => (0..starts.len()).collect(),
        };
        let steps = self.opt_const(n, 4, "steps")?.map(|t| t.as_i64()).unwrap_or_default();
        let (mut start, mut end) = (0usize, xd.get(1).copied().unwrap_or(0));
        for (k, &ax) in axes.iter().enumerate() {
            let step = steps.get(k).copied().unwrap_or(1);
            let (s, e) = fold::slice_range(starts[k], ends[k], step, xd[ax]);
            let whole = s == 0 && e == xd[ax] as i64 && step == 1;
            if ax == 1 && step == 1 {
                (start, end) = (s as usize, e.max(s) as usize);
            } else if !whole {
                bail!("Slice of axis {ax} (step {step}) of {xd:?}; convscope slices channels with step 1");
            }
        }
        let mut dims = xd.to_vec();
        dims[1] = end - start;
        self.emit(idx, n.name.clone(), Op::SliceChannels { start, end }, vec![n.inputs[0].clone()], out, dims)
    }

    fn gemm(&mut self, idx: usize, n: &ModelNode, xd: &[usize], out: &str) -> Result<()> {
        let a = &n.attrs;
        let k = xd.iter().product::<usize>();
        if xd.len() < 2 || xd[..xd.len() - 1].iter().product::<usize>() != 1 {
            bail!("{} of an input {xd:?}; convscope multiplies a [1, K] vector", n.op);
        }
        if n.op == "Gemm" && a.int("transA", 0) != 0 {
            bail!("Gemm with transA; convscope multiplies x · B");
        }
        let b = self.konst(&n.inputs[1], "B")?;
        if b.dims.len() != 2 {
            bail!("B of shape {:?}; convscope multiplies by a 2-D weight", b.dims);
        }
        let trans_b = n.op == "Gemm" && a.int("transB", 0) != 0;
        let (bk, bn) = if trans_b { (b.dims[1], b.dims[0]) } else { (b.dims[0], b.dims[1]) };
        if bk != k {
            bail!("multiplies {k} inputs by a {:?} weight", b.dims);
        }
        let alpha = if n.op == "Gemm" { a.float("alpha", 1.0) } else { 1.0 };
        let bv = b.as_f32();
        let mut weight = vec![0.0f32; bn * k];
        for j in 0..bn {
            for i in 0..k {
                let v = if trans_b { bv[j * k + i] } else { bv[i * bn + j] };
                weight[j * k + i] = alpha * v;
            }
        }
        let beta = if n.op == "Gemm" { a.float("beta", 1.0) } else { 1.0 };
        let bias = match self.opt_const(n, 2, "C")? {
            Some(c) if c.len() == bn => c.as_f32().iter().map(|v| beta * v).collect(),
            Some(c) if c.len() == 1 => vec![beta * c.as_f32()[0]; bn],
            Some(c) => bail!("C of shape {:?} for {bn} outputs", c.dims),
            None => vec![0.0; bn],
        };
        let mut dims = xd.to_vec();
        *dims.last_mut().ok_or_else(|| anyhow!("empty input"))? = bn;
        self.emit(idx, n.name.clone(), Op::Gemm { k, n: bn, weight, bias }, vec![n.inputs[0].clone()], out, dims)
    }
}

/// The GPU shape of a constant operand of `dims` broadcast against a computed tensor of
/// `other`: a scalar, one value per channel, or the full shape.
pub fn const_operand_shape(dims: &[usize], other: &[usize]) -> Result<Shape> {
    let n: usize = dims.iter().product();
    let refuse = || {
        anyhow!(
            "a constant of shape {dims:?} combined with {other:?}; convscope broadcasts scalars, per-channel [C,1,1] and equal shapes"
        )
    };
    if n == 1 {
        return Ok(Shape::new(1, 1, 1));
    }
    if dims.len() > other.len() {
        return Err(refuse());
    }
    // Right-aligned, as numpy broadcasting aligns them.
    let aligned: Vec<usize> = std::iter::repeat_n(1, other.len() - dims.len()).chain(dims.iter().copied()).collect();
    if aligned == other {
        return gpu_shape(other, "operand");
    }
    let non_one: Vec<usize> = (0..aligned.len()).filter(|&i| aligned[i] != 1).collect();
    if non_one == [1] && aligned[1] == other[1] {
        return Ok(Shape::new(n, 1, 1));
    }
    Err(refuse())
}

/// A `Constant` node's value.
fn constant(a: &Attrs) -> Result<HostTensor> {
    if let Some(t) = a.tensor("value") {
        return Ok(t.clone());
    }
    if a.has("value_float") {
        return Ok(HostTensor::f32(vec![], vec![a.float("value_float", 0.0)]));
    }
    if a.has("value_int") {
        return Ok(HostTensor::i64(vec![], vec![a.int("value_int", 0)]));
    }
    if a.has("value_floats") {
        let v = a.floats("value_floats");
        return Ok(HostTensor::f32(vec![v.len()], v));
    }
    if a.has("value_ints") {
        let v = a.ints("value_ints");
        return Ok(HostTensor::i64(vec![v.len()], v));
    }
    bail!("Constant without a value convscope reads (value, value_float(s), value_int(s))")
}

/// Non-negative values of an int list attribute, or `default` when absent.
fn usizes(a: &Attrs, name: &str, default: Vec<usize>) -> Result<Vec<usize>> {
    let v = a.ints(name);
    if v.is_empty() {
        return Ok(default);
    }
    v.iter().map(|&x| usize::try_from(x).map_err(|_| anyhow!("{name} {v:?} has a negative value"))).collect()
}

/// Padding from `pads` or `auto_pad` for a window of `k` (dilated span) with stride `s`.
fn pads_of(a: &Attrs, xd: &[usize], span: [usize; 2], stride: [usize; 2]) -> Result<[usize; 4]> {
    let auto = a.string("auto_pad", "NOTSET");
    match auto.as_str() {
        "NOTSET" => {
            let p = usizes(a, "pads", vec![0; 4])?;
            if p.len() != 4 {
                bail!("pads {p:?}; convscope takes 2-D pads [top, left, bottom, right]");
            }
            Ok([p[0], p[1], p[2], p[3]])
        }
        "VALID" => Ok([0; 4]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut out = [0; 4];
            for ax in 0..2 {
                let len = xd[2 + ax];
                let o = len.div_ceil(stride[ax]);
                let total = ((o - 1) * stride[ax] + span[ax]).saturating_sub(len);
                let (small, big) = (total / 2, total - total / 2);
                let (b, e) = if auto == "SAME_UPPER" { (small, big) } else { (big, small) };
                out[ax] = b;
                out[ax + 2] = e;
            }
            Ok(out)
        }
        other => bail!("auto_pad {other:?} is not an ONNX value"),
    }
}

/// A Conv or ConvTranspose node's attributes and weights.
fn conv(l: &Lowering, n: &ModelNode, xd: &[usize]) -> Result<ConvG> {
    let a = &n.attrs;
    let w = l.konst(&n.inputs[1], "weight")?;
    if w.dims.len() != 4 || xd.len() != 4 {
        bail!("a weight of shape {:?} on an input {xd:?}; convscope runs 2-D convolutions", w.dims);
    }
    let transpose = n.op == "ConvTranspose";
    let groups = usize::try_from(a.int("group", 1))
        .ok()
        .filter(|&g| g >= 1)
        .ok_or_else(|| anyhow!("group must be at least 1"))?;
    let (kh, kw) = (w.dims[2], w.dims[3]);
    let stride = usizes(a, "strides", vec![1, 1])?;
    let dilation = usizes(a, "dilations", vec![1, 1])?;
    if stride.len() != 2 || dilation.len() != 2 || stride.contains(&0) || dilation.contains(&0) {
        bail!("strides {stride:?} and dilations {dilation:?} must be two values of at least 1");
    }
    let cin = xd[1];
    let cout = if transpose { w.dims[1] * groups } else { w.dims[0] };
    let expect_in = if transpose { w.dims[0] } else { w.dims[1] * groups };
    if cin != expect_in || !cin.is_multiple_of(groups) || !cout.is_multiple_of(groups) {
        bail!("a weight of shape {:?} (group {groups}) does not fit {cin} input channels", w.dims);
    }
    let span = [dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1];
    let pads = if transpose {
        usizes(a, "pads", vec![0; 4]).and_then(|p| p.try_into().map_err(|_| anyhow!("pads must have 4 values")))?
    } else {
        pads_of(a, xd, span, [stride[0], stride[1]])?
    };
    let op = usizes(a, "output_padding", vec![0, 0])?;
    if transpose && a.has("output_shape") {
        bail!("ConvTranspose with output_shape; give pads and output_padding instead");
    }
    let bias = match l.opt_const(n, 2, "bias")? {
        Some(b) if b.len() == cout => b.as_f32(),
        Some(b) => bail!("bias of {} values for {cout} output channels", b.len()),
        None => vec![0.0; cout],
    };
    numel(&w.dims, "weight")?;
    Ok(ConvG {
        cin,
        cout,
        kh,
        kw,
        stride: [stride[0], stride[1]],
        dilation: [dilation[0], dilation[1]],
        pads,
        groups,
        transpose,
        output_padding: [op.first().copied().unwrap_or(0), op.get(1).copied().unwrap_or(0)],
        weight: w.as_f32(),
        bias,
    })
}

/// A MaxPool or AveragePool node's attributes.
fn pool(n: &ModelNode, xd: &[usize]) -> Result<Pool> {
    let a = &n.attrs;
    let k = usizes(a, "kernel_shape", vec![])?;
    if k.len() != 2 || k.contains(&0) || xd.len() != 4 {
        bail!("kernel_shape {k:?} on {xd:?}; convscope pools 2-D windows");
    }
    let stride = usizes(a, "strides", vec![1, 1])?;
    let dilation = usizes(a, "dilations", vec![1, 1])?;
    if stride.contains(&0) || dilation.contains(&0) || stride.len() != 2 || dilation.len() != 2 {
        bail!("strides {stride:?} and dilations {dilation:?} must be two values of at least 1");
    }
    let span = [dilation[0] * (k[0] - 1) + 1, dilation[1] * (k[1] - 1) + 1];
    Ok(Pool {
        max: n.op == "MaxPool",
        kernel: [k[0], k[1]],
        stride: [stride[0], stride[1]],
        dilation: [dilation[0], dilation[1]],
        pads: pads_of(a, xd, span, [stride[0], stride[1]])?,
        ceil: a.int("ceil_mode", 0) == 1,
        count_include_pad: a.int("count_include_pad", 0) == 1,
    })
}

/// A Resize node's mode and output size.
fn resize(l: &Lowering, n: &ModelNode, xd: &[usize]) -> Result<Resize> {
    let a = &n.attrs;
    if xd.len() != 4 {
        bail!("Resize of {xd:?}; convscope resizes H and W of [1,C,H,W]");
    }
    let (oh, ow) = match (l.opt_const(n, 3, "sizes")?, l.opt_const(n, 2, "scales")?) {
        (Some(s), _) if s.len() == 4 => {
            let v = s.as_i64();
            if v[0] != 1 || v[1] as usize != xd[1] {
                bail!("sizes {v:?}; convscope resizes H and W only");
            }
            (v[2].max(0) as usize, v[3].max(0) as usize)
        }
        (_, Some(s)) if s.len() == 4 => {
            let v = s.as_f32();
            if v[0] != 1.0 || v[1] != 1.0 || !(v[2] > 0.0 && v[3] > 0.0) {
                bail!("scales {v:?}; convscope resizes H and W by positive factors");
            }
            ((xd[2] as f32 * v[2]).floor() as usize, (xd[3] as f32 * v[3]).floor() as usize)
        }
        _ => bail!("Resize without 4 sizes or 4 scales"),
    };
    if oh == 0 || ow == 0 {
        bail!("Resize to {oh}x{ow}");
    }
    numel(&[xd[1], oh, ow], "Resize output")?;
    let linear = match a.string("mode", "nearest").as_str() {
        "nearest" => false,
        "linear" => true,
        m => bail!("Resize mode {m:?}; convscope resizes nearest and linear"),
    };
    let coord = match a.string("coordinate_transformation_mode", "half_pixel").as_str() {
        "half_pixel" => CoordMode::HalfPixel,
        "pytorch_half_pixel" => CoordMode::PytorchHalfPixel,
        "asymmetric" => CoordMode::Asymmetric,
        "align_corners" => CoordMode::AlignCorners,
        m => bail!("Resize coordinate_transformation_mode {m:?} is not supported"),
    };
    let nearest = match a.string("nearest_mode", "round_prefer_floor").as_str() {
        "round_prefer_floor" => NearestMode::RoundPreferFloor,
        "round_prefer_ceil" => NearestMode::RoundPreferCeil,
        "floor" => NearestMode::Floor,
        "ceil" => NearestMode::Ceil,
        m => bail!("Resize nearest_mode {m:?} is not an ONNX value"),
    };
    Ok(Resize { linear, coord, nearest, out_h: oh, out_w: ow })
}

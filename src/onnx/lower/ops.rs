//! Lowering the ONNX ops that need more than a line: broadcasting arithmetic with weights,
//! Split, Slice, Gemm/MatMul, Conv/ConvTranspose and Resize attributes.

use super::super::ModelNode;
use super::super::fold::{self, axis};
use super::super::op_attrs::{const_operand_shape, gpu_shape, pads_of, usizes};
use super::super::tensor::numel;
use super::{Lowering, Val};
use crate::graph::{BinKind, ConvG, CoordMode, NearestMode, Op, Resize};
use anyhow::{Result, anyhow, bail};

impl Lowering {
    pub(super) fn binary(&mut self, idx: usize, n: &ModelNode, out: &str) -> Result<()> {
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

    pub(super) fn split(&mut self, idx: usize, n: &ModelNode, xd: &[usize]) -> Result<()> {
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

    pub(super) fn slice(&mut self, idx: usize, n: &ModelNode, xd: &[usize], out: &str) -> Result<()> {
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

    pub(super) fn gemm(&mut self, idx: usize, n: &ModelNode, xd: &[usize], out: &str) -> Result<()> {
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

/// A Conv or ConvTranspose node's attributes and weights.
pub(super) fn conv(l: &Lowering, n: &ModelNode, xd: &[usize]) -> Result<ConvG> {
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

/// A Resize node's mode and output size.
pub(super) fn resize(l: &Lowering, n: &ModelNode, xd: &[usize]) -> Result<Resize> {
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

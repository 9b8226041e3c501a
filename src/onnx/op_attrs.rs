//! Reading ONNX attributes into convscope's terms: a `Constant`'s value, padding (explicit
//! or `auto_pad`), pooling attributes, the GPU shape of ONNX dims and of a constant operand.

use super::ModelNode;
use super::attrs::Attrs;
use super::tensor::HostTensor;
use crate::graph::Pool;
use crate::tensor::Shape;
use anyhow::{Result, anyhow, bail};

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
pub(super) fn constant(a: &Attrs) -> Result<HostTensor> {
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
pub(super) fn usizes(a: &Attrs, name: &str, default: Vec<usize>) -> Result<Vec<usize>> {
    let v = a.ints(name);
    if v.is_empty() {
        return Ok(default);
    }
    v.iter().map(|&x| usize::try_from(x).map_err(|_| anyhow!("{name} {v:?} has a negative value"))).collect()
}

/// Padding from `pads` or `auto_pad` for a window of `k` (dilated span) with stride `s`.
pub(super) fn pads_of(a: &Attrs, xd: &[usize], span: [usize; 2], stride: [usize; 2]) -> Result<[usize; 4]> {
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

/// A MaxPool or AveragePool node's attributes.
pub(super) fn pool(n: &ModelNode, xd: &[usize]) -> Result<Pool> {
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

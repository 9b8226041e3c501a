//! Constant folding on the host: the shape arithmetic exporters emit (Shape, Gather,
//! Slice, Cast, Concat, Unsqueeze, Squeeze, ConstantOfShape, Range, Reshape, Transpose,
//! Add/Sub/Mul/Div, …) evaluated once, so the GPU only sees tensor work — as onnxruntime's
//! and burn-onnx's constant folding do.

use super::attrs::Attrs;
use super::tensor::{Data, HostTensor, numel};
use anyhow::{Result, anyhow, bail};

/// Ops this module evaluates when all their inputs are constant.
pub const FOLDABLE: &[&str] = &[
    "Constant",
    "Identity",
    "Cast",
    "Shape",
    "Gather",
    "Slice",
    "Concat",
    "Unsqueeze",
    "Squeeze",
    "ConstantOfShape",
    "Range",
    "Reshape",
    "Transpose",
    "Flatten",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
    "Floor",
    "Ceil",
    "Sqrt",
    "Min",
    "Max",
    "Equal",
    "Where",
    "ReduceProd",
];

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// An axis attribute or input, negative counted from the end.
pub fn axis(a: i64, rank: usize, what: &str) -> Result<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if v < 0 || v >= r.max(1) {
        bail!("{what}: axis {a} is outside a tensor of rank {rank}");
    }
    Ok(v as usize)
}

/// Numpy broadcasting of two shapes.
fn broadcast_dims(a: &[usize], b: &[usize], what: &str) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let get = |d: &[usize], i: usize| if i + d.len() >= n { d[i + d.len() - n] } else { 1 };
    (0..n)
        .map(|i| match (get(a, i), get(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            (x, y) => bail!("{what}: shapes {a:?} and {b:?} do not broadcast ({x} vs {y})"),
        })
        .collect()
}

/// The flat index into a tensor of `dims` for output multi-index `idx` under broadcasting.
fn source_index(idx: &[usize], dims: &[usize]) -> usize {
    let off = idx.len() - dims.len();
    let st = strides(dims);
    dims.iter().enumerate().map(|(i, &d)| if d == 1 { 0 } else { idx[off + i] * st[i] }).sum()
}

fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        if dims[d] > 0 {
            idx[d] = i % dims[d];
            i /= dims[d];
        }
    }
    idx
}

/// Elementwise op with broadcasting; integer when both are integer.
fn elementwise(op: &str, a: &HostTensor, b: &HostTensor, what: &str) -> Result<HostTensor> {
    let dims = broadcast_dims(&a.dims, &b.dims, what)?;
    let n = numel(&dims, what)?;
    let pairs: Vec<(usize, usize)> = (0..n)
        .map(|i| {
            let idx = unravel(i, &dims);
            (source_index(&idx, &a.dims), source_index(&idx, &b.dims))
        })
        .collect();
    let pairs = pairs.into_iter();
    Ok(match (&a.data, &b.data) {
        (Data::I64(x), Data::I64(y)) => {
            let f = |p: i64, q: i64| -> i64 {
                match op {
                    "Add" => p.wrapping_add(q),
                    "Sub" => p.wrapping_sub(q),
                    "Mul" => p.wrapping_mul(q),
                    "Div" if q != 0 => p / q,
                    "Min" => p.min(q),
                    "Max" => p.max(q),
                    "Equal" => i64::from(p == q),
                    _ => 0,
                }
            };
            HostTensor::i64(dims, pairs.map(|(i, j)| f(x[i], y[j])).collect())
        }
        _ => {
            let (x, y) = (a.as_f32(), b.as_f32());
            let f = |p: f32, q: f32| -> f32 {
                match op {
                    "Add" => p + q,
                    "Sub" => p - q,
                    "Mul" => p * q,
                    "Div" => p / q,
                    "Min" => p.min(q),
                    "Max" => p.max(q),
                    "Equal" => f32::from(u8::from(p == q)),
                    _ => 0.0,
                }
            };
            HostTensor::f32(dims, pairs.map(|(i, j)| f(x[i], y[j])).collect())
        }
    })
}

/// Picks elements by flat source index.
fn pick(t: &HostTensor, dims: Vec<usize>, src: impl Iterator<Item = usize>) -> HostTensor {
    match &t.data {
        Data::F32(v) => HostTensor::f32(dims, src.map(|i| v[i]).collect()),
        Data::I64(v) => HostTensor::i64(dims, src.map(|i| v[i]).collect()),
    }
}

/// N-D transpose.
pub fn transpose(t: &HostTensor, perm: &[usize]) -> Result<HostTensor> {
    if perm.len() != t.dims.len() || (0..perm.len()).any(|i| !perm.contains(&i)) {
        bail!("Transpose: perm {perm:?} does not fit a tensor of rank {}", t.dims.len());
    }
    let dims: Vec<usize> = perm.iter().map(|&p| t.dims[p]).collect();
    let st = strides(&t.dims);
    let n = t.len();
    Ok(pick(
        t,
        dims.clone(),
        (0..n).map(|i| {
            let idx = unravel(i, &dims);
            idx.iter().enumerate().map(|(k, &v)| v * st[perm[k]]).sum()
        }),
    ))
}

/// The target of a Reshape: 0 copies the input's dimension, -1 takes what is left.
pub fn reshape_dims(input: &[usize], shape: &[i64], allowzero: bool, what: &str) -> Result<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut dims = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        match s {
            -1 if infer.is_none() => {
                infer = Some(i);
                dims.push(1);
            }
            0 if !allowzero => dims.push(*input.get(i).ok_or_else(|| anyhow!("{what}: 0 at {i} has no input dim"))?),
            s if s >= 0 => dims.push(s as usize),
            _ => bail!("{what}: target shape {shape:?} is not valid"),
        }
    }
    let known: usize = dims.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            bail!("{what}: cannot reshape {input:?} into {shape:?}");
        }
        dims[i] = total / known;
    }
    if dims.iter().product::<usize>() != total {
        bail!("{what}: cannot reshape {input:?} ({total} values) into {dims:?}");
    }
    Ok(dims)
}

/// Resolved `[start, end)` with `step` along an axis of `len`, as ONNX Slice clamps them.
pub fn slice_range(start: i64, end: i64, step: i64, len: usize) -> (i64, i64) {
    let l = len as i64;
    let fix = |v: i64, lo: i64, hi: i64| if v < 0 { (v + l).clamp(lo, hi) } else { v.clamp(lo, hi) };
    if step > 0 { (fix(start, 0, l), fix(end, 0, l)) } else { (fix(start, 0, l - 1), fix(end, -1, l - 1)) }
}

/// N-D Slice.
pub fn slice(
    t: &HostTensor,
    starts: &[i64],
    ends: &[i64],
    axes: &[usize],
    steps: &[i64],
    what: &str,
) -> Result<HostTensor> {
    let mut lo = vec![0i64; t.dims.len()];
    let mut step = vec![1i64; t.dims.len()];
    let mut dims = t.dims.clone();
    for (k, &ax) in axes.iter().enumerate() {
        let st = *steps.get(k).unwrap_or(&1);
        if st == 0 {
            bail!("{what}: a step of 0");
        }
        let (s, e) = slice_range(starts[k], ends[k], st, t.dims[ax]);
        let n = if st > 0 { (e - s).max(0).div_euclid(1) as usize } else { (s - e).max(0) as usize };
        dims[ax] = n.div_ceil(st.unsigned_abs() as usize);
        lo[ax] = s;
        step[ax] = st;
    }
    let st = strides(&t.dims);
    let n = numel(&dims, what)?;
    Ok(pick(
        t,
        dims.clone(),
        (0..n).map(|i| {
            let idx = unravel(i, &dims);
            idx.iter().enumerate().map(|(a, &v)| (lo[a] + v as i64 * step[a]) as usize * st[a]).sum()
        }),
    ))
}

/// Evaluates a foldable node on constant inputs (`None` for an omitted optional input).
pub fn eval(op: &str, ins: &[Option<&HostTensor>], a: &Attrs, what: &str) -> Result<Vec<HostTensor>> {
    let x = |i: usize| -> Result<&HostTensor> {
        ins.get(i).copied().flatten().ok_or_else(|| anyhow!("{what}: input {i} is missing"))
    };
    let ints = |i: usize| -> Result<Vec<i64>> { Ok(x(i)?.as_i64()) };
    Ok(vec![match op {
        "Identity" => x(0)?.clone(),
        "Cast" => match a.int("to", 1) {
            1 | 10 | 11 | 16 => HostTensor::f32(x(0)?.dims.clone(), x(0)?.as_f32()),
            _ => HostTensor::i64(x(0)?.dims.clone(), x(0)?.as_i64()),
        },
        "Shape" => {
            let d = &x(0)?.dims;
            let r = d.len() as i64;
            let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let (s, e) = (clampi(a.int("start", 0)), clampi(a.int("end", r)));
            HostTensor::i64(vec![e.saturating_sub(s)], d[s..e.max(s)].iter().map(|&v| v as i64).collect())
        }
        "Gather" => {
            let data = x(0)?;
            let ax = axis(a.int("axis", 0), data.dims.len(), what)?;
            let idx = x(1)?;
            let len = data.dims[ax] as i64;
            let picks: Vec<usize> = idx
                .as_i64()
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + len } else { i };
                    if (0..len).contains(&j) { Ok(j as usize) } else { bail!("{what}: index {i} is outside 0..{len}") }
                })
                .collect::<Result<_>>()?;
            let mut dims: Vec<usize> = data.dims[..ax].to_vec();
            dims.extend(&idx.dims);
            dims.extend(&data.dims[ax + 1..]);
            let outer: usize = data.dims[..ax].iter().product();
            let inner: usize = data.dims[ax + 1..].iter().product();
            let mut src = Vec::new();
            for o in 0..outer {
                for &p in &picks {
                    for i in 0..inner {
                        src.push((o * data.dims[ax] + p) * inner + i);
                    }
                }
            }
            pick(data, dims, src.into_iter())
        }
        "Slice" => {
            let t = x(0)?;
            let (starts, ends) = (ints(1)?, ints(2)?);
            let axes: Vec<usize> = match ins.get(3).copied().flatten() {
                Some(v) => v.as_i64().iter().map(|&v| axis(v, t.dims.len(), what)).collect::<Result<_>>()?,
                None => (0..starts.len()).collect(),
            };
            let steps = ins.get(4).copied().flatten().map(|v| v.as_i64()).unwrap_or_default();
            slice(t, &starts, &ends, &axes, &steps, what)?
        }
        "Concat" => {
            let parts: Vec<&HostTensor> = ins.iter().copied().flatten().collect();
            let first = parts.first().ok_or_else(|| anyhow!("{what}: no inputs"))?;
            let ax = axis(a.int("axis", 0), first.dims.len(), what)?;
            let mut dims = first.dims.clone();
            dims[ax] = parts.iter().map(|p| p.dims.get(ax).copied().unwrap_or(0)).sum();
            let outer: usize = first.dims[..ax].iter().product();
            let float = parts.iter().any(|p| matches!(p.data, Data::F32(_)));
            let (mut f, mut i) = (Vec::new(), Vec::new());
            for o in 0..outer {
                for p in &parts {
                    let inner: usize = p.dims[ax..].iter().product();
                    let r = o * inner..(o + 1) * inner;
                    if float {
                        f.extend_from_slice(&p.as_f32()[r]);
                    } else {
                        i.extend_from_slice(&p.as_i64()[r]);
                    }
                }
            }
            if float { HostTensor::f32(dims, f) } else { HostTensor::i64(dims, i) }
        }
        "Unsqueeze" | "Squeeze" => {
            let t = x(0)?;
            let axes_in = match ins.get(1).copied().flatten() {
                Some(v) => v.as_i64(),
                None => a.ints("axes"),
            };
            let dims = if op == "Unsqueeze" {
                let r = t.dims.len() + axes_in.len();
                let mut axes: Vec<usize> = axes_in.iter().map(|&v| axis(v, r, what)).collect::<Result<_>>()?;
                axes.sort_unstable();
                let mut d = t.dims.clone();
                for ax in axes {
                    d.insert(ax.min(d.len()), 1);
                }
                d
            } else {
                let axes: Vec<usize> = axes_in.iter().map(|&v| axis(v, t.dims.len(), what)).collect::<Result<_>>()?;
                t.dims
                    .iter()
                    .enumerate()
                    .filter(|(i, d)| !(**d == 1 && (axes.is_empty() || axes.contains(i))))
                    .map(|(_, d)| *d)
                    .collect()
            };
            HostTensor { dims, data: t.data.clone() }
        }
        _ => eval_values(op, ins, a, what)?,
    }])
}

/// The value-level ops: ConstantOfShape, Range, arithmetic, Where, ReduceProd.
fn eval_values(op: &str, ins: &[Option<&HostTensor>], a: &Attrs, what: &str) -> Result<HostTensor> {
    let x = |i: usize| -> Result<&HostTensor> {
        ins.get(i).copied().flatten().ok_or_else(|| anyhow!("{what}: input {i} is missing"))
    };
    let ints = |i: usize| -> Result<Vec<i64>> { Ok(x(i)?.as_i64()) };
    Ok(match op {
        "ConstantOfShape" => {
            let dims: Vec<usize> = ints(0)?.iter().map(|&d| d.max(0) as usize).collect();
            let n = numel(&dims, what)?;
            match a.tensor("value") {
                Some(v) if matches!(v.data, Data::I64(_)) => HostTensor::i64(dims, vec![v.as_i64()[0]; n]),
                Some(v) => HostTensor::f32(dims, vec![v.as_f32().first().copied().unwrap_or(0.0); n]),
                None => HostTensor::f32(dims, vec![0.0; n]),
            }
        }
        "Range" => {
            let (s, l, d) = (x(0)?, x(1)?, x(2)?);
            let (s0, l0, d0) = (s.as_f32()[0] as f64, l.as_f32()[0] as f64, d.as_f32()[0] as f64);
            if d0 == 0.0 {
                bail!("{what}: a delta of 0");
            }
            let n = ((l0 - s0) / d0).ceil().max(0.0) as usize;
            numel(&[n], what)?;
            if matches!(s.data, Data::I64(_)) {
                HostTensor::i64(vec![n], (0..n).map(|i| s.as_i64()[0] + i as i64 * d.as_i64()[0]).collect())
            } else {
                HostTensor::f32(vec![n], (0..n).map(|i| (s0 + i as f64 * d0) as f32).collect())
            }
        }
        "Reshape" => {
            let t = x(0)?;
            let dims = reshape_dims(&t.dims, &ints(1)?, a.int("allowzero", 0) == 1, what)?;
            HostTensor { dims, data: t.data.clone() }
        }
        "Flatten" => {
            let t = x(0)?;
            let ax = if t.dims.is_empty() { 0 } else { axis(a.int("axis", 1), t.dims.len() + 1, what)? };
            let dims = vec![t.dims[..ax].iter().product(), t.dims[ax..].iter().product()];
            HostTensor { dims, data: t.data.clone() }
        }
        "Transpose" => {
            let t = x(0)?;
            let perm: Vec<usize> = match a.ints("perm") {
                p if p.is_empty() => (0..t.dims.len()).rev().collect(),
                p => p.iter().map(|&v| axis(v, t.dims.len(), what)).collect::<Result<_>>()?,
            };
            transpose(t, &perm)?
        }
        "Add" | "Sub" | "Mul" | "Div" | "Min" | "Max" | "Equal" => elementwise(op, x(0)?, x(1)?, what)?,
        "Neg" | "Floor" | "Ceil" | "Sqrt" => {
            let t = x(0)?;
            match &t.data {
                Data::I64(v) if op == "Neg" => HostTensor::i64(t.dims.clone(), v.iter().map(|&e| -e).collect()),
                Data::I64(_) if op != "Sqrt" => t.clone(),
                _ => {
                    let f = |v: f32| match op {
                        "Neg" => -v,
                        "Floor" => v.floor(),
                        "Ceil" => v.ceil(),
                        _ => v.sqrt(),
                    };
                    HostTensor::f32(t.dims.clone(), t.as_f32().into_iter().map(f).collect())
                }
            }
        }
        "Where" => {
            let (c, p, q) = (x(0)?, x(1)?, x(2)?);
            let dims = broadcast_dims(&broadcast_dims(&c.dims, &p.dims, what)?, &q.dims, what)?;
            let n = numel(&dims, what)?;
            let (cv, pv, qv) = (c.as_i64(), p.as_f32(), q.as_f32());
            let v: Vec<f32> = (0..n)
                .map(|i| {
                    let idx = unravel(i, &dims);
                    if cv[source_index(&idx, &c.dims)] != 0 {
                        pv[source_index(&idx, &p.dims)]
                    } else {
                        qv[source_index(&idx, &q.dims)]
                    }
                })
                .collect();
            if matches!(p.data, Data::I64(_)) {
                HostTensor::i64(dims, v.into_iter().map(|f| f as i64).collect())
            } else {
                HostTensor::f32(dims, v)
            }
        }
        "ReduceProd" => {
            let t = x(0)?;
            HostTensor::i64(vec![1], vec![t.as_i64().iter().product()])
        }
        other => bail!("{what}: {other} cannot be folded on the host"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(dims: Vec<usize>, v: Vec<i64>) -> HostTensor {
        HostTensor::i64(dims, v)
    }

    #[test]
    fn shape_arithmetic_folds() {
        let a = Attrs::default();
        let s = eval("Gather", &[Some(&i(vec![4], vec![1, 24, 20, 24])), Some(&i(vec![], vec![1]))], &a, "g").unwrap();
        assert_eq!(s[0], i(vec![], vec![24]));
        let d = eval("Div", &[Some(&s[0]), Some(&i(vec![], vec![2]))], &a, "d").unwrap();
        assert_eq!(d[0].as_i64(), vec![12]);
        let r = reshape_dims(&[1, 24, 20, 24], &[1, 2, -1, 20, 24], false, "r").unwrap();
        assert_eq!(r, vec![1, 2, 12, 20, 24]);
        assert_eq!(reshape_dims(&[1, 24, 5, 5], &[0, -1], false, "r").unwrap(), vec![1, 600]);
        assert!(reshape_dims(&[1, 24], &[5, -1], false, "r").is_err());
    }

    #[test]
    fn slices_and_transposes_like_numpy() {
        let t = i(vec![2, 3], vec![0, 1, 2, 3, 4, 5]);
        let s = slice(&t, &[1], &[i64::MAX], &[1], &[1], "s").unwrap();
        assert_eq!(s, i(vec![2, 2], vec![1, 2, 4, 5]));
        let s = slice(&t, &[-1], &[i64::MIN], &[1], &[-1], "s").unwrap();
        assert_eq!(s, i(vec![2, 3], vec![2, 1, 0, 5, 4, 3]));
        assert_eq!(transpose(&t, &[1, 0]).unwrap(), i(vec![3, 2], vec![0, 3, 1, 4, 2, 5]));
        let c = eval("Concat", &[Some(&t), Some(&t)], &Attrs::with_int("axis", 1), "c").unwrap();
        assert_eq!(c[0], i(vec![2, 6], vec![0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5]));
    }

    #[test]
    fn broadcasting_and_errors() {
        let a = i(vec![2, 1], vec![1, 2]);
        let b = i(vec![3], vec![10, 20, 30]);
        let s = eval("Add", &[Some(&a), Some(&b)], &Attrs::default(), "add").unwrap();
        assert_eq!(s[0], i(vec![2, 3], vec![11, 21, 31, 12, 22, 32]));
        let e = eval("Add", &[Some(&i(vec![2], vec![1, 2])), Some(&b)], &Attrs::default(), "add").unwrap_err();
        assert!(e.to_string().contains("do not broadcast"), "{e}");
        let e = eval("Gather", &[Some(&b), Some(&i(vec![], vec![7]))], &Attrs::default(), "g").unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
    }
}

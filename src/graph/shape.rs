//! Shape inference: the output shape of each op from its inputs' shapes, with errors that
//! name the node and say what to do.

use super::{Op, pool_out_len};
use crate::tensor::Shape;
use anyhow::{Result, anyhow, bail};

/// The output shape of `op` (node `name`) on inputs of shapes `ins`, the first coming from
/// `from` (`from_image`: the graph's input).
pub(super) fn infer_one(name: &str, op: &Op, ins: &[Shape], from: &str, from_image: bool) -> Result<Shape> {
    let cur = *ins.first().ok_or_else(|| anyhow!("{name} has no input"))?;
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
        Op::ConvG(c) => {
            channels(c.cin, c.kind_name())?;
            let (Some(h), Some(w)) = (c.out_len(0, cur.h), c.out_len(1, cur.w)) else {
                return Err(too_small(c.kh.max(c.kw)));
            };
            if h == 0 || w == 0 {
                return Err(too_small(c.kh.max(c.kw)));
            }
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
        Op::Relu | Op::Unary(_) | Op::Copy | Op::Softmax => cur,
        Op::MaxPool { k, stride, ceil } => {
            let (Some(h), Some(w)) = (pool_out_len(cur.h, *k, *stride, *ceil), pool_out_len(cur.w, *k, *stride, *ceil))
            else {
                return Err(too_small(*k));
            };
            Shape::new(cur.c, h, w)
        }
        Op::Pool(p) => {
            let (Some(h), Some(w)) = (p.out_len(0, cur.h), p.out_len(1, cur.w)) else {
                return Err(too_small(p.kernel[0].max(p.kernel[1])));
            };
            Shape::new(cur.c, h, w)
        }
        Op::GlobalPool { .. } => Shape::new(cur.c, 1, 1),
        Op::Binary { constant, .. } => {
            let other = match constant {
                Some((_, s)) => *s,
                None => *ins.get(1).ok_or_else(|| anyhow!("{name} needs two inputs"))?,
            };
            broadcast(name, cur, other)?
        }
        Op::Concat => {
            let (h, w) = (cur.h, cur.w);
            if let Some(s) = ins.iter().find(|s| (s.h, s.w) != (h, w)) {
                bail!(
                    "{name} concatenates {h}x{w} with {}x{}: the inputs must have the same height and width",
                    s.h,
                    s.w
                );
            }
            Shape::new(ins.iter().map(|s| s.c).sum(), h, w)
        }
        Op::SliceChannels { start, end } => {
            if start >= end || *end > cur.c {
                bail!("{name} takes channels {start}..{end} of {from}, which has {}", cur.c);
            }
            Shape::new(end - start, cur.h, cur.w)
        }
        Op::Pad { pads, .. } => Shape::new(cur.c, cur.h + pads[0] + pads[2], cur.w + pads[1] + pads[3]),
        Op::Resize(r) => Shape::new(cur.c, r.out_h, r.out_w),
        Op::ChannelShuffle { groups } => {
            if *groups == 0 || cur.c % groups != 0 {
                bail!("{name} shuffles {} channels in {groups} groups", cur.c);
            }
            cur
        }
        Op::Gemm { k, n, .. } => {
            if cur.len() != *k {
                bail!("{name} multiplies {k} inputs but {from} has {} values ({cur})", cur.len());
            }
            Shape::new(*n, 1, 1)
        }
    })
}

/// The shape of `a ∘ b`: equal shapes, or `b` (or `a`) a per-channel vector or a scalar.
pub fn broadcast(name: &str, a: Shape, b: Shape) -> Result<Shape> {
    let fits = |big: Shape, small: Shape| {
        small == big || small.len() == 1 || (small.c == big.c && small.h == 1 && small.w == 1)
    };
    if fits(a, b) {
        Ok(a)
    } else if fits(b, a) {
        Ok(b)
    } else {
        bail!("{name} combines {a} with {b}; convscope broadcasts equal shapes, per-channel [1,C,1,1] and scalars")
    }
}

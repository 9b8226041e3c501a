//! `--arch`: the one-line network description (`[NAME=]OP` per layer), and building a
//! `Network` from it, from a state_dict, or both.
//!
//! Ops: `conv(cin,cout,k[,stride=S][,pad=P])` (seeded like `nn.Conv2d`), a tensor-name prefix
//! from `--weights` with optional `(stride=S,pad=P)` (its tensors say what it is), `relu`,
//! `maxpool(k[,s][,ceil])`.

use crate::network::{Conv2d, Layer, Network, Op};
use crate::torch_init::{Mt19937, conv2d_default_init};
use crate::weights::StateDict;
use anyhow::{Result, anyhow, bail};

/// One parsed `--arch` entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    Conv { cin: usize, cout: usize, k: usize, stride: usize, pad: usize },
    Tensor { prefix: String, stride: Option<usize>, pad: Option<usize> },
    Relu,
    MaxPool { k: usize, stride: usize, ceil: bool },
}

/// Splits on whitespace outside parentheses.
fn tokens(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    for ch in s.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            bail!("--arch: unbalanced ')' in {s:?}");
        }
        if ch.is_whitespace() && depth == 0 {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if !ch.is_whitespace() {
            cur.push(ch);
        }
    }
    if depth != 0 {
        bail!("--arch: unbalanced '(' in {s:?}");
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Largest channel count, kernel, stride and padding `--arch` accepts (beyond them a typo
/// would only exhaust memory).
pub const MAX_CHANNELS: usize = 16384;
pub const MAX_WINDOW: usize = 255;

fn number(tok: &str, what: &str, v: &str) -> Result<usize> {
    let n = v.trim().parse::<usize>().map_err(|_| anyhow!("--arch {tok:?}: {what} {v:?} is not a whole number"))?;
    let max = if what == "cin" || what == "cout" { MAX_CHANNELS } else { MAX_WINDOW };
    if n > max {
        bail!("--arch {tok:?}: {what} {n} is larger than {max}");
    }
    Ok(n)
}

/// Parses `--arch` into `(explicit name, spec)` pairs.
pub fn parse(arch: &str) -> Result<Vec<(Option<String>, Spec)>> {
    let mut out = Vec::new();
    for tok in tokens(arch)? {
        let (name, op) = match tok.split_once('=') {
            Some((n, rest)) if !n.contains('(') => (Some(n.to_string()), rest.to_string()),
            _ => (None, tok.clone()),
        };
        if let Some(n) = &name
            && n.is_empty()
        {
            bail!("--arch {tok:?}: empty name before '='");
        }
        let (head, args) = match op.split_once('(') {
            Some((h, rest)) => {
                let inner = rest.strip_suffix(')').ok_or_else(|| anyhow!("--arch {tok:?}: missing ')'"))?;
                (h.to_string(), inner.split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect())
            }
            None => (op.clone(), Vec::<String>::new()),
        };
        let mut positional = Vec::new();
        let mut keyed = std::collections::BTreeMap::new();
        for a in &args {
            match a.split_once('=') {
                Some((k, v)) => {
                    keyed.insert(k.trim().to_string(), v.trim().to_string());
                }
                None => positional.push(a.clone()),
            }
        }
        let spec = spec_of(&tok, &head, &args, &positional, &keyed)?;
        out.push((name, spec));
    }
    if out.is_empty() {
        bail!("--arch is empty; give at least one layer, e.g. \"conv(3,12,5)\"");
    }
    Ok(out)
}

/// The layer one `--arch` token describes: `head(args)` with positional and `key=value` arguments.
fn spec_of(
    tok: &str,
    head: &str,
    args: &[String],
    positional: &[String],
    keyed: &std::collections::BTreeMap<String, String>,
) -> Result<Spec> {
    let take = |k: &str| -> Result<Option<usize>> { keyed.get(k).map(|v| number(tok, k, v)).transpose() };
    for k in keyed.keys() {
        if k != "stride" && k != "pad" {
            bail!("--arch {tok:?}: unknown option {k:?} (stride=, pad= are known)");
        }
    }
    Ok(match head {
        "conv" => {
            if positional.len() != 3 {
                bail!("--arch {tok:?}: conv takes (cin,cout,k[,stride=S][,pad=P])");
            }
            let (cin, cout, k) = (
                number(tok, "cin", &positional[0])?,
                number(tok, "cout", &positional[1])?,
                number(tok, "k", &positional[2])?,
            );
            let stride = take("stride")?.unwrap_or(1);
            if cin == 0 || cout == 0 || k == 0 || stride == 0 {
                bail!("--arch {tok:?}: channels, kernel size and stride must be at least 1");
            }
            if cin * cout * k * k > 1 << 26 {
                bail!("--arch {tok:?}: {} weights is more than convscope seeds (2^26)", cin * cout * k * k);
            }
            Spec::Conv { cin, cout, k, stride, pad: take("pad")?.unwrap_or(0) }
        }
        "relu" => {
            if !args.is_empty() {
                bail!("--arch {tok:?}: relu takes no arguments");
            }
            Spec::Relu
        }
        "maxpool" => {
            let ceil = positional.iter().any(|a| a == "ceil");
            let nums: Vec<&String> = positional.iter().filter(|a| *a != "ceil").collect();
            if nums.is_empty() || nums.len() > 2 || !keyed.is_empty() {
                bail!("--arch {tok:?}: maxpool takes (k[,s][,ceil])");
            }
            let k = number(tok, "k", nums[0])?;
            let stride = nums.get(1).map(|s| number(tok, "s", s)).transpose()?.unwrap_or(k);
            if k == 0 || stride == 0 {
                bail!("--arch {tok:?}: window and stride must be at least 1");
            }
            Spec::MaxPool { k, stride, ceil }
        }
        prefix => {
            if !positional.is_empty() {
                bail!("--arch {tok:?}: a weights layer takes only (stride=S,pad=P)");
            }
            if prefix.is_empty() {
                bail!("--arch {tok:?}: empty layer");
            }
            Spec::Tensor { prefix: prefix.to_string(), stride: take("stride")?, pad: take("pad")? }
        }
    })
}

/// The layer a state_dict prefix stands for, from the tensors it has.
fn layer_from_tensors(sd: &StateDict, prefix: &str, stride: Option<usize>, pad: Option<usize>) -> Result<Op> {
    let get = |suffix: &str| sd.get(&format!("{prefix}.{suffix}"));
    let src = &sd.source;
    if let (Some(mean), Some(var)) = (get("running_mean"), get("running_var")) {
        let c = mean.data.len();
        let weight = get("weight").map_or(vec![1.0; c], |p| p.data.clone());
        let bias = get("bias").map_or(vec![0.0; c], |p| p.data.clone());
        if var.data.len() != c || weight.len() != c || bias.len() != c {
            bail!("{src}: {prefix} BatchNorm tensors differ in length");
        }
        if let Some(i) = var.data.iter().position(|v| *v < 0.0) {
            bail!("{src}: {prefix}.running_var[{i}] is negative ({}); a variance cannot be", var.data[i]);
        }
        if stride.is_some() || pad.is_some() {
            bail!("--arch {prefix}: stride/pad apply to convolutions only");
        }
        return Ok(Op::BatchNorm { weight, bias, mean: mean.data.clone(), var: var.data.clone(), eps: 1e-5 });
    }
    let Some(w) = get("weight") else {
        let have = sd.prefixes().join(", ");
        bail!("--arch names {prefix:?}, which is not in {src} (it has: {have})");
    };
    match w.shape.len() {
        4 => {
            let [cout, cin, kh, kw] = [w.shape[0], w.shape[1], w.shape[2], w.shape[3]];
            if kh != kw {
                bail!("{src}: {prefix}.weight has a {kh}x{kw} kernel; only square kernels are supported");
            }
            if cout == 0 || cin == 0 || kh == 0 {
                bail!("{src}: {prefix}.weight has an empty dimension {:?}", w.shape);
            }
            // The same bounds as --arch: a huge kernel would make an enormous shader.
            if kh > MAX_WINDOW || cin > MAX_CHANNELS || cout > MAX_CHANNELS {
                bail!(
                    "{src}: {prefix}.weight {:?} is beyond what convscope shows (kernel at most {MAX_WINDOW}, channels at most {MAX_CHANNELS})",
                    w.shape
                );
            }
            let bias = match get("bias") {
                Some(b) if b.data.len() == cout => b.data.clone(),
                Some(b) => bail!("{src}: {prefix}.bias has {} values for {cout} output channels", b.data.len()),
                None => vec![0.0; cout],
            };
            let stride = stride.unwrap_or(1);
            if stride == 0 {
                bail!("--arch {prefix}: stride must be at least 1");
            }
            Ok(Op::Conv(Conv2d { cin, cout, k: kh, stride, pad: pad.unwrap_or(0), weight: w.data.clone(), bias }))
        }
        1 if get("bias").is_none() => {
            if stride.is_some() || pad.is_some() {
                bail!("--arch {prefix}: stride/pad apply to convolutions only");
            }
            if w.data.is_empty() {
                bail!("{src}: {prefix}.weight is empty");
            }
            Ok(Op::PRelu { slopes: w.data.clone() })
        }
        n => bail!(
            "{src}: {prefix} has a {n}-D weight {:?}; convscope shows Conv2d, BatchNorm2d and PReLU layers",
            w.shape
        ),
    }
}

/// Builds the network: `arch` if given (layers from `weights` or seeded), else every 4-D
/// `*.weight` of `weights` as an unpadded stride-1 conv, else the tutorial network.
pub fn build(arch: Option<&str>, weights: Option<&StateDict>, seed: i64) -> Result<Network> {
    let Some(arch) = arch else {
        let Some(sd) = weights else { return Ok(Network::tutorial(seed)) };
        let mut layers = Vec::new();
        for prefix in sd.prefixes() {
            if sd.get(&format!("{prefix}.weight")).is_some_and(|w| w.shape.len() == 4) {
                layers.push(Layer { name: prefix.clone(), op: layer_from_tensors(sd, &prefix, None, None)? });
            }
        }
        if layers.is_empty() {
            bail!("{} has no 4-D conv weights; describe the network with --arch", sd.source);
        }
        return Ok(Network { layers });
    };
    let mut rng = Mt19937::new(seed);
    let mut counts = std::collections::HashMap::new();
    let mut layers: Vec<Layer> = Vec::new();
    for (name, spec) in parse(arch)? {
        let kind = match &spec {
            Spec::Conv { .. } => "conv",
            Spec::Relu => "relu",
            Spec::MaxPool { .. } => "pool",
            Spec::Tensor { .. } => "layer",
        };
        let n = counts.entry(kind).or_insert(0usize);
        *n += 1;
        let (default_name, op) = match spec {
            Spec::Conv { cin, cout, k, stride, pad } => {
                let (weight, bias) = conv2d_default_init(&mut rng, cin, cout, k);
                (format!("conv{n}"), Op::Conv(Conv2d { cin, cout, k, stride, pad, weight, bias }))
            }
            Spec::Relu => (format!("relu{n}"), Op::Relu),
            Spec::MaxPool { k, stride, ceil } => (format!("pool{n}"), Op::MaxPool { k, stride, ceil }),
            Spec::Tensor { prefix, stride, pad } => {
                let sd = weights.ok_or_else(|| {
                    anyhow!("--arch names {prefix:?} but no --weights file was given to take it from")
                })?;
                (prefix.clone(), layer_from_tensors(sd, &prefix, stride, pad)?)
            }
        };
        let name = name.unwrap_or(default_name);
        if name == crate::graph::INPUT {
            bail!("--arch: {name:?} names the image; give the layer another NAME= prefix");
        }
        if layers.iter().any(|l| l.name == name) {
            bail!("--arch: two layers are named {name:?}; give one a NAME= prefix");
        }
        layers.push(Layer { name, op });
    }
    Ok(Network { layers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let a = parse("conv(3,12,5) c2=conv(12, 24, 5, stride=2, pad=1) relu pool1=maxpool(3,2,ceil) maxpool(2) layers.4(stride=2,pad=1) prelu1").unwrap();
        assert_eq!(a[0], (None, Spec::Conv { cin: 3, cout: 12, k: 5, stride: 1, pad: 0 }));
        assert_eq!(a[1], (Some("c2".into()), Spec::Conv { cin: 12, cout: 24, k: 5, stride: 2, pad: 1 }));
        assert_eq!(a[2], (None, Spec::Relu));
        assert_eq!(a[3], (Some("pool1".into()), Spec::MaxPool { k: 3, stride: 2, ceil: true }));
        assert_eq!(a[4], (None, Spec::MaxPool { k: 2, stride: 2, ceil: false }));
        assert_eq!(a[5], (None, Spec::Tensor { prefix: "layers.4".into(), stride: Some(2), pad: Some(1) }));
        assert_eq!(a[6], (None, Spec::Tensor { prefix: "prelu1".into(), stride: None, pad: None }));
    }

    #[test]
    fn rejects_bad_arch() {
        for bad in [
            "",
            "conv(3,12)",
            "conv(3,x,5)",
            "maxpool()",
            "relu(1)",
            "conv(3,12,5",
            "conv(3,12,5,dilation=2)",
            "=relu",
            "a)b",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn default_arch_reproduces_the_tutorial() {
        let net = build(Some("conv(3,12,5) conv(12,24,5) conv(24,48,5)"), None, 5).unwrap();
        assert_eq!(net, Network::tutorial(5));
        let net = build(Some("relu conv(3,4,3) relu maxpool(2)"), None, 0).unwrap();
        let names: Vec<&str> = net.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["relu1", "conv1", "relu2", "pool1"]);
        assert!(build(Some("relu relu1=relu"), None, 0).is_err()); // duplicate name
        assert!(build(Some("conv1"), None, 0).unwrap_err().to_string().contains("no --weights"));
    }
}

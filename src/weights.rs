//! PyTorch state_dicts saved as safetensors: read safely (every malformed file is one clear
//! error, never a panic or an out-of-bounds read), floats converted to f32, integer
//! tensors such as `num_batches_tracked` skipped, names in module order (numerically).

use anyhow::{Result, anyhow, bail};
use safetensors::{Dtype, SafeTensors};
use std::cmp::Ordering;
use std::path::Path;

/// One tensor of a state_dict, as f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The usable tensors of a state_dict in module order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateDict {
    pub source: String,
    pub params: Vec<Param>,
}

/// Compares names the way modules are numbered: `layers.2` before `layers.10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let key = |s: &str| -> Vec<(u8, u64, String)> {
        s.split('.')
            .map(|part| match part.parse::<u64>() {
                Ok(n) => (0, n, String::new()),
                Err(_) => (1, 0, part.to_string()),
            })
            .collect()
    };
    key(a).cmp(&key(b))
}

fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    match dtype {
        Dtype::F32 => Some(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        Dtype::F16 => Some(bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()),
        Dtype::BF16 => Some(bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect()),
        _ => None,
    }
}

fn is_integer(dtype: Dtype) -> bool {
    matches!(
        dtype,
        Dtype::BOOL
            | Dtype::U8
            | Dtype::I8
            | Dtype::I16
            | Dtype::U16
            | Dtype::I32
            | Dtype::U32
            | Dtype::I64
            | Dtype::U64
    )
}

impl StateDict {
    /// Reads a safetensors file.
    pub fn open(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        if !path.is_file() {
            bail!("cannot open weights file {shown}: no such file; check the path");
        }
        let bytes = std::fs::read(path).map_err(|e| anyhow!("cannot read weights file {shown}: {e}"))?;
        Self::from_bytes(&bytes, &shown)
    }

    /// Parses safetensors bytes; `source` names them in errors.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            anyhow!("{source} is not a valid safetensors file ({e}); save it with safetensors.torch.save_file")
        })?;
        let mut params = Vec::new();
        for (name, view) in st.tensors() {
            let dtype = view.dtype();
            if is_integer(dtype) {
                continue;
            }
            let data = to_f32(dtype, view.data()).ok_or_else(|| {
                anyhow!("{source}: tensor {name} has dtype {dtype:?}; convscope reads F32, F16 and BF16")
            })?;
            params.push(Param { name, shape: view.shape().to_vec(), data });
        }
        if params.is_empty() {
            bail!("{source} holds no float tensors; convscope needs a state_dict with conv weights");
        }
        params.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        Ok(Self { source: source.to_string(), params })
    }

    pub fn get(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Module prefixes (`conv1`, `layers.4`) in order.
    pub fn prefixes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.params {
            let prefix = p.name.rsplit_once('.').map_or(p.name.as_str(), |(a, _)| a).to_string();
            if !out.contains(&prefix) {
                out.push(prefix);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["layers.10.weight", "layers.2.weight", "layers.1.bias", "conv1.weight", "layers.1.weight"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["conv1.weight", "layers.1.bias", "layers.1.weight", "layers.2.weight", "layers.10.weight"]);
    }

    #[test]
    fn half_precision_converts() {
        let one = half::f16::from_f32(1.5).to_le_bytes();
        assert_eq!(to_f32(Dtype::F16, &one), Some(vec![1.5]));
        let b = half::bf16::from_f32(-2.0).to_le_bytes();
        assert_eq!(to_f32(Dtype::BF16, &b), Some(vec![-2.0]));
        assert_eq!(to_f32(Dtype::F64, &[0; 8]), None);
    }
}

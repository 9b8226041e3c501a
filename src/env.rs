//! Environment variables that tune the engine, parsed once with checked arithmetic: a bad
//! value is an error naming the variable, never ignored and never a wrapped number.

use crate::ops::conv_tuned::Block;
use anyhow::{Result, anyhow, bail};

/// The default activation memory budget: 4 GiB.
pub const DEFAULT_MEMORY_BUDGET: u64 = 4 << 30;

/// What the environment asks of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineEnv {
    /// `CONVSCOPE_BLOCK=PXxOCV[lL][yPY][s]`: the tuned kernel's register block.
    pub block: Option<Block>,
    /// `CONVSCOPE_MAX_BINDING_KB`: a lower per-buffer limit (forces banding).
    pub max_binding: Option<u64>,
    /// `CONVSCOPE_GPU_MEMORY_MB`: the activation memory budget.
    pub memory_budget: u64,
    /// `CONVSCOPE_AUTOTUNE=0` turns off the per-layer choice of blocks by measurement
    /// (`1`, the default, keeps it; `CONVSCOPE_BLOCK` also turns it off).
    pub autotune: bool,
    /// `CONVSCOPE_WIDE_ACCESS=0|1`: read and write the shaders' vec4 storage arrays as
    /// 64-bit pairs (`ops::wide`), where the adapter has 64-bit integers. Unset: on CPU
    /// adapters only, where it was measured faster.
    pub wide: Option<bool>,
}

impl Default for EngineEnv {
    fn default() -> Self {
        EngineEnv { block: None, max_binding: None, memory_budget: DEFAULT_MEMORY_BUDGET, autotune: true, wide: None }
    }
}

impl EngineEnv {
    /// From the process environment.
    pub fn from_env() -> Result<Self> {
        Self::parse(|k| std::env::var(k).ok())
    }

    /// From any lookup (tests pass a map).
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let block = get("CONVSCOPE_BLOCK")
            .map(|v| Block::parse(&v).map_err(|e| anyhow!("CONVSCOPE_BLOCK: {e}; unset it or give e.g. 8x2")))
            .transpose()?;
        let max_binding =
            get("CONVSCOPE_MAX_BINDING_KB").map(|v| scaled("CONVSCOPE_MAX_BINDING_KB", &v, 10, "KiB")).transpose()?;
        let memory_budget = get("CONVSCOPE_GPU_MEMORY_MB")
            .map(|v| scaled("CONVSCOPE_GPU_MEMORY_MB", &v, 20, "MiB"))
            .transpose()?
            .unwrap_or(DEFAULT_MEMORY_BUDGET);
        let autotune = match get("CONVSCOPE_AUTOTUNE").as_deref().map(str::trim) {
            None | Some("1") => true,
            Some("0") => false,
            Some(v) => bail!("CONVSCOPE_AUTOTUNE={v:?}: give 0 (off) or 1 (on), or unset it"),
        };
        let wide = match get("CONVSCOPE_WIDE_ACCESS").as_deref().map(str::trim) {
            None => None,
            Some("1") => Some(true),
            Some("0") => Some(false),
            Some(v) => bail!("CONVSCOPE_WIDE_ACCESS={v:?}: give 0 (off) or 1 (on), or unset it"),
        };
        Ok(EngineEnv { block, max_binding, memory_budget, autotune, wide })
    }
}

/// `value << shift` for a positive whole number, refusing zero, junk and overflow.
fn scaled(var: &str, value: &str, shift: u32, unit: &str) -> Result<u64> {
    let n: u64 = value.trim().parse().map_err(|_| anyhow!("{var}={value:?} is not a whole number of {unit}"))?;
    if n == 0 {
        bail!("{var}=0: give a positive number of {unit}, or unset it");
    }
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| anyhow!("{var}={value} is too large; give at most {} {unit}", u64::MAX >> shift))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<EngineEnv> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        EngineEnv::parse(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(parse(&[]).unwrap(), EngineEnv::default());
        let e =
            parse(&[("CONVSCOPE_BLOCK", "8x2"), ("CONVSCOPE_MAX_BINDING_KB", "64"), ("CONVSCOPE_GPU_MEMORY_MB", "2")])
                .unwrap();
        assert_eq!(
            e.block,
            Some(Block {
                px: 8,
                ocv: 2,
                unroll: true,
                lanes: 1,
                sg: false,
                py: 1,
                wino: false,
                split: 1,
                image: false
            })
        );
        assert_eq!(e.max_binding, Some(64 << 10));
        assert_eq!(e.memory_budget, 2 << 20);
    }

    #[test]
    fn zero_junk_and_overflow_are_errors() {
        let e = parse(&[("CONVSCOPE_MAX_BINDING_KB", "0")]).unwrap_err().to_string();
        assert!(e.contains("CONVSCOPE_MAX_BINDING_KB=0"), "{e}");
        let e = parse(&[("CONVSCOPE_MAX_BINDING_KB", "18446744073709551615")]).unwrap_err().to_string();
        assert!(e.contains("too large"), "{e}");
        let e = parse(&[("CONVSCOPE_GPU_MEMORY_MB", "99999999999999999")]).unwrap_err().to_string();
        assert!(e.contains("CONVSCOPE_GPU_MEMORY_MB") && e.contains("too large"), "{e}");
        let e = parse(&[("CONVSCOPE_GPU_MEMORY_MB", "lots")]).unwrap_err().to_string();
        assert!(e.contains("not a whole number"), "{e}");
        let e = parse(&[("CONVSCOPE_BLOCK", "99x1")]).unwrap_err().to_string();
        assert!(e.starts_with("CONVSCOPE_BLOCK"), "{e}");
        assert!(!parse(&[("CONVSCOPE_AUTOTUNE", "0")]).unwrap().autotune);
        assert!(parse(&[("CONVSCOPE_AUTOTUNE", "1")]).unwrap().autotune);
        let e = parse(&[("CONVSCOPE_AUTOTUNE", "yes")]).unwrap_err().to_string();
        assert!(e.starts_with("CONVSCOPE_AUTOTUNE=\"yes\""), "{e}");
        assert_eq!(parse(&[("CONVSCOPE_WIDE_ACCESS", "0")]).unwrap().wide, Some(false));
        assert_eq!(parse(&[("CONVSCOPE_WIDE_ACCESS", " 1")]).unwrap().wide, Some(true));
        let e = parse(&[("CONVSCOPE_WIDE_ACCESS", "on")]).unwrap_err().to_string();
        assert!(e.starts_with("CONVSCOPE_WIDE_ACCESS=\"on\": give 0 (off) or 1 (on)"), "{e}");
    }
}

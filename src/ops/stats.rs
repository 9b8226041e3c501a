//! Per-channel statistics on the GPU: min/max (for the colormap's normalisation) and
//! sum, sum of squares, zeros and count (for the HUD), folded band by band over the rows
//! each band owns. CPU twins: `reference::channel_minmax`, [`LayerStats::of`].

use super::{Bind, ShaderDesc, WgslStruct};
use crate::tensor::Tensor;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "minmax.wgsl",
    source: include_str!("../../shaders/minmax.wgsl"),
    // params, data, stats (min, max), moments
    bindings: &[
        Bind::Uniform,
        Bind::Storage { read_only: true },
        Bind::Storage { read_only: false },
        Bind::Storage { read_only: false },
    ],
    params: Some(Params::layout),
};

/// The statistics pipeline: on adapters with subgroups of 8 or more (`subgroups`) that are
/// CPUs (`cpu`), the file's subgroup form `main8` (one subgroup of 8 a channel, folded by
/// subgroup operations, no workgroup memory or barriers, which on lavapipe are a switch
/// between SIMD groups each and a loop over the lanes each: 256 channels of 56² took about
/// as long as the 1×1 conv that wrote them, 46% of a `bench --shape` run's samples); else
/// workgroups of 64 folding in workgroup memory. One workgroup per channel either way.
pub fn pipeline(cpu: bool, subgroups: bool) -> super::PipelineSpec {
    if cpu && subgroups {
        super::PipelineSpec {
            key: "minmax subgroup".into(),
            source: std::borrow::Cow::Owned(super::as_main(SHADER.source, "main8")),
            shader: &SHADER,
        }
    } else {
        super::PipelineSpec { key: "minmax".into(), source: SHADER.source.into(), shader: &SHADER }
    }
}

super::wgsl_struct! {
    /// Mirrors `Params` in `minmax.wgsl`.
    pub struct Params as "Params" {
        pub plane: u32,
        pub offset: u32,
        pub count: u32,
        pub accumulate: u32,
    }
}

/// The range of a whole layer: min of the channel minima, max of the maxima.
pub fn layer_range(stats: &[[f32; 2]]) -> (f32, f32) {
    stats.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| (lo.min(s[0]), hi.max(s[1])))
}

/// Whole-layer statistics for the HUD.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerStats {
    pub min: f32,
    pub max: f32,
    pub mean: f64,
    pub std: f64,
    /// Fraction of values that are exactly zero.
    pub zeros: f64,
}

impl LayerStats {
    /// Combines per-channel `(min, max)` and `(sum, sum of squares, zeros, count)`.
    pub fn combine(minmax: &[[f32; 2]], moments: &[[f32; 4]]) -> Self {
        let (min, max) = layer_range(minmax);
        let (mut s, mut ss, mut z, mut n) = (0f64, 0f64, 0f64, 0f64);
        for m in moments {
            s += m[0] as f64;
            ss += m[1] as f64;
            z += m[2] as f64;
            n += m[3] as f64;
        }
        let n = n.max(1.0);
        let mean = s / n;
        LayerStats { min, max, mean, std: (ss / n - mean * mean).max(0.0).sqrt(), zeros: z / n }
    }

    /// The same statistics computed on the CPU (the twin of the GPU reduction).
    pub fn of(t: &Tensor) -> Self {
        let n = t.data.len().max(1) as f64;
        let mean = t.data.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = t.data.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let (min, max) = t.data.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let zeros = t.data.iter().filter(|&&v| v == 0.0).count() as f64 / n;
        LayerStats { min, max, mean, std: var.sqrt(), zeros }
    }
}

/// A 64-bin histogram of `values` over `lo..hi` (a constant channel fills bin 0).
pub fn histogram(values: &[f32], lo: f32, hi: f32) -> [u32; 64] {
    let mut h = [0u32; 64];
    for &v in values {
        let i = if hi > lo { (((v - lo) / (hi - lo)) * 64.0).floor().clamp(0.0, 63.0) as usize } else { 0 };
        h[i] += 1;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_and_constant_channels() {
        let h = histogram(&[0.0, 0.5, 1.0, 1.0], 0.0, 1.0);
        assert_eq!((h[0], h[32], h[63]), (1, 1, 2));
        assert_eq!(histogram(&[3.0, 3.0], 3.0, 3.0)[0], 2);
    }

    #[test]
    fn combined_moments_match_the_cpu() {
        let t = Tensor::new(crate::tensor::Shape::new(2, 1, 2), vec![0.0, 2.0, -1.0, 3.0]);
        let s = LayerStats::combine(&[[0.0, 2.0], [-1.0, 3.0]], &[[2.0, 4.0, 1.0, 2.0], [2.0, 10.0, 0.0, 2.0]]);
        assert_eq!(s, LayerStats::of(&t));
    }
}

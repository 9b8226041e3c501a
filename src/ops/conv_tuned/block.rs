//! The tuned kernel's register blocks: what a block name says (`8x2`, `8x3l8`, `8x4y2s`,
//! `8x8si`, `8x4w`, `1x2k8`), which form a block takes for a layer, what it needs of the
//! device, and how many invocations it runs.

use super::{MAX_UNROLLED_K, image_block, splitk, winograd_applies};
use crate::gpu::GpuContext;
use anyhow::{Result, anyhow, bail};

/// Register block of the tuned kernel: x outputs and vec4 output-channel groups per invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Block {
    pub px: u32,
    pub ocv: u32,
    /// Write the block out unrolled (named registers) instead of as loops over arrays.
    pub unroll: bool,
    /// Interleave: `lanes` neighbouring invocations share a segment of `px · lanes` outputs,
    /// invocation j taking j, j + lanes, … (1 = each invocation's outputs adjacent).
    pub lanes: u32,
    /// Subgroup form (name suffix `s`): the eight lanes of a subgroup load eight consecutive
    /// weights at once and broadcast them, instead of every lane loading every weight.
    /// Needs subgroup operations ([`GpuContext::subgroups`]).
    pub sg: bool,
    /// Output rows per invocation (name part `yPY`, unrolled blocks only): the rows share
    /// their input rows and weights (see `unrolled_block`).
    pub py: u32,
    /// Winograd F(2×2, 3×3) form (name suffix `w`, e.g. `8x4w`: subgroup form, 2 rows, PX
    /// even): 3×3 stride-1 convs take 16 products per 2×2 tile and input channel instead of
    /// 36 (see `winograd_block`); other convs run the block as its direct subgroup form
    /// ([`Block::for_layer`]). Results differ from the direct form's by float rounding.
    pub wino: bool,
    /// Split form (name `1xOCVkS`, e.g. `1x2k8`; 1 = none): one output pixel per invocation,
    /// its input channels split over S invocations of a workgroup whose partial sums are
    /// added in workgroup memory ([`splitk`]): for GPUs on layers with few outputs. Results
    /// differ from the direct form's by float rounding.
    pub split: u32,
    /// Image form (name suffix `i` after `s` or `w`, e.g. `8x8si`, `8x4wi`): the input rows
    /// and vec4 weights read as images, outputs written two vec4s at a time where rows
    /// allow (`image_form`); for CPU adapters. Where it does not apply the block runs
    /// without it.
    pub image: bool,
}

impl Default for Block {
    fn default() -> Self {
        Block { px: 8, ocv: 2, unroll: true, lanes: 1, sg: false, py: 1, wino: false, split: 1, image: false }
    }
}

/// Invocations per output row of width `out_w` for a block.
pub fn invocations_per_row(out_w: usize, b: &Block) -> usize {
    let l = b.lanes.max(1) as usize;
    out_w.div_ceil(b.px as usize * l) * l
}

/// Invocations per output-channel block over `rows` output rows of width `out_w`.
pub fn invocations(out_w: usize, rows: usize, b: &Block) -> usize {
    invocations_per_row(out_w, b) * rows.div_ceil(b.py.max(1) as usize)
}

impl Block {
    /// The block for an adapter, chosen by measurement (`convscope bench --block ...`):
    /// on CPU adapters (lavapipe) wide blocks win because llvmpipe runs 8 invocations per
    /// SIMD op and keeps large register blocks in vector registers: 24x3 measured 33 GFLOP/s
    /// on the tutorial chain against 20 for 8x2 and 11 for 4x1. GPUs spill registers past
    /// ~128 floats per invocation, so they get the moderate 8x2 (64 accumulators).
    /// With subgroup operations a CPU adapter gets the subgroup form, whose cheaper weight
    /// loads favour a narrower block (12x4s: see `unrolled_block`), in its image form
    /// (12x4si: input rows read as images, see `image_form`).
    /// `override_block` (from `CONVSCOPE_BLOCK`) wins.
    pub fn for_adapter(info: &wgpu::AdapterInfo, subgroups: bool, override_block: Option<Block>) -> Block {
        if let Some(b) = override_block {
            return b;
        }
        match (info.device_type, subgroups) {
            (wgpu::DeviceType::Cpu, true) => Block { px: 12, ocv: 4, sg: true, image: true, ..Block::default() },
            (wgpu::DeviceType::Cpu, false) => Block { px: 24, ocv: 3, ..Block::default() },
            _ => Block::default(),
        }
    }

    /// Parses a register block `PXxOCV` (x outputs × vec4 output-channel groups per
    /// invocation), optionally interleaved over L invocations: `PXxOCVlL`, e.g. `8x3l8`,
    /// over PY output rows: `PXxOCVyPY`, e.g. `8x4y2`, and in subgroup form with a trailing
    /// `s`: `8x6s`, `8x4y2s`; or a Winograd block `PXxOCVw`, e.g. `8x4w`; or a split block
    /// `1xOCVkS`, e.g. `1x2k8`.
    pub fn parse(s: &str) -> Result<Block> {
        // Errors quote the block as given, suffix and all.
        let b = s;
        if let Some((px_ocv, split)) = s.trim().split_once(['k', 'K']) {
            let bad = || anyhow!("block {b:?}: a split block is 1xOCVkS, e.g. 1x2k8 (S a power of two, 2 to 64)");
            let split: u32 = split.trim().parse().map_err(|_| bad())?;
            let plain = Block::parse(px_ocv).map_err(|_| bad())?;
            if plain != (Block { px: 1, ocv: plain.ocv, ..Block::default() }) || !splitk::valid_split(split) {
                return Err(bad());
            }
            return Ok(Block { split, ..plain });
        }
        let (s, image) = match s.trim().strip_suffix(['i', 'I']) {
            Some(rest) => (rest, true),
            None => (s.trim(), false),
        };
        let (s, wino) = match s.strip_suffix(['w', 'W']) {
            Some(rest) => (rest, true),
            None => (s, false),
        };
        let (s, sg) = match s.strip_suffix(['s', 'S']) {
            Some(rest) => (rest, true),
            None => (s, false),
        };
        if image && !(wino || sg) {
            bail!("block {b:?}: an image block is a subgroup or Winograd block with a trailing i, e.g. 12x4si, 8x4wi");
        }
        if wino && (sg || s.contains(['y', 'Y', 'l', 'L'])) {
            bail!("block {b:?}: a Winograd block is PXxOCVw, e.g. 8x4w (subgroup form and 2 rows are implied)");
        }
        let (s, py) = match s.split_once(['y', 'Y']) {
            Some((rest, y)) => (rest, Some(y)),
            None => (s, None),
        };
        let (px, rest) = s.split_once(['x', 'X']).ok_or_else(|| anyhow!("block {b:?} is not PXxOCV, e.g. 8x2"))?;
        let (ocv, lanes) = match rest.split_once(['l', 'L']) {
            Some((o, l)) => (o, Some(l)),
            None => (rest, None),
        };
        let px: u32 = px.trim().parse().map_err(|_| anyhow!("block {b:?}: PX is not a number"))?;
        let ocv: u32 = ocv.trim().parse().map_err(|_| anyhow!("block {b:?}: OCV is not a number"))?;
        let lanes: u32 = match lanes {
            Some(l) => l.trim().parse().map_err(|_| anyhow!("block {b:?}: L is not a number"))?,
            None => 1,
        };
        let py: u32 = match py {
            Some(y) => y.trim().parse().map_err(|_| anyhow!("block {b:?}: PY is not a number"))?,
            None => 1,
        };
        if !(1..=32).contains(&px) || !(1..=8).contains(&ocv) || !(1..=64).contains(&lanes) || !(1..=8).contains(&py) {
            bail!("block {b:?}: PX must be 1..32, OCV 1..8, L 1..64 and PY 1..8");
        }
        if wino && !px.is_multiple_of(2) {
            bail!("block {b:?}: a Winograd block computes 2×2 tiles, so PX must be even, e.g. 8x4w");
        }
        if wino {
            return Ok(Block { px, ocv, unroll: true, lanes: 1, sg: true, py: 2, wino: true, split: 1, image });
        }
        Ok(Block { px, ocv, unroll: true, lanes, sg, py, wino: false, split: 1, image })
    }

    /// The block a conv of kernel `k` and `stride` runs: a Winograd block where the Winograd
    /// form does not apply ([`winograd_applies`]) runs as its direct subgroup form, one row
    /// per invocation. Split blocks apply to every conv.
    pub fn for_layer(&self, k: usize, stride: usize) -> Block {
        if self.wino && !(winograd_applies(k, stride) && self.unroll) {
            return Block { wino: false, py: 1, ..*self };
        }
        if self.image && !image_block(self, k, stride) {
            return Block { image: false, ..*self };
        }
        *self
    }

    /// `PXxOCV`, with `lL` when interleaved, `yPY` over several rows and `s` appended in
    /// subgroup form (`si` in image form).
    pub fn name(&self) -> String {
        if self.split > 1 {
            return format!("{}x{}k{}", self.px, self.ocv, self.split);
        }
        if self.wino {
            return format!("{}x{}w{}", self.px, self.ocv, if self.image { "i" } else { "" });
        }
        let s = match (self.sg, self.image) {
            (true, true) => "si",
            (true, false) => "s",
            _ => "",
        };
        let l = match self.lanes {
            0 | 1 => String::new(),
            l => format!("l{l}"),
        };
        let y = match self.py {
            0 | 1 => String::new(),
            y => format!("y{y}"),
        };
        format!("{}x{}{l}{y}{s}", self.px, self.ocv)
    }

    /// Whether a conv with kernel size `k` runs this block in subgroup form (huge kernels
    /// compile in loop form, which has none).
    pub fn subgroup_form(&self, k: usize) -> bool {
        self.sg && self.unroll && k <= MAX_UNROLLED_K
    }

    /// Fails with what to do when this block needs what `ctx`'s device lacks.
    pub fn check_device(&self, ctx: &GpuContext) -> Result<()> {
        match self.unsupported(ctx.subgroups, &ctx.describe()) {
            Some(e) => bail!("{e}"),
            None => Ok(()),
        }
    }

    /// What is wrong with running this block on `adapter`, given whether it has subgroups.
    pub fn unsupported(&self, subgroups: bool, adapter: &str) -> Option<String> {
        (self.sg && !subgroups).then(|| {
            format!(
                "block {} needs subgroup operations (subgroups of 8 or more), which {adapter} does not offer; \
                 use the block without the trailing {}, e.g. {}",
                self.name(),
                match (self.wino, self.image) {
                    (true, true) => "wi",
                    (true, false) => "w",
                    (false, true) => "si",
                    (false, false) => "s",
                },
                Block { sg: false, wino: false, image: false, py: if self.wino { 1 } else { self.py }, ..*self }.name()
            )
        })
    }
}

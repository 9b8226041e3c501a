//! The result of a run: every tensor that was kept, in its row bands, with per-channel
//! statistics, all still on the GPU; read-backs of tensors, channels and single values
//! (blocking for the CLI and tests, asynchronous for the viewer).

use super::pool::Pooled;
use crate::gpu::{GpuContext, Readback};
use crate::ops::colormap::BandRef;
use crate::ops::stats::LayerStats;
use crate::tensor::{Shape, Tensor};
use anyhow::{Result, anyhow, bail};
use std::sync::Arc;

/// One band of a tensor in a GPU buffer: rows `row0 .. row0 + rows` of every channel
/// (`[C][rows][W]`), owning rows `own_lo .. own_hi`.
#[derive(Clone)]
pub struct Band {
    pub buffer: Arc<Pooled>,
    pub row0: usize,
    pub rows: usize,
    pub own_lo: usize,
    pub own_hi: usize,
}

/// How per-node times were measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// GPU timestamp queries around each compute pass.
    Gpu,
    /// Wall time from each node's submission to its completion (one submission per node).
    Wall,
}

impl Timing {
    pub fn name(self) -> &'static str {
        match self {
            Timing::Gpu => "gpu",
            Timing::Wall => "wall",
        }
    }
}

/// Every tensor of a run (index 0 = the input, i + 1 = node i's output). Cloning shares
/// the buffers (they return to the pool when the last clone drops).
#[derive(Clone)]
pub struct Activations {
    pub names: Vec<String>,
    pub shapes: Vec<Shape>,
    /// The bands of each tensor; empty for a tensor that was not kept.
    pub bands: Vec<Vec<Band>>,
    pub stats: Vec<Arc<Pooled>>,
    /// Per-channel (sum, sum of squares, zeros, count) for the HUD's statistics.
    pub moments: Vec<Arc<Pooled>>,
    /// Time of each node in ms and how it was measured, when it could be measured
    /// truthfully (see [`Timing`]); None otherwise.
    pub node_ms: Option<(Vec<f64>, Timing)>,
    /// Wall time from the first submission to completion, in ms (encoding excluded).
    pub wall_ms: f64,
}

impl Activations {
    fn kept(&self, i: usize) -> Result<&[Band]> {
        let b = self.bands.get(i).ok_or_else(|| anyhow!("no tensor {i}"))?;
        if b.is_empty() {
            bail!("{} was not kept by this run", self.names[i]);
        }
        Ok(b)
    }

    /// The bands of tensor `i` as the colormap reads them.
    pub fn band_refs(&self, i: usize) -> Vec<BandRef<'_>> {
        self.bands[i]
            .iter()
            .map(|b| BandRef {
                buffer: b.buffer.buffer(),
                row0: b.row0,
                rows: b.rows,
                own_lo: b.own_lo,
                own_hi: b.own_hi,
            })
            .collect()
    }

    /// Reads tensor `i` (0 = input) back to the CPU, assembled from its bands.
    pub fn read(&self, ctx: &GpuContext, i: usize) -> Result<Tensor> {
        let s = self.shapes[i];
        let mut t = Tensor::zeros(s);
        for b in self.kept(i)? {
            let bytes = ctx.read_buffer(&b.buffer, 0, (s.c * b.rows * s.w * 4) as u64)?;
            let vals: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
            for c in 0..s.c {
                for y in b.own_lo..b.own_hi {
                    let src = (c * b.rows + (y - b.row0)) * s.w;
                    let dst = (c * s.h + y) * s.w;
                    t.data[dst..dst + s.w].copy_from_slice(&vals[src..src + s.w]);
                }
            }
        }
        Ok(t)
    }

    /// Tensor `i`'s per-channel `(min, max)`.
    pub fn read_stats(&self, ctx: &GpuContext, i: usize) -> Result<Vec<[f32; 2]>> {
        let bytes = ctx.read_buffer(&self.stats[i], 0, self.shapes[i].c as u64 * 8)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Tensor `i`'s whole-layer statistics.
    pub fn read_layer_stats(&self, ctx: &GpuContext, i: usize) -> Result<LayerStats> {
        let mm = self.read_stats(ctx, i)?;
        let bytes = ctx.read_buffer(&self.moments[i], 0, self.shapes[i].c as u64 * 16)?;
        let m: Vec<[f32; 4]> = bytemuck::pod_collect_to_vec(&bytes);
        Ok(LayerStats::combine(&mm, &m))
    }

    /// The byte ranges of channel `c` of tensor `i` in each band: `(band, offset, rows)`.
    fn channel_ranges(&self, i: usize, c: usize) -> Result<Vec<(&Band, u64, usize)>> {
        let s = self.shapes[i];
        if c >= s.c {
            bail!("{} has no channel {c}", self.names[i]);
        }
        Ok(self
            .kept(i)?
            .iter()
            .filter(|b| b.own_hi > b.own_lo)
            .map(|b| (b, ((c * b.rows + (b.own_lo - b.row0)) * s.w * 4) as u64, b.own_hi - b.own_lo))
            .collect())
    }

    /// Reads one channel of tensor `i` (for its histogram).
    pub fn read_channel(&self, ctx: &GpuContext, i: usize, c: usize) -> Result<Vec<f32>> {
        let w = self.shapes[i].w;
        let mut out = Vec::with_capacity(self.shapes[i].plane());
        for (b, off, rows) in self.channel_ranges(i, c)? {
            let bytes = ctx.read_buffer(&b.buffer, off, (rows * w * 4) as u64)?;
            out.extend(bytemuck::pod_collect_to_vec::<u8, f32>(&bytes));
        }
        Ok(out)
    }

    /// Starts reading one channel of tensor `i`; one read-back per band, in row order.
    pub fn request_channel(&self, ctx: &GpuContext, i: usize, c: usize) -> Result<Vec<Readback>> {
        let w = self.shapes[i].w;
        Ok(self
            .channel_ranges(i, c)?
            .into_iter()
            .map(|(b, off, rows)| Readback::start(ctx, &b.buffer, off, (rows * w * 4) as u64))
            .collect())
    }

    /// Where value `(c, y, x)` of tensor `i` lives: its band's buffer and byte offset.
    fn locate(&self, i: usize, c: usize, y: usize, x: usize) -> Result<(&Band, u64)> {
        let s = self.shapes[i];
        if c >= s.c || y >= s.h || x >= s.w {
            bail!("({c}, {y}, {x}) is outside {} ({s})", self.names[i]);
        }
        let b = self
            .kept(i)?
            .iter()
            .find(|b| (b.own_lo..b.own_hi).contains(&y))
            .ok_or_else(|| anyhow!("row {y} is outside {}", self.names[i]))?;
        Ok((b, (((c * b.rows + (y - b.row0)) * s.w + x) * 4) as u64))
    }

    /// Reads one value of tensor `i`.
    pub fn read_value(&self, ctx: &GpuContext, i: usize, c: usize, y: usize, x: usize) -> Result<f32> {
        let (b, off) = self.locate(i, c, y, x)?;
        // Copies must be 4-byte aligned and sized; one f32 is exactly that.
        let bytes = ctx.read_buffer(&b.buffer, off, 4)?;
        Ok(f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Starts reading one value of tensor `i`.
    pub fn request_value(&self, ctx: &GpuContext, i: usize, c: usize, y: usize, x: usize) -> Result<Readback> {
        let (b, off) = self.locate(i, c, y, x)?;
        Ok(Readback::start(ctx, &b.buffer, off, 4))
    }

    /// Number of bands each tensor is held in.
    pub fn band_counts(&self) -> Vec<usize> {
        self.bands.iter().map(Vec::len).collect()
    }

    /// Frees tensor `i`'s bands (its buffers return to the pool once nothing else holds them).
    pub fn release(&mut self, i: usize) {
        if let Some(b) = self.bands.get_mut(i) {
            b.clear();
        }
    }
}

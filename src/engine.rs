//! The one API the CLI and the viewer use: a network and an input in; activations,
//! statistics and grid textures out. It owns the [`Executor`] (pipelines, pooled buffers)
//! and the [`Visualizer`] (colormap pass), so a caller that keeps one `Engine` compiles
//! each pipeline once for its lifetime.

use crate::exec::{Activations, Executor, GpuNetwork, RunOptions};
use crate::gpu::GpuContext;
use crate::network::Network;
use crate::ops::ConvKernel;
use crate::ops::stats::LayerStats;
use crate::tensor::Tensor;
use crate::visual::{GridTexture, Look, Visualizer};
use anyhow::Result;

/// A layer's statistics as the HUD and the logs show them.
#[derive(Clone, Debug, PartialEq)]
pub struct PageStats {
    /// Per-channel (min, max).
    pub channels: Vec<[f32; 2]>,
    pub layer: LayerStats,
}

/// Executor plus colormap pass.
pub struct Engine {
    pub exec: Executor,
    pub vis: Visualizer,
}

impl Engine {
    /// An engine on `ctx`, configured from the environment (`CONVSCOPE_*`).
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        Ok(Engine { exec: Executor::new(ctx)?, vis: Visualizer::new(ctx) })
    }

    /// Uploads a network's parameters once for `kernel`.
    pub fn upload(&self, ctx: &GpuContext, net: &Network, kernel: ConvKernel) -> Result<GpuNetwork> {
        self.exec.upload(ctx, &net.graph(), kernel)
    }

    /// Runs the network on `input`.
    pub fn run(
        &mut self,
        ctx: &GpuContext,
        net: &GpuNetwork,
        input: &Tensor,
        opts: &RunOptions<'_>,
    ) -> Result<Activations> {
        self.exec.run_with(ctx, net, input, opts)
    }

    /// Draws tensor `i` as a grid texture; the input (`i == 0`, three channels) gets its
    /// colour image, from the channels `rgb` names, as the first tile.
    pub fn draw(
        &self,
        ctx: &GpuContext,
        acts: &Activations,
        i: usize,
        look: Look,
        rgb: [usize; 3],
    ) -> Result<GridTexture> {
        self.vis.render(ctx, acts, i, look, rgb)
    }

    /// Tensor `i`'s statistics, read back.
    pub fn stats(&self, ctx: &GpuContext, acts: &Activations, i: usize) -> Result<PageStats> {
        Ok(PageStats { channels: acts.read_stats(ctx, i)?, layer: acts.read_layer_stats(ctx, i)? })
    }
}

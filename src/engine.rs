//! The one API the CLI and the viewer use: a network and an input in; activations,
//! statistics and grid textures out. It owns the [`Executor`] (pipelines, pooled buffers)
//! and the [`Visualizer`] (colormap pass), so a caller that keeps one `Engine` compiles
//! each pipeline once for its lifetime.

use crate::exec::{Activations, Executor, RunOptions};
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

    /// Uploads `net`'s parameters for `kernel` and runs it on `input`: every layer, its
    /// statistics, nothing read back in between.
    pub fn compute(
        &mut self,
        ctx: &GpuContext,
        net: &Network,
        kernel: ConvKernel,
        input: &Tensor,
        opts: &RunOptions<'_>,
    ) -> Result<Activations> {
        self.compute_graph(ctx, &net.graph(), kernel, input, opts)
    }

    /// Uploads a graph's parameters for `kernel`, picks each conv layer's block for this
    /// adapter (measured once, then cached: see `exec::autotune`) and runs it on `input`.
    pub fn compute_graph(
        &mut self,
        ctx: &GpuContext,
        graph: &crate::graph::Graph,
        kernel: ConvKernel,
        input: &Tensor,
        opts: &RunOptions<'_>,
    ) -> Result<Activations> {
        let mut gnet = self.exec.upload(ctx, graph, kernel)?;
        self.exec.autotune(ctx, &mut gnet, input.shape, crate::exec::autotune::BUDGET_MS)?;
        self.exec.run_with(ctx, &gnet, input, opts)
    }

    /// What page `i` shows: tensor `i` drawn as a grid texture with `look` (the input,
    /// three channels, gets its colour image from the channels `rgb` names as the first
    /// tile) and its statistics.
    pub fn page(
        &self,
        ctx: &GpuContext,
        acts: &Activations,
        i: usize,
        look: Look,
        rgb: [usize; 3],
    ) -> Result<(GridTexture, PageStats)> {
        let grid = self.vis.render(ctx, acts, i, look, rgb)?;
        let stats = PageStats { channels: acts.read_stats(ctx, i)?, layer: acts.read_layer_stats(ctx, i)? };
        Ok((grid, stats))
    }
}

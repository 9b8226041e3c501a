//! Submitting a run: command buffers with the params written since the last flush, the
//! wait and its wall time, and the progress callback that may cancel the run.

use super::{Activations, ParamsWriter, RunBuffers, RunOptions};
use crate::gpu::GpuContext;
use anyhow::Result;
use std::time::Instant;

/// Submits recorded command buffers, writing the params pushed since the last flush
/// first, and waits for them; adds up the wall time from submission to completion.
#[derive(Default)]
pub(super) struct Submitter {
    pub(super) pending: Vec<wgpu::CommandBuffer>,
    /// Params bytes already written to the uniform buffer.
    written: usize,
    pub(super) wall_ms: f64,
}

impl Submitter {
    /// Submits and waits; returns this submission's wall time in ms.
    pub(super) fn flush(&mut self, ctx: &GpuContext, rb: &RunBuffers, params: &ParamsWriter) -> Result<f64> {
        let end = (params.next as usize).min(params.bytes.len());
        if end > self.written {
            ctx.queue.write_buffer(&rb.uniforms, self.written as u64, &params.bytes[self.written..end]);
            self.written = end;
        }
        let t = Instant::now();
        ctx.queue.submit(self.pending.drain(..));
        ctx.wait()?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        self.wall_ms += ms;
        Ok(ms)
    }
}

/// The error a run ends with when its progress callback asks it to stop.
#[derive(Debug)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the run was cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// Calls the run's progress callback; a callback that answers false cancels the run.
pub(super) fn report(opts: &RunOptions<'_>, done: usize, nodes: usize, acts: &Activations) -> Result<()> {
    match opts.progress {
        Some(p) if !p(done, nodes, acts) => Err(Cancelled.into()),
        _ => Ok(()),
    }
}

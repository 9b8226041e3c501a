//! Timing a run: GPU timestamp queries around each compute pass, summed per node, with
//! intervals that run backwards refused rather than hidden.

use crate::gpu::GpuContext;
use anyhow::Result;

/// Timestamp queries around each compute pass.
pub struct Timestamps {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
}

impl Timestamps {
    pub fn new(ctx: &GpuContext, passes: usize) -> Self {
        let device = &ctx.device;
        Timestamps {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("step timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * passes as u32,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("step timestamps resolve"),
                size: 16 * passes as u64,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("step timestamps read-back"),
                size: 16 * passes as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        }
    }

    pub fn writes(&self, pass: usize) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: Some(2 * pass as u32),
            end_of_pass_write_index: Some(2 * pass as u32 + 1),
        }
    }

    pub fn resolve(&self, enc: &mut wgpu::CommandEncoder, passes: usize) {
        if passes == 0 {
            return;
        }
        enc.resolve_query_set(&self.set, 0..2 * passes as u32, &self.resolve, 0);
        enc.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, 16 * passes as u64);
    }

    /// Milliseconds per node; None when any interval runs backwards (an adapter that
    /// reorders or defers timestamps), so no false figure is shown.
    pub fn read(&self, ctx: &GpuContext, pass_node: &[usize], nodes: usize) -> Result<Option<Vec<f64>>> {
        if pass_node.is_empty() {
            return Ok(Some(vec![0.0; nodes]));
        }
        let bytes = ctx.map_and_read(&self.readback)?;
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
        Ok(node_times(&ticks, pass_node, nodes, ctx.queue.get_timestamp_period() as f64))
    }
}

/// Sums each pass's `end − start` ticks into its node's time in ms; None if any is negative.
pub fn node_times(ticks: &[u64], pass_node: &[usize], nodes: usize, period_ns: f64) -> Option<Vec<f64>> {
    let mut ms = vec![0.0; nodes];
    for (p, &node) in pass_node.iter().enumerate() {
        let (start, end) = (*ticks.get(2 * p)?, *ticks.get(2 * p + 1)?);
        let d = end.checked_sub(start)?;
        *ms.get_mut(node)? += d as f64 * period_ns / 1e6;
    }
    Some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_times_sum_passes_and_refuse_backwards_intervals() {
        let t = node_times(&[0, 1_000_000, 5, 2_000_005, 10, 1_000_010], &[0, 1, 1], 2, 1.0).unwrap();
        assert_eq!(t, vec![1.0, 3.0]);
        assert_eq!(node_times(&[10, 5], &[0], 1, 1.0), None);
        assert_eq!(node_times(&[0], &[0], 1, 1.0), None, "missing ticks");
    }
}

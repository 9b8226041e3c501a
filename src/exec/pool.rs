//! GPU buffers pooled by descriptor (size and usage): a run takes buffers from the pool and
//! they return to it when the last holder (the run's [`Activations`](super::Activations))
//! drops them, so the next run of the same shapes allocates nothing.

use crate::gpu::GpuContext;
use std::sync::{Arc, Mutex, Weak};

/// Free buffers, shared with every [`Pooled`] handle so a dropped handle can return its buffer.
#[derive(Default)]
struct Free {
    buffers: Mutex<Vec<wgpu::Buffer>>,
}

/// A buffer on loan from a [`BufferPool`]; it goes back to the pool when dropped.
pub struct Pooled {
    buffer: Option<wgpu::Buffer>,
    home: Weak<Free>,
}

impl Pooled {
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("present until dropped")
    }
}

impl std::ops::Deref for Pooled {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        self.buffer()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let (Some(b), Some(home)) = (self.buffer.take(), self.home.upgrade())
            && let Ok(mut free) = home.buffers.lock()
        {
            free.push(b);
        }
    }
}

/// The pool.
#[derive(Default)]
pub struct BufferPool {
    free: Arc<Free>,
    /// Buffers created (not reused) since the pool was made.
    pub created: usize,
    /// Buffers handed out again from the free list.
    pub reused: usize,
}

impl BufferPool {
    /// A buffer of exactly `size` bytes and `usage`: a free one if there is one, else new.
    pub fn get(&mut self, ctx: &GpuContext, label: &str, size: u64, usage: wgpu::BufferUsages) -> Arc<Pooled> {
        // Whole vec4s: a kernel may bind any buffer as an array of vec4 (conv_tuned's
        // vec4 input rows).
        let size = size.max(16).next_multiple_of(16);
        let found = self.free.buffers.lock().ok().and_then(|mut free| {
            let i = free.iter().position(|b| b.size() == size && b.usage() == usage)?;
            Some(free.swap_remove(i))
        });
        let buffer = match found {
            Some(b) => {
                self.reused += 1;
                b
            }
            None => {
                self.created += 1;
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size,
                    usage,
                    mapped_at_creation: false,
                })
            }
        };
        Arc::new(Pooled { buffer: Some(buffer), home: Arc::downgrade(&self.free) })
    }

    /// Frees every idle buffer whose size is not in `sizes` (after a run of new shapes, the
    /// old shapes' buffers are not kept for ever).
    /// Returns how many were freed.
    pub fn retain_sizes(&self, sizes: &[u64]) -> usize {
        let Ok(mut free) = self.free.buffers.lock() else { return 0 };
        let before = free.len();
        free.retain(|b| sizes.contains(&b.size()));
        before - free.len()
    }

    /// Frees every idle buffer.
    pub fn clear(&self) {
        if let Ok(mut free) = self.free.buffers.lock() {
            free.clear();
        }
    }

    /// Number of idle buffers.
    pub fn idle(&self) -> usize {
        self.free.buffers.lock().map_or(0, |f| f.len())
    }
}

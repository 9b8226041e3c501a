//! Inspection: the value under the cursor and the histogram of the hovered or zoomed
//! channel. Values come from the GPU by asynchronous read-backs that the UI thread polls
//! (never waits on), and are kept in a small cache so moving back over a pixel is instant.

use super::jobs::Loaded;
use crate::gpu::{GpuContext, Readback};
use crate::ops::stats::histogram;
use std::collections::HashMap;

/// Hover information: which tile and pixel, and its exact value once read.
#[derive(Clone, Debug, PartialEq)]
pub struct Hover {
    pub tile: usize,
    pub channel: Option<usize>,
    pub y: usize,
    pub x: usize,
    pub value: Option<f32>,
}

/// ((page, channel), bins, lo, hi) of a channel's histogram.
pub type ChannelHistogram = ((usize, usize), [u32; 64], f32, f32);

/// `(page, channel, y, x)`.
type ValueKey = (usize, usize, usize, usize);

/// Values cached before the cache is emptied.
const MAX_CACHED_VALUES: usize = 65536;

/// Hover and histogram state with their read-backs in flight.
#[derive(Default)]
pub struct Inspector {
    pub hover: Option<Hover>,
    pub hist: Option<ChannelHistogram>,
    values: HashMap<ValueKey, f32>,
    pending_value: Option<(ValueKey, Readback)>,
    pending_hist: Option<((usize, usize), Vec<Readback>)>,
}

impl Inspector {
    /// Forgets everything (a new computation replaced the pages).
    pub fn reset(&mut self) {
        *self = Inspector::default();
    }

    /// Whether read-backs are in flight (the event loop then polls them).
    pub fn waiting(&self) -> bool {
        self.pending_value.is_some() || self.pending_hist.is_some()
    }

    /// Sets the hover to `(tile, channel, y, x)` on `page`, asking the GPU for its value if
    /// it is not cached. Returns whether the hover changed.
    pub fn hover_at(
        &mut self,
        ctx: &GpuContext,
        l: &Loaded,
        page: usize,
        at: Option<(usize, Option<usize>, usize, usize)>,
    ) -> bool {
        let tensor = l.tensor(page);
        let Some((tile, channel, y, x)) = at else {
            let changed = self.hover.is_some();
            self.hover = None;
            return changed;
        };
        if self.hover.as_ref().is_some_and(|h| (h.tile, h.y, h.x) == (tile, y, x)) {
            return false;
        }
        let value = channel.and_then(|c| self.values.get(&(page, c, y, x)).copied());
        if let (Some(c), None) = (channel, value) {
            let key = (page, c, y, x);
            // One value in flight: the latest hover replaces an older request.
            if let Ok(rb) = l.acts.request_value(ctx, tensor, c, y, x) {
                self.pending_value = Some((key, rb));
            }
        }
        self.hover = Some(Hover { tile, channel, y, x, value });
        true
    }

    /// Asks for the histogram of `channel` on `page` unless it is shown or on its way.
    pub fn want_histogram(&mut self, ctx: &GpuContext, l: &Loaded, page: usize, channel: Option<usize>) {
        let Some(c) = channel else { return };
        let key = (page, c);
        if self.hist.as_ref().is_some_and(|h| h.0 == key) || self.pending_hist.as_ref().is_some_and(|p| p.0 == key) {
            return;
        }
        if let Ok(rbs) = l.acts.request_channel(ctx, l.tensor(page), c) {
            self.pending_hist = Some((key, rbs));
        }
    }

    /// Collects finished read-backs; returns whether anything shown changed.
    pub fn poll(&mut self, ctx: &GpuContext, l: &Loaded) -> bool {
        let mut changed = false;
        if self.pending_value.as_ref().is_some_and(|(_, rb)| rb.ready(ctx))
            && let Some((key, rb)) = self.pending_value.take()
            && let Ok(bytes) = rb.take()
            && let Some(b) = bytes.get(0..4)
        {
            let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if self.values.len() >= MAX_CACHED_VALUES {
                self.values.clear();
            }
            self.values.insert(key, v);
            if let Some(h) = &mut self.hover
                && h.channel == Some(key.1)
                && (h.y, h.x) == (key.2, key.3)
            {
                h.value = Some(v);
                changed = true;
            }
        }
        if self.pending_hist.as_ref().is_some_and(|(_, rbs)| rbs.iter().all(|rb| rb.ready(ctx)))
            && let Some((key, rbs)) = self.pending_hist.take()
        {
            let parts: anyhow::Result<Vec<Vec<u8>>> = rbs.into_iter().map(Readback::take).collect();
            if let Ok(parts) = parts
                && let Some(s) = l.ready(key.0).and_then(|d| d.stats.channels.get(key.1))
            {
                let values: Vec<f32> = parts.iter().flat_map(|p| bytemuck::pod_collect_to_vec::<u8, f32>(p)).collect();
                let [lo, hi] = *s;
                self.hist = Some((key, histogram(&values, lo, hi), lo, hi));
                changed = true;
            }
        }
        changed
    }
}

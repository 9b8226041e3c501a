//! Inspection: the value under the cursor and the histogram of the hovered or zoomed
//! channel. Both come from whole channels the worker reads back and posts (the UI thread
//! never touches the compute device: a submission there would wait behind a convolution);
//! channels are kept in a small CPU cache, so moving over a channel already read is
//! instant and its histogram costs nothing more.

use super::jobs::Loaded;
use crate::ops::stats::histogram;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

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

/// `(computation, page, channel)`.
pub type ChannelKey = (u64, usize, usize);

/// Bytes of channel data kept.
const BUDGET: usize = 128 << 20;

/// Hover and histogram state, and the channels read so far.
#[derive(Default)]
pub struct Inspector {
    pub hover: Option<Hover>,
    pub hist: Option<ChannelHistogram>,
    channels: HashMap<ChannelKey, Arc<Vec<f32>>>,
    /// Oldest first, for eviction.
    order: VecDeque<ChannelKey>,
    bytes: usize,
    /// Channels asked of the worker and not yet here.
    asked: HashSet<ChannelKey>,
}

impl Inspector {
    /// Forgets the hover and histogram (a new computation replaced the pages); channels of
    /// the new computation are read anew.
    pub fn reset(&mut self) {
        self.hover = None;
        self.hist = None;
    }

    /// Sets the hover to `(tile, channel, y, x)` on `page`; its value comes from the cached
    /// channel, or once `ask` has fetched it. Returns whether the hover changed.
    pub fn hover_at(
        &mut self,
        l: &Loaded,
        page: usize,
        at: Option<(usize, Option<usize>, usize, usize)>,
        ask: &dyn Fn(ChannelKey),
    ) -> bool {
        let Some((tile, channel, y, x)) = at else {
            let changed = self.hover.is_some();
            self.hover = None;
            return changed;
        };
        if self.hover.as_ref().is_some_and(|h| (h.tile, h.y, h.x) == (tile, y, x)) {
            return false;
        }
        let value = channel.and_then(|c| self.value(l, page, c, y, x));
        if let (Some(c), None) = (channel, value) {
            self.ask((l.run_id, page, c), ask);
        }
        self.hover = Some(Hover { tile, channel, y, x, value });
        true
    }

    fn value(&self, l: &Loaded, page: usize, c: usize, y: usize, x: usize) -> Option<f32> {
        let data = self.channels.get(&(l.run_id, page, c))?;
        let w = l.acts.shapes[l.tensor(page)].w;
        data.get(y * w + x).copied()
    }

    fn ask(&mut self, key: ChannelKey, ask: &dyn Fn(ChannelKey)) {
        if !self.channels.contains_key(&key) && self.asked.insert(key) {
            ask(key);
        }
    }

    /// Shows the histogram of `channel` on `page` (fetching the channel if needed).
    pub fn want_histogram(&mut self, l: &Loaded, page: usize, channel: Option<usize>, ask: &dyn Fn(ChannelKey)) {
        let Some(c) = channel else { return };
        if self.hist.as_ref().is_some_and(|h| h.0 == (page, c)) {
            return;
        }
        let key = (l.run_id, page, c);
        match (self.channels.get(&key), l.ready(page).and_then(|d| d.stats.channels.get(c))) {
            (Some(data), Some(&[lo, hi])) => self.hist = Some(((page, c), histogram(data, lo, hi), lo, hi)),
            (None, _) => self.ask(key, ask),
            _ => {}
        }
    }

    /// A channel arrived: cache it and fill in the hover. Whether anything shown changed.
    pub fn on_channel(&mut self, l: &Loaded, key: ChannelKey, data: Vec<f32>) -> bool {
        self.asked.remove(&key);
        if key.0 != l.run_id {
            return false;
        }
        self.bytes += data.len() * 4;
        self.channels.insert(key, Arc::new(data));
        self.order.push_back(key);
        while self.bytes > BUDGET && self.order.len() > 1 {
            if let Some(old) = self.order.pop_front()
                && let Some(d) = self.channels.remove(&old)
            {
                self.bytes -= d.len() * 4;
            }
        }
        let (_, page, c) = key;
        let mut changed = false;
        if let Some(h) = &self.hover
            && h.channel == Some(c)
            && h.value.is_none()
        {
            let v = self.value(l, page, c, h.y, h.x);
            if let Some(h) = &mut self.hover {
                h.value = v;
            }
            changed = true;
        }
        changed
    }

    /// Channels of computations other than `run_id` are dropped.
    pub fn keep_only(&mut self, run_id: u64) {
        self.channels.retain(|k, _| k.0 == run_id);
        self.order.retain(|k| k.0 == run_id);
        self.asked.retain(|k| k.0 == run_id);
        self.bytes = self.channels.values().map(|d| d.len() * 4).sum();
    }
}

//! Display images: what the window shows of a page, already at the size it is drawn, so a
//! frame is a 1:1 copy. The compute worker makes them (colormap, then a downsampling draw
//! of the full-resolution grid, on the compute device) and the UI thread uploads the bytes
//! into textures on its own device and keeps them here, keyed by page, look, view and size.
//! Pure bookkeeping apart from the upload; the keys and sizes are unit-tested.

use crate::ops::present::{Rect, fit};
use crate::visual::Look;
use std::collections::HashMap;

/// Which picture of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    /// The whole grid.
    Grid,
    /// One tile of the grid (zoom).
    Tile(usize),
    /// The conv's kernels, output channels wrapped into this many columns.
    Kernels(usize),
}

/// One display image: a page of computation `run_id`, drawn with `look`, as `view`, at `size`
/// pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DisplayKey {
    pub run_id: u64,
    pub page: usize,
    pub look: Look,
    pub view: View,
    pub size: (u32, u32),
}

/// The whole-pixel rectangle a picture of `src_w × src_h` is drawn at inside `area`
/// (aspect kept, centred). The worker and the UI both size display images with this.
pub fn placed(src_w: f32, src_h: f32, area: Rect) -> Rect {
    let r = fit(src_w, src_h, area);
    Rect { x: r.x.round(), y: r.y.round(), w: r.w.round(), h: r.h.round() }
}

/// The size of a display image of `src_w × src_h` in `area`; None when nothing would show.
pub fn size_in(src_w: f32, src_h: f32, area: Rect) -> Option<(u32, u32)> {
    let r = placed(src_w, src_h, area);
    (r.w >= 1.0 && r.h >= 1.0).then_some((r.w as u32, r.h as u32))
}

/// Display textures on the UI's device, with a byte budget: the farthest pages of other
/// sizes, looks and computations go first.
pub struct DisplayCache {
    images: HashMap<DisplayKey, wgpu::Texture>,
    /// Keys asked of the worker and not yet answered.
    pub requested: std::collections::HashSet<DisplayKey>,
    bytes: u64,
    /// Bytes kept at most ([`BUDGET`]).
    pub budget: u64,
}

impl Default for DisplayCache {
    fn default() -> Self {
        DisplayCache { images: HashMap::new(), requested: Default::default(), bytes: 0, budget: BUDGET }
    }
}

/// Bytes of display textures kept (a 1200×700 image is 3.4 MB: about a hundred pages).
pub const BUDGET: u64 = 384 << 20;

impl DisplayCache {
    pub fn get(&self, key: &DisplayKey) -> Option<&wgpu::Texture> {
        self.images.get(key)
    }

    /// The best stand-in while `key` is being made: the same page and view at another size
    /// or look (newest computation first, then the closest size).
    pub fn stand_in(&self, key: &DisplayKey) -> Option<&wgpu::Texture> {
        self.images
            .iter()
            .filter(|(k, _)| k.page == key.page && same_kind(k.view, key.view) && k.run_id <= key.run_id)
            .max_by_key(|(k, _)| (k.run_id, k.look == key.look, u32::MAX - k.size.0.abs_diff(key.size.0)))
            .map(|(_, t)| t)
    }

    /// Uploads `rgba` (tightly packed rows of 4-byte texels in `format`, `size` pixels) as
    /// the texture of `key`, then
    /// evicts down to the budget, keeping what is nearest `current` (a page).
    pub fn insert(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        format: wgpu::TextureFormat,
        key: DisplayKey,
        rgba: &[u8],
        current: usize,
    ) {
        self.requested.remove(&key);
        let (w, h) = key.size;
        if rgba.len() as u64 != w as u64 * h as u64 * 4 || w == 0 || h == 0 {
            return;
        }
        let size = wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 };
        let tex = device.create_texture(&wgpu::TextureDescriptor {
            label: Some(&format!("display page {} {:?} {w}x{h}", key.page, key.view)),
            size,
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &tex,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            rgba,
            wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(4 * w), rows_per_image: None },
            size,
        );
        if let Some(old) = self.images.insert(key, tex) {
            self.bytes -= bytes_of(&old);
        }
        self.bytes += rgba.len() as u64;
        self.evict(&key, current);
    }

    fn evict(&mut self, keep: &DisplayKey, current: usize) {
        while self.bytes > self.budget && self.images.len() > 1 {
            // Farthest first: other computations, other sizes or looks, then distance.
            let victim = self
                .images
                .keys()
                .filter(|k| *k != keep)
                .max_by_key(|k| {
                    (k.run_id != keep.run_id, k.size != keep.size || k.look != keep.look, k.page.abs_diff(current))
                })
                .copied();
            let Some(v) = victim else { break };
            if let Some(t) = self.images.remove(&v) {
                self.bytes -= bytes_of(&t);
            }
        }
    }

    /// Forgets computations older than `run_id` once they cannot serve as stand-ins.
    pub fn drop_before(&mut self, run_id: u64) {
        let old: Vec<DisplayKey> = self.images.keys().filter(|k| k.run_id < run_id).copied().collect();
        for k in old {
            if let Some(t) = self.images.remove(&k) {
                self.bytes -= bytes_of(&t);
            }
        }
        self.requested.retain(|k| k.run_id >= run_id);
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

fn bytes_of(t: &wgpu::Texture) -> u64 {
    t.width() as u64 * t.height() as u64 * 4
}

fn same_kind(a: View, b: View) -> bool {
    match (a, b) {
        (View::Kernels(_), View::Kernels(_)) => true,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_whole_pixels_of_the_fitted_rectangle() {
        let area = Rect { x: 10.0, y: 84.0, w: 1000.0, h: 600.0 };
        // A wide grid fills the width; a tall one the height.
        assert_eq!(size_in(2000.0, 500.0, area), Some((1000, 250)));
        assert_eq!(size_in(300.0, 900.0, area), Some((200, 600)));
        let r = placed(300.0, 900.0, area);
        assert_eq!((r.x, r.y), (410.0, 84.0));
        assert_eq!(size_in(10.0, 10.0, Rect { w: 0.0, ..area }), None);
        assert_eq!(size_in(0.0, 10.0, area), None);
    }

    #[test]
    fn stand_ins_and_eviction_keep_what_is_nearest() {
        let Some(ctx) = crate::gpu::test_context() else { return };
        let f = wgpu::TextureFormat::Rgba8Unorm;
        let mut c = DisplayCache::default();
        let key = |run_id, page, size: u32| DisplayKey {
            run_id,
            page,
            look: Look::default(),
            view: View::Grid,
            size: (size, size),
        };
        let px = |n: u32| vec![7u8; (n * n * 4) as usize];
        c.insert(&ctx.device, &ctx.queue, f, key(1, 0, 4), &px(4), 0);
        c.insert(&ctx.device, &ctx.queue, f, key(2, 0, 8), &px(8), 0);
        // Wrong byte count: ignored.
        c.insert(&ctx.device, &ctx.queue, f, key(2, 1, 8), &px(4), 0);
        assert_eq!(c.len(), 2);
        // Page 0 of run 3 at size 16: the newest run's picture stands in.
        assert_eq!(c.stand_in(&key(3, 0, 16)).map(|t| t.width()), Some(8));
        // A later run never stands in for an earlier one; another page never does.
        assert!(c.stand_in(&key(1, 1, 4)).is_none());
        assert_eq!(c.stand_in(&key(1, 0, 8)).map(|t| t.width()), Some(4));
        // Over budget: other runs go first, then the pages farthest from the current one.
        c.budget = 3 * 8 * 8 * 4;
        for p in 1..4 {
            c.insert(&ctx.device, &ctx.queue, f, key(2, p, 8), &px(8), 0);
        }
        assert_eq!(c.len(), 3);
        assert!(c.get(&key(1, 0, 4)).is_none(), "the older run went first");
        assert!(c.get(&key(2, 3, 8)).is_some(), "the newest insert stays");
        assert!(c.get(&key(2, 0, 8)).is_some() && c.get(&key(2, 1, 8)).is_some());
        c.drop_before(3);
        assert!(c.is_empty());
    }
}

//! Grid layout of a layer's channels, colormaps and normalisation modes: the display
//! conventions shared by the GPU colormap pass, its CPU twin, the viewer and export.

use std::sync::OnceLock;

/// Colour of the gutters between tiles and of unused cells (matplotlib's white figure).
pub const BACKGROUND: [u8; 4] = [255, 255, 255, 255];

/// How a tile (a channel) of a grid is arranged and scaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridLayout {
    /// Number of tiles.
    pub tiles: usize,
    pub rows: usize,
    pub cols: usize,
    /// Size of one channel in the tensor.
    pub src_h: usize,
    pub src_w: usize,
    /// Every `step`-th value is drawn (1 = full resolution).
    pub step: usize,
    /// Size of one tile in the grid image (`ceil(src / step)`).
    pub tile_h: usize,
    pub tile_w: usize,
    /// Pixels between tiles and around the grid.
    pub gutter: usize,
    pub width: usize,
    pub height: usize,
}

/// Rows × columns for `n` tiles of `tile_h × tile_w`: the tutorial's layouts for 12, 24
/// and 48 channels, else the near-square arrangement whose whole grid is closest to 16:10.
pub fn rows_cols(n: usize, tile_h: usize, tile_w: usize) -> (usize, usize) {
    match n {
        0 => (1, 1),
        12 => (3, 4),
        24 => (6, 4),
        48 => (6, 8),
        _ => {
            let aspect_tile = tile_w.max(1) as f64 / tile_h.max(1) as f64;
            let mut best = (n, 1);
            let mut best_score = f64::INFINITY;
            for cols in 1..=n {
                let rows = n.div_ceil(cols);
                let aspect = cols as f64 * aspect_tile / rows as f64;
                let empty = (rows * cols - n) as f64 / n as f64;
                let score = (aspect / 1.6).ln().abs() + empty;
                if score < best_score - 1e-12 {
                    best_score = score;
                    best = (rows, cols);
                }
            }
            best
        }
    }
}

impl GridLayout {
    /// A grid of `tiles` channels of `src_h × src_w`, drawn every `step` pixels.
    pub fn new(tiles: usize, src_h: usize, src_w: usize, step: usize) -> Self {
        let step = step.max(1);
        let tile_h = src_h.div_ceil(step);
        let tile_w = src_w.div_ceil(step);
        let (rows, cols) = rows_cols(tiles, tile_h, tile_w);
        Self::with_rows_cols(tiles, rows, cols, src_h, src_w, step)
    }

    /// As [`GridLayout::new`] with a given arrangement.
    pub fn with_rows_cols(tiles: usize, rows: usize, cols: usize, src_h: usize, src_w: usize, step: usize) -> Self {
        let step = step.max(1);
        let tile_h = src_h.div_ceil(step);
        let tile_w = src_w.div_ceil(step);
        let gutter = if tile_h.min(tile_w) >= 16 { 2 } else { 1 };
        Self {
            tiles,
            rows,
            cols,
            src_h,
            src_w,
            step,
            tile_h,
            tile_w,
            gutter,
            width: cols * tile_w + (cols + 1) * gutter,
            height: rows * tile_h + (rows + 1) * gutter,
        }
    }

    /// Top-left pixel of tile `i` in the grid image.
    pub fn tile_origin(&self, i: usize) -> (usize, usize) {
        let (r, c) = (i / self.cols, i % self.cols);
        (self.gutter + c * (self.tile_w + self.gutter), self.gutter + r * (self.tile_h + self.gutter))
    }

    /// Which tile and which source pixel `(tile, y, x)` a grid pixel shows, if any.
    pub fn hit(&self, gx: usize, gy: usize) -> Option<(usize, usize, usize)> {
        let cw = self.tile_w + self.gutter;
        let ch = self.tile_h + self.gutter;
        if gx < self.gutter || gy < self.gutter {
            return None;
        }
        let (c, tx) = ((gx - self.gutter) / cw, (gx - self.gutter) % cw);
        let (r, ty) = ((gy - self.gutter) / ch, (gy - self.gutter) % ch);
        if c >= self.cols || r >= self.rows || tx >= self.tile_w || ty >= self.tile_h {
            return None;
        }
        let tile = r * self.cols + c;
        (tile < self.tiles).then_some((tile, ty * self.step, tx * self.step))
    }
}

/// How values are mapped to [0, 1] before the colormap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Norm {
    /// Each channel to its own min..max (matplotlib imshow's default).
    #[default]
    PerChannel,
    /// All channels of the layer share the layer's min..max.
    PerLayer,
    /// Symmetric around zero: -a..a with a = max |value| of the layer.
    Symmetric,
}

impl Norm {
    pub const ALL: [Norm; 3] = [Norm::PerChannel, Norm::PerLayer, Norm::Symmetric];
    pub fn index(self) -> u32 {
        self as u32
    }
    pub fn name(self) -> &'static str {
        match self {
            Norm::PerChannel => "per-channel min-max",
            Norm::PerLayer => "per-layer min-max",
            Norm::Symmetric => "symmetric around 0",
        }
    }
    pub fn next(self) -> Self {
        Self::ALL[(self as usize + 1) % Self::ALL.len()]
    }
}

/// The colormaps convscope draws with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Colormap {
    #[default]
    Viridis,
    Gray,
    /// matplotlib's `bwr`: blue - white - red, for signed values.
    Bwr,
}

impl Colormap {
    pub const ALL: [Colormap; 3] = [Colormap::Viridis, Colormap::Gray, Colormap::Bwr];
    pub fn name(self) -> &'static str {
        match self {
            Colormap::Viridis => "viridis",
            Colormap::Gray => "gray",
            Colormap::Bwr => "bwr",
        }
    }
    pub fn next(self) -> Self {
        Self::ALL[(self as usize + 1) % Self::ALL.len()]
    }
    /// The 256-entry RGBA table, as matplotlib draws it (`cmap(i, bytes=True)`).
    pub fn lut(self) -> &'static [[u8; 4]; 256] {
        static TABLES: OnceLock<[[[u8; 4]; 256]; 3]> = OnceLock::new();
        let t = TABLES.get_or_init(|| [viridis_lut(), gray_lut(), bwr_lut()]);
        &t[self as usize]
    }
    /// The table packed as little-endian RGBA u32 words for the GPU.
    pub fn lut_words(self) -> [u32; 256] {
        self.lut().map(u32::from_le_bytes)
    }
}

fn viridis_lut() -> [[u8; 4]; 256] {
    let mut lut = [[0, 0, 0, 255]; 256];
    let csv = include_str!("viridis.csv");
    let mut n = 0;
    for line in csv.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let idx: usize = f[0].parse().expect("viridis.csv: bad index");
        let c = |i: usize| f[i].trim().parse::<u8>().expect("viridis.csv: bad u8 column");
        lut[idx] = [c(4), c(5), c(6), 255];
        n += 1;
    }
    assert_eq!(n, 256, "viridis.csv must have 256 rows");
    lut
}

fn gray_lut() -> [[u8; 4]; 256] {
    std::array::from_fn(|i| [i as u8, i as u8, i as u8, 255])
}

fn bwr_lut() -> [[u8; 4]; 256] {
    // matplotlib: LinearSegmentedColormap.from_list over blue, white, red, sampled at i/255,
    // converted to bytes by truncation.
    std::array::from_fn(|i| {
        let x = i as f64 / 255.0;
        let (r, g, b) = if x <= 0.5 {
            let t = x / 0.5;
            (t, t, 1.0)
        } else {
            let t = (x - 0.5) / 0.5;
            (1.0, 1.0 - t, 1.0 - t)
        };
        let q = |v: f64| (v * 255.0) as u8;
        [q(r), q(g), q(b), 255]
    })
}

/// The LUT index for `v` scaled by `lo..hi`: `floor(t·256)` clamped to 0..255, with
/// `t = (v − lo)/(hi − lo)`; an empty range maps to 0 (the bottom colour, never NaN).
pub fn lut_index(v: f32, lo: f32, hi: f32) -> usize {
    let range = hi - lo;
    if range <= 0.0 || range.is_nan() {
        return 0;
    }
    let t = (v - lo) / range;
    let i = (t * 256.0).floor();
    if i.is_nan() { 0 } else { i.clamp(0.0, 255.0) as usize }
}

/// The `lo..hi` a channel is scaled to under `norm`, given every channel's `(min, max)`.
pub fn norm_range(norm: Norm, stats: &[[f32; 2]], channel: usize) -> (f32, f32) {
    match norm {
        Norm::PerChannel => (stats[channel][0], stats[channel][1]),
        Norm::PerLayer => layer_range(stats),
        Norm::Symmetric => {
            let (lo, hi) = layer_range(stats);
            let a = lo.abs().max(hi.abs());
            (-a, a)
        }
    }
}

/// Min and max over all channels (computed where the statistics are).
pub use crate::ops::stats::layer_range;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tutorial_layouts() {
        assert_eq!(rows_cols(12, 221, 396), (3, 4));
        assert_eq!(rows_cols(24, 217, 392), (6, 4));
        assert_eq!(rows_cols(48, 213, 388), (6, 8));
    }

    #[test]
    fn general_layouts_hold_every_tile_and_suit_the_aspect() {
        for n in [1usize, 2, 3, 5, 7, 8, 16, 32, 64, 128] {
            for (h, w) in [(10, 10), (10, 40), (40, 10)] {
                let (r, c) = rows_cols(n, h, w);
                assert!(r * c >= n && (r - 1) * c < n, "{n} tiles in {r}x{c}");
            }
        }
        // Square tiles: 64 → 8x8 would be 1.0, 6x11 is closer to 16:10 but wastes 2 cells.
        let (r, c) = rows_cols(64, 10, 10);
        let a = c as f64 / r as f64;
        assert!((1.0..=2.0).contains(&a), "{r}x{c}");
        // Very wide tiles stack in one column; very tall tiles line up in a row.
        assert_eq!(rows_cols(4, 10, 100).1, 1);
        assert_eq!(rows_cols(4, 100, 10).0, 1);
    }

    #[test]
    fn grid_geometry_and_hit_testing() {
        let g = GridLayout::new(12, 20, 30, 1);
        assert_eq!((g.rows, g.cols, g.gutter), (3, 4, 2));
        assert_eq!(g.width, 4 * 30 + 5 * 2);
        assert_eq!(g.height, 3 * 20 + 4 * 2);
        assert_eq!(g.tile_origin(5), (2 + 32, 2 + 22));
        assert_eq!(g.hit(0, 0), None);
        assert_eq!(g.hit(2, 2), Some((0, 0, 0)));
        assert_eq!(g.hit(2 + 32 + 7, 2 + 22 + 3), Some((5, 3, 7)));
        assert_eq!(g.hit(2 + 30, 5), None); // gutter column
        let g = GridLayout::new(10, 9, 9, 2); // 3x4 with two unused cells
        assert_eq!((g.tile_h, g.tile_w), (5, 5));
        let (x, y) = g.tile_origin(9);
        assert_eq!(g.hit(x + 1, y + 2), Some((9, 4, 2)));
    }

    #[test]
    fn viridis_table_matches_matplotlib_bytes() {
        let lut = Colormap::Viridis.lut();
        assert_eq!(lut[0], [68, 1, 84, 255]);
        assert_eq!(lut[1], [68, 2, 85, 255]);
        assert_eq!(lut[255], [253, 231, 36, 255]);
        assert_eq!(Colormap::Gray.lut()[200], [200, 200, 200, 255]);
        assert_eq!(Colormap::Bwr.lut()[0], [0, 0, 255, 255]);
        assert_eq!(Colormap::Bwr.lut()[255], [255, 0, 0, 255]);
        assert_eq!(Colormap::Viridis.lut_words()[0], u32::from_le_bytes([68, 1, 84, 255]));
    }

    #[test]
    fn lut_index_follows_matplotlib() {
        assert_eq!(lut_index(0.0, 0.0, 1.0), 0);
        assert_eq!(lut_index(1.0, 0.0, 1.0), 255);
        assert_eq!(lut_index(0.5, 0.0, 1.0), 128);
        assert_eq!(lut_index(0.5 - 1e-6, 0.0, 1.0), 127);
        assert_eq!(lut_index(3.0, 3.0, 3.0), 0); // constant channel: bottom colour
        assert_eq!(lut_index(-2.0, -1.0, 1.0), 0);
    }

    #[test]
    fn norm_ranges() {
        let s = [[-1.0, 2.0], [0.5, 3.0]];
        assert_eq!(norm_range(Norm::PerChannel, &s, 1), (0.5, 3.0));
        assert_eq!(norm_range(Norm::PerLayer, &s, 1), (-1.0, 3.0));
        assert_eq!(norm_range(Norm::Symmetric, &s, 0), (-3.0, 3.0));
    }
}

//! The kernels view: a conv layer's weights as a Cout × Cin grid of k×k tiles, coloured
//! with the diverging `bwr` map centred on zero (±max |w| of the layer); for a first layer
//! with three input channels, each filter also as one colour patch (R, G, B from its three
//! input channels, each filter stretched to its own min..max).

use crate::grid::{self, Colormap};
use crate::network::Conv2d;
use anyhow::{Result, bail};
use image::{Rgba, RgbaImage};

/// The most pixels a kernels image may have (64 megapixels, 256 MiB of RGBA): a layer with
/// more kernels is refused rather than allocating without bound.
pub const MAX_PIXELS: u64 = 64 << 20;

/// The kernels image's size in pixels, computed without overflow.
pub fn image_size(c: &Conv2d) -> (u64, u64) {
    block_size(c, true)
}

/// Refuses a kernels image of layer `name` larger than `max_pixels`.
pub fn check_size(c: &Conv2d, name: &str, max_pixels: u64) -> Result<()> {
    let (w, h) = image_size(c);
    if w.saturating_mul(h) > max_pixels {
        bail!(
            "{name} has too many kernels to draw ({} x {} of {}x{}: {w}x{h} pixels, the limit is {} megapixels)",
            c.cout,
            c.cin,
            c.k,
            c.k,
            max_pixels >> 20
        );
    }
    Ok(())
}

/// A node's convolution as the kernels view draws it: a plain conv as it is (a grouped
/// one with one group, square kernel), a depthwise conv as one row of C kernels; None for
/// anything else.
pub fn drawable(op: &crate::graph::Op) -> Option<Conv2d> {
    match op {
        crate::graph::Op::Conv(c) => Some(c.clone()),
        crate::graph::Op::ConvG(g) if !g.transpose && g.kh == g.kw => g.as_plain().or_else(|| {
            (g.groups == g.cin && g.cout == g.cin).then(|| Conv2d {
                cin: g.cin,
                cout: 1,
                k: g.kh,
                stride: 1,
                pad: 0,
                weight: g.weight.clone(),
                bias: vec![0.0],
            })
        }),
        _ => None,
    }
}

/// Pixels per weight so that small kernels stay visible.
pub fn cell_size(k: usize) -> u32 {
    (24 / k.max(1)).clamp(1, 8) as u32
}

/// Background pixels between the columns of a wrapped kernels image.
const BLOCK_GAP: u32 = 6;

/// The kernels image's size when its output channels are laid out in `blocks` columns.
pub fn wrapped_size(c: &Conv2d, colour: bool, blocks: usize) -> (u64, u64) {
    let (bw, _) = block_size(c, colour);
    let blocks = blocks.clamp(1, c.cout.max(1)) as u64;
    let per = (c.cout as u64).div_ceil(blocks);
    let tile = c.k as u64 * cell_size(c.k) as u64;
    (blocks * bw + (blocks - 1) * BLOCK_GAP as u64, per * (tile + 1) + 1)
}

/// Width and height of one column of all output channels: (cin kernels [+ colour patch]).
fn block_size(c: &Conv2d, colour: bool) -> (u64, u64) {
    let tile = c.k as u64 * cell_size(c.k) as u64;
    let colour_col = colour && c.cin == 3;
    let cols = c.cin as u64 + u64::from(colour_col);
    let w = cols.saturating_mul(tile + 1).saturating_add(1 + if colour_col { 3 } else { 0 });
    (w, (c.cout as u64).saturating_mul(tile + 1).saturating_add(1))
}

/// How many columns to wrap the output channels into so the image's aspect comes closest
/// to `aspect` (width / height of the window area): a layer with many output channels is
/// otherwise one tall strip.
pub fn blocks_for(c: &Conv2d, colour: bool, aspect: f32) -> usize {
    if !(aspect.is_finite() && aspect > 0.0) {
        return 1;
    }
    let score = |b: usize| {
        let (w, h) = wrapped_size(c, colour, b);
        ((w as f32 / h.max(1) as f32) / aspect).ln().abs()
    };
    let mut best = 1;
    for b in 2..=c.cout.max(1) {
        if score(b) < score(best) - 1e-6 {
            best = b;
        }
    }
    best
}

/// Renders the kernels of `c` as one column (output channels top to bottom). `rgb` gives
/// the input-channel indices of R, G and B when the layer reads a colour image.
pub fn render(c: &Conv2d, rgb: Option<[usize; 3]>) -> RgbaImage {
    render_wrapped(c, rgb, 1)
}

/// Renders the kernels of `c` with the output channels wrapped into `blocks` columns
/// (channel `co` in column `co / rows`, row `co % rows`).
pub fn render_wrapped(c: &Conv2d, rgb: Option<[usize; 3]>, blocks: usize) -> RgbaImage {
    let s = cell_size(c.k);
    let tile = c.k as u32 * s;
    let gap = 1u32;
    let colour_col = rgb.is_some() && c.cin == 3;
    let extra_gap = if colour_col { 3 * gap } else { 0 };
    let (w, h) = wrapped_size(c, colour_col, blocks);
    let blocks = blocks.clamp(1, c.cout.max(1));
    let per = c.cout.div_ceil(blocks).max(1);
    let block_w = block_size(c, colour_col).0 as u32;
    let mut img = RgbaImage::from_pixel(w as u32, h as u32, Rgba(grid::BACKGROUND));
    let a = c.weight.iter().fold(0.0f32, |m, w| m.max(w.abs()));
    let lut = Colormap::Bwr.lut();
    let kk = c.k * c.k;
    for co in 0..c.cout {
        let bx = (co / per) as u32 * (block_w + BLOCK_GAP);
        let y0 = gap + (co % per) as u32 * (tile + gap);
        for ci in 0..c.cin {
            let x0 = bx + gap + ci as u32 * (tile + gap);
            for t in 0..kk {
                let w = c.weight[(co * c.cin + ci) * kk + t];
                let px = Rgba(lut[grid::lut_index(w, -a, a)]);
                let (ky, kx) = ((t / c.k) as u32, (t % c.k) as u32);
                for dy in 0..s {
                    for dx in 0..s {
                        img.put_pixel(x0 + kx * s + dx, y0 + ky * s + dy, px);
                    }
                }
            }
        }
        if let (true, Some(rgb)) = (colour_col, rgb) {
            let base = (co * c.cin) * kk;
            let filt = &c.weight[base..base + c.cin * kk];
            let (lo, hi) = filt.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &w| (l.min(w), h.max(w)));
            let x0 = bx + gap + c.cin as u32 * (tile + gap) + extra_gap;
            for t in 0..kk {
                let byte = |ch: usize| {
                    let w = filt[ch * kk + t];
                    if hi > lo { ((w - lo) / (hi - lo) * 255.0 + 0.5).floor().clamp(0.0, 255.0) as u8 } else { 0 }
                };
                let px = Rgba([byte(rgb[0]), byte(rgb[1]), byte(rgb[2]), 255]);
                let (ky, kx) = ((t / c.k) as u32, (t % c.k) as u32);
                for dy in 0..s {
                    for dx in 0..s {
                        img.put_pixel(x0 + kx * s + dx, y0 + ky * s + dy, px);
                    }
                }
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_map_to_blue_white_red_and_colour_patches_follow_rgb() {
        // One output channel, three inputs, 1x1 kernel: weights -1, 0, 1 (R, G, B order).
        let c = Conv2d { cin: 3, cout: 1, k: 1, stride: 1, pad: 0, weight: vec![-1.0, 0.0, 1.0], bias: vec![0.0] };
        let img = render(&c, Some([0, 1, 2]));
        let s = cell_size(1);
        let at = |col: u32| img.get_pixel(1 + col * (s + 1), 1).0;
        assert_eq!(at(0), [0, 0, 255, 255]); // -max: blue
        assert_eq!(at(2), [255, 0, 0, 255]); // +max: red
        let mid = at(1);
        assert!(mid[0] > 250 && mid[1] > 250 && mid[2] > 250, "zero is white: {mid:?}");
        // Colour patch: R from input 0 (the minimum), B from input 2 (the maximum).
        let patch = img.get_pixel(1 + 3 * (s + 1) + 3, 1).0;
        assert_eq!(patch, [0, 128, 255, 255]);
        // With BGR input the patch swaps R and B.
        let img = render(&c, Some([2, 1, 0]));
        assert_eq!(img.get_pixel(1 + 3 * (s + 1) + 3, 1).0, [255, 128, 0, 255]);
        assert_eq!(img.dimensions(), (1 + 4 * (s + 1) + 3, 1 + (s + 1)));
    }

    #[test]
    fn size_cap_refuses_huge_layers_without_allocating() {
        let c = |cin, cout, k| Conv2d { cin, cout, k, stride: 1, pad: 0, weight: vec![], bias: vec![] };
        assert!(check_size(&c(3, 12, 5), "conv1", MAX_PIXELS).is_ok());
        let e = check_size(&c(1024, 4096, 3), "big", MAX_PIXELS).unwrap_err().to_string();
        assert!(e.starts_with("big has too many kernels to draw (4096 x 1024 of 3x3"), "{e}");
        // The size is what render draws.
        let small = Conv2d { weight: vec![0.5; 12 * 3 * 25], bias: vec![0.0; 12], ..c(3, 12, 5) };
        let img = render(&small, Some([0, 1, 2]));
        assert_eq!(image_size(&small), (img.width() as u64, img.height() as u64));
    }

    #[test]
    fn wrapped_kernels_follow_the_window_aspect_and_keep_every_kernel() {
        // 48 output channels of 24 inputs (conv3 of the tutorial): one column is a tall
        // strip; wrapped for a 16:9 area it is several columns, each kernel where it was
        // in its column, shifted.
        let (cin, cout, k) = (2, 48, 3);
        let weight: Vec<f32> = (0..cout * cin * k * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let c = Conv2d { cin, cout, k, stride: 1, pad: 0, weight, bias: vec![0.0; cout] };
        assert_eq!(blocks_for(&c, false, 0.0), 1);
        let b = blocks_for(&c, false, 16.0 / 9.0);
        assert!(b > 1, "48 rows of 2 kernels wrap");
        let (w, h) = wrapped_size(&c, false, b);
        let (w1, h1) = wrapped_size(&c, false, 1);
        let ar = |w: u64, h: u64| w as f32 / h as f32;
        assert!((ar(w, h) / (16.0 / 9.0)).ln().abs() < (ar(w1, h1) / (16.0 / 9.0)).ln().abs());
        let one = render(&c, None);
        let wrapped = render_wrapped(&c, None, b);
        assert_eq!((wrapped.width() as u64, wrapped.height() as u64), (w, h));
        // Output channel co's row of kernels, cut from each image, is the same.
        let per = cout.div_ceil(b);
        let tile = k as u32 * cell_size(k) + 1;
        let bw = w1 as u32;
        for co in [0, per - 1, per, cout - 1] {
            let (bx, by) = ((co / per) as u32 * (bw + BLOCK_GAP), (co % per) as u32 * tile);
            let a = image::imageops::crop_imm(&one, 0, co as u32 * tile, bw, tile + 1).to_image();
            let z = image::imageops::crop_imm(&wrapped, bx, by, bw, tile + 1).to_image();
            assert!(a == z, "output channel {co} moved intact");
        }
    }
}

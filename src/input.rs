//! The input layer: an image file read the way `cv2.imread` reads it, or the built-in
//! scene, turned into a `[1, 3, H, W]` f32 tensor (value / 255).

use crate::tensor::{Shape, Tensor};
use anyhow::{Context, Result, bail};
use image::{DynamicImage, ImageReader, RgbImage};
use std::path::Path;

/// Order of the three input channels in the tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ChannelOrder {
    #[default]
    Rgb,
    /// B, G, R like `cv2.imread` (the tutorial's order).
    Bgr,
}

impl ChannelOrder {
    /// Indices of the R, G and B channels in the tensor.
    pub fn rgb_indices(self) -> [usize; 3] {
        match self {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        }
    }
    pub fn names(self) -> [&'static str; 3] {
        match self {
            ChannelOrder::Rgb => ["R", "G", "B"],
            ChannelOrder::Bgr => ["B", "G", "R"],
        }
    }
}

/// Decodes an image file to 8-bit RGB as cv2.imread does: 16-bit samples keep their high
/// byte, grey is replicated, alpha is dropped (not blended). The image crate's default
/// limits refuse files that declare absurd sizes.
pub fn load_rgb8(path: &Path) -> Result<RgbImage> {
    let shown = path.display();
    if !path.exists() {
        bail!("cannot open {shown}: no such file; check the path");
    }
    if path.is_dir() {
        bail!("cannot open {shown}: it is a directory, not an image file");
    }
    let reader = ImageReader::open(path)
        .with_context(|| format!("cannot open {shown}"))?
        .with_guessed_format()
        .with_context(|| format!("cannot read {shown}"))?;
    if reader.format().is_none() {
        bail!("{shown} is not an image in a format convscope reads (PNG, JPEG, GIF, BMP, TIFF, WebP, ...)");
    }
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => {
            anyhow::anyhow!("{shown} is too large to decode ({l}); use a smaller image")
        }
        image::ImageError::Unsupported(u) if declares_zero_size(&u.to_string()) => {
            anyhow::anyhow!("{shown} has zero size; use a non-empty image")
        }
        image::ImageError::Unsupported(u) => {
            anyhow::anyhow!("{shown} uses an unsupported image format: {u}")
        }
        other => {
            anyhow::anyhow!("{shown} could not be decoded, it may be truncated or corrupt: {other}")
        }
    })?;
    if img.width() == 0 || img.height() == 0 {
        bail!("{shown} has zero size ({}x{}); use a non-empty image", img.width(), img.height());
    }
    Ok(to_rgb8_like_cv2(img))
}

/// Some decoders report a 0-pixel image as an unsupported size ("dimensions (0x0 ...").
fn declares_zero_size(msg: &str) -> bool {
    msg.split("dimensions (").nth(1).is_some_and(|rest| {
        let dims = rest.split([' ', ')']).next().unwrap_or("");
        dims.split('x').any(|d| d == "0")
    })
}

fn to_rgb8_like_cv2(img: DynamicImage) -> RgbImage {
    match img {
        DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_) => {
            let wide = img.to_rgb16();
            let (w, h) = wide.dimensions();
            let raw: Vec<u8> = wide.into_raw().into_iter().map(|v| (v >> 8) as u8).collect();
            RgbImage::from_raw(w, h, raw).expect("same dimensions")
        }
        other => other.to_rgb8(),
    }
}

/// `[1, 3, H, W]` with value = u8 / 255 (an IEEE f32 division) in the given channel order.
pub fn tensor_from_rgb8(img: &RgbImage, order: ChannelOrder) -> Tensor {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut t = Tensor::zeros(Shape::new(3, h, w));
    let src = order.rgb_indices(); // tensor channel of R, G, B
    for (x, y, p) in img.enumerate_pixels() {
        for (rgb, &ch) in src.iter().enumerate() {
            t.data[(ch * h + y as usize) * w + x as usize] = p.0[rgb] as f32 / 255.0;
        }
    }
    t
}

/// `(v − mean[c]) / std[c]` for each of the three channels, in place (f32).
pub fn normalise(t: &mut Tensor, mean: [f32; 3], std: [f32; 3]) {
    let plane = t.shape.plane();
    for c in 0..t.shape.c.min(3) {
        for v in &mut t.data[c * plane..(c + 1) * plane] {
            *v = (*v - mean[c]) / std[c];
        }
    }
}

/// Size of the built-in scene (the tutorial's photo is 225x400).
pub const SCENE_H: u32 = 240;
pub const SCENE_W: u32 = 400;

/// A scene drawn by code that shows what filters respond to: edges at several
/// orientations, circles, colour gradients, stripes of several frequencies and fine detail.
pub fn builtin_scene() -> RgbImage {
    RgbImage::from_fn(SCENE_W, SCENE_H, |x, y| {
        let (xf, yf) = (x as f32, y as f32);
        let (w, h) = (SCENE_W as f32, SCENE_H as f32);
        // Background: a diagonal colour gradient.
        let mut c = [40.0 + 150.0 * xf / w, 60.0 + 120.0 * yf / h, 200.0 - 140.0 * xf / w];
        let qx = x / 100; // four 100-pixel-wide columns
        let top = y < 120;
        let (lx, ly) = ((x % 100) as f32 - 50.0, (y % 120) as f32 - 60.0);
        match (qx, top) {
            // Half-planes at 0°, 45°, 90°, 135°: oriented edges.
            (0, true) => {
                if lx > 0.0 {
                    c = [230.0, 230.0, 230.0];
                }
            }
            (1, true) => {
                if lx + ly > 0.0 {
                    c = [20.0, 20.0, 20.0];
                }
            }
            (2, true) => {
                if ly > 0.0 {
                    c = [250.0, 200.0, 40.0];
                }
            }
            (3, true) => {
                if lx - ly > 0.0 {
                    c = [30.0, 90.0, 220.0];
                }
            }
            // Concentric rings and a filled disc.
            (0, false) => {
                let r = (lx * lx + ly * ly).sqrt();
                if r < 45.0 {
                    let ring = ((r / 6.0) as i32) % 2 == 0;
                    c = if ring { [240.0, 60.0, 60.0] } else { [250.0, 250.0, 250.0] };
                }
            }
            // Vertical stripes getting finer from left to right.
            (1, false) => {
                let period = 2.0 + 14.0 * (1.0 - (lx + 50.0) / 100.0);
                let v = if (xf / period) as i32 % 2 == 0 { 230.0 } else { 25.0 };
                c = [v, v, v];
            }
            // Horizontal sine stripes of rising frequency, tinted.
            (2, false) => {
                let f = 0.05 + 0.25 * (lx + 50.0) / 100.0;
                let v = 0.5 + 0.5 * (yf * f * std::f32::consts::TAU / 4.0).sin();
                c = [40.0 + 200.0 * v, 120.0, 220.0 - 180.0 * v];
            }
            // Fine checkerboard and single-pixel dots.
            _ => {
                let v = if ((x / 2) + (y / 2)) % 2 == 0 { 210.0 } else { 50.0 };
                c = [v, v * 0.8, v * 0.6];
                if (x % 9 == 0) && (y % 9 == 0) {
                    c = [255.0, 0.0, 0.0];
                }
            }
        }
        image::Rgb(c.map(|v| v.clamp(0.0, 255.0) as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bgr_order_and_scaling() {
        let img = RgbImage::from_raw(2, 1, vec![255, 0, 51, 1, 2, 3]).unwrap();
        let t = tensor_from_rgb8(&img, ChannelOrder::Bgr);
        assert_eq!(t.shape, Shape::new(3, 1, 2));
        assert_eq!(t.at(0, 0, 0), 51.0 / 255.0); // B
        assert_eq!(t.at(2, 0, 0), 1.0); // R
        assert_eq!(t.at(2, 0, 1), 1.0 / 255.0);
        let t = tensor_from_rgb8(&img, ChannelOrder::Rgb);
        assert_eq!(t.at(0, 0, 0), 1.0);
    }

    #[test]
    fn sixteen_bit_keeps_high_byte_grey_replicates_alpha_dropped() {
        let img16 = image::ImageBuffer::<image::Rgba<u16>, _>::from_raw(1, 1, vec![0xABCD, 0x00FF, 0xFFFF, 0]).unwrap();
        let rgb = to_rgb8_like_cv2(DynamicImage::ImageRgba16(img16));
        assert_eq!(rgb.get_pixel(0, 0).0, [0xAB, 0x00, 0xFF]);
        let la = image::GrayAlphaImage::from_raw(1, 1, vec![77, 0]).unwrap();
        let rgb = to_rgb8_like_cv2(DynamicImage::ImageLumaA8(la));
        assert_eq!(rgb.get_pixel(0, 0).0, [77, 77, 77]);
    }

    #[test]
    fn zero_size_messages_are_recognised() {
        assert!(declares_zero_size("Image dimensions (0x0 w/3 channels) are too large"));
        assert!(declares_zero_size("Image dimensions (0x17 w/3 channels)"));
        assert!(!declares_zero_size("Image dimensions (10x17 w/3 channels)"));
    }

    #[test]
    fn scene_has_detail() {
        let s = builtin_scene();
        assert_eq!(s.dimensions(), (SCENE_W, SCENE_H));
        let distinct: std::collections::HashSet<[u8; 3]> = s.pixels().map(|p| p.0).collect();
        assert!(distinct.len() > 500);
    }
}

//! Image access for CPU adapters: a tensor band or packed weights read by a shader as a
//! read-only `rgba32uint` storage image instead of a storage buffer, four f32s (their bits)
//! a texel, vec4 `i` of the data at texel (`i mod WIDTH`, `i / WIDTH`).
//!
//! Why: lavapipe as Debian 12 ships it (Mesa 22.3) reads a storage buffer lane by lane, a
//! loop over the 8 lanes with a bounds check and a branch per lane and component, where a
//! storage image is read by straight-line code, one 16-byte load per lane. The tuned 1×1
//! conv's image form (`conv_tuned`, blocks `…si`) reads its input and weights this way; a
//! band is copied into an image just before the conv's pass (a copy is a `memcpy` there,
//! 0.02 ms for 0.8 MB). Measured on lavapipe (one shader, interleaved, copy included):
//! 1×1 64→256 at 56² 2.04–2.19 → 1.77–1.82 ms.

use crate::gpu::GpuContext;

/// The images' texel format: four 32-bit words, the f32s' bits.
pub const FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba32Uint;
/// Texels per row: rows of 16 KiB, a multiple of the 256 bytes a buffer-to-texture copy
/// needs per row.
pub const WIDTH: u32 = 1024;
/// Rows at most: WebGPU's guaranteed `max_texture_dimension_2d`, so 8 Mi texels (128 MiB).
pub const MAX_ROWS: u32 = 8192;
const TEXEL_BYTES: u32 = 16;

/// The size of the image that holds `texels` vec4s; `None` when there are none or more
/// than [`MAX_ROWS`] rows' worth.
pub fn extent(texels: u64) -> Option<wgpu::Extent3d> {
    let rows = texels.div_ceil(u64::from(WIDTH));
    (texels > 0 && rows <= u64::from(MAX_ROWS)).then_some(wgpu::Extent3d {
        width: WIDTH,
        height: rows as u32,
        depth_or_array_layers: 1,
    })
}

/// The texel that holds vec4 `i`: what the shaders' [`load_fn`] computes.
pub fn texel(i: u64) -> (u64, u64) {
    (i % u64::from(WIDTH), i / u64::from(WIDTH))
}

fn descriptor(label: &str, size: wgpu::Extent3d) -> wgpu::TextureDescriptor<'_> {
    wgpu::TextureDescriptor {
        label: Some(label),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: FORMAT,
        usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    }
}

/// An image of `size`, filled by copies ([`record_copy`]) and read by shaders.
pub fn texture(ctx: &GpuContext, label: &str, size: wgpu::Extent3d) -> (wgpu::Texture, wgpu::TextureView) {
    let t = ctx.device.create_texture(&descriptor(label, size));
    let v = t.create_view(&wgpu::TextureViewDescriptor { label: Some(label), ..Default::default() });
    (t, v)
}

/// `data` uploaded once as an image, zero-padded to whole rows; `None` when it does not fit
/// ([`extent`]).
pub fn upload(ctx: &GpuContext, label: &str, data: &[f32]) -> Option<(wgpu::Texture, wgpu::TextureView)> {
    use wgpu::util::DeviceExt;
    let size = extent(data.len().div_ceil(4) as u64)?;
    let mut bytes = vec![0u8; (size.width * size.height * TEXEL_BYTES) as usize];
    bytes[..data.len() * 4].copy_from_slice(bytemuck::cast_slice(data));
    let t = ctx.device.create_texture_with_data(
        &ctx.queue,
        &descriptor(label, size),
        wgpu::util::TextureDataOrder::LayerMajor,
        &bytes,
    );
    let v = t.create_view(&wgpu::TextureViewDescriptor { label: Some(label), ..Default::default() });
    Some((t, v))
}

/// Records copying the first `texels` vec4s of `src` into `dst` (at least
/// [`extent`]`(texels)` large): the whole rows in one copy, then the part row.
pub fn record_copy(enc: &mut wgpu::CommandEncoder, src: &wgpu::Buffer, dst: &wgpu::Texture, texels: u64) {
    let row_bytes = WIDTH * TEXEL_BYTES;
    let full = (texels / u64::from(WIDTH)) as u32;
    let tail = (texels % u64::from(WIDTH)) as u32;
    let copy = |enc: &mut wgpu::CommandEncoder, y: u32, width: u32, height: u32| {
        enc.copy_buffer_to_texture(
            wgpu::TexelCopyBufferInfo {
                buffer: src,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: u64::from(y) * u64::from(row_bytes),
                    bytes_per_row: Some(row_bytes),
                    rows_per_image: Some(height),
                },
            },
            wgpu::TexelCopyTextureInfo {
                texture: dst,
                mip_level: 0,
                origin: wgpu::Origin3d { x: 0, y, z: 0 },
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::Extent3d { width, height, depth_or_array_layers: 1 },
        );
    };
    if full > 0 {
        copy(enc, 0, WIDTH, full);
    }
    if tail > 0 {
        copy(enc, full, tail, 1);
    }
}

/// The WGSL declaration of image binding `binding`, named `var`.
pub fn declaration(binding: u32, var: &str) -> String {
    format!("@group(0) @binding({binding}) var {var}: texture_storage_2d<rgba32uint, read>;")
}

/// The WGSL function `name(i: u32) -> vec4<f32>`: vec4 `i` of image `var` (see [`texel`]).
pub fn load_fn(name: &str, var: &str) -> String {
    format!(
        "fn {name}(i: u32) -> vec4<f32> {{\n    return bitcast<vec4<f32>>(textureLoad({var}, vec2<u32>(i % {WIDTH}u, i / {WIDTH}u)));\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_hold_whole_rows_up_to_the_limit() {
        assert_eq!(extent(0), None);
        let e = extent(1).expect("one texel");
        assert_eq!((e.width, e.height), (WIDTH, 1));
        assert_eq!(extent(u64::from(WIDTH)).map(|e| e.height), Some(1));
        assert_eq!(extent(u64::from(WIDTH) + 1).map(|e| e.height), Some(2));
        let most = u64::from(WIDTH) * u64::from(MAX_ROWS);
        assert_eq!(extent(most).map(|e| e.height), Some(MAX_ROWS));
        assert_eq!(extent(most + 1), None);
        // A 0.8 MB band (64 channels at 56²): 49 rows.
        assert_eq!(extent(64 * 56 * 56 / 4).map(|e| e.height), Some(49));
    }

    #[test]
    fn texels_are_row_major() {
        assert_eq!(texel(0), (0, 0));
        assert_eq!(texel(1023), (1023, 0));
        assert_eq!(texel(1024), (0, 1));
        assert_eq!(texel(2049), (1, 2));
        let f = load_fn("ldi", "input_img");
        assert!(f.contains("i % 1024u, i / 1024u"), "{f}");
    }
}

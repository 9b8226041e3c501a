//! The GPU side of display: the colormap pass that turns one layer and its channel
//! statistics into a grid texture, and reading that texture back as an image.

use crate::exec::Activations;
use crate::gpu::{self, GpuContext};
use crate::grid::{Colormap, GridLayout, Norm};
use crate::ops::colormap::{ColormapPass, Target};
use anyhow::{Result, anyhow, bail};
use image::RgbaImage;

pub use crate::ops::colormap::GRID_FORMAT;

/// How a layer is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Look {
    pub cmap: Colormap,
    pub norm: Norm,
}

/// A layer's grid on the GPU.
pub struct GridTexture {
    pub texture: wgpu::Texture,
    pub layout: GridLayout,
    /// When set, tile 0 is the colour image made of these channels (R, G, B).
    pub colour: Option<[usize; 3]>,
}

/// Draws layers of [`Activations`] into grid textures (the colormap pass, built once).
pub struct Visualizer {
    pass: ColormapPass,
}

/// The grid layout of a layer of `channels` channels (plus a colour tile when `colour`),
/// with the smallest sampling step that keeps the grid within `max_dim` pixels.
pub fn layout_for(channels: usize, h: usize, w: usize, colour: bool, max_dim: usize) -> GridLayout {
    let tiles = channels + colour as usize;
    let mut step = 1;
    loop {
        let g = if colour {
            GridLayout::with_rows_cols(tiles, 1, tiles, h, w, step)
        } else {
            GridLayout::new(tiles, h, w, step)
        };
        if (g.width <= max_dim && g.height <= max_dim) || step >= h.max(w) {
            return g;
        }
        step += 1;
    }
}

impl Visualizer {
    pub fn new(ctx: &GpuContext) -> Self {
        Self { pass: ColormapPass::new(ctx) }
    }

    /// Creates the grid texture of layer `i` and draws it. Layer 0 (the input) gets its
    /// colour image as the first tile, built from the channels `rgb` names.
    pub fn render(
        &self,
        ctx: &GpuContext,
        acts: &Activations,
        i: usize,
        look: Look,
        rgb: [usize; 3],
    ) -> Result<GridTexture> {
        let s = acts.shapes[i];
        let colour = (i == 0 && s.c == 3).then_some(rgb);
        let max_dim = ctx.limits().max_texture_dimension_2d as usize;
        let layout = layout_for(s.c, s.h, s.w, colour.is_some(), max_dim);
        if layout.width > max_dim || layout.height > max_dim {
            bail!("{} is too large to draw as a grid on this GPU", acts.names[i]);
        }
        let texture = ctx.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(&format!("{} grid", acts.names[i])),
            size: wgpu::Extent3d { width: layout.width as u32, height: layout.height as u32, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: GRID_FORMAT,
            usage: wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let grid = GridTexture { texture, layout, colour };
        self.redraw(ctx, acts, i, &grid, look)?;
        Ok(grid)
    }

    /// Re-runs only the colormap pass into an existing grid texture (recolouring).
    pub fn redraw(&self, ctx: &GpuContext, acts: &Activations, i: usize, grid: &GridTexture, look: Look) -> Result<()> {
        // This thread's own error scope: an error here is reported here, and an error of
        // another thread (the viewer's compute worker) is never taken for this one's.
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("colormap") });
        self.encode(ctx, &mut enc, acts, i, grid, look);
        ctx.queue.submit([enc.finish()]);
        match pollster::block_on(scope.pop()) {
            Some(e) => {
                bail!("GPU error while drawing {}: {}", acts.names[i], e.to_string().lines().next().unwrap_or(""))
            }
            None => Ok(()),
        }
    }

    /// Records the colormap of layer `i` into `enc`: the background (gutters), then each
    /// band's tile rows.
    pub fn encode(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        acts: &Activations,
        i: usize,
        grid: &GridTexture,
        look: Look,
    ) {
        let bands = acts.band_refs(i);
        self.pass.encode(
            ctx,
            enc,
            &Target {
                name: &acts.names[i],
                channels: acts.shapes[i].c,
                bands: &bands,
                stats: &acts.stats[i],
                grid: &grid.texture,
                layout: &grid.layout,
                colour: grid.colour,
                norm: look.norm,
                cmap: look.cmap,
            },
        );
    }
}

/// Reads an RGBA8 texture back to the CPU.
pub fn read_texture(ctx: &GpuContext, texture: &wgpu::Texture) -> Result<RgbaImage> {
    let (w, h) = (texture.width(), texture.height());
    let bytes = gpu::read_texture_rows(ctx, texture, 0, h)?;
    RgbaImage::from_raw(w, h, bytes).ok_or_else(|| anyhow!("texture read-back returned the wrong size"))
}

/// Writes an RGBA8 texture to a PNG file without holding the whole image in memory:
/// rows are copied back in chunks of about 32 MiB and streamed into the encoder.
pub fn write_texture_png(ctx: &GpuContext, texture: &wgpu::Texture, path: &std::path::Path) -> Result<()> {
    use std::io::Write as _;
    let (w, h) = (texture.width(), texture.height());
    let chunk_rows = ((32u32 << 20) / (w * 4).max(1)).clamp(1, h.max(1));
    let file = std::fs::File::create(path).map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    // Grids of large images reach hundreds of megapixels: favour speed over size.
    enc.set_compression(png::Compression::Fast);
    let fail = |e: &dyn std::fmt::Display| anyhow!("cannot write {}: {e}", path.display());
    let mut writer = enc.write_header().map_err(|e| fail(&e))?;
    let mut stream = writer.stream_writer().map_err(|e| fail(&e))?;
    let mut y0 = 0;
    while y0 < h {
        let rows = chunk_rows.min(h - y0);
        let bytes = gpu::read_texture_rows(ctx, texture, y0, rows)?;
        stream.write_all(&bytes).map_err(|e| fail(&e))?;
        y0 += rows;
    }
    stream.finish().map_err(|e| fail(&e))?;
    Ok(())
}

/// Uploads an RGBA image as a texture that can be drawn and copied back (kernels view).
pub fn upload_image(ctx: &GpuContext, img: &RgbaImage, label: &str) -> wgpu::Texture {
    let size = wgpu::Extent3d { width: img.width(), height: img.height(), depth_or_array_layers: 1 };
    let tex = ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: GRID_FORMAT,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    ctx.queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture: &tex,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        img.as_raw(),
        wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(4 * img.width()), rows_per_image: None },
        size,
    );
    tex
}

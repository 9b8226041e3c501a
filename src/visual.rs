//! The GPU side of display: the colormap pass that turns one layer and its channel
//! statistics into a grid texture, and reading that texture back as an image.

use crate::conv::{Activations, compute_pipeline, storage, uniform_entry};
use crate::gpu::GpuContext;
use crate::grid::{Colormap, GridLayout, Norm};
use crate::shader;
use anyhow::{Result, bail};
use image::RgbaImage;
use wgpu::util::DeviceExt;

/// Texture format of grid images (storage-writable everywhere).
pub const GRID_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

/// How a layer is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
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

/// The colormap pipeline and the colormap tables.
pub struct Visualizer {
    pipeline: wgpu::ComputePipeline,
    background: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    luts: Vec<wgpu::Buffer>,
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
        let layout = ctx.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("colormap bind group layout"),
            entries: &[
                uniform_entry(0),
                storage(1, true),
                storage(2, true),
                storage(3, true),
                wgpu::BindGroupLayoutEntry {
                    binding: 4,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::StorageTexture {
                        access: wgpu::StorageTextureAccess::WriteOnly,
                        format: GRID_FORMAT,
                        view_dimension: wgpu::TextureViewDimension::D2,
                    },
                    count: None,
                },
            ],
        });
        let (pipeline, pl) = compute_pipeline(ctx, "colormap", shader::COLORMAP, &[Some(&layout)]);
        let module = ctx.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("colormap background"),
            source: wgpu::ShaderSource::Wgsl(shader::COLORMAP.into()),
        });
        let background = ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("colormap background"),
            layout: Some(&pl),
            module: &module,
            entry_point: Some("background"),
            compilation_options: Default::default(),
            cache: None,
        });
        let luts = Colormap::ALL
            .iter()
            .map(|c| {
                ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(&format!("{} colormap table", c.name())),
                    contents: bytemuck::cast_slice(&c.lut_words()),
                    usage: wgpu::BufferUsages::STORAGE,
                })
            })
            .collect();
        Self { pipeline, background, layout, luts }
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
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("colormap") });
        self.encode(ctx, &mut enc, acts, i, grid, look);
        ctx.queue.submit([enc.finish()]);
        ctx.check_errors()
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
        let s = acts.shapes[i];
        let g = &grid.layout;
        let rgb = grid.colour.unwrap_or([0, 0, 0]);
        let name = &acts.names[i];
        let view = grid.texture.create_view(&wgpu::TextureViewDescriptor {
            label: Some(&format!("{name} grid storage view")),
            ..Default::default()
        });
        let mut jobs = Vec::new();
        // The background pass binds the first band; it reads nothing.
        let mut band_jobs: Vec<(usize, u32, u32)> = vec![(0, 0, 0)];
        for (j, b) in acts.bands[i].iter().enumerate() {
            let ty_lo = b.own_lo.div_ceil(g.step).min(g.tile_h) as u32;
            let ty_hi = b.own_hi.div_ceil(g.step).min(g.tile_h) as u32;
            if ty_hi > ty_lo {
                band_jobs.push((j, ty_lo, ty_hi));
            }
        }
        for (n, &(j, ty_lo, ty_hi)) in band_jobs.iter().enumerate() {
            let b = &acts.bands[i][j];
            let params: [u32; 20] = [
                g.tiles as u32,
                g.cols as u32,
                g.src_h as u32,
                g.src_w as u32,
                g.tile_h as u32,
                g.tile_w as u32,
                g.gutter as u32,
                g.step as u32,
                g.width as u32,
                g.height as u32,
                look.norm.index(),
                grid.colour.is_some() as u32,
                rgb[0] as u32,
                rgb[1] as u32,
                rgb[2] as u32,
                s.c as u32,
                b.row0 as u32,
                b.rows as u32,
                ty_lo,
                ty_hi,
            ];
            let ubuf = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&format!("{name} band {j} colormap params")),
                contents: bytemuck::cast_slice(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&format!("{name} band {j} colormap bind group")),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: ubuf.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: b.buffer.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 2, resource: acts.stats[i].as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 3, resource: self.luts[look.cmap as usize].as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 4, resource: wgpu::BindingResource::TextureView(&view) },
                ],
            });
            let dispatch = if n == 0 {
                ((g.width as u32).div_ceil(16), (g.height as u32).div_ceil(16), 1)
            } else {
                ((g.width as u32).div_ceil(16), (ty_hi - ty_lo).div_ceil(16), g.rows as u32)
            };
            jobs.push((bg, dispatch, n == 0));
        }
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(&format!("{name} colormap")),
            timestamp_writes: None,
        });
        for (bg, d, is_background) in &jobs {
            pass.set_pipeline(if *is_background { &self.background } else { &self.pipeline });
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(d.0, d.1, d.2);
        }
    }
}

/// Reads an RGBA8 texture back to the CPU (rows are copied at the 256-byte pitch the API
/// requires and repacked).
pub fn read_texture(ctx: &GpuContext, texture: &wgpu::Texture) -> Result<RgbaImage> {
    let (w, h) = (texture.width(), texture.height());
    let pitch = (w * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("grid read-back"),
        size: pitch as u64 * h as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("grid read-back") });
    enc.copy_texture_to_buffer(
        wgpu::TexelCopyTextureInfo {
            texture,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        wgpu::TexelCopyBufferInfo {
            buffer: &staging,
            layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(pitch), rows_per_image: Some(h) },
        },
        wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
    );
    ctx.queue.submit([enc.finish()]);
    let bytes = ctx.map_and_read(&staging)?;
    let mut out = Vec::with_capacity((w * h * 4) as usize);
    for row in 0..h as usize {
        let start = row * pitch as usize;
        out.extend_from_slice(&bytes[start..start + w as usize * 4]);
    }
    Ok(RgbaImage::from_raw(w, h, out).expect("buffer sized from the texture"))
}

/// Writes an RGBA8 texture to a PNG file without holding the whole image in memory:
/// rows are copied back in chunks of about 32 MiB and streamed into the encoder.
pub fn write_texture_png(ctx: &GpuContext, texture: &wgpu::Texture, path: &std::path::Path) -> Result<()> {
    use std::io::Write as _;
    let (w, h) = (texture.width(), texture.height());
    let pitch = (w * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    let chunk_rows = ((32u32 << 20) / pitch).clamp(1, h);
    let file = std::fs::File::create(path).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    // Grids of large images reach hundreds of megapixels: favour speed over size.
    enc.set_compression(png::Compression::Fast);
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot write {}: {e}", path.display());
    let mut writer = enc.write_header().map_err(|e| fail(&e))?;
    let mut stream = writer.stream_writer().map_err(|e| fail(&e))?;
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("grid png read-back"),
        size: pitch as u64 * chunk_rows as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut y0 = 0;
    while y0 < h {
        let rows = chunk_rows.min(h - y0);
        let mut e = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("grid png rows") });
        e.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo {
                texture,
                mip_level: 0,
                origin: wgpu::Origin3d { x: 0, y: y0, z: 0 },
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::TexelCopyBufferInfo {
                buffer: &staging,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(pitch),
                    rows_per_image: Some(rows),
                },
            },
            wgpu::Extent3d { width: w, height: rows, depth_or_array_layers: 1 },
        );
        ctx.queue.submit([e.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, ..pitch as u64 * rows as u64, move |r| {
            let _ = tx.send(r);
        });
        ctx.wait()?;
        rx.recv()
            .map_err(|_| anyhow::anyhow!("GPU read-back was cancelled"))?
            .map_err(|e| anyhow::anyhow!("GPU read-back failed: {e}"))?;
        {
            let view = staging
                .get_mapped_range(..pitch as u64 * rows as u64)
                .map_err(|e| anyhow::anyhow!("GPU read-back failed: {e}"))?;
            for r in 0..rows as usize {
                let start = r * pitch as usize;
                stream.write_all(&view[start..start + w as usize * 4]).map_err(|e| fail(&e))?;
            }
        }
        staging.unmap();
        y0 += rows;
    }
    stream.finish().map_err(|e| fail(&e))?;
    Ok(())
}

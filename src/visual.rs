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
        let layout = ctx
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
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
        let (pipeline, _) = compute_pipeline(ctx, "colormap", shader::COLORMAP, &[Some(&layout)]);
        let luts = Colormap::ALL
            .iter()
            .map(|c| {
                ctx.device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(&format!("{} colormap table", c.name())),
                        contents: bytemuck::cast_slice(&c.lut_words()),
                        usage: wgpu::BufferUsages::STORAGE,
                    })
            })
            .collect();
        Self {
            pipeline,
            layout,
            luts,
        }
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
            bail!(
                "{} is too large to draw as a grid on this GPU",
                acts.names[i]
            );
        }
        let texture = ctx.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(&format!("{} grid", acts.names[i])),
            size: wgpu::Extent3d {
                width: layout.width as u32,
                height: layout.height as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: GRID_FORMAT,
            usage: wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let grid = GridTexture {
            texture,
            layout,
            colour,
        };
        self.redraw(ctx, acts, i, &grid, look)?;
        Ok(grid)
    }

    /// Re-runs only the colormap pass into an existing grid texture (recolouring).
    pub fn redraw(
        &self,
        ctx: &GpuContext,
        acts: &Activations,
        i: usize,
        grid: &GridTexture,
        look: Look,
    ) -> Result<()> {
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("colormap"),
            });
        self.encode(ctx, &mut enc, acts, i, grid, look);
        ctx.queue.submit([enc.finish()]);
        ctx.check_errors()
    }

    /// Records the colormap pass for layer `i` into `enc`.
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
        let params: [u32; 16] = [
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
        ];
        let ubuf = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&format!("{} colormap params", acts.names[i])),
                contents: bytemuck::cast_slice(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let view = grid.texture.create_view(&wgpu::TextureViewDescriptor {
            label: Some(&format!("{} grid storage view", acts.names[i])),
            ..Default::default()
        });
        let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&format!("{} colormap bind group", acts.names[i])),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: ubuf.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: acts.buffers[i].as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: acts.stats[i].as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: self.luts[look.cmap as usize].as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: wgpu::BindingResource::TextureView(&view),
                },
            ],
        });
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(&format!("{} colormap", acts.names[i])),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(
            (g.width as u32).div_ceil(16),
            (g.height as u32).div_ceil(16),
            1,
        );
    }
}

/// Reads an RGBA8 texture back to the CPU (rows are copied at the 256-byte pitch the API
/// requires and repacked).
pub fn read_texture(ctx: &GpuContext, texture: &wgpu::Texture) -> Result<RgbaImage> {
    let (w, h) = (texture.width(), texture.height());
    let pitch =
        (w * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("grid read-back"),
        size: pitch as u64 * h as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("grid read-back"),
        });
    enc.copy_texture_to_buffer(
        wgpu::TexelCopyTextureInfo {
            texture,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        wgpu::TexelCopyBufferInfo {
            buffer: &staging,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(pitch),
                rows_per_image: Some(h),
            },
        },
        wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
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

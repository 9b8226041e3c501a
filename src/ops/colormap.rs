//! The colormap pass: one layer (in one or more row bands) and its channel min/max become
//! an RGBA8 grid texture, each tile one channel. `background` fills the gutters first.
//! CPU twin: `reference::render_grid`; layout rules in `grid`.

use super::{Bind, ShaderDesc, WgslStruct, layout_entries};
use crate::gpu::{self, GpuContext};
use crate::grid::{Colormap, GridLayout, Norm};
use wgpu::util::DeviceExt;

/// Texture format of grid images (storage-writable everywhere).
pub const GRID_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "colormap.wgsl",
    source: include_str!("../../shaders/colormap.wgsl"),
    // params, data band, channel min/max, colormap table, grid texture
    bindings: &[
        Bind::Uniform,
        Bind::Storage { read_only: true },
        Bind::Storage { read_only: true },
        Bind::Storage { read_only: true },
        Bind::StorageTexture(GRID_FORMAT),
    ],
    params: Some(Params::layout),
};

super::wgsl_struct! {
    /// Mirrors `Params` in `colormap.wgsl`.
    pub struct Params as "Params" {
        pub tiles: u32,
        pub cols: u32,
        pub src_h: u32,
        pub src_w: u32,
        pub tile_h: u32,
        pub tile_w: u32,
        pub gutter: u32,
        pub step: u32,
        pub width: u32,
        pub height: u32,
        pub norm: u32,
        pub colour: u32,
        pub r_ch: u32,
        pub g_ch: u32,
        pub b_ch: u32,
        pub channels: u32,
        pub band_row0: u32,
        pub band_rows: u32,
        pub ty_lo: u32,
        pub ty_hi: u32,
    }
}

/// One band of a layer as the colormap reads it.
#[derive(Clone, Copy)]
pub struct BandRef<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub row0: usize,
    pub rows: usize,
    pub own_lo: usize,
    pub own_hi: usize,
}

/// What one colormap pass draws: a layer's bands and statistics into a grid.
pub struct Target<'a> {
    pub name: &'a str,
    pub channels: usize,
    pub bands: &'a [BandRef<'a>],
    pub stats: &'a wgpu::Buffer,
    pub grid: &'a wgpu::Texture,
    pub layout: &'a GridLayout,
    /// Channels of the colour tile (tile 0), if the grid has one.
    pub colour: Option<[usize; 3]>,
    pub norm: Norm,
    pub cmap: Colormap,
}

/// The colormap pipelines and tables, built once.
pub struct ColormapPass {
    pipeline: wgpu::ComputePipeline,
    background: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    luts: Vec<wgpu::Buffer>,
}

impl ColormapPass {
    pub fn new(ctx: &GpuContext) -> Self {
        let layout = ctx.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("colormap bind group layout"),
            entries: &layout_entries(SHADER.bindings, wgpu::ShaderStages::COMPUTE),
        });
        let pl = gpu::pipeline_layout(ctx, "colormap", &layout);
        let pipeline = gpu::compute_pipeline(ctx, "colormap", SHADER.source, "main", &pl);
        let background = gpu::compute_pipeline(ctx, "colormap background", SHADER.source, "background", &pl);
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

    /// Records the background (gutters), then each band's tile rows.
    pub fn encode(&self, ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, t: &Target<'_>) {
        let g = t.layout;
        let rgb = t.colour.unwrap_or([0, 0, 0]);
        let Some(first) = t.bands.first() else { return };
        let view = t.grid.create_view(&wgpu::TextureViewDescriptor {
            label: Some(&format!("{} grid storage view", t.name)),
            ..Default::default()
        });
        // The background pass binds the first band; it reads nothing.
        let mut band_jobs: Vec<(BandRef<'_>, u32, u32, bool)> = vec![(*first, 0, 0, true)];
        for b in t.bands {
            let ty_lo = b.own_lo.div_ceil(g.step).min(g.tile_h) as u32;
            let ty_hi = b.own_hi.div_ceil(g.step).min(g.tile_h) as u32;
            if ty_hi > ty_lo {
                band_jobs.push((*b, ty_lo, ty_hi, false));
            }
        }
        let mut jobs = Vec::with_capacity(band_jobs.len());
        for (j, (b, ty_lo, ty_hi, is_background)) in band_jobs.into_iter().enumerate() {
            let u = |v: usize| v as u32;
            let params = Params {
                tiles: u(g.tiles),
                cols: u(g.cols),
                src_h: u(g.src_h),
                src_w: u(g.src_w),
                tile_h: u(g.tile_h),
                tile_w: u(g.tile_w),
                gutter: u(g.gutter),
                step: u(g.step),
                width: u(g.width),
                height: u(g.height),
                norm: t.norm.index(),
                colour: u32::from(t.colour.is_some()),
                r_ch: u(rgb[0]),
                g_ch: u(rgb[1]),
                b_ch: u(rgb[2]),
                channels: u(t.channels),
                band_row0: u(b.row0),
                band_rows: u(b.rows),
                ty_lo,
                ty_hi,
            };
            let ubuf = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&format!("{} colormap params {j}", t.name)),
                contents: bytemuck::bytes_of(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&format!("{} colormap bind group {j}", t.name)),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: ubuf.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: b.buffer.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 2, resource: t.stats.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 3, resource: self.luts[t.cmap as usize].as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 4, resource: wgpu::BindingResource::TextureView(&view) },
                ],
            });
            let dispatch = if is_background {
                (u(g.width).div_ceil(16), u(g.height).div_ceil(16), 1)
            } else {
                (u(g.width).div_ceil(16), (ty_hi - ty_lo).div_ceil(16), u(g.rows))
            };
            jobs.push((bg, dispatch, is_background));
        }
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(&format!("{} colormap", t.name)),
            timestamp_writes: None,
        });
        for (bg, d, is_background) in &jobs {
            pass.set_pipeline(if *is_background { &self.background } else { &self.pipeline });
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(d.0, d.1, d.2);
        }
    }
}

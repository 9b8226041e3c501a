//! The present pass: draws (part of) a grid texture into a render target, fitted with its
//! aspect kept and letterboxed; nearest when magnified, box-filtered when minified.
//! CPU twin: none needed beyond `fit` (the viewer's offscreen test compares whole images).

use super::{Bind, ShaderDesc, WgslStruct, layout_entries};
use crate::gpu::GpuContext;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "present.wgsl",
    source: include_str!("../../shaders/present.wgsl"),
    // params, grid texture
    bindings: &[Bind::Uniform, Bind::Texture],
    params: Some(Params::layout),
};

super::wgsl_struct! {
    /// Mirrors `Params` in `present.wgsl`.
    pub struct Params as "Params" {
        /// Destination rectangle in target pixels: x0, y0, x1, y1.
        pub dst: [f32; 4],
        /// Source rectangle in texels: x0, y0, width, height.
        pub src: [f32; 4],
        pub target_size: [f32; 2],
        pub srgb_target: u32,
        pub _pad: u32,
    }
}

/// A rectangle in pixels or texels: x, y, width, height.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl Rect {
    pub fn contains(&self, px: f32, py: f32) -> bool {
        px >= self.x && py >= self.y && px < self.x + self.w && py < self.y + self.h
    }
}

/// The largest rectangle of `src`'s aspect that fits centred in `area`.
pub fn fit(src_w: f32, src_h: f32, area: Rect) -> Rect {
    if src_w <= 0.0 || src_h <= 0.0 || area.w <= 0.0 || area.h <= 0.0 {
        return Rect { x: area.x, y: area.y, w: 0.0, h: 0.0 };
    }
    let s = (area.w / src_w).min(area.h / src_h);
    let (w, h) = (src_w * s, src_h * s);
    Rect { x: area.x + (area.w - w) / 2.0, y: area.y + (area.h - h) / 2.0, w, h }
}

/// Colour around the drawn grid.
pub const LETTERBOX: wgpu::Color = wgpu::Color { r: 0.09, g: 0.09, b: 0.1, a: 1.0 };

pub struct Presenter {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    srgb: bool,
    /// Rectangles of the current frame, rewritten each frame (no per-frame allocation).
    params: wgpu::Buffer,
    /// The bind group of the grid texture drawn last, rebuilt only when the texture changes.
    bound: Option<(wgpu::Texture, wgpu::BindGroup)>,
}

impl Presenter {
    /// A present pipeline for targets of `format`.
    pub fn new(ctx: &GpuContext, format: wgpu::TextureFormat) -> Self {
        let device = &ctx.device;
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("present bind group layout"),
            entries: &layout_entries(SHADER.bindings, wgpu::ShaderStages::VERTEX_FRAGMENT),
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("present"),
            source: wgpu::ShaderSource::Wgsl(SHADER.source.into()),
        });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("present pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("present"),
            layout: Some(&pl),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState { format, blend: None, write_mask: wgpu::ColorWrites::ALL })],
            }),
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            multiview_mask: None,
            cache: None,
        });
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("present params"),
            size: std::mem::size_of::<Params>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self { pipeline, layout, srgb: format.is_srgb(), params, bound: None }
    }

    /// Records a render pass that clears `target` and draws `src` (texels of `grid`) into
    /// `dst` (pixels of the target).
    #[allow(clippy::too_many_arguments)]
    pub fn draw(
        &mut self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        target: &wgpu::TextureView,
        target_size: (u32, u32),
        grid: &wgpu::Texture,
        src: Rect,
        dst: Rect,
    ) {
        let params = Params {
            dst: [dst.x, dst.y, dst.x + dst.w, dst.y + dst.h],
            src: [src.x, src.y, src.w, src.h],
            target_size: [target_size.0 as f32, target_size.1 as f32],
            srgb_target: u32::from(self.srgb),
            _pad: 0,
        };
        ctx.queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&params));
        if self.bound.as_ref().is_none_or(|(t, _)| t != grid) {
            let view = grid
                .create_view(&wgpu::TextureViewDescriptor { label: Some("present grid view"), ..Default::default() });
            let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("present bind group"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: self.params.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&view) },
                ],
            });
            self.bound = Some((grid.clone(), bg));
        }
        let Some((_, bg)) = &self.bound else { return };
        let mut pass = render_pass(enc, target, "present", wgpu::LoadOp::Clear(LETTERBOX));
        if dst.w >= 1.0 && dst.h >= 1.0 {
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, bg, &[]);
            pass.draw(0..6, 0..1);
        }
    }
}

/// A render pass into `target` that loads (or clears) its colour and stores the result.
pub fn render_pass<'e>(
    enc: &'e mut wgpu::CommandEncoder,
    target: &wgpu::TextureView,
    label: &str,
    load: wgpu::LoadOp<wgpu::Color>,
) -> wgpu::RenderPass<'e> {
    enc.begin_render_pass(&wgpu::RenderPassDescriptor {
        label: Some(label),
        color_attachments: &[Some(wgpu::RenderPassColorAttachment {
            view: target,
            depth_slice: None,
            resolve_target: None,
            ops: wgpu::Operations { load, store: wgpu::StoreOp::Store },
        })],
        depth_stencil_attachment: None,
        timestamp_writes: None,
        occlusion_query_set: None,
        multiview_mask: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_aspect_and_centres() {
        let r = fit(200.0, 100.0, Rect { x: 0.0, y: 10.0, w: 100.0, h: 100.0 });
        assert_eq!(r, Rect { x: 0.0, y: 35.0, w: 100.0, h: 50.0 });
        let r = fit(10.0, 40.0, Rect { x: 0.0, y: 0.0, w: 100.0, h: 100.0 });
        assert_eq!(r, Rect { x: 37.5, y: 0.0, w: 25.0, h: 100.0 });
        assert_eq!(fit(10.0, 10.0, Rect { x: 0.0, y: 0.0, w: 0.0, h: 0.0 }).w, 0.0);
    }
}

//! The window's graphics, in the wgpu examples' shape: `init` (window, surface on the
//! compute device, present pass, egui), `resize`, and `render` (the grid, then the HUD).
//! Surface loss is retried a bounded number of times, then reported.

use super::hud::{self, HudInfo};
use crate::gpu::{GpuContext, choose_adapter};
use crate::ops::present::{LETTERBOX, Presenter, Rect, render_pass};
use crate::visual::Visualizer;
use anyhow::{Result, anyhow};
use std::sync::Arc;
use winit::event_loop::ActiveEventLoop;
use winit::window::Window;

/// Height of the HUD's top and bottom panels in points.
pub const HUD_TOP: f32 = 84.0;
pub const HUD_BOTTOM: f32 = 26.0;
/// Consecutive lost/outdated surfaces tolerated before the window reports the loss.
const MAX_SURFACE_RETRIES: u32 = 5;

/// The window, its surface and the GPU objects that draw into it.
pub struct Gfx {
    pub window: Arc<Window>,
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    pub ctx: Arc<GpuContext>,
    presenter: Presenter,
    /// Recolouring (the colormap pass) runs here, on the UI thread: it only encodes.
    pub visualizer: Visualizer,
    pub egui_ctx: egui::Context,
    egui_state: egui_winit::State,
    egui_renderer: egui_wgpu::Renderer,
    surface_failures: u32,
}

/// What one frame shows: a display image and where it goes (pixels; drawn 1:1 when the
/// image has that size, scaled when it is a stand-in), and the HUD.
pub struct Scene<'a> {
    pub shown: Option<(&'a wgpu::Texture, Rect)>,
    pub hud: HudInfo<'a>,
}

/// What a frame did.
pub enum Drawn {
    /// Presented; the grid was drawn at this rectangle (in points).
    Presented { grid_rect: Rect, repaint: bool, jump: Option<usize> },
    /// Nothing to draw into (minimised, or the surface is busy).
    Skipped,
    /// The surface keeps failing; the message says what to do.
    Failed(String),
}

impl Gfx {
    /// Opens the window, picks an adapter that can draw into it and builds the present
    /// pass and egui on that adapter's device.
    pub fn init(event_loop: &ActiveEventLoop, title: &str) -> Result<Gfx> {
        let window = Arc::new(
            event_loop
                .create_window(
                    Window::default_attributes()
                        .with_title(title)
                        .with_inner_size(winit::dpi::LogicalSize::new(1200.0, 800.0)),
                )
                .map_err(|e| anyhow!("cannot open a window: {e}"))?,
        );
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_with_display_handle_from_env(Box::new(
            event_loop.owned_display_handle(),
        )));
        let surface =
            instance.create_surface(window.clone()).map_err(|e| anyhow!("cannot draw into the window: {e}"))?;
        let adapter = pollster::block_on(choose_adapter(&instance, Some(&surface), false))?;
        let ctx = Arc::new(GpuContext::from_adapter(instance, adapter)?);
        log::info!("viewer adapter: {}", ctx.describe());
        let size = window.inner_size();
        let caps = surface.get_capabilities(&ctx.adapter);
        // Grid colours are already sRGB-encoded bytes: prefer a plain (non-sRGB) target.
        let format = caps
            .formats
            .iter()
            .copied()
            .find(|f| !f.is_srgb())
            .or_else(|| caps.formats.first().copied())
            .ok_or_else(|| anyhow!("the window surface supports no format on {}", ctx.info.name))?;
        // Display images are copied into the frame where the surface allows (a copy, not a
        // fragment shader per pixel: on a CPU adapter that is most of a frame's time).
        let copy = caps.usages.contains(wgpu::TextureUsages::COPY_DST);
        let usage = wgpu::TextureUsages::RENDER_ATTACHMENT
            | if copy { wgpu::TextureUsages::COPY_DST } else { wgpu::TextureUsages::empty() };
        let config = wgpu::SurfaceConfiguration {
            usage,
            format,
            width: size.width,
            height: size.height,
            present_mode: present_mode(&caps.present_modes),
            // A key's frame is the next one shown, not one queued behind others.
            desired_maximum_frame_latency: 1,
            alpha_mode: caps.alpha_modes.first().copied().unwrap_or(wgpu::CompositeAlphaMode::Auto),
            view_formats: vec![],
            color_space: wgpu::SurfaceColorSpace::Auto,
        };
        if size.width > 0 && size.height > 0 {
            surface.configure(&ctx.device, &config);
        }
        let presenter = Presenter::new(&ctx, format);
        let visualizer = Visualizer::new(&ctx);
        let egui_ctx = egui::Context::default();
        let egui_state = egui_winit::State::new(
            egui_ctx.clone(),
            egui::ViewportId::ROOT,
            &window,
            Some(window.scale_factor() as f32),
            None,
            Some(ctx.limits().max_texture_dimension_2d as usize),
        );
        // No dithering: the HUD is flat colours, and on a CPU adapter the noise costs ~2 ms
        // a frame.
        let options = egui_wgpu::RendererOptions { dithering: false, ..Default::default() };
        let egui_renderer = egui_wgpu::Renderer::new(&ctx.device, format, options);
        Ok(Gfx {
            window,
            surface,
            config,
            ctx,
            presenter,
            visualizer,
            egui_ctx,
            egui_state,
            egui_renderer,
            surface_failures: 0,
        })
    }

    /// Passes a window event to egui; true when egui wants a repaint.
    pub fn on_event(&mut self, event: &winit::event::WindowEvent) -> bool {
        self.egui_state.on_window_event(&self.window, event).repaint
    }

    pub fn resize(&mut self, size: winit::dpi::PhysicalSize<u32>) {
        self.config.width = size.width;
        self.config.height = size.height;
        if size.width > 0 && size.height > 0 {
            self.surface.configure(&self.ctx.device, &self.config);
            self.surface_failures = 0;
            self.window.request_redraw();
        }
    }

    /// The area pages are drawn in, in pixels: between the HUD's top and bottom panels,
    /// right of `left` points (the node panel).
    pub fn grid_area(&self, left: f32) -> Rect {
        let ppp = self.scale();
        let (w, h) = (self.config.width as f32, self.config.height as f32);
        Rect {
            x: left * ppp,
            y: HUD_TOP * ppp,
            w: (w - left * ppp).max(0.0),
            h: (h - (HUD_TOP + HUD_BOTTOM) * ppp).max(0.0),
        }
    }

    /// The surface's texture format: display images are made in it, so a frame copies them.
    pub fn format(&self) -> wgpu::TextureFormat {
        self.config.format
    }

    /// Points per pixel of the window.
    pub fn scale(&self) -> f32 {
        self.window.scale_factor() as f32
    }

    /// Draws one frame: `scene`'s texture fitted into the area between the HUD panels, then
    /// the HUD.
    pub fn render(&mut self, scene: Scene<'_>) -> Drawn {
        if self.config.width == 0 || self.config.height == 0 {
            return Drawn::Skipped; // minimised
        }
        let frame = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(f) | wgpu::CurrentSurfaceTexture::Suboptimal(f) => f,
            wgpu::CurrentSurfaceTexture::Timeout | wgpu::CurrentSurfaceTexture::Occluded => return Drawn::Skipped,
            wgpu::CurrentSurfaceTexture::Outdated | wgpu::CurrentSurfaceTexture::Lost => {
                self.surface_failures += 1;
                if self.surface_failures > MAX_SURFACE_RETRIES {
                    return Drawn::Failed(format!(
                        "the window's drawing surface was lost {} times in a row; restart convscope",
                        self.surface_failures
                    ));
                }
                self.surface.configure(&self.ctx.device, &self.config);
                self.window.request_redraw();
                return Drawn::Skipped;
            }
            wgpu::CurrentSurfaceTexture::Validation => {
                log::error!("surface validation error; skipping frame");
                return Drawn::Skipped;
            }
        };
        self.surface_failures = 0;
        let view = frame.texture.create_view(&wgpu::TextureViewDescriptor {
            label: Some("surface view"),
            format: Some(self.config.format),
            ..Default::default()
        });
        let size = (self.config.width, self.config.height);
        let ppp = self.scale();
        let ctx = self.ctx.clone();
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("frame") });
        let mut grid_rect = Rect { x: 0.0, y: 0.0, w: 0.0, h: 0.0 };
        match scene.shown {
            Some((tex, dst)) => {
                grid_rect = Rect { x: dst.x / ppp, y: dst.y / ppp, w: dst.w / ppp, h: dst.h / ppp };
                let (x, y) = (dst.x.max(0.0) as u32, dst.y.max(0.0) as u32);
                let fits = x + tex.width() <= size.0 && y + tex.height() <= size.1;
                let one_to_one = (tex.width(), tex.height()) == (dst.w as u32, dst.h as u32);
                if self.config.usage.contains(wgpu::TextureUsages::COPY_DST)
                    && tex.format() == self.config.format
                    && one_to_one
                    && fits
                {
                    render_pass(&mut enc, &view, "clear", wgpu::LoadOp::Clear(LETTERBOX));
                    enc.copy_texture_to_texture(
                        tex.as_image_copy(),
                        wgpu::TexelCopyTextureInfo {
                            texture: &frame.texture,
                            mip_level: 0,
                            origin: wgpu::Origin3d { x, y, z: 0 },
                            aspect: wgpu::TextureAspect::All,
                        },
                        tex.size(),
                    );
                } else {
                    let src = Rect { x: 0.0, y: 0.0, w: tex.width() as f32, h: tex.height() as f32 };
                    self.presenter.draw(&ctx, &mut enc, &view, size, tex, src, dst);
                }
            }
            None => {
                render_pass(&mut enc, &view, "clear", wgpu::LoadOp::Clear(LETTERBOX));
            }
        }
        let (repaint, jump) = self.draw_hud(&mut enc, &view, size, &scene.hud);
        ctx.queue.submit([enc.finish()]);
        self.window.pre_present_notify();
        ctx.queue.present(frame);
        Drawn::Presented { grid_rect, repaint, jump }
    }

    /// Runs egui and records its pass; whether egui asks to be repainted at once, and the
    /// page clicked in the node panel.
    fn draw_hud(
        &mut self,
        enc: &mut wgpu::CommandEncoder,
        view: &wgpu::TextureView,
        size: (u32, u32),
        info: &HudInfo<'_>,
    ) -> (bool, Option<usize>) {
        let raw = self.egui_state.take_egui_input(&self.window);
        let mut jump = None;
        let full = self.egui_ctx.run_ui(raw, |ui| jump = hud::draw(ui, info));
        self.egui_state.handle_platform_output(&self.window, full.platform_output);
        let jobs = self.egui_ctx.tessellate(full.shapes, full.pixels_per_point);
        let sd =
            egui_wgpu::ScreenDescriptor { size_in_pixels: [size.0, size.1], pixels_per_point: full.pixels_per_point };
        let mut textures = full.textures_delta;
        for (id, deltas) in textures.set.drain() {
            for delta in deltas {
                self.egui_renderer.update_texture(&self.ctx.device, &self.ctx.queue, id, &delta);
            }
        }
        let to_free: Vec<egui::TextureId> = textures.free.drain().collect();
        textures.clear();
        let extra = self.egui_renderer.update_buffers(&self.ctx.device, &self.ctx.queue, enc, &jobs, &sd);
        if !extra.is_empty() {
            self.ctx.queue.submit(extra);
        }
        {
            let pass = render_pass(enc, view, "hud", wgpu::LoadOp::Load);
            let mut pass = pass.forget_lifetime();
            self.egui_renderer.render(&mut pass, &jobs, &sd);
        }
        for id in &to_free {
            self.egui_renderer.free_texture(id);
        }
        (full.viewport_output.get(&egui::ViewportId::ROOT).is_some_and(|v| v.repaint_delay.is_zero()), jump)
    }
}

/// Mailbox where the surface offers it (a new frame replaces a queued one, no tearing),
/// else Immediate, else FIFO (always there).
pub fn present_mode(modes: &[wgpu::PresentMode]) -> wgpu::PresentMode {
    [wgpu::PresentMode::Mailbox, wgpu::PresentMode::Immediate]
        .into_iter()
        .find(|m| modes.contains(m))
        .unwrap_or(wgpu::PresentMode::Fifo)
}

#[cfg(test)]
mod tests {
    use super::present_mode;
    use wgpu::PresentMode::*;

    #[test]
    fn mailbox_then_immediate_then_fifo() {
        assert_eq!(present_mode(&[Fifo, Immediate, Mailbox]), Mailbox);
        assert_eq!(present_mode(&[Fifo, Immediate]), Immediate);
        assert_eq!(present_mode(&[Fifo, FifoRelaxed]), Fifo);
        assert_eq!(present_mode(&[]), Fifo);
    }
}

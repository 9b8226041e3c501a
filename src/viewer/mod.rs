//! The interactive viewer: a winit window with a wgpu surface on the same device that
//! computed the layers. Each layer's grid stays on the GPU as a texture; flipping layers
//! only changes which texture the present pass draws. An egui HUD names the layer and
//! shows its statistics. Every state change prints one line to stdout.

pub mod hud;
pub mod present;
pub mod state;

use crate::app::CommonArgs;
use crate::conv::{Activations, Block, Engine};
use crate::gpu::{GpuContext, choose_adapter};
use crate::input::{self, ChannelOrder};
use crate::network::Network;
use crate::tensor::Tensor;
use crate::visual::{GridTexture, Look, Visualizer, read_texture};
use anyhow::{Context as _, Result, anyhow};
use present::{Presenter, Rect, fit};
use state::{Action, Key, ViewState};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use winit::application::ApplicationHandler;
use winit::event::{ElementState, MouseButton, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop, EventLoopProxy};
use winit::keyboard::{Key as WKey, NamedKey};
use winit::window::{Window, WindowId};

/// Prints one line of the scriptable log and flushes it.
pub fn log_line(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

/// Everything computed for one image and seed.
pub struct Loaded {
    pub name: String,
    pub input: Tensor,
    pub net: Network,
    pub acts: Activations,
    pub grids: Vec<GridTexture>,
    /// The look each grid texture was last drawn with.
    pub drawn: Vec<Look>,
    pub stats: Vec<Vec<[f32; 2]>>,
    /// Whole-layer min, max, mean, std and fraction of zeros.
    pub layer_stats: Vec<crate::conv::LayerStats>,
    /// Kernel images of conv pages, made on first use of K.
    pub kernel_tex: Vec<Option<wgpu::Texture>>,
    pub order: ChannelOrder,
}

/// Work sent back from the compute thread.
pub enum UserEvent {
    Computed(Box<Result<Loaded>>, Job),
    Progress(String),
}

/// What a background computation was for.
#[derive(Clone, Debug)]
pub enum Job {
    Initial,
    Reroll(i64),
    Load(PathBuf),
}

/// Loads the input, runs the chain, reads the statistics and draws every grid.
fn compute(
    ctx: &GpuContext,
    image: Option<PathBuf>,
    seed: i64,
    args: &CommonArgs,
    progress: &dyn Fn(String),
) -> Result<Loaded> {
    let (input, name) = args.load_input_from(image.as_deref())?;
    let net = args.network_with_seed(seed)?;
    net.shapes(input.shape)?;
    progress(format!("running {} layers on the GPU…", net.layers.len()));
    let mut engine = Engine::new(ctx);
    let gnet = engine.upload(ctx, &net, Block::for_adapter(&ctx.info))?;
    let acts = engine.run_with_progress(ctx, &gnet, &input, args.kernel.into(), &|done, total| {
        progress(format!("running layers in bands… {done}/{total} done"))
    })?;
    progress("drawing grids…".to_string());
    let vis = Visualizer::new(ctx);
    let rgb = args.order().rgb_indices();
    let mut grids = Vec::new();
    let mut stats = Vec::new();
    let mut layer_stats = Vec::new();
    for i in 0..acts.shapes.len() {
        grids.push(vis.render(ctx, &acts, i, Look::default(), rgb)?);
        stats.push(acts.read_stats(ctx, i)?);
        layer_stats.push(acts.read_layer_stats(ctx, i)?);
    }
    ctx.wait()?;
    let drawn = vec![Look::default(); grids.len()];
    let kernel_tex = vec![None; grids.len()];
    Ok(Loaded { name, input, net, acts, grids, drawn, stats, layer_stats, kernel_tex, order: args.order() })
}

/// The window, its surface and the GPU objects that draw into it.
struct Gfx {
    window: Arc<Window>,
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    ctx: Arc<GpuContext>,
    presenter: Presenter,
    visualizer: Visualizer,
    egui_ctx: egui::Context,
    egui_state: egui_winit::State,
    egui_renderer: egui_wgpu::Renderer,
}

/// Hover information: which tile and pixel, and its exact value once read.
#[derive(Clone, Debug, PartialEq)]
pub struct Hover {
    pub tile: usize,
    pub channel: Option<usize>,
    pub y: usize,
    pub x: usize,
    pub value: Option<f32>,
}

/// ((page, channel), bins, lo, hi) of a channel's histogram.
type ChannelHistogram = ((usize, usize), [u32; 64], f32, f32);

struct App {
    args: CommonArgs,
    proxy: EventLoopProxy<UserEvent>,
    gfx: Option<Gfx>,
    loaded: Option<Loaded>,
    state: ViewState,
    status: String,
    error: Option<String>,
    busy: bool,
    hover: Option<Hover>,
    /// Histogram of the hovered or zoomed channel.
    hist: Option<ChannelHistogram>,
    cursor: Option<(f32, f32)>,
    grid_rect: Rect,
    launched: Instant,
    first_frame_logged: bool,
    key_at: Option<Instant>,
    result: Result<()>,
}

const HUD_TOP: f32 = 84.0;
const HUD_BOTTOM: f32 = 26.0;

impl App {
    fn spawn(&mut self, job: Job, image: Option<PathBuf>, seed: i64) {
        let Some(gfx) = &self.gfx else { return };
        self.busy = true;
        let ctx = gfx.ctx.clone();
        let proxy = self.proxy.clone();
        let args = self.args.clone();
        let window = gfx.window.clone();
        std::thread::spawn(move || {
            let p2 = proxy.clone();
            let w2 = window.clone();
            let progress = move |s: String| {
                let _ = p2.send_event(UserEvent::Progress(s));
                w2.request_redraw();
            };
            let r = compute(&ctx, image, seed, &args, &progress);
            let _ = proxy.send_event(UserEvent::Computed(Box::new(r), job));
            window.request_redraw();
        });
        self.status = "computing…".into();
    }

    fn page_name(&self) -> String {
        match &self.loaded {
            Some(l) => l.acts.names[self.state.layer].clone(),
            None => "input".into(),
        }
    }

    fn log_layer(&self) {
        if let Some(l) = &self.loaded {
            let i = self.state.layer;
            log_line(&format!("layer {} ({})", l.acts.names[i], l.acts.shapes[i]));
        }
    }

    /// The current page's source rectangle in grid texels (one tile when zoomed).
    fn src_rect(&self) -> Option<Rect> {
        let l = self.loaded.as_ref()?;
        let g = &l.grids[self.state.layer].layout;
        Some(match self.state.zoom {
            Some(t) => {
                let (x, y) = g.tile_origin(t);
                Rect { x: x as f32, y: y as f32, w: g.tile_w as f32, h: g.tile_h as f32 }
            }
            None => Rect { x: 0.0, y: 0.0, w: g.width as f32, h: g.height as f32 },
        })
    }

    fn handle(&mut self, actions: Vec<Action>, event_loop: &ActiveEventLoop) {
        for a in actions {
            match a {
                Action::ShowLayer => {
                    self.hover = None;
                    self.log_layer();
                    if self.state.kernels
                        && let Err(e) = self.ensure_kernels()
                    {
                        self.show_error(format!("{e:#}"));
                    }
                }
                Action::Recolour => {
                    log_line(&format!("look {} {}", self.state.norm.name(), self.state.cmap.name()));
                }
                Action::ToggleHelp => log_line(&format!("help {}", if self.state.help { "on" } else { "off" })),
                Action::ToggleKernels => {
                    self.hover = None;
                    if self.state.kernels {
                        match self.ensure_kernels() {
                            Ok(true) => log_line(&format!("kernels {}", self.page_name())),
                            Ok(false) => log_line(&format!("kernels on ({} is not a conv layer)", self.page_name())),
                            Err(e) => self.show_error(format!("{e:#}")),
                        }
                    } else {
                        log_line(&format!("kernels off {}", self.page_name()));
                    }
                }
                Action::Zoom(z) => match z {
                    Some(t) => {
                        let ch = self.channel_of(t);
                        log_line(&format!(
                            "zoom {} {}",
                            self.page_name(),
                            ch.map_or("colour image".to_string(), |c| format!("channel {c}"))
                        ))
                    }
                    None => log_line(&format!("zoom off {}", self.page_name())),
                },
                Action::Save => {
                    if let Err(e) = self.save() {
                        self.show_error(format!("{e:#}"));
                    }
                }
                Action::Reroll(seed) => {
                    if self.busy {
                        continue;
                    }
                    let image = self.loaded_image();
                    self.spawn(Job::Reroll(seed), image, seed);
                }
                Action::Quit => {
                    log_line("quit");
                    event_loop.exit();
                }
            }
        }
        self.ensure_look();
        if let Some(g) = &self.gfx {
            g.window.request_redraw();
        }
    }

    /// The conv layer shown on the current page, if it is one.
    fn page_conv(&self) -> Option<&crate::network::Conv2d> {
        let l = self.loaded.as_ref()?;
        let i = self.state.layer.checked_sub(1)?;
        match &l.net.layers[i].op {
            crate::network::Op::Conv(c) => Some(c),
            _ => None,
        }
    }

    /// Makes the current conv page's kernel texture; false when the page is not a conv.
    fn ensure_kernels(&mut self) -> Result<bool> {
        let Some(c) = self.page_conv().cloned() else { return Ok(false) };
        let (Some(gfx), Some(l)) = (&self.gfx, &mut self.loaded) else { return Ok(false) };
        let i = self.state.layer;
        if l.kernel_tex[i].is_none() {
            // The first layer reads the image: its filters also show as colour patches.
            let rgb = (i == 1 && c.cin == 3).then(|| l.order.rgb_indices());
            let img = crate::kernels::render(&c, rgb);
            let max = gfx.ctx.limits().max_texture_dimension_2d;
            if img.width() > max || img.height() > max {
                anyhow::bail!(
                    "{} has too many kernels to draw ({}x{} pixels)",
                    l.acts.names[i],
                    img.width(),
                    img.height()
                );
            }
            let size = wgpu::Extent3d { width: img.width(), height: img.height(), depth_or_array_layers: 1 };
            let tex = gfx.ctx.device.create_texture(&wgpu::TextureDescriptor {
                label: Some(&format!("{} kernels", l.acts.names[i])),
                size,
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: crate::visual::GRID_FORMAT,
                usage: wgpu::TextureUsages::TEXTURE_BINDING
                    | wgpu::TextureUsages::COPY_DST
                    | wgpu::TextureUsages::COPY_SRC,
                view_formats: &[],
            });
            gfx.ctx.queue.write_texture(
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
            l.kernel_tex[i] = Some(tex);
        }
        Ok(true)
    }

    /// The kernel texture when the kernels view is on and the page is a conv layer.
    fn kernels_shown(&self) -> Option<&wgpu::Texture> {
        if !self.state.kernels {
            return None;
        }
        self.loaded.as_ref()?.kernel_tex.get(self.state.layer)?.as_ref()
    }

    /// Keeps the histogram of the zoomed or hovered channel up to date (one read-back per
    /// channel change).
    fn update_histogram(&mut self) {
        let channel = self.state.zoom.and_then(|t| self.channel_of(t)).or(self.hover.as_ref().and_then(|h| h.channel));
        let (Some(c), Some(l), Some(gfx)) = (channel, &self.loaded, &self.gfx) else { return };
        let key = (self.state.layer, c);
        if self.hist.as_ref().is_some_and(|h| h.0 == key) {
            return;
        }
        let [lo, hi] = l.stats[key.0][c];
        if let Ok(values) = l.acts.read_channel(&gfx.ctx, key.0, c) {
            self.hist = Some((key, crate::conv::histogram(&values, lo, hi), lo, hi));
        }
    }

    fn loaded_image(&self) -> Option<PathBuf> {
        self.loaded.as_ref().and_then(|l| (l.name != "built-in scene").then(|| PathBuf::from(&l.name)))
    }

    /// The channel a tile shows on the current page (None for the colour tile).
    fn channel_of(&self, tile: usize) -> Option<usize> {
        let l = self.loaded.as_ref()?;
        let g = &l.grids[self.state.layer];
        match g.colour {
            Some(_) if tile == 0 => None,
            Some(_) => Some(tile - 1),
            None => Some(tile),
        }
    }

    /// Redraws the current grid if it was drawn with another look (colormap pass only).
    fn ensure_look(&mut self) {
        let look = Look { cmap: self.state.cmap, norm: self.state.norm };
        let (Some(gfx), Some(l)) = (&self.gfx, &mut self.loaded) else {
            return;
        };
        let i = self.state.layer;
        if l.drawn[i] != look {
            match gfx.visualizer.redraw(&gfx.ctx, &l.acts, i, &l.grids[i], look) {
                Ok(()) => l.drawn[i] = look,
                Err(e) => self.error = Some(format!("{e:#}")),
            }
        }
    }

    fn save(&self) -> Result<()> {
        let (Some(gfx), Some(l)) = (&self.gfx, &self.loaded) else {
            return Ok(());
        };
        let i = self.state.layer;
        if let Some(tex) = self.kernels_shown() {
            let file = format!("convscope-{}-kernels.png", l.acts.names[i]);
            read_texture(&gfx.ctx, tex)?
                .save_with_format(&file, image::ImageFormat::Png)
                .with_context(|| format!("cannot save {file} in the current directory"))?;
            log_line(&format!("saved {file}"));
            return Ok(());
        }
        let img = read_texture(&gfx.ctx, &l.grids[i].texture)?;
        let name = l.acts.names[i].clone();
        let (img, file) = match self.state.zoom {
            Some(t) => {
                let g = &l.grids[i].layout;
                let (x, y) = g.tile_origin(t);
                let crop =
                    image::imageops::crop_imm(&img, x as u32, y as u32, g.tile_w as u32, g.tile_h as u32).to_image();
                let which = self.channel_of(t).map_or("colour".to_string(), |c| format!("ch{c}"));
                (crop, format!("convscope-{name}-{which}.png"))
            }
            None => (img, format!("convscope-{name}.png")),
        };
        img.save_with_format(&file, image::ImageFormat::Png)
            .with_context(|| format!("cannot save {file} in the current directory"))?;
        log_line(&format!("saved {file}"));
        Ok(())
    }

    fn show_error(&mut self, e: String) {
        log_line(&format!("error: {e}"));
        self.error = Some(e);
    }

    /// Updates the hover from the cursor position; reads the value under it (once per
    /// new pixel, not every frame).
    fn update_hover(&mut self) {
        if self.kernels_shown().is_some() {
            self.hover = None;
            return;
        }
        let (Some((cx, cy)), Some(l), Some(src), Some(gfx)) = (self.cursor, &self.loaded, self.src_rect(), &self.gfx)
        else {
            self.hover = None;
            return;
        };
        let r = self.grid_rect;
        if !r.contains(cx, cy) || r.w <= 0.0 {
            self.hover = None;
            return;
        }
        let gx = (src.x + (cx - r.x) / r.w * src.w).floor().max(0.0) as usize;
        let gy = (src.y + (cy - r.y) / r.h * src.h).floor().max(0.0) as usize;
        let i = self.state.layer;
        let g = &l.grids[i];
        let Some((tile, y, x)) = g.layout.hit(gx, gy) else {
            self.hover = None;
            return;
        };
        let channel = match g.colour {
            Some(_) if tile == 0 => None,
            Some(_) => Some(tile - 1),
            None => Some(tile),
        };
        if let Some(h) = &self.hover
            && (h.tile, h.y, h.x) == (tile, y, x)
        {
            return;
        }
        let value = channel.and_then(|c| l.acts.read_value(&gfx.ctx, i, c, y, x).ok());
        self.hover = Some(Hover { tile, channel, y, x, value });
    }

    fn render(&mut self) {
        self.update_histogram();
        let kern = self.kernels_shown().cloned();
        let kern_max = self.page_conv().map(|c| c.weight.iter().fold(0.0f32, |m, w| m.max(w.abs())));
        let src = self.src_rect();
        let Some(gfx) = &mut self.gfx else { return };
        if gfx.config.width == 0 || gfx.config.height == 0 {
            return; // minimised
        }
        let frame = match gfx.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(f) | wgpu::CurrentSurfaceTexture::Suboptimal(f) => f,
            wgpu::CurrentSurfaceTexture::Timeout | wgpu::CurrentSurfaceTexture::Occluded => return,
            wgpu::CurrentSurfaceTexture::Outdated | wgpu::CurrentSurfaceTexture::Lost => {
                gfx.surface.configure(&gfx.ctx.device, &gfx.config);
                gfx.window.request_redraw();
                return;
            }
            wgpu::CurrentSurfaceTexture::Validation => {
                log::error!("surface validation error; skipping frame");
                return;
            }
        };
        let view = frame.texture.create_view(&wgpu::TextureViewDescriptor {
            label: Some("surface view"),
            format: Some(gfx.config.format),
            ..Default::default()
        });
        let size = (gfx.config.width, gfx.config.height);
        let ppp = gfx.window.scale_factor() as f32;
        let area = Rect {
            x: 0.0,
            y: HUD_TOP * ppp,
            w: size.0 as f32,
            h: (size.1 as f32 - (HUD_TOP + HUD_BOTTOM) * ppp).max(0.0),
        };
        let mut enc = gfx.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("frame") });

        let shown = match (&kern, &self.loaded, src) {
            (Some(k), _, _) => Some((k.clone(), Rect { x: 0.0, y: 0.0, w: k.width() as f32, h: k.height() as f32 })),
            (None, Some(l), Some(src)) => Some((l.grids[self.state.layer].texture.clone(), src)),
            _ => None,
        };
        match shown {
            Some((tex, src)) => {
                let dst = fit(src.w, src.h, area);
                // Whole pixels keep nearest-neighbour magnification crisp.
                let dst = Rect { x: dst.x.round(), y: dst.y.round(), w: dst.w.round(), h: dst.h.round() };
                self.grid_rect = Rect { x: dst.x / ppp, y: dst.y / ppp, w: dst.w / ppp, h: dst.h / ppp };
                gfx.presenter.draw(&gfx.ctx, &mut enc, &view, size, &tex, src, dst);
            }
            _ => {
                let _ = enc.begin_render_pass(&wgpu::RenderPassDescriptor {
                    label: Some("clear"),
                    color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                        view: &view,
                        depth_slice: None,
                        resolve_target: None,
                        ops: wgpu::Operations {
                            load: wgpu::LoadOp::Clear(present::LETTERBOX),
                            store: wgpu::StoreOp::Store,
                        },
                    })],
                    depth_stencil_attachment: None,
                    timestamp_writes: None,
                    occlusion_query_set: None,
                    multiview_mask: None,
                });
            }
        }

        // HUD.
        let raw = gfx.egui_state.take_egui_input(&gfx.window);
        let info = hud::HudInfo {
            loaded: self.loaded.as_ref(),
            state: &self.state,
            hover: self.hover.as_ref(),
            hist: self.hist.as_ref().filter(|h| h.0.0 == self.state.layer).map(|h| (h.0.1, &h.1, h.2, h.3)),
            kernels: kern.is_some(),
            kernel_abs_max: kern_max,
            status: &self.status,
            error: self.error.as_deref(),
            busy: self.busy,
            adapter: gfx.ctx.describe(),
            software: gfx.ctx.info.device_type == wgpu::DeviceType::Cpu,
        };
        let full = gfx.egui_ctx.run_ui(raw, |ui| hud::draw(ui, &info));
        gfx.egui_state.handle_platform_output(&gfx.window, full.platform_output);
        let jobs = gfx.egui_ctx.tessellate(full.shapes, full.pixels_per_point);
        let sd =
            egui_wgpu::ScreenDescriptor { size_in_pixels: [size.0, size.1], pixels_per_point: full.pixels_per_point };
        let mut textures = full.textures_delta;
        for (id, deltas) in textures.set.drain() {
            for delta in deltas {
                gfx.egui_renderer.update_texture(&gfx.ctx.device, &gfx.ctx.queue, id, &delta);
            }
        }
        let to_free: Vec<egui::TextureId> = textures.free.drain().collect();
        textures.clear();
        let extra = gfx.egui_renderer.update_buffers(&gfx.ctx.device, &gfx.ctx.queue, &mut enc, &jobs, &sd);
        {
            let pass = enc.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("hud"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations { load: wgpu::LoadOp::Load, store: wgpu::StoreOp::Store },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            let mut pass = pass.forget_lifetime();
            gfx.egui_renderer.render(&mut pass, &jobs, &sd);
        }
        for id in &to_free {
            gfx.egui_renderer.free_texture(id);
        }
        gfx.ctx.queue.submit(extra.into_iter().chain([enc.finish()]));
        gfx.window.pre_present_notify();
        gfx.ctx.queue.present(frame);

        if self.loaded.is_some() && !self.first_frame_logged {
            self.first_frame_logged = true;
            log::info!("first grid on screen {:.0} ms after launch", self.launched.elapsed().as_secs_f64() * 1e3);
        }
        if let Some(t) = self.key_at.take() {
            log::info!("frame presented {:.1} ms after key press", t.elapsed().as_secs_f64() * 1e3);
        }
        if let Some(d) = full.viewport_output.get(&egui::ViewportId::ROOT).map(|v| v.repaint_delay)
            && d.is_zero()
        {
            gfx.window.request_redraw();
        }
    }

    fn init_gfx(&mut self, event_loop: &ActiveEventLoop) -> Result<()> {
        let title = format!(
            "convscope — {}",
            self.args.image.as_ref().map_or("built-in scene".to_string(), |p| p.display().to_string())
        );
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
        let config = wgpu::SurfaceConfiguration {
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
            format,
            width: size.width,
            height: size.height,
            present_mode: wgpu::PresentMode::AutoVsync,
            desired_maximum_frame_latency: 2,
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
        let egui_renderer = egui_wgpu::Renderer::new(&ctx.device, format, egui_wgpu::RendererOptions::default());
        self.gfx =
            Some(Gfx { window, surface, config, ctx, presenter, visualizer, egui_ctx, egui_state, egui_renderer });
        Ok(())
    }
}

fn map_key(key: &WKey) -> Option<Key> {
    Some(match key {
        WKey::Named(NamedKey::ArrowRight | NamedKey::ArrowDown) => Key::Next,
        WKey::Named(NamedKey::ArrowLeft | NamedKey::ArrowUp) => Key::Prev,
        WKey::Named(NamedKey::Home) => Key::First,
        WKey::Named(NamedKey::End) => Key::Last,
        WKey::Named(NamedKey::Escape) => Key::Escape,
        WKey::Character(c) => match c.to_lowercase().as_str() {
            "q" => Key::Quit,
            "h" => Key::Help,
            "n" => Key::Norm,
            "c" => Key::Colormap,
            "s" => Key::Save,
            "k" => Key::Kernels,
            "r" => Key::Reroll,
            d if d.len() == 1 && d.as_bytes()[0].is_ascii_digit() => Key::Digit(d.as_bytes()[0] - b'0'),
            _ => return None,
        },
        _ => return None,
    })
}

impl ApplicationHandler<UserEvent> for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.gfx.is_some() {
            return;
        }
        if let Err(e) = self.init_gfx(event_loop) {
            self.result = Err(e);
            event_loop.exit();
            return;
        }
        let image = self.args.image.clone();
        self.spawn(Job::Initial, image, self.args.seed);
    }

    fn user_event(&mut self, event_loop: &ActiveEventLoop, event: UserEvent) {
        match event {
            UserEvent::Progress(s) => self.status = s,
            UserEvent::Computed(r, job) => {
                self.busy = false;
                match *r {
                    Ok(l) => {
                        let pages = l.acts.shapes.len();
                        match &job {
                            Job::Initial => {}
                            Job::Reroll(seed) => log_line(&format!("seed {seed}")),
                            Job::Load(p) => log_line(&format!("loaded {}", p.display())),
                        }
                        if let (Job::Load(p), Some(g)) = (&job, &self.gfx) {
                            g.window.set_title(&format!("convscope — {}", p.display()));
                        }
                        self.status = format!("{} · {}", l.name, l.input.shape);
                        self.loaded = Some(l);
                        self.error = None;
                        if self.state.pages != pages || matches!(job, Job::Initial) {
                            let seed = self.state.seed;
                            self.state = ViewState::new(pages, seed);
                        }
                        self.state.zoom = None;
                        self.hover = None;
                        // A re-roll or new image keeps the look: redraw with it.
                        if let Some(l) = &mut self.loaded {
                            l.drawn.iter_mut().for_each(|d| *d = Look::default());
                        }
                        self.ensure_look();
                        self.log_layer();
                    }
                    Err(e) => {
                        let msg = format!("{e:#}");
                        if matches!(job, Job::Reroll(_)) {
                            self.state.seed -= 1;
                        }
                        self.status = "failed".into();
                        self.show_error(msg);
                        if matches!(job, Job::Initial) && self.loaded.is_none() {
                            // Nothing to show: keep the window up with the error, as for a bad drop.
                        }
                    }
                }
                let _ = event_loop;
            }
        }
        if let Some(g) = &self.gfx {
            g.window.request_redraw();
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        if let (Some(gfx), false) = (&mut self.gfx, matches!(event, WindowEvent::RedrawRequested)) {
            let resp = gfx.egui_state.on_window_event(&gfx.window, &event);
            if resp.repaint {
                gfx.window.request_redraw();
            }
        }
        match event {
            WindowEvent::CloseRequested => {
                log_line("quit");
                event_loop.exit();
            }
            WindowEvent::Resized(size) => {
                if let Some(gfx) = &mut self.gfx {
                    gfx.config.width = size.width;
                    gfx.config.height = size.height;
                    if size.width > 0 && size.height > 0 {
                        gfx.surface.configure(&gfx.ctx.device, &gfx.config);
                        gfx.window.request_redraw();
                    }
                }
            }
            WindowEvent::KeyboardInput { event, .. } if event.state == ElementState::Pressed => {
                if let Some(k) = map_key(&event.logical_key) {
                    if self.loaded.is_none() && !matches!(k, Key::Escape | Key::Quit | Key::Help) {
                        return;
                    }
                    self.key_at = Some(Instant::now());
                    let actions = self.state.key(k);
                    self.handle(actions, event_loop);
                }
            }
            WindowEvent::CursorMoved { position, .. } => {
                let ppp = self.gfx.as_ref().map_or(1.0, |g| g.window.scale_factor()) as f32;
                self.cursor = Some((position.x as f32 / ppp, position.y as f32 / ppp));
                let before = self.hover.clone();
                self.update_hover();
                if before != self.hover
                    && let Some(g) = &self.gfx
                {
                    g.window.request_redraw();
                }
            }
            WindowEvent::CursorLeft { .. } => {
                self.cursor = None;
                self.hover = None;
            }
            WindowEvent::MouseInput { state: ElementState::Pressed, button: MouseButton::Left, .. } => {
                let consumed = self.gfx.as_ref().is_some_and(|g| g.egui_ctx.egui_wants_pointer_input());
                if !consumed && self.loaded.is_some() {
                    self.update_hover();
                    let tile = self.hover.as_ref().map(|h| h.tile);
                    let actions = self.state.click(tile);
                    self.hover = None;
                    self.handle(actions, event_loop);
                }
            }
            WindowEvent::DroppedFile(path) => {
                if self.busy {
                    self.show_error("still computing; drop the file again when done".into());
                } else {
                    match input::load_rgb8(&path) {
                        Ok(_) => {
                            let seed = self.state.seed;
                            self.spawn(Job::Load(path.clone()), Some(path), seed);
                        }
                        Err(e) => self.show_error(format!("{e:#}")),
                    }
                }
            }
            WindowEvent::RedrawRequested => self.render(),
            _ => {}
        }
    }
}

/// Opens the viewer window and runs until it is closed.
pub fn run(args: &CommonArgs) -> Result<()> {
    let launched = Instant::now();
    // Refuse bad input before opening a window.
    let (input, _) = args.load_input()?;
    args.network()?.shapes(input.shape)?;
    let event_loop = EventLoop::<UserEvent>::with_user_event().build().map_err(|e| {
        anyhow!("cannot open a window ({e}); is a display available? use `convscope export` without one")
    })?;
    let mut app = App {
        args: args.clone(),
        proxy: event_loop.create_proxy(),
        gfx: None,
        loaded: None,
        state: ViewState::new(1, args.seed),
        status: "starting…".into(),
        error: None,
        busy: false,
        hover: None,
        hist: None,
        cursor: None,
        grid_rect: Rect { x: 0.0, y: 0.0, w: 0.0, h: 0.0 },
        launched,
        first_frame_logged: false,
        key_at: None,
        result: Ok(()),
    };
    event_loop.run_app(&mut app).map_err(|e| anyhow!("window event loop failed: {e}"))?;
    app.result
}

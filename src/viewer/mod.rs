//! The interactive viewer: a winit window that shows each page as soon as it is computed
//! and answers every key within a frame. The network runs on a compute device of its own
//! (the `jobs` worker); the window's device only copies display images (pages already drawn
//! at the size they are shown, `display`) and draws the HUD. The parts: event dispatch
//! (this module), graphics (`gfx`: init/resize/render), the worker (`jobs`), display images
//! (`display`), inspection (`inspect`: hover values and histograms read back
//! asynchronously), page actions (`view`), the key/state machine (`state`) and the egui HUD
//! (`hud`). Every state change prints one line to stdout.

pub mod display;
mod frame;
pub mod gfx;
pub mod hud;
pub mod inspect;
pub mod jobs;
pub mod pages;
pub mod state;
mod view;

use crate::ops::present::Rect;
use crate::source::Source;
use anyhow::{Result, anyhow};
use display::{DisplayCache, View};
use gfx::Gfx;
use inspect::Inspector;
use jobs::{Job, Loaded, PageState, Prefs, Request, ToWorker, UserEvent, Worker};
use state::{Action, Key, ViewState};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;
use winit::application::ApplicationHandler;
use winit::event::{ElementState, MouseButton, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop, EventLoopProxy};
use winit::keyboard::{Key as WKey, NamedKey};
use winit::window::WindowId;

/// Prints one line of the scriptable log and flushes it.
pub fn log_line(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

/// What the HUD says besides the pages: progress, the last error, whether a job runs.
#[derive(Default)]
struct Status {
    text: String,
    error: Option<String>,
    busy: bool,
}

/// Timings the benchmark script reads from the log.
struct Latency {
    launched: Instant,
    first_frame_logged: bool,
    key_at: Option<Instant>,
}

struct App {
    source: Source,
    proxy: EventLoopProxy<UserEvent>,
    gfx: Option<Gfx>,
    worker: Option<Worker>,
    loaded: Option<Loaded>,
    display: DisplayCache,
    /// What the worker was last told about the window (it makes display images for it).
    prefs: Option<Prefs>,
    /// Keys pressed before the first pages were known, replayed when they are.
    early_keys: Vec<Key>,
    state: ViewState,
    status: Status,
    inspect: Inspector,
    /// Cursor position and where the grid was drawn last frame, in points.
    cursor: Option<(f32, f32)>,
    grid_rect: Rect,
    latency: Latency,
    /// Actions from a click in the node panel, handled after the frame.
    pending_actions: Vec<Action>,
    result: Result<()>,
}

impl App {
    fn request(&mut self, job: Job, seed: i64) {
        let Some(w) = &self.worker else { return };
        self.status.busy = true;
        self.status.text = "computing…".into();
        let current = self.loaded.as_ref().map(|l| l.input.clone());
        w.send(ToWorker::Compute(Request { job, seed, current }));
    }

    fn redraw(&self) {
        if let Some(g) = &self.gfx {
            g.window.request_redraw();
        }
    }

    /// The page shown (index in `pages.all`); None on the predictions page.
    fn page(&self) -> Option<usize> {
        self.loaded.as_ref()?.page(self.state.layer, self.state.conv_only)
    }

    fn page_name(&self) -> String {
        match (&self.loaded, self.page()) {
            (Some(l), Some(p)) => l.pages.all[p].name.clone(),
            (Some(_), None) => "predictions".into(),
            (None, _) => "input".into(),
        }
    }

    fn log_layer(&self) {
        match (&self.loaded, self.page()) {
            (Some(l), Some(p)) => log_line(&format!("layer {} ({})", l.pages.all[p].name, l.acts.shapes[l.tensor(p)])),
            (Some(l), None) => {
                let top = l
                    .predictions
                    .as_ref()
                    .and_then(|p| p.first())
                    .map_or(String::new(), |p| format!(" (top {} {:.4})", p.label, p.prob));
                log_line(&format!("page predictions{top}"));
            }
            (None, _) => {}
        }
    }

    fn show_error(&mut self, e: String) {
        log_line(&format!("error: {e}"));
        self.status.error = Some(e);
    }

    /// The channel a tile shows on the current page (None for the colour tile).
    fn channel_of(&self, tile: usize) -> Option<usize> {
        let g = self.loaded.as_ref()?.ready(self.page()?)?;
        match g.colour {
            Some(_) if tile == 0 => None,
            Some(_) => Some(tile - 1),
            None => Some(tile),
        }
    }

    /// The current page's source rectangle in grid texels (one tile when zoomed).
    fn src_rect(&self) -> Option<Rect> {
        let g = &self.loaded.as_ref()?.ready(self.page()?)?.layout;
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
                    self.inspect.hover = None;
                    self.log_layer();
                    if self.state.kernels
                        && let Err(e) = self.kernels_view()
                    {
                        self.show_error(format!("{e:#}"));
                    }
                }
                Action::Recolour => {
                    log_line(&format!("look {} {}", self.state.norm.name(), self.state.cmap.name()));
                }
                Action::ToggleHelp => log_line(&format!("help {}", if self.state.help { "on" } else { "off" })),
                Action::ToggleKernels => {
                    self.inspect.hover = None;
                    if self.state.kernels {
                        match self.kernels_view() {
                            Ok(Some(View::Kernels(b))) => {
                                log_line(&format!("kernels {} ({b} columns)", self.page_name()))
                            }
                            Ok(_) => log_line(&format!("kernels on ({} is not a conv layer)", self.page_name())),
                            Err(e) => self.show_error(format!("{e:#}")),
                        }
                    } else {
                        log_line(&format!("kernels off {}", self.page_name()));
                    }
                }
                Action::Zoom(Some(t)) => {
                    let which = self.channel_of(t).map_or("colour image".to_string(), |c| format!("channel {c}"));
                    log_line(&format!("zoom {} {which}", self.page_name()));
                }
                Action::Zoom(None) => log_line(&format!("zoom off {}", self.page_name())),
                Action::GroupJump(forward) => {
                    if let Some(l) = &self.loaded {
                        let v = l.pages.group_jump(self.state.layer, forward, self.state.conv_only);
                        let more = self.state.goto(v);
                        self.handle(more, event_loop);
                    }
                }
                Action::ConvOnly => {
                    if let Some(l) = &self.loaded {
                        // The page shown before, found in the new view.
                        let before = l.page(self.state.layer, !self.state.conv_only);
                        self.state.pages = l.pages.count(self.state.conv_only);
                        self.state.layer = match before {
                            Some(p) => l.pages.position_of(p, self.state.conv_only),
                            None => self.state.pages - 1,
                        };
                        log_line(if self.state.conv_only { "view convolutions only" } else { "view all nodes" });
                        self.log_layer();
                    }
                }
                Action::TogglePanel => log_line(&format!("panel {}", if self.state.panel { "on" } else { "off" })),
                Action::Save => self.save(),
                // A re-roll while one runs replaces the waiting request: no seed is skipped
                // in the state, and the newest seed is what gets computed.
                Action::Reroll(seed) => {
                    if self.source.model.is_some() {
                        self.state.seed = seed.wrapping_sub(1);
                        self.show_error("R re-rolls seeded weights; a model's weights are its own".into());
                    } else {
                        self.request(Job::Reroll(seed), seed);
                    }
                }
                Action::Quit => {
                    log_line("quit");
                    event_loop.exit();
                }
            }
        }
        self.redraw();
    }

    /// Updates the hover from the cursor position (the value arrives asynchronously).
    fn update_hover(&mut self) -> bool {
        let (Some(w), Some(l), Some(page)) = (&self.worker, &self.loaded, self.page()) else { return false };
        let at = (|| {
            if self.state.kernels && self.page_conv().is_some() {
                return None;
            }
            let (cx, cy) = self.cursor?;
            let src = self.src_rect()?;
            let r = self.grid_rect;
            if !r.contains(cx, cy) || r.w <= 0.0 {
                return None;
            }
            let gx = (src.x + (cx - r.x) / r.w * src.w).floor().max(0.0) as usize;
            let gy = (src.y + (cy - r.y) / r.h * src.h).floor().max(0.0) as usize;
            let (tile, y, x) = l.ready(page)?.layout.hit(gx, gy)?;
            Some((tile, self.channel_of(tile), y, x))
        })();
        let ask = |k| w.send(ToWorker::Channel(k));
        self.inspect.hover_at(l, page, at, &ask)
    }

    /// A computation started: its pages replace the old ones (whose pictures stand in until
    /// the new ones arrive); keys pressed before the first pages are replayed.
    fn started(&mut self, l: Loaded, job: &Job, event_loop: &ActiveEventLoop) {
        self.status.text = format!("{} · {}", l.input.name, l.input.tensor.shape);
        let pages = l.pages.count(self.state.conv_only);
        let first = self.loaded.is_none();
        self.loaded = Some(l);
        if self.state.pages != pages || matches!(job, Job::Initial) {
            let (seed, conv_only, panel) = (self.state.seed, self.state.conv_only, self.state.panel);
            let (cmap, norm) = (self.state.cmap, self.state.norm);
            self.state = ViewState { conv_only, panel, cmap, norm, ..ViewState::new(pages, seed) };
        }
        self.state.zoom = None;
        self.inspect.reset();
        if let Some(l) = &self.loaded {
            self.inspect.keep_only(l.run_id);
        }
        if matches!(job, Job::Initial) {
            self.log_layer();
        }
        if first {
            for k in std::mem::take(&mut self.early_keys) {
                self.latency.key_at.get_or_insert_with(Instant::now);
                let actions = self.state.key(k);
                self.handle(actions, event_loop);
            }
        }
    }

    /// Page `page` of computation `run_id` is computed (or failed to draw).
    fn page_ready(&mut self, run_id: u64, page: usize, state: PageState) {
        let Some(l) = self.loaded.as_mut().filter(|l| l.run_id == run_id) else { return };
        if let PageState::Failed(e) = &state {
            let e = format!("{}: {e}", l.pages.all[page].name);
            self.show_error(e);
        }
        let Some(l) = self.loaded.as_mut() else { return };
        l.done.0 = l.done.0.max(l.tensor(page));
        log::info!(
            "page {} ready {:.0} ms after launch",
            l.pages.all[page].name,
            self.latency.launched.elapsed().as_secs_f64() * 1e3
        );
        if let Some(d) = l.data.get_mut(page) {
            *d = state;
        }
    }

    /// A computation ended: times and predictions, or the error (the pages shown stay).
    fn finished(&mut self, run_id: Option<u64>, job: Job, r: Result<jobs::Finish>) {
        self.status.busy = false;
        match r {
            Ok(f) => {
                if let Some(l) = self.loaded.as_mut().filter(|l| Some(l.run_id) == run_id) {
                    // Earlier computations' pictures stood in for pages still computing;
                    // every page now has its own.
                    self.display.drop_before(l.run_id);
                    l.acts.node_ms = f.node_ms;
                    l.acts.wall_ms = f.wall_ms;
                    l.predictions = f.predictions;
                    l.finished = true;
                    l.done.0 = l.done.1;
                }
                match &job {
                    Job::Initial => {}
                    Job::Reroll(seed) => log_line(&format!("seed {seed}")),
                    Job::Load(p) => {
                        log_line(&format!("loaded {}", p.display()));
                        if let Some(g) = &self.gfx {
                            g.window.set_title(&format!("convscope — {}", p.display()));
                        }
                    }
                }
                // A re-roll or new image says where it is; so does the predictions page, whose
                // ranking has just arrived.
                if !matches!(job, Job::Initial) || self.page().is_none() {
                    self.log_layer();
                }
                self.status.error = None;
            }
            Err(e) => {
                if let Job::Reroll(seed) = job
                    && self.state.seed == seed
                {
                    self.state.seed = seed.wrapping_sub(1);
                }
                self.status.text = "failed".into();
                self.show_error(format!("{e:#}"));
            }
        }
    }
}

fn map_key(key: &WKey) -> Option<Key> {
    Some(match key {
        WKey::Named(NamedKey::ArrowRight | NamedKey::ArrowDown) => Key::Next,
        WKey::Named(NamedKey::ArrowLeft | NamedKey::ArrowUp) => Key::Prev,
        WKey::Named(NamedKey::Home) => Key::First,
        WKey::Named(NamedKey::End) => Key::Last,
        WKey::Named(NamedKey::Escape) => Key::Escape,
        WKey::Named(NamedKey::PageDown) => Key::GroupNext,
        WKey::Named(NamedKey::PageUp) => Key::GroupPrev,
        WKey::Character(c) => match c.to_lowercase().as_str() {
            "q" => Key::Quit,
            "h" => Key::Help,
            "n" => Key::Norm,
            "c" => Key::Colormap,
            "s" => Key::Save,
            "k" => Key::Kernels,
            "r" => Key::Reroll,
            "f" => Key::ConvOnly,
            "p" => Key::Panel,
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
        let title = format!(
            "convscope — {}",
            self.source.image.as_ref().map_or("built-in scene".to_string(), |p| p.display().to_string())
        );
        let started = Gfx::init(event_loop, &title).and_then(|g| {
            let proxy = self.proxy.clone();
            let lost = proxy.clone();
            g.ctx.device.set_device_lost_callback(move |reason, msg| {
                let _ = lost.send_event(UserEvent::DeviceLost(format!("{reason:?}: {msg}")));
            });
            // The network computes on a device of its own: frames never wait behind it.
            let compute = Arc::new(g.ctx.another_device()?);
            let lost = proxy.clone();
            compute.device.set_device_lost_callback(move |reason, msg| {
                let _ = lost.send_event(UserEvent::DeviceLost(format!("{reason:?}: {msg}")));
            });
            // Most networks have more than one node: the node panel will show.
            let left = if self.state.panel { hud::PANEL_WIDTH } else { 0.0 };
            let prefs = Prefs { area: g.grid_area(left), look: Default::default(), page: 0 };
            let w = Worker::start(compute, self.source.clone(), prefs, g.format(), proxy)?;
            Ok((g, w))
        });
        match started {
            Ok((g, w)) => {
                self.gfx = Some(g);
                self.worker = Some(w);
                self.request(Job::Initial, self.source.seed);
            }
            Err(e) => {
                self.result = Err(e);
                event_loop.exit();
            }
        }
    }

    fn user_event(&mut self, event_loop: &ActiveEventLoop, event: UserEvent) {
        match event {
            UserEvent::Progress(s) => self.status.text = s,
            UserEvent::Started(l, job) => self.started(*l, &job, event_loop),
            UserEvent::PageReady { run_id, page, state } => self.page_ready(run_id, page, state),
            UserEvent::Display { key, rgba } => {
                if let Some(g) = &self.gfx {
                    let current = self.page().unwrap_or(0);
                    self.display.insert(&g.ctx.device, &g.ctx.queue, g.format(), key, &rgba, current);
                }
            }
            UserEvent::Finished { run_id, job, result } => self.finished(run_id, job, result),
            UserEvent::Channel { key, data } => {
                if let Some(l) = &self.loaded {
                    self.inspect.on_channel(l, key, data);
                }
            }
            UserEvent::Saved(Ok(file)) => log_line(&format!("saved {file}")),
            UserEvent::Saved(Err(e)) => self.show_error(format!("{e:#}")),
            UserEvent::DeviceLost(why) => {
                log_line(&format!("error: the GPU device was lost ({why})"));
                self.result = Err(anyhow!("the GPU device was lost ({why}); restart convscope"));
                event_loop.exit();
            }
        }
        self.redraw();
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        if let (Some(gfx), false) = (&mut self.gfx, matches!(event, WindowEvent::RedrawRequested))
            && gfx.on_event(&event)
        {
            gfx.window.request_redraw();
        }
        match event {
            WindowEvent::CloseRequested => {
                log_line("quit");
                event_loop.exit();
            }
            WindowEvent::Resized(size) => {
                if let Some(gfx) = &mut self.gfx {
                    gfx.resize(size);
                }
            }
            // Synthetic presses are winit's report of keys already down when the window gains
            // focus: acting on them doubled a key pressed just as the window was focused.
            WindowEvent::KeyboardInput { event, is_synthetic: false, .. } if event.state == ElementState::Pressed => {
                if let Some(k) = map_key(&event.logical_key) {
                    // A held arrow keeps flipping; a held S, R, PageDown… acts once (a held
                    // S would write a file per repeat).
                    if event.repeat && !matches!(k, Key::Next | Key::Prev) {
                        return;
                    }
                    // Before the pages are known, keys wait (a moment) and are then replayed.
                    if self.loaded.is_none() && !matches!(k, Key::Escape | Key::Quit | Key::Help) {
                        self.early_keys.push(k);
                        return;
                    }
                    self.latency.key_at = Some(Instant::now());
                    let actions = self.state.key(k);
                    self.handle(actions, event_loop);
                }
            }
            WindowEvent::CursorMoved { position, .. } => {
                let ppp = self.gfx.as_ref().map_or(1.0, Gfx::scale);
                self.cursor = Some((position.x as f32 / ppp, position.y as f32 / ppp));
                if self.update_hover() {
                    self.redraw();
                }
            }
            WindowEvent::CursorLeft { .. } => {
                self.cursor = None;
                self.inspect.hover = None;
            }
            WindowEvent::MouseInput { state: ElementState::Pressed, button: MouseButton::Left, .. } => {
                let consumed = self.gfx.as_ref().is_some_and(|g| g.egui_ctx.egui_wants_pointer_input());
                if !consumed && self.loaded.is_some() {
                    self.update_hover();
                    let tile = self.inspect.hover.as_ref().map(|h| h.tile);
                    let actions = self.state.click(tile);
                    self.inspect.hover = None;
                    self.handle(actions, event_loop);
                }
            }
            // Decoded on the worker thread: a bad file comes back as an error, the old
            // pages stay.
            WindowEvent::DroppedFile(path) => self.request(Job::Load(path), self.state.seed),
            WindowEvent::RedrawRequested => {
                let t = Instant::now();
                self.render();
                log::debug!("frame {:.1} ms on the UI thread", t.elapsed().as_secs_f64() * 1e3);
                let actions = std::mem::take(&mut self.pending_actions);
                if !actions.is_empty() {
                    self.handle(actions, event_loop);
                }
            }
            _ => {}
        }
    }
}

/// Opens the viewer window and runs until it is closed.
pub fn run(source: Source) -> Result<()> {
    let launched = Instant::now();
    // Refuse bad input before opening a window.
    if source.model.is_some() {
        crate::model::Prepared::new(&source)?;
    } else {
        let input = source.load_input()?;
        source.network()?.shapes(input.tensor.shape)?;
    }
    crate::env::EngineEnv::from_env()?;
    let event_loop = EventLoop::<UserEvent>::with_user_event().build().map_err(|e| {
        anyhow!("cannot open a window ({e}); is a display available? use `convscope export` without one")
    })?;
    let mut app = App {
        state: ViewState::new(1, source.seed),
        source,
        proxy: event_loop.create_proxy(),
        gfx: None,
        worker: None,
        loaded: None,
        display: DisplayCache::default(),
        prefs: None,
        early_keys: Vec::new(),
        status: Status { text: "starting…".into(), ..Default::default() },
        inspect: Inspector::default(),
        cursor: None,
        grid_rect: Rect { x: 0.0, y: 0.0, w: 0.0, h: 0.0 },
        latency: Latency { launched, first_frame_logged: false, key_at: None },
        pending_actions: Vec::new(),
        result: Ok(()),
    };
    let ran = event_loop.run_app(&mut app).map_err(|e| anyhow!("window event loop failed: {e}"));
    if let Some(w) = app.worker.take() {
        w.stop();
    }
    ran?;
    app.result
}

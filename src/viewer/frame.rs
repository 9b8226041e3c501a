//! One frame: the display image the current view needs (asked of the worker when missing,
//! an earlier picture standing in meanwhile), where it goes, the HUD, and the latency log.

use super::display::{self, DisplayKey, View};
use super::gfx::{Drawn, Scene};
use super::jobs::{Prefs, ToWorker};
use super::{App, hud, log_line};
use crate::ops::present::Rect;

impl App {
    pub(super) fn render(&mut self) {
        if let (Some(w), Some(l)) = (&self.worker, &self.loaded) {
            let channel = self.state.zoom.and_then(|t| self.channel_of(t)).or(self
                .inspect
                .hover
                .as_ref()
                .and_then(|h| h.channel));
            if let Some(page) = self.page().filter(|&p| l.ready(p).is_some()) {
                let ask = |k| w.send(ToWorker::Channel(k));
                self.inspect.want_histogram(l, page, channel, &ask);
            }
        }
        let page = self.page();
        let Some(area) = self.grid_area() else { return };
        self.send_prefs(area);
        // What to show: the display image made for this view and size, else a stand-in.
        let want = self.wanted(area);
        let mut is_page = false;
        let shown = want.and_then(|(key, placed)| {
            let exact = self.display.get(&key).cloned();
            is_page = exact.is_some();
            if exact.is_none() && !self.display.requested.contains(&key) {
                self.display.requested.insert(key);
                if let Some(w) = &self.worker {
                    w.send(ToWorker::Display(key));
                }
            }
            exact.or_else(|| self.display.stand_in(&key).cloned()).map(|t| (t, placed))
        });
        // A page not computed yet: an earlier computation's picture of it stands in.
        let shown = shown.or_else(|| self.pending_stand_in(area));
        let kernels = matches!(want, Some((DisplayKey { view: View::Kernels(_), .. }, _)));
        let kern_max = self.page_conv().map(|k| k.abs_max);
        let Some(gfx) = &mut self.gfx else { return };
        let hud = hud::HudInfo {
            loaded: self.loaded.as_ref(),
            state: &self.state,
            page,
            hover: self.inspect.hover.as_ref(),
            hist: self.inspect.hist.as_ref().filter(|h| Some(h.0.0) == page).map(|h| (h.0.1, &h.1, h.2, h.3)),
            kernels,
            kernel_abs_max: kern_max,
            status: &self.status.text,
            error: self.status.error.as_deref(),
            busy: self.status.busy,
            adapter: gfx.ctx.describe(),
            software: gfx.ctx.info.device_type == wgpu::DeviceType::Cpu,
        };
        let mut clicked = None;
        match gfx.render(Scene { shown: shown.as_ref().map(|(t, r)| (t, *r)), hud }) {
            Drawn::Presented { grid_rect, repaint, jump } => {
                self.grid_rect = grid_rect;
                clicked = jump;
                if repaint {
                    gfx.window.request_redraw();
                }
                if is_page && !self.latency.first_frame_logged {
                    self.latency.first_frame_logged = true;
                    log::info!(
                        "first grid on screen {:.0} ms after launch",
                        self.latency.launched.elapsed().as_secs_f64() * 1e3
                    );
                }
                if let Some(t) = self.latency.key_at.take() {
                    log::info!("frame presented {:.1} ms after key press", t.elapsed().as_secs_f64() * 1e3);
                }
            }
            Drawn::Skipped => {}
            Drawn::Failed(msg) => {
                if self.status.error.as_deref() != Some(msg.as_str()) {
                    self.show_error(msg);
                }
            }
        }
        // A click in the node panel jumps to that node's page.
        if let (Some(p), Some(l)) = (clicked, &self.loaded) {
            let v = l.pages.position_of(p, self.state.conv_only);
            let actions = self.state.goto(v);
            if !actions.is_empty() {
                log_line(&format!("panel {}", l.pages.all[p].name));
            }
            self.pending_actions = actions;
            self.redraw();
        }
    }

    /// For a page still computing: the previous computation's picture of it, if any.
    fn pending_stand_in(&self, area: Rect) -> Option<(wgpu::Texture, Rect)> {
        let l = self.loaded.as_ref()?;
        let page = self.page()?;
        let look = crate::visual::Look { cmap: self.state.cmap, norm: self.state.norm };
        let key = DisplayKey { run_id: l.run_id, page, look, view: View::Grid, size: (0, 0) };
        let t = self.display.stand_in(&key)?.clone();
        let placed = display::placed(t.width() as f32, t.height() as f32, area);
        Some((t, placed))
    }

    /// Tells the worker where and how pages are shown when that changed.
    fn send_prefs(&mut self, area: Rect) {
        let p = Prefs {
            area,
            look: crate::visual::Look { cmap: self.state.cmap, norm: self.state.norm },
            page: self.page().unwrap_or(0),
        };
        if self.prefs != Some(p)
            && let Some(w) = &self.worker
        {
            w.send(ToWorker::Prefs(p));
            self.prefs = Some(p);
        }
    }

    /// The display image the current view needs and where it goes (pixels).
    fn wanted(&self, area: Rect) -> Option<(DisplayKey, Rect)> {
        let l = self.loaded.as_ref()?;
        let page = self.page()?;
        let look = crate::visual::Look { cmap: self.state.cmap, norm: self.state.norm };
        let (view, w, h) = match (self.kernels_view_of(area), l.ready(page)) {
            (Some((blocks, w, h)), _) => (View::Kernels(blocks), w, h),
            (None, Some(d)) => match self.state.zoom {
                Some(t) => (View::Tile(t), d.layout.tile_w as f32, d.layout.tile_h as f32),
                None => (View::Grid, d.layout.width as f32, d.layout.height as f32),
            },
            (None, None) => return None,
        };
        let placed = display::placed(w, h, area);
        let size = display::size_in(w, h, area)?;
        Some((DisplayKey { run_id: l.run_id, page, look, view, size }, placed))
    }
}

//! The heads-up display drawn with egui: layer name and position, op, shape, grid layout,
//! value range, a colorbar for the current normalisation, GPU times, the adapter, hover
//! read-out, status and errors, and the help panel.

use super::gfx::{HUD_BOTTOM, HUD_TOP};
use super::inspect::Hover;
use super::jobs::Loaded;
use super::state::{HELP, ViewState};
use crate::grid::{self, Norm};
use egui::{Color32, RichText, Ui};

/// What the HUD shows this frame.
pub struct HudInfo<'a> {
    pub loaded: Option<&'a Loaded>,
    pub state: &'a ViewState,
    pub hover: Option<&'a Hover>,
    /// Histogram of the hovered or zoomed channel: (channel, bins, lo, hi).
    pub hist: Option<(usize, &'a [u32; 64], f32, f32)>,
    /// The kernels view is shown, with this max |weight| (the bwr colorbar spans ±it).
    pub kernels: bool,
    pub kernel_abs_max: Option<f32>,
    pub status: &'a str,
    pub error: Option<&'a str>,
    pub busy: bool,
    pub adapter: String,
    pub software: bool,
}

fn colorbar(ui: &mut Ui, info: &HudInfo<'_>, lo: f32, hi: f32, caption: &str) {
    colorbar_with(ui, info.state.cmap, lo, hi, caption);
}

fn colorbar_with(ui: &mut Ui, cmap: crate::grid::Colormap, lo: f32, hi: f32, caption: &str) {
    let lut = cmap.lut();
    let (rect, _) = ui.allocate_exact_size(egui::vec2(256.0, 12.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    for (i, c) in lut.iter().enumerate() {
        let x0 = rect.left() + i as f32 * rect.width() / 256.0;
        let r = egui::Rect::from_min_max(
            egui::pos2(x0, rect.top()),
            egui::pos2(x0 + rect.width() / 256.0 + 0.5, rect.bottom()),
        );
        painter.rect_filled(r, 0.0, Color32::from_rgb(c[0], c[1], c[2]));
    }
    ui.label(RichText::new(format!("{lo:.4} … {hi:.4} {caption}")).monospace());
}

/// A small bar chart of 64 bins.
fn histogram(ui: &mut Ui, bins: &[u32; 64]) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(128.0, 16.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::from_gray(40));
    let max = (*bins.iter().max().unwrap_or(&1)).max(1) as f32;
    for (i, &b) in bins.iter().enumerate() {
        let h = rect.height() * b as f32 / max;
        let x0 = rect.left() + i as f32 * 2.0;
        let r = egui::Rect::from_min_max(egui::pos2(x0, rect.bottom() - h), egui::pos2(x0 + 2.0, rect.bottom()));
        painter.rect_filled(r, 0.0, Color32::from_rgb(120, 190, 250));
    }
}

/// Draws the HUD into the root `ui`: the page panel on top, the status line at the
/// bottom, and the help window.
pub fn draw(ui: &mut Ui, info: &HudInfo<'_>) {
    top_panel(ui, info);
    bottom_panel(ui, info);
    if info.state.help {
        help_window(ui);
    }
}

/// The page: name, op, shape, grid, statistics, histogram, colorbar and time.
fn top_panel(ui: &mut Ui, info: &HudInfo<'_>) {
    let st = info.state;
    egui::Panel::top("hud-top").exact_size(HUD_TOP).show(ui, |ui| match info.loaded {
        Some(l) => {
            let i = st.layer;
            let (name, shape) = (&l.acts.names[i], l.acts.shapes[i]);
            let g = &l.grids[i].layout;
            let op = if i == 0 {
                format!(
                    "{} · {} channels {}",
                    l.input.name,
                    info_order(l),
                    if l.grids[0].colour.is_some() { "· colour image first" } else { "" }
                )
            } else {
                l.net.layers[i - 1].describe()
            };
            let (lo, hi) = grid::layer_range(&l.stats[i].channels);
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("{name} · {i}/{}", st.pages - 1)).strong().size(16.0));
                ui.label(RichText::new(op).monospace());
                ui.label(RichText::new(format!("{} × {} × {}", shape.c, shape.h, shape.w)).monospace());
                let scale = if g.step > 1 { format!(" (scale 1/{})", g.step) } else { String::new() };
                ui.label(format!("grid {}×{}{scale}", g.rows, g.cols));
                ui.label(RichText::new(format!("range [{lo:.4}, {hi:.4}]")).monospace());
            });
            let ls = &l.stats[i].layer;
            ui.horizontal(|ui| {
                let view = if info.kernels { "kernels (Cout × Cin, blue < 0 < red) · " } else { "" };
                ui.label(
                    RichText::new(format!(
                        "{view}min {:.4}  max {:.4}  mean {:.4}  std {:.4}  zeros {:.1}%",
                        ls.min,
                        ls.max,
                        ls.mean,
                        ls.std,
                        ls.zeros * 100.0
                    ))
                    .monospace(),
                );
                if let Some((c, bins, lo, hi)) = info.hist {
                    histogram(ui, bins);
                    ui.label(RichText::new(format!("channel {c}: {lo:.3} … {hi:.3}")).small());
                }
            });
            ui.horizontal(|ui| {
                ui.label(format!("{} · {}", st.norm.name(), st.cmap.name()));
                let zoom_ch = st.zoom.and_then(|t| channel_of(l, i, t));
                let hover_ch = info.hover.and_then(|h| h.channel);
                if let (true, Some(a)) = (info.kernels, info.kernel_abs_max) {
                    colorbar_with(ui, crate::grid::Colormap::Bwr, -a, a, "(weights)");
                    return;
                }
                match st.norm {
                    Norm::PerChannel => match zoom_ch.or(hover_ch) {
                        Some(c) => {
                            let s = l.stats[i].channels[c];
                            colorbar(ui, info, s[0], s[1], &format!("(channel {c})"));
                        }
                        None => {
                            colorbar(ui, info, 0.0, 1.0, "(each tile: its own min … max)");
                        }
                    },
                    norm => {
                        let (a, b) = grid::norm_range(norm, &l.stats[i].channels, 0);
                        colorbar(ui, info, a, b, "(whole layer)");
                    }
                }
                // Only this page's time: the whole list ran past the window edge.
                let time = match (&l.acts.node_ms, i.checked_sub(1)) {
                    (Some((ms, timing)), Some(n)) => {
                        format!("{} {:.1} ms ({}) · ", l.acts.names[i], ms[n], timing.name())
                    }
                    _ => String::new(),
                };
                ui.label(RichText::new(format!("{time}all layers {:.0} ms wall", l.acts.wall_ms)).small());
            });
        }
        None => {
            ui.label(RichText::new("convscope").strong().size(16.0));
            ui.label(info.status);
        }
    });
}

/// Errors, progress, the hovered value and the adapter.
fn bottom_panel(ui: &mut Ui, info: &HudInfo<'_>) {
    egui::Panel::bottom("hud-bottom").exact_size(HUD_BOTTOM).show(ui, |ui| {
        ui.horizontal(|ui| {
            if let Some(e) = info.error {
                ui.label(RichText::new(format!("error: {e}")).color(Color32::from_rgb(255, 110, 110)));
            } else if info.busy {
                // No spinner: its continuous repaint would compete with the computation on CPU adapters.
                ui.label("working:");
                ui.label(info.status);
            } else if let Some(h) = info.hover {
                match (h.channel, h.value) {
                    (Some(c), Some(v)) => {
                        ui.label(RichText::new(format!("channel {c}  y {} x {}  = {v:.9}", h.y, h.x)).monospace())
                    }
                    _ => ui.label(RichText::new(format!("colour image  y {} x {}", h.y, h.x)).monospace()),
                };
            } else {
                ui.label(RichText::new("H: help · Left/Right: layers · click a tile to zoom · K: kernels").weak());
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let note = if info.software { " — software adapter, slower than a GPU" } else { "" };
                ui.label(RichText::new(format!("{}{note}", info.adapter)).small().weak());
            });
        });
    });
}

/// The keys.
fn help_window(ui: &mut Ui) {
    egui::Window::new("Keys").collapsible(false).resizable(false).show(ui.ctx(), |ui| {
        egui::Grid::new("help-grid").striped(true).show(ui, |ui| {
            for (k, what) in HELP {
                ui.label(RichText::new(*k).monospace().strong());
                ui.label(*what);
                ui.end_row();
            }
        });
    });
}

fn info_order(l: &Loaded) -> String {
    l.order.names().join(",")
}

fn channel_of(l: &Loaded, layer: usize, tile: usize) -> Option<usize> {
    match l.grids[layer].colour {
        Some(_) if tile == 0 => None,
        Some(_) => Some(tile - 1),
        None => Some(tile),
    }
}

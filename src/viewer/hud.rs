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
    /// The page shown (index in `pages.all`); None on the predictions page.
    pub page: Option<usize>,
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
    let (rect, _) = ui.allocate_exact_size(egui::vec2(256.0, 12.0), egui::Sense::hover());
    // One textured quad (not 256 rectangles: each costs a triangle setup on a CPU adapter).
    let tex = colorbar_texture(ui.ctx(), cmap);
    let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
    ui.painter_at(rect).image(tex.id(), rect, uv, Color32::WHITE);
    ui.add(egui::Label::new(RichText::new(format!("{lo:.4} … {hi:.4} {caption}")).monospace()).truncate());
}

/// The colormap as a 256×1 texture, made once per colormap.
fn colorbar_texture(ctx: &egui::Context, cmap: crate::grid::Colormap) -> egui::TextureHandle {
    let id = egui::Id::unique(("colorbar", cmap.name()));
    if let Some(t) = ctx.data(|d| d.get_temp::<egui::TextureHandle>(id)) {
        return t;
    }
    let bytes: Vec<u8> = cmap.lut().iter().flatten().copied().collect();
    let img = egui::ColorImage::from_rgba_unmultiplied([256, 1], &bytes);
    let t = ctx.load_texture(format!("colorbar {}", cmap.name()), img, egui::TextureOptions::NEAREST);
    ctx.data_mut(|d| d.insert_temp(id, t.clone()));
    t
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

/// Width of the node panel in points.
pub const PANEL_WIDTH: f32 = 260.0;

/// Draws the HUD into the root `ui`: the page panel on top, the status line at the
/// bottom, the node panel on the left (when there is a graph to list), the predictions
/// chart on that page, and the help window. Returns a page (index in `pages.all`) the user
/// clicked in the node panel.
pub fn draw(ui: &mut Ui, info: &HudInfo<'_>) -> Option<usize> {
    top_panel(ui, info);
    bottom_panel(ui, info);
    let mut jump = None;
    if let Some(l) = info.loaded.filter(|l| info.state.panel && l.pages.rows.len() > 1) {
        jump = node_panel(ui, l, info.page);
    }
    if let (Some(l), None) = (info.loaded, info.page)
        && let Some(p) = &l.predictions
    {
        predictions_chart(ui, p);
    }
    if info.state.help {
        help_window(ui);
    }
    jump
}

/// The page's title line: name, position, op and parameters, inputs.
fn title(ui: &mut Ui, info: &HudInfo<'_>, l: &Loaded, p: usize) {
    let st = info.state;
    let page = &l.pages.all[p];
    let op = if p == 0 {
        format!(
            "{} · {} channels {}",
            l.input.name,
            info_order(l),
            if l.ready(0).is_some_and(|d| d.colour.is_some()) { "· colour image first" } else { "" }
        )
    } else {
        page.detail.clone()
    };
    ui.label(RichText::new(format!("{} · {}/{}", page.name, st.layer, st.pages - 1)).strong().size(16.0));
    ui.add(egui::Label::new(RichText::new(op).monospace()).truncate());
    if !page.inputs.is_empty() && l.pages.rows.len() > 1 {
        ui.add(egui::Label::new(RichText::new(format!("in: {}", page.inputs.join(", "))).small()).truncate());
    }
}

/// The page: name, op, shape, grid, statistics, histogram, colorbar and time.
fn top_panel(ui: &mut Ui, info: &HudInfo<'_>) {
    let st = info.state;
    let frame = egui::Frame::NONE.inner_margin(egui::Margin::symmetric(8, 4));
    egui::Panel::top("hud-top").exact_size(HUD_TOP).frame(frame).show(ui, |ui| match (info.loaded, info.page) {
        (Some(l), Some(i)) if l.ready(i).is_none() => {
            ui.horizontal(|ui| title(ui, info, l, i));
            let shape = l.acts.shapes[l.tensor(i)];
            let what = match &l.data[i] {
                super::jobs::PageState::Failed(e) => format!("cannot be drawn: {e}"),
                _ => format!("computing… {} of {} nodes done", l.done.0, l.done.1),
            };
            ui.label(RichText::new(format!("{} × {} × {}  ·  {what}", shape.c, shape.h, shape.w)).monospace());
        }
        (Some(l), Some(i)) => {
            let Some(d) = l.ready(i) else { return };
            let t = l.tensor(i);
            let shape = l.acts.shapes[t];
            let g = &d.layout;
            let (lo, hi) = grid::layer_range(&d.stats.channels);
            ui.horizontal(|ui| title(ui, info, l, i));
            let ls = &d.stats.layer;
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("{} × {} × {}", shape.c, shape.h, shape.w)).monospace());
                let scale = if g.step > 1 { format!(" (scale 1/{})", g.step) } else { String::new() };
                ui.label(format!("grid {}×{}{scale}", g.rows, g.cols));
                let view = if info.kernels { "kernels (blue < 0 < red) · " } else { "" };
                ui.label(
                    RichText::new(format!(
                        "{view}range [{lo:.4}, {hi:.4}]  mean {:.4}  std {:.4}  zeros {:.1}%",
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
                let zoom_ch = st.zoom.and_then(|z| channel_of(l, i, z));
                let hover_ch = info.hover.and_then(|h| h.channel);
                if let (true, Some(a)) = (info.kernels, info.kernel_abs_max) {
                    colorbar_with(ui, crate::grid::Colormap::Bwr, -a, a, "(weights)");
                    return;
                }
                match st.norm {
                    Norm::PerChannel => match zoom_ch.or(hover_ch) {
                        Some(c) => {
                            let s = d.stats.channels[c];
                            colorbar(ui, info, s[0], s[1], &format!("(channel {c})"));
                        }
                        None => {
                            colorbar(ui, info, 0.0, 1.0, "(each tile: its own min … max)");
                        }
                    },
                    norm => {
                        let (a, b) = grid::norm_range(norm, &d.stats.channels, 0);
                        colorbar(ui, info, a, b, "(whole layer)");
                    }
                }
                // Only this page's time: the whole list ran past the window edge.
                let time = match (&l.acts.node_ms, t.checked_sub(1)) {
                    (Some((ms, timing)), Some(n)) => format!("this node {:.1} ms ({}) · ", ms[n], timing.name()),
                    _ => String::new(),
                };
                // Elided at the window's edge rather than running past it.
                let all = if l.finished { format!("all nodes {:.0} ms wall", l.acts.wall_ms) } else { String::new() };
                ui.add(egui::Label::new(RichText::new(format!("{time}{all}")).small()).truncate());
            });
        }
        (Some(l), None) => {
            ui.label(RichText::new(format!("predictions · {}/{}", st.layer, st.pages - 1)).strong().size(16.0));
            if l.predictions.is_some() {
                ui.label(format!("{} · the network's output ranked, best first", l.input.name));
            } else {
                ui.label(format!("computing… {} of {} nodes done", l.done.0, l.done.1));
            }
        }
        (None, _) => {
            ui.label(RichText::new("convscope").strong().size(16.0));
            ui.label(info.status);
        }
    });
}

/// Every node as a tree of its name's `/` path (`/layer1/layer1.0/conv1/Conv` sits under
/// layer1 › layer1.0 › conv1); pages are clickable, the current one is highlighted, its
/// groups are held open and it is kept in view. Returns the page clicked.
fn node_panel(ui: &mut Ui, l: &Loaded, current: Option<usize>) -> Option<usize> {
    let mut jump = None;
    let tree = super::pages::tree(&l.pages.rows);
    let frame = egui::Frame::NONE.inner_margin(egui::Margin::symmetric(6, 4));
    egui::Panel::left("nodes").exact_size(PANEL_WIDTH).frame(frame).show(ui, |ui| {
        ui.label(RichText::new(format!("{} nodes · P hides", l.pages.rows.len())).small());
        egui::ScrollArea::vertical().show(ui, |ui| {
            for e in &tree {
                tree_entry(ui, l, e, current, &mut jump);
            }
        });
    });
    jump
}

fn tree_entry(ui: &mut Ui, l: &Loaded, e: &super::pages::Entry, current: Option<usize>, jump: &mut Option<usize>) {
    use super::pages::Entry;
    match e {
        Entry::Group { name, id, entries } => {
            let holds_current = current.is_some_and(|c| e.holds_page(&l.pages.rows, c));
            egui::CollapsingHeader::new(RichText::new(name).small())
                .id_salt(id)
                .default_open(true)
                .open(holds_current.then_some(true))
                .show(ui, |ui| {
                    for child in entries {
                        tree_entry(ui, l, child, current, jump);
                    }
                });
        }
        Entry::Node(i) => {
            let row = &l.pages.rows[*i];
            let leaf = row.name.rsplit('/').find(|s| !s.is_empty()).unwrap_or(&row.name);
            let dims = row.dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×");
            let text = RichText::new(format!("{leaf} · {} · {dims}", row.op)).monospace().small();
            match row.page {
                Some(p) => {
                    let selected = current == Some(p);
                    let r = ui.selectable_label(selected, text);
                    if selected {
                        r.scroll_to_me(None);
                    }
                    if r.clicked() {
                        *jump = Some(p);
                    }
                }
                None => {
                    ui.label(text.weak());
                }
            }
        }
    }
}

/// The top 10 classes as bars with labels and probabilities.
fn predictions_chart(ui: &mut Ui, p: &[crate::predict::Prediction]) {
    egui::CentralPanel::default().show(ui, |ui| {
        ui.add_space(12.0);
        for q in p.iter().take(10) {
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("{:>16}", q.label)).monospace());
                let (rect, _) = ui.allocate_exact_size(egui::vec2(400.0, 18.0), egui::Sense::hover());
                let painter = ui.painter_at(rect);
                painter.rect_filled(rect, 0.0, Color32::from_gray(40));
                let w = rect.width() * q.prob.clamp(0.0, 1.0);
                painter.rect_filled(
                    egui::Rect::from_min_size(rect.min, egui::vec2(w, rect.height())),
                    0.0,
                    Color32::from_rgb(120, 190, 250),
                );
                ui.label(
                    RichText::new(format!("{:6.2}%  score {:.4}  #{}", q.prob * 100.0, q.score, q.index)).monospace(),
                );
            });
        }
    });
}

/// Errors, progress, the hovered value and the adapter.
fn bottom_panel(ui: &mut Ui, info: &HudInfo<'_>) {
    let frame = egui::Frame::NONE.inner_margin(egui::Margin::symmetric(8, 4));
    egui::Panel::bottom("hud-bottom").exact_size(HUD_BOTTOM).frame(frame).show(ui, |ui| {
        ui.horizontal(|ui| {
            if let Some(e) = info.error {
                let e = RichText::new(format!("error: {e}")).color(Color32::from_rgb(255, 110, 110));
                ui.add(egui::Label::new(e).truncate());
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

fn channel_of(l: &Loaded, page: usize, tile: usize) -> Option<usize> {
    match l.ready(page)?.colour {
        Some(_) if tile == 0 => None,
        Some(_) => Some(tile - 1),
        None => Some(tile),
    }
}

//! What the viewer does for a page besides showing it: the kernels view (wrapped to the
//! window's aspect) and saving (the worker writes the full-resolution picture).

use super::display::View;
use super::jobs::{Save, ToWorker};
use super::{App, log_line};
use crate::model::file_safe;
use crate::ops::present::Rect;
use crate::visual::Look;
use anyhow::Result;

impl App {
    /// The convolution shown on the current page as the kernels view draws it: a plain
    /// conv as it is; a depthwise one as one row of C kernels.
    /// (Its shape and largest |weight|, made once per computation: this runs every frame.)
    pub(super) fn page_conv(&self) -> Option<&super::jobs::KernelShape> {
        self.loaded.as_ref()?.kernels.get(self.page()?)?.as_ref()
    }

    /// With the kernels view on a conv page: how many columns the output channels wrap
    /// into for `area`, and the kernels image's size.
    pub(super) fn kernels_view_of(&self, area: Rect) -> Option<(usize, f32, f32)> {
        if !self.state.kernels {
            return None;
        }
        let k = self.page_conv()?;
        let blocks = crate::kernels::blocks_for(&k.conv, k.colour, area.w / area.h.max(1.0));
        let (w, h) = crate::kernels::wrapped_size(&k.conv, k.colour, blocks);
        Some((blocks, w as f32, h as f32))
    }

    /// The area pages are drawn in (pixels): the window between the HUD panels, right of
    /// the node panel when it shows.
    pub(super) fn grid_area(&self) -> Option<Rect> {
        let panel = self.loaded.as_ref().is_some_and(|l| self.state.panel && l.pages.rows.len() > 1);
        Some(self.gfx.as_ref()?.grid_area(if panel { super::hud::PANEL_WIDTH } else { 0.0 }))
    }

    /// The kernels view of the current page (None when it is not a conv); refuses a layer
    /// with too many kernels to draw.
    pub(super) fn kernels_view(&self) -> Result<Option<View>> {
        let Some(k) = self.page_conv() else { return Ok(None) };
        let (Some(gfx), Some(l), Some(p)) = (&self.gfx, &self.loaded, self.page()) else { return Ok(None) };
        let name = &l.pages.all[p].name;
        let max = gfx.ctx.limits().max_texture_dimension_2d as u64;
        crate::kernels::check_size(&k.conv, name, crate::kernels::MAX_PIXELS.min(max * max))?;
        let Some((blocks, w, h)) = self.grid_area().and_then(|a| self.kernels_view_of(a)) else { return Ok(None) };
        if w as u64 > max || h as u64 > max {
            anyhow::bail!("{name} has too many kernels to draw ({w}x{h} pixels)");
        }
        Ok(Some(View::Kernels(blocks)))
    }

    /// Saves the current view (full resolution) from the worker; `saved …` is logged when
    /// it is written, once the page is computed.
    pub(super) fn save(&mut self) {
        let (Some(l), Some(i), Some(w), Some(area)) = (&self.loaded, self.page(), &self.worker, self.grid_area())
        else {
            return;
        };
        let name = &file_safe(&l.pages.all[i].name);
        let look = Look { cmap: self.state.cmap, norm: self.state.norm };
        let kernels = self.kernels_view_of(area);
        let (view, file) = match (kernels, self.state.zoom) {
            (Some((b, _, _)), _) => (View::Kernels(b), format!("convscope-{name}-kernels.png")),
            (None, Some(t)) => {
                let which = self.channel_of(t).map_or("colour".to_string(), |c| format!("ch{c}"));
                (View::Tile(t), format!("convscope-{name}-{which}.png"))
            }
            (None, None) => (View::Grid, format!("convscope-{name}.png")),
        };
        if l.ready(i).is_none() {
            log_line(&format!("saving {file} when {} is computed", l.pages.all[i].name));
        }
        w.send(ToWorker::Save(Save { run_id: l.run_id, page: i, look, view, file }));
    }
}

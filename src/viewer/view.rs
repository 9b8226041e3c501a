//! What the viewer does for a page besides showing it: the kernels view (made on first
//! use), recolouring (the colormap pass only) and saving (on a thread of its own).

use super::{App, jobs};
use crate::model::file_safe;
use crate::visual::Look;
use anyhow::Result;

impl App {
    pub(super) fn page_conv(&self) -> Option<crate::network::Conv2d> {
        let l = self.loaded.as_ref()?;
        crate::kernels::drawable(l.op(self.page()?)?)
    }

    /// Makes the current conv page's kernel texture; false when the page is not a conv.
    pub(super) fn ensure_kernels(&mut self) -> Result<bool> {
        let Some(c) = self.page_conv() else { return Ok(false) };
        let Some(p) = self.page() else { return Ok(false) };
        let (Some(gfx), Some(l)) = (&self.gfx, &mut self.loaded) else { return Ok(false) };
        if l.kernel_tex[p].is_none() {
            let name = l.pages.all[p].name.clone();
            let max = gfx.ctx.limits().max_texture_dimension_2d as u64;
            crate::kernels::check_size(&c, &name, crate::kernels::MAX_PIXELS.min(max * max))?;
            let (w, h) = crate::kernels::image_size(&c);
            if w > max || h > max {
                anyhow::bail!("{name} has too many kernels to draw ({w}x{h} pixels)");
            }
            // A layer reading the image: its filters also show as colour patches.
            let reads_image = l.pages.all[p].inputs.first() == Some(&l.graph.input);
            let rgb = (reads_image && c.cin == 3).then(|| l.order.rgb_indices());
            let img = crate::kernels::render(&c, rgb);
            l.kernel_tex[p] = Some(crate::visual::upload_image(&gfx.ctx, &img, &format!("{name} kernels")));
        }
        Ok(true)
    }

    /// The kernel texture when the kernels view is on and the page is a conv layer.
    pub(super) fn kernels_shown(&self) -> Option<&wgpu::Texture> {
        if !self.state.kernels {
            return None;
        }
        self.loaded.as_ref()?.kernel_tex.get(self.page()?)?.as_ref()
    }

    /// Redraws the current grid if it was drawn with another look (colormap pass only).
    pub(super) fn ensure_look(&mut self) {
        let look = Look { cmap: self.state.cmap, norm: self.state.norm };
        let Some(i) = self.page() else { return };
        let (Some(gfx), Some(l)) = (&self.gfx, &mut self.loaded) else { return };
        if l.drawn[i] != look {
            match gfx.visualizer.redraw(&gfx.ctx, &l.acts, l.pages.all[i].tensor, &l.grids[i], look) {
                Ok(()) => l.drawn[i] = look,
                Err(e) => self.status.error = Some(format!("{e:#}")),
            }
        }
    }

    /// Saves the current view on a thread of its own; `saved …` is logged when written.
    pub(super) fn save(&mut self) {
        let Some(i) = self.page() else { return };
        let (Some(gfx), Some(l)) = (&self.gfx, &self.loaded) else { return };
        let name = &file_safe(&l.pages.all[i].name);
        let (texture, crop, file) = match (self.kernels_shown(), self.state.zoom) {
            (Some(tex), _) => (tex.clone(), None, format!("convscope-{name}-kernels.png")),
            (None, Some(t)) => {
                let g = &l.grids[i].layout;
                let (x, y) = g.tile_origin(t);
                let which = self.channel_of(t).map_or("colour".to_string(), |c| format!("ch{c}"));
                let crop = Some((x as u32, y as u32, g.tile_w as u32, g.tile_h as u32));
                (l.grids[i].texture.clone(), crop, format!("convscope-{name}-{which}.png"))
            }
            (None, None) => (l.grids[i].texture.clone(), None, format!("convscope-{name}.png")),
        };
        jobs::save_async(gfx.ctx.clone(), texture, crop, file, self.proxy.clone());
    }
}

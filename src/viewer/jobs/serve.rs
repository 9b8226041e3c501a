//! What the worker serves between nodes and when idle: display images (a page drawn at the
//! size the window shows it, made ahead around the current page or on demand), channels for
//! hover values and histograms, saves, and the drawing of each page as its node finishes.

use super::{PageData, PageState, Save, Side, UserEvent};
use crate::engine::PageStats;
use crate::ops::present::Rect;
use crate::viewer::display::{DisplayKey, View, size_in};
use crate::visual::{GridTexture, Look};
use anyhow::{Context as _, Result, anyhow, bail};

/// Display images made ahead, at most, around the page shown.
const AHEAD: usize = 48;

impl Side {
    /// Serves one waiting display image or save whose page is ready; with `finished`, also
    /// answers requests that can no longer be served. Whether it did anything.
    pub(super) fn serve_one(&mut self, finished: bool) -> bool {
        let ready = |s: &Side, run_id: u64, page: usize| {
            s.run.as_ref().is_some_and(|r| r.run_id == run_id && r.grids.get(page).is_some_and(Option::is_some))
        };
        // Channels first: the cursor is waiting on them.
        if let Some(i) = self.channels.iter().position(|k| ready(self, k.0, k.1)) {
            let Some(key) = self.channels.remove(i) else { return false };
            if let Some(run) = &self.run {
                match run.acts.read_channel(&self.ctx, run.tensors[key.1], key.2) {
                    Ok(data) => self.send(UserEvent::Channel { key, data }),
                    Err(e) => log::warn!("channel {} of page {} could not be read: {e:#}", key.2, key.1),
                }
            }
            return true;
        }
        if let Some(i) = self.displays.iter().position(|k| ready(self, k.run_id, k.page)) {
            let Some(k) = self.displays.remove(i) else { return false };
            self.display(k);
            return true;
        }
        if let Some(i) = self.saves.iter().position(|s| ready(self, s.run_id, s.page)) {
            let Some(s) = self.saves.remove(i) else { return false };
            let r = self.save(&s);
            self.send(UserEvent::Saved(r));
            return true;
        }
        if finished {
            // Pages of an older or failed computation: nothing will make them.
            self.displays.clear();
            self.channels.clear();
            if let Some(s) = self.saves.pop_front() {
                self.send(UserEvent::Saved(Err(anyhow!("{} could not be saved: its page was not computed", s.file))));
                return true;
            }
        }
        false
    }

    /// Makes one display image ahead of need: the ready page nearest the one shown that has
    /// none for the current size and look. Whether it made one.
    pub(super) fn make_ahead(&mut self) -> bool {
        let Some(run) = &self.run else { return false };
        let (cur, look, area) = (self.prefs.page, self.prefs.look, self.prefs.area);
        let mut order: Vec<usize> = (0..run.grids.len()).filter(|&p| p.abs_diff(cur) <= AHEAD).collect();
        order.sort_by_key(|&p| p.abs_diff(cur));
        for p in order {
            let Some(g) = &run.grids[p] else { continue };
            let Some(size) = size_in(g.layout.width as f32, g.layout.height as f32, area) else { continue };
            let key = DisplayKey { run_id: run.run_id, page: p, look, view: View::Grid, size };
            if !run.made.contains(&key) {
                self.display(key);
                return true;
            }
        }
        false
    }

    /// Makes and posts display image `key` (or logs why it cannot).
    fn display(&mut self, key: DisplayKey) {
        match self.render_display(&key) {
            Ok(rgba) => {
                if let Some(r) = &mut self.run {
                    r.made.insert(key);
                }
                self.send(UserEvent::Display { key, rgba });
            }
            Err(e) => log::warn!("display image of page {} failed: {e:#}", key.page),
        }
    }

    /// The texture a view of a page shows (grid drawn with `look`, or kernels) and the
    /// rectangle of it.
    fn source(&mut self, page: usize, look: Look, view: View) -> Result<(wgpu::Texture, Rect)> {
        let run = self.run.as_mut().ok_or_else(|| anyhow!("nothing computed"))?;
        if let View::Kernels(blocks) = view {
            let (c, rgb) = run.convs.get(page).and_then(Option::as_ref).ok_or_else(|| anyhow!("not a conv page"))?;
            let tex = match run.kernels.get(&(page, blocks)) {
                Some(t) => t.clone(),
                None => {
                    let img = crate::kernels::render_wrapped(c, *rgb, blocks);
                    let max = self.ctx.limits().max_texture_dimension_2d;
                    if img.width() > max || img.height() > max {
                        bail!("too many kernels to draw ({}x{} pixels)", img.width(), img.height());
                    }
                    let t = crate::visual::upload_image(&self.ctx, &img, &format!("page {page} kernels"));
                    run.kernels.insert((page, blocks), t.clone());
                    t
                }
            };
            let r = Rect { x: 0.0, y: 0.0, w: tex.width() as f32, h: tex.height() as f32 };
            return Ok((tex, r));
        }
        let grid = run.grids.get(page).and_then(Option::as_ref).ok_or_else(|| anyhow!("page {page} is not ready"))?;
        if run.drawn[page] != look {
            self.vis.redraw(&self.ctx, &run.acts, run.tensors[page], grid, look)?;
            run.drawn[page] = look;
        }
        let g = &grid.layout;
        let r = match view {
            View::Tile(t) if t < g.tiles => {
                let (x, y) = g.tile_origin(t);
                Rect { x: x as f32, y: y as f32, w: g.tile_w as f32, h: g.tile_h as f32 }
            }
            _ => Rect { x: 0.0, y: 0.0, w: g.width as f32, h: g.height as f32 },
        };
        Ok((grid.texture.clone(), r))
    }

    /// Draws a view of a page at `key.size` (box-filtered when smaller, nearest when
    /// larger) and reads it back.
    fn render_display(&mut self, key: &DisplayKey) -> Result<Vec<u8>> {
        let (tex, src) = self.source(key.page, key.look, key.view)?;
        let (w, h) = key.size;
        let max = self.ctx.limits().max_texture_dimension_2d;
        if w == 0 || h == 0 || w > max || h > max {
            bail!("display size {w}x{h} out of range");
        }
        let target = self.ctx.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("display image"),
            size: wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: self.format,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let view = target.create_view(&wgpu::TextureViewDescriptor::default());
        let mut enc =
            self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("display image") });
        let dst = Rect { x: 0.0, y: 0.0, w: w as f32, h: h as f32 };
        self.presenter.draw(&self.ctx, &mut enc, &view, (w, h), &tex, src, dst);
        self.ctx.queue.submit([enc.finish()]);
        crate::gpu::read_texture_rows(&self.ctx, &target, 0, h)
    }

    /// Writes the full-resolution picture of a view as a PNG.
    fn save(&mut self, s: &Save) -> Result<String> {
        let (tex, src) = self.source(s.page, s.look, s.view)?;
        let whole = src.x == 0.0 && src.y == 0.0 && src.w as u32 == tex.width() && src.h as u32 == tex.height();
        if whole {
            crate::visual::write_texture_png(&self.ctx, &tex, std::path::Path::new(&s.file))?;
        } else {
            let img = crate::visual::read_texture(&self.ctx, &tex)?;
            let crop = image::imageops::crop_imm(&img, src.x as u32, src.y as u32, src.w as u32, src.h as u32);
            crop.to_image()
                .save_with_format(&s.file, image::ImageFormat::Png)
                .with_context(|| format!("cannot save {} in the current directory", s.file))?;
        }
        Ok(s.file.clone())
    }

    /// Draws page `p` of the running computation (its node just finished) and posts it.
    pub(super) fn page_done(&mut self, p: usize) {
        let Some(run) = &mut self.run else { return };
        let t = run.tensors[p];
        let made = (|| -> Result<(GridTexture, PageStats)> {
            let grid = self.vis.render(&self.ctx, &run.acts, t, self.prefs.look, run.rgb)?;
            let stats = PageStats {
                channels: run.acts.read_stats(&self.ctx, t)?,
                layer: run.acts.read_layer_stats(&self.ctx, t)?,
            };
            Ok((grid, stats))
        })();
        let state = match made {
            Ok((grid, stats)) => {
                let data = PageData { layout: grid.layout, colour: grid.colour, stats };
                run.grids[p] = Some(grid);
                run.drawn[p] = self.prefs.look;
                PageState::Ready(data)
            }
            Err(e) => PageState::Failed(format!("{e:#}")),
        };
        let run_id = run.run_id;
        self.send(UserEvent::PageReady { run_id, page: p, state });
        // The page's display image at once when it is the one shown; the others after the
        // run (or when asked for), so the next node starts sooner.
        if p == self.prefs.page {
            self.make_ahead();
        }
    }
}

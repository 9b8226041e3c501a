//! Background work: one worker thread owns the viewer's compute device and [`Executor`] for
//! the window's lifetime (a re-roll or a dropped file reuses cached pipelines and pooled
//! buffers). It runs the network node by node and posts each page as soon as its node is
//! done (first the input), makes display images (a page drawn at the size the window shows
//! it) ahead of the keys that will want them, and saves. Between nodes it answers the UI's
//! requests, and a newer computation cancels the running one. The compute device is not the
//! window's: frames never queue behind a convolution. Nothing here waits on the UI thread,
//! and the UI thread never waits on this.

use super::display::{DisplayKey, View, size_in};
use super::pages::Pages;
use crate::engine::PageStats;
use crate::exec::{Activations, Cancelled, Executor, RunOptions};
use crate::gpu::GpuContext;
use crate::graph::Graph;
use crate::grid::GridLayout;
use crate::input::ChannelOrder;
use crate::model::Prepared;
use crate::ops::present::{Presenter, Rect};
use crate::plan::Keep;
use crate::predict::Prediction;
use crate::source::{Input, Source};
use crate::visual::{GridTexture, Look, Visualizer};
use anyhow::{Context as _, Result, anyhow, bail};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use winit::event_loop::EventLoopProxy;

/// A computed page as the UI needs it: the grid's layout (hover, zoom) and its statistics.
#[derive(Clone, Debug)]
pub struct PageData {
    pub layout: GridLayout,
    /// When set, tile 0 is the colour image made of these channels (R, G, B).
    pub colour: Option<[usize; 3]>,
    pub stats: PageStats,
}

/// Where a page stands.
#[derive(Clone, Debug)]
pub enum PageState {
    Pending,
    Ready(PageData),
    Failed(String),
}

/// One computation (an input and a seed, or a model) as the UI holds it: everything known
/// before the run, and each page as it arrives.
pub struct Loaded {
    /// Which computation: display images and page events carry it.
    pub run_id: u64,
    pub input: Input,
    pub graph: Graph,
    pub pages: Pages,
    /// The run's tensors on the compute device (hover values and histograms read them; a
    /// page's tensor is readable once the page is ready).
    pub acts: Activations,
    /// Per page, in the order of `pages.all`.
    pub data: Vec<PageState>,
    pub order: ChannelOrder,
    /// A classifier's ranked output (the predictions page), once the run is done.
    pub predictions: Option<Vec<Prediction>>,
    /// ONNX dims of each page's tensor (chains: `[1,C,H,W]`).
    pub dims: Vec<Vec<usize>>,
    /// Nodes done, nodes in all.
    pub done: (usize, usize),
    pub finished: bool,
}

impl Loaded {
    /// The page (index in `pages.all`) at view position `v`; None for the predictions page.
    pub fn page(&self, v: usize, conv_only: bool) -> Option<usize> {
        self.pages.shown(v, conv_only)
    }

    /// The tensor index of page `p`.
    pub fn tensor(&self, p: usize) -> usize {
        self.pages.all[p].tensor
    }

    /// The graph op that computed page `p` (None for the input).
    pub fn op(&self, p: usize) -> Option<&crate::graph::Op> {
        self.tensor(p).checked_sub(1).map(|i| &self.graph.nodes[i].op)
    }

    /// Page `p` once it is computed.
    pub fn ready(&self, p: usize) -> Option<&PageData> {
        match self.data.get(p)? {
            PageState::Ready(d) => Some(d),
            _ => None,
        }
    }
}

/// What to compute.
#[derive(Clone, Debug)]
pub enum Job {
    /// The input the command line named.
    Initial,
    /// The current input again with new weights from this seed.
    Reroll(i64),
    /// A dropped image file.
    Load(PathBuf),
}

/// A request to the worker: the job, the seed, and the current input to reuse (a re-roll
/// never reads the disk again, and works for tensor inputs too).
pub struct Request {
    pub job: Job,
    pub seed: i64,
    pub current: Option<Input>,
}

/// Where and how pages are shown: display images are made ahead for this.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prefs {
    /// The area grids are fitted into, in pixels.
    pub area: Rect,
    pub look: Look,
    /// The page shown (nearest pages are made first).
    pub page: usize,
}

/// A save of what the window shows.
pub struct Save {
    pub run_id: u64,
    pub page: usize,
    pub look: Look,
    pub view: View,
    pub file: String,
}

/// What the UI asks of the worker.
pub enum ToWorker {
    Compute(Request),
    Prefs(Prefs),
    Display(DisplayKey),
    Save(Save),
    /// One channel of a page, for hover values and histograms.
    Channel(super::inspect::ChannelKey),
}

/// What a finished run adds.
pub struct Finish {
    pub node_ms: Option<(Vec<f64>, crate::exec::Timing)>,
    pub wall_ms: f64,
    pub predictions: Option<Vec<Prediction>>,
}

/// Events posted to the event loop.
pub enum UserEvent {
    /// A computation started: its pages are known, none is computed yet.
    Started(Box<Loaded>, Job),
    PageReady {
        run_id: u64,
        page: usize,
        state: PageState,
    },
    /// A display image: `key.size` pixels of tightly packed RGBA.
    Display {
        key: DisplayKey,
        rgba: Vec<u8>,
    },
    /// A computation ended (`run_id` None: it failed before it started, e.g. a bad file).
    Finished {
        run_id: Option<u64>,
        job: Job,
        result: Result<Finish>,
    },
    /// A channel's values (row-major).
    Channel {
        key: super::inspect::ChannelKey,
        data: Vec<f32>,
    },
    Progress(String),
    Saved(Result<String>),
    /// The GPU device was lost (driver reset, out of memory on the device).
    DeviceLost(String),
}

/// The worker thread's handle.
pub struct Worker {
    tx: Sender<ToWorker>,
}

impl Worker {
    /// Starts the worker on `ctx` (a device of its own); results go to `proxy` (and wake
    /// the window).
    pub fn start(
        ctx: Arc<GpuContext>,
        source: Source,
        prefs: Prefs,
        format: wgpu::TextureFormat,
        proxy: EventLoopProxy<UserEvent>,
    ) -> Result<Worker> {
        let (tx, rx) = channel::<ToWorker>();
        let exec = Executor::new(&ctx)?;
        let side = Side {
            vis: Visualizer::new(&ctx),
            presenter: Presenter::new(&ctx, format),
            format,
            ctx,
            proxy,
            rx,
            prefs,
            waiting: None,
            displays: VecDeque::new(),
            saves: VecDeque::new(),
            channels: VecDeque::new(),
            run: None,
            next_run: 1,
        };
        std::thread::Builder::new()
            .name("convscope compute".into())
            .spawn(move || worker_loop(exec, RefCell::new(side), &source))
            .map_err(|e| anyhow!("cannot start the compute thread: {e}"))?;
        Ok(Worker { tx })
    }

    pub fn send(&self, m: ToWorker) {
        let _ = self.tx.send(m);
    }
}

/// Display images made ahead, at most, around the page shown.
const AHEAD: usize = 48;

/// The current computation's GPU side.
struct Run {
    run_id: u64,
    acts: Activations,
    /// Tensor of each page; its grid once drawn, and the look it was drawn with.
    tensors: Vec<usize>,
    grids: Vec<Option<GridTexture>>,
    drawn: Vec<Look>,
    /// The conv each page shows the kernels of, and the colour order of a first layer.
    convs: Vec<Option<(crate::network::Conv2d, Option<[usize; 3]>)>>,
    kernels: HashMap<(usize, usize), wgpu::Texture>,
    rgb: [usize; 3],
    made: HashSet<DisplayKey>,
}

/// Everything the worker keeps besides the executor (which a run borrows).
struct Side {
    ctx: Arc<GpuContext>,
    /// The window's texture format: display images are made in it.
    format: wgpu::TextureFormat,
    vis: Visualizer,
    presenter: Presenter,
    proxy: EventLoopProxy<UserEvent>,
    rx: Receiver<ToWorker>,
    prefs: Prefs,
    waiting: Option<Request>,
    displays: VecDeque<DisplayKey>,
    saves: VecDeque<Save>,
    channels: VecDeque<super::inspect::ChannelKey>,
    run: Option<Run>,
    next_run: u64,
}

fn worker_loop(mut exec: Executor, side: RefCell<Side>, source: &Source) {
    loop {
        let job = {
            let mut s = side.borrow_mut();
            s.drain();
            s.waiting.take()
        };
        if let Some(req) = job {
            compute(&mut exec, &side, source, req);
            continue;
        }
        let mut s = side.borrow_mut();
        if s.serve_one(true) || s.make_ahead() {
            continue;
        }
        // Idle: wait for the next request.
        match s.rx.recv() {
            Ok(m) => s.take(m),
            Err(_) => return,
        }
    }
}

impl Side {
    fn send(&self, e: UserEvent) {
        let _ = self.proxy.send_event(e);
    }

    fn take(&mut self, m: ToWorker) {
        match m {
            // Only the newest computation matters (several R presses: the last seed).
            ToWorker::Compute(r) => self.waiting = Some(r),
            ToWorker::Prefs(p) => self.prefs = p,
            ToWorker::Display(k) => {
                if !self.displays.contains(&k) {
                    self.displays.push_back(k)
                }
            }
            ToWorker::Save(s) => self.saves.push_back(s),
            ToWorker::Channel(k) => {
                if !self.channels.contains(&k) {
                    self.channels.push_back(k)
                }
            }
        }
    }

    /// Takes every message waiting, without blocking.
    fn drain(&mut self) {
        while let Ok(m) = self.rx.try_recv() {
            self.take(m);
        }
    }

    /// Serves one waiting display image or save whose page is ready; with `finished`, also
    /// answers requests that can no longer be served. Whether it did anything.
    fn serve_one(&mut self, finished: bool) -> bool {
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
    fn make_ahead(&mut self) -> bool {
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
    fn page_done(&mut self, p: usize) {
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

/// Loads the input (and the model), posts the pages, runs the graph node by node posting
/// each page as its node finishes, then the predictions.
fn compute(exec: &mut Executor, side: &RefCell<Side>, source: &Source, req: Request) {
    let run_id = {
        let mut s = side.borrow_mut();
        s.next_run += 1;
        s.next_run
    };
    let job = req.job.clone();
    let r = run(exec, side, source, &req, run_id);
    let s = side.borrow();
    match r {
        Ok(Some(f)) => s.send(UserEvent::Finished { run_id: Some(run_id), job, result: Ok(f) }),
        Ok(None) => {} // cancelled by a newer request
        Err((started, e)) => s.send(UserEvent::Finished { run_id: started.then_some(run_id), job, result: Err(e) }),
    }
}

type RunError = (bool, anyhow::Error);

fn run(
    exec: &mut Executor,
    side: &RefCell<Side>,
    source: &Source,
    req: &Request,
    run_id: u64,
) -> std::result::Result<Option<Finish>, RunError> {
    let ctx = side.borrow().ctx.clone();
    let early = |e: anyhow::Error| (false, e);
    let (input, graph, dims, kept, scores, labels) = if source.model.is_some() {
        let mut src = source.clone();
        if let Job::Load(p) = &req.job {
            src.image = Some(p.clone());
            src.input_tensor = None;
        }
        let prep = Prepared::new(&src).map_err(early)?;
        let dims: Vec<Vec<usize>> = (0..=prep.graph.nodes.len()).map(|t| prep.dims_of(t)).collect();
        let kept = prep.kept();
        (prep.input, prep.graph, dims, Some(kept), prep.scores, prep.labels)
    } else {
        let input = match (&req.job, &req.current) {
            (Job::Load(p), _) => source.load_input_from(Some(p)).map_err(early)?,
            (Job::Reroll(_), Some(cur)) => cur.clone(),
            _ => source.load_input().map_err(early)?,
        };
        let net = source.network_with_seed(req.seed).map_err(early)?;
        let shapes = net.graph().infer_shapes(input.tensor.shape).map_err(early)?;
        let dims = shapes.iter().map(|s| vec![1, s.c, s.h, s.w]).collect();
        (input, net.graph(), dims, None, None, None)
    };
    let is_page = |t: usize| kept.as_ref().is_none_or(|k| k.contains(&t) && dims[t].len() == 4);
    let pages = Pages::new(&graph, &|t| dims[t].clone(), &is_page, scores.is_some());
    let mut gnet = exec.upload(&ctx, &graph, source.kernel).map_err(early)?;
    // Blocks already measured for these shapes; new shapes are measured after the run, so
    // the first pages are not held up (the next run uses them).
    exec.autotune(&ctx, &mut gnet, input.tensor.shape, 0.0).map_err(early)?;
    let before = exec.cache_stats();
    let rgb = source.order.rgb_indices();
    let mut by_tensor: HashMap<usize, Vec<usize>> = HashMap::new();
    for (p, info) in pages.all.iter().enumerate() {
        by_tensor.entry(info.tensor).or_default().push(p);
    }
    let convs = (0..pages.all.len())
        .map(|p| {
            let t = pages.all[p].tensor;
            let c = crate::kernels::drawable(&graph.nodes.get(t.checked_sub(1)?)?.op)?;
            let reads_image = pages.all[p].inputs.first() == Some(&graph.input);
            let colour = (reads_image && c.cin == 3).then_some(rgb);
            Some((c, colour))
        })
        .collect();
    let page_dims: Vec<Vec<usize>> = pages.all.iter().map(|p| dims[p.tensor].clone()).collect();
    let tensor = input.tensor.clone();
    let parts_cell = RefCell::new(Some((input, graph, pages, page_dims, convs)));
    let progress = |done: usize, total: usize, acts: &Activations| -> bool {
        let mut s = side.borrow_mut();
        s.drain();
        if s.waiting.is_some() {
            return false; // a newer computation replaces this one
        }
        if done == 0
            && let Some((input, graph, pages, page_dims, convs)) = parts_cell.borrow_mut().take()
        {
            let n = pages.all.len();
            s.run = Some(Run {
                run_id,
                acts: acts.clone(),
                tensors: pages.all.iter().map(|p| p.tensor).collect(),
                grids: (0..n).map(|_| None).collect(),
                drawn: vec![Look::default(); n],
                convs,
                kernels: HashMap::new(),
                rgb,
                made: HashSet::new(),
            });
            let loaded = Loaded {
                run_id,
                input,
                graph,
                pages,
                acts: acts.clone(),
                data: vec![PageState::Pending; n],
                order: source.order,
                predictions: None,
                dims: page_dims,
                done: (0, total),
                finished: false,
            };
            s.send(UserEvent::Started(Box::new(loaded), req.job.clone()));
        }
        for &p in by_tensor.get(&done).map_or(&[][..], Vec::as_slice) {
            s.page_done(p);
        }
        s.send(UserEvent::Progress(format!("running nodes… {done}/{total} done")));
        // Requests for pages that are ready are answered between nodes.
        while s.serve_one(false) {}
        true
    };
    // Node by node: pages as they finish, true per-node wall times (timestamps are not
    // trustworthy while the window's framebuffer is bound on llvmpipe). A model keeps only
    // its pages.
    let keep = kept.clone().map_or(Keep::All, Keep::Only);
    let opts = RunOptions { per_node: true, progress: Some(&progress), keep };
    let started = |e: anyhow::Error| (true, e);
    let acts = match exec.run_with(&ctx, &gnet, &tensor, &opts) {
        Ok(a) => a,
        Err(e) if e.is::<Cancelled>() => return Ok(None),
        Err(e) => return Err((side.borrow().run.as_ref().is_some_and(|r| r.run_id == run_id), e)),
    };
    if let Some((ms, timing)) = &acts.node_ms {
        let list: Vec<String> = ms.iter().map(|m| format!("{m:.1}")).collect();
        log::info!("run: {:.0} ms on the GPU; per node ({}): {}", acts.wall_ms, timing.name(), list.join(" "));
    }
    let after = exec.cache_stats();
    log::info!(
        "run: pipelines built {}, cache hits {}; buffers created {}, reused {}",
        after.pipelines_built - before.pipelines_built,
        after.pipeline_hits - before.pipeline_hits,
        after.buffers_created - before.buffers_created,
        after.buffers_reused - before.buffers_reused
    );
    if let Err(e) = exec.autotune(&ctx, &mut gnet, tensor.shape, crate::exec::autotune::BUDGET_MS) {
        log::warn!("autotune: {e:#}");
    }
    let predictions = match scores {
        Some((t, is_prob)) => {
            Some(crate::predict::rank(&acts.read(&ctx, t).map_err(started)?.data, labels.as_deref(), is_prob))
        }
        None => None,
    };
    Ok(Some(Finish { node_ms: acts.node_ms.clone(), wall_ms: acts.wall_ms, predictions }))
}

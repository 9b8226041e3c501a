//! Background work: one worker thread owns the viewer's [`Engine`] for the window's
//! lifetime (so a re-roll or a dropped file reuses cached pipelines and pooled buffers),
//! computes one request at a time (newer requests replace waiting ones), and posts the
//! result to the event loop. Saves run on short-lived threads. Nothing here waits on the
//! UI thread, and the UI thread never waits on this.

use super::pages::Pages;
use crate::engine::{Engine, PageStats};
use crate::exec::{Activations, RunOptions};
use crate::gpu::GpuContext;
use crate::graph::Graph;
use crate::input::ChannelOrder;
use crate::model::Prepared;
use crate::plan::Keep;
use crate::predict::Prediction;
use crate::source::{Input, Source};
use crate::visual::{GridTexture, Look, read_texture};
use anyhow::{Context as _, Result, anyhow};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use winit::event_loop::EventLoopProxy;

/// Everything computed for one input and seed (or model). Grids, statistics, looks and
/// kernel textures are per page, in the order of `pages.all`.
pub struct Loaded {
    pub input: Input,
    pub graph: Graph,
    pub pages: Pages,
    pub acts: Activations,
    pub grids: Vec<GridTexture>,
    /// The look each grid texture was last drawn with.
    pub drawn: Vec<Look>,
    pub stats: Vec<PageStats>,
    /// Kernel images of conv pages, made on first use of K.
    pub kernel_tex: Vec<Option<wgpu::Texture>>,
    pub order: ChannelOrder,
    /// A classifier's ranked output (the predictions page).
    pub predictions: Option<Vec<Prediction>>,
    /// ONNX dims of each page's tensor (chains: `[1,C,H,W]`).
    pub dims: Vec<Vec<usize>>,
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

/// Events posted to the event loop.
pub enum UserEvent {
    Computed(Box<Result<Loaded>>, Job),
    Progress(String),
    Saved(Result<String>),
    /// The GPU device was lost (driver reset, out of memory on the device).
    DeviceLost(String),
}

/// The worker thread's handle.
pub struct Worker {
    tx: Sender<Request>,
}

impl Worker {
    /// Starts the worker on `ctx`; results go to `proxy` (and wake the window).
    pub fn start(ctx: Arc<GpuContext>, source: Source, proxy: EventLoopProxy<UserEvent>) -> Result<Worker> {
        let (tx, rx) = channel::<Request>();
        let engine = Engine::new(&ctx)?;
        std::thread::Builder::new()
            .name("convscope compute".into())
            .spawn(move || worker_loop(&ctx, &source, engine, &rx, &proxy))
            .map_err(|e| anyhow!("cannot start the compute thread: {e}"))?;
        Ok(Worker { tx })
    }

    /// Queues a request (it replaces any request still waiting).
    pub fn send(&self, r: Request) {
        let _ = self.tx.send(r);
    }
}

fn worker_loop(
    ctx: &GpuContext,
    source: &Source,
    mut engine: Engine,
    rx: &Receiver<Request>,
    proxy: &EventLoopProxy<UserEvent>,
) {
    while let Ok(mut req) = rx.recv() {
        // Only the newest waiting request matters (several R presses: the last seed).
        while let Ok(newer) = rx.try_recv() {
            req = newer;
        }
        let progress = |s: String| {
            let _ = proxy.send_event(UserEvent::Progress(s));
        };
        let r = compute(ctx, source, &mut engine, &req, &progress);
        let _ = proxy.send_event(UserEvent::Computed(Box::new(r), req.job));
    }
}

/// Loads the input (and the model), runs the graph node by node, reads the statistics
/// and draws every page.
fn compute(
    ctx: &GpuContext,
    source: &Source,
    engine: &mut Engine,
    req: &Request,
    progress: &dyn Fn(String),
) -> Result<Loaded> {
    let (input, graph, dims, kept, scores, labels) = if source.model.is_some() {
        let mut src = source.clone();
        if let Job::Load(p) = &req.job {
            src.image = Some(p.clone());
            src.input_tensor = None;
        }
        let prep = Prepared::new(&src)?;
        let dims: Vec<Vec<usize>> = (0..=prep.graph.nodes.len()).map(|t| prep.dims_of(t)).collect();
        let kept = prep.kept();
        (prep.input, prep.graph, dims, Some(kept), prep.scores, prep.labels)
    } else {
        let input = match (&req.job, &req.current) {
            (Job::Load(p), _) => source.load_input_from(Some(p))?,
            (Job::Reroll(_), Some(cur)) => cur.clone(),
            _ => source.load_input()?,
        };
        let net = source.network_with_seed(req.seed)?;
        let shapes = net.graph().infer_shapes(input.tensor.shape)?;
        let dims = shapes.iter().map(|s| vec![1, s.c, s.h, s.w]).collect();
        (input, net.graph(), dims, None, None, None)
    };
    progress(format!("running {} nodes on the GPU…", graph.nodes.len()));
    let before = engine.exec.cache_stats();
    let report = |done: usize, total: usize| progress(format!("running nodes… {done}/{total} done"));
    // Node by node: true per-node wall times (timestamps are not trustworthy while the
    // window's framebuffer is bound on llvmpipe) and progress. A model keeps only its pages.
    let keep = kept.clone().map_or(Keep::All, Keep::Only);
    let opts = RunOptions { per_node: true, progress: Some(&report), keep };
    let acts = engine.compute_graph(ctx, &graph, source.kernel, &input.tensor, &opts)?;
    let after = engine.exec.cache_stats();
    log::info!(
        "run: pipelines built {}, cache hits {}; buffers created {}, reused {}",
        after.pipelines_built - before.pipelines_built,
        after.pipeline_hits - before.pipeline_hits,
        after.buffers_created - before.buffers_created,
        after.buffers_reused - before.buffers_reused
    );
    let is_page = |t: usize| kept.as_ref().is_none_or(|k| k.contains(&t) && dims[t].len() == 4);
    let pages = Pages::new(&graph, &|t| dims[t].clone(), &is_page, scores.is_some());
    let predictions = match scores {
        Some((t, is_prob)) => Some(crate::predict::rank(&acts.read(ctx, t)?.data, labels.as_deref(), is_prob)),
        None => None,
    };
    progress("drawing grids…".to_string());
    let rgb = source.order.rgb_indices();
    let mut grids = Vec::with_capacity(pages.all.len());
    let mut stats = Vec::with_capacity(pages.all.len());
    for p in &pages.all {
        let (grid, s) = engine.page(ctx, &acts, p.tensor, Look::default(), rgb)?;
        grids.push(grid);
        stats.push(s);
    }
    ctx.wait()?;
    let n = pages.all.len();
    let page_dims = pages.all.iter().map(|p| dims[p.tensor].clone()).collect();
    Ok(Loaded {
        input,
        graph,
        pages,
        acts,
        grids,
        drawn: vec![Look::default(); n],
        stats,
        kernel_tex: vec![None; n],
        order: source.order,
        predictions,
        dims: page_dims,
    })
}

/// Saves `texture` (cropped to `crop` = x, y, w, h when given) as `file` on a thread of
/// its own, then posts [`UserEvent::Saved`].
pub fn save_async(
    ctx: Arc<GpuContext>,
    texture: wgpu::Texture,
    crop: Option<(u32, u32, u32, u32)>,
    file: String,
    proxy: EventLoopProxy<UserEvent>,
) {
    std::thread::spawn(move || {
        let r = (|| -> Result<String> {
            let img = read_texture(&ctx, &texture)?;
            let img = match crop {
                Some((x, y, w, h)) => image::imageops::crop_imm(&img, x, y, w, h).to_image(),
                None => img,
            };
            img.save_with_format(&file, image::ImageFormat::Png)
                .with_context(|| format!("cannot save {file} in the current directory"))?;
            Ok(file)
        })();
        let _ = proxy.send_event(UserEvent::Saved(r));
    });
}

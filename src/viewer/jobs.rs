//! Background work: one worker thread owns the viewer's compute device and [`Executor`] for
//! the window's lifetime (a re-roll or a dropped file reuses cached pipelines and pooled
//! buffers). It runs the network node by node and posts each page as soon as its node is
//! done (first the input), makes display images (a page drawn at the size the window shows
//! it) ahead of the keys that will want them, and saves. Between nodes it answers the UI's
//! requests, and a newer computation cancels the running one. The compute device is not the
//! window's: frames never queue behind a convolution. Nothing here waits on the UI thread,
//! and the UI thread never waits on this.

use super::display::{DisplayKey, View};
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
use anyhow::{Result, anyhow};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

mod serve;
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
    /// Per page, the conv the kernels view draws, its shape only (no weights: the frame
    /// code asks for it every frame), with its largest |weight| and whether each filter also
    /// shows as a colour patch.
    pub kernels: Vec<Option<KernelShape>>,
}

/// A conv page's kernels, as the UI lays them out.
#[derive(Clone, Debug)]
pub struct KernelShape {
    /// The conv with empty weights.
    pub conv: crate::network::Conv2d,
    pub abs_max: f32,
    pub colour: bool,
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
    /// The window is closing: stop at the next node and end the thread.
    Stop,
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
    thread: Option<std::thread::JoinHandle<()>>,
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
            stopping: false,
        };
        let thread = std::thread::Builder::new()
            .name("convscope compute".into())
            .spawn(move || worker_loop(exec, RefCell::new(side), &source))
            .map_err(|e| anyhow!("cannot start the compute thread: {e}"))?;
        Ok(Worker { tx, thread: Some(thread) })
    }

    /// Stops the worker (a run in progress stops after its current node) and waits for it:
    /// the process must not exit while the thread is inside the GPU driver.
    pub fn stop(mut self) {
        let _ = self.tx.send(ToWorker::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn send(&self, m: ToWorker) {
        let _ = self.tx.send(m);
    }
}

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
    stopping: bool,
}

fn worker_loop(mut exec: Executor, side: RefCell<Side>, source: &Source) {
    loop {
        let job = {
            let mut s = side.borrow_mut();
            s.drain();
            if s.stopping {
                return;
            }
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
            ToWorker::Stop => self.stopping = true,
        }
    }

    /// Takes every message waiting, without blocking.
    fn drain(&mut self) {
        while let Ok(m) = self.rx.try_recv() {
            self.take(m);
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
    let convs: Vec<Option<(crate::network::Conv2d, Option<[usize; 3]>)>> = (0..pages.all.len())
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
    let kernels = convs
        .iter()
        .map(|c| {
            c.as_ref().map(|(c, rgb)| KernelShape {
                conv: crate::network::Conv2d {
                    cin: c.cin,
                    cout: c.cout,
                    k: c.k,
                    stride: c.stride,
                    pad: c.pad,
                    weight: Vec::new(),
                    bias: Vec::new(),
                },
                abs_max: c.weight.iter().fold(0.0f32, |m, w| m.max(w.abs())),
                colour: rgb.is_some(),
            })
        })
        .collect();
    let parts_cell = RefCell::new(Some((input, graph, pages, page_dims, convs, kernels)));
    let progress = |done: usize, total: usize, acts: &Activations| -> bool {
        let mut s = side.borrow_mut();
        s.drain();
        if s.waiting.is_some() || s.stopping {
            return false; // a newer computation replaces this one, or the window closed
        }
        if done == 0
            && let Some((input, graph, pages, page_dims, convs, kernels)) = parts_cell.borrow_mut().take()
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
                kernels,
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

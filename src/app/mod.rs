//! The command line: argument definitions and the commands they run (view, export,
//! bench). A thin user of [`Engine`]; nothing else in the crate imports it.

use crate::engine::Engine;
use crate::exec::RunOptions;
use crate::gpu::GpuContext;
use crate::input::ChannelOrder;
use crate::network::Network;
use crate::ops::ConvKernel;
use crate::source::{Source, parse_triple};
use crate::tensor::{Tensor, max_abs_diff};
use crate::visual::{Look, write_texture_png};
use crate::{export, reference};
use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

mod bench;
mod model;
pub use bench::run_bench;
use std::path::PathBuf;

/// Prints a line to stdout; a closed pipe (`convscope ... | head`) ends the program
/// quietly instead of panicking.
#[macro_export]
#[doc(hidden)]
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if writeln!(out, $($t)*).and_then(|_| out.flush()).is_err() {
            std::process::exit(0);
        }
    }};
}

#[derive(Parser, Debug)]
#[command(
    name = "convscope",
    version,
    about = "See what every convolution layer of a CNN does to an image.",
    long_about = "See what every convolution layer of a CNN does to an image.\n\n\
        With no command, opens a window showing one layer's output channels as a grid; \
        the arrow keys flip input -> conv1 -> conv2 -> conv3. Without an image, a built-in scene is used.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub view: CommonArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the network headless and write each layer's grid as PNG (and optionally every tensor).
    Export(ExportArgs),
    /// Time the convolution chain per kernel, size and layer (median of N runs).
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Image to resize to each size (default: the built-in scene).
    pub image: Option<PathBuf>,
    /// Input sizes as HxW (repeatable; default 225x400 and 1080x1920; e.g. --size 2160x3840
    /// for 4K). With --model: the input size of a model whose size is dynamic.
    #[arg(long = "size")]
    pub sizes: Vec<String>,
    /// Time an ONNX model instead of the tutorial chain: per kind of node and in total.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Time single convolutions instead of the chain: Cin,Cout,K,HxW[,stride,pad,groups]
    /// (repeatable), e.g. 64,64,3,56x56,1,1 or the depthwise 96,96,3,56x56,1,1,96.
    #[arg(long = "shape")]
    pub shapes: Vec<String>,
    /// Which kernel(s) to time (the naive kernel takes minutes per megapixel on a CPU adapter).
    #[arg(long, value_enum, default_value_t = BenchKernel::Tuned)]
    pub kernel: BenchKernel,
    /// Register blocks for the tuned kernel, PXxOCV: x outputs × vec4 output-channel groups
    /// per invocation, optionally `lL` (interleaved), `yPY` (output rows) and `s` (subgroup
    /// form), e.g. 12x4s, `si` (image form of 1×1 blocks, e.g. 8x8si), or `PXxOCVw` for
    /// Winograd F(2×2,3×3) on 3×3 stride-1 convs, e.g. 8x4w (repeatable, to compare).
    /// (default: the adapter's own choice, see README).
    #[arg(long = "block")]
    pub blocks: Vec<String>,
    /// With --model: also the N slowest nodes, one row each (name, kind, median ms), to see
    /// where a model's time goes.
    #[arg(long, default_value_t = 0)]
    pub nodes: usize,
    /// Timed runs after one warm-up run.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: i64,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchKernel {
    Naive,
    Tuned,
    All,
}

/// Options shared by every command.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Image file (PNG, JPEG, GIF, BMP, TIFF, WebP). Without one, a built-in scene is used.
    pub image: Option<PathBuf>,
    /// Seed for the weights: reproduces torch.manual_seed(N) + default nn.Conv2d init.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: i64,
    /// Feed channels as B, G, R like cv2.imread (the tutorial's order); default R, G, B.
    #[arg(long)]
    pub bgr: bool,
    /// Convolution kernel.
    #[arg(long, value_enum, default_value_t = KernelArg::Tuned)]
    pub kernel: KernelArg,
    /// Trained weights: a PyTorch state_dict saved with safetensors.torch.save_file
    /// (F32, F16 or BF16). Without --arch, every 4-D *.weight becomes a stride-1 conv.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// The network, one `[NAME=]OP` per layer: conv(cin,cout,k[,stride=S][,pad=P]),
    /// a tensor prefix from --weights with optional (stride=S,pad=P), relu, maxpool(k[,s][,ceil]).
    #[arg(long)]
    pub arch: Option<String>,
    /// Input normalisation: (pixel/255 - mean) / std per channel, in the channel order used.
    #[arg(long, value_name = "A,B,C")]
    pub mean: Option<String>,
    #[arg(long, value_name = "A,B,C")]
    pub std: Option<String>,
    /// Feed this tensor instead of an image: a safetensors file holding `input` [1,C,H,W].
    #[arg(long, conflicts_with = "image")]
    pub input_tensor: Option<PathBuf>,
    /// Run an ONNX model (a CNN exported with torch.onnx.export, PaddlePaddle, tf2onnx…)
    /// instead of a chain: every node a page, and its predictions.
    #[arg(long, conflicts_with_all = ["weights", "arch"])]
    pub model: Option<PathBuf>,
    /// How an image meets the model's input size: crop (cover, cut the centre), stretch, pad.
    #[arg(long, value_enum, default_value_t = FitArg::Crop)]
    pub fit: FitArg,
    /// Input size HxW for a model whose height and width are dynamic.
    #[arg(long = "size", value_name = "HxW")]
    pub model_size: Option<String>,
    /// Class labels, one per line, for a model whose metadata has none.
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FitArg {
    Crop,
    Stretch,
    Pad,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelArg {
    Naive,
    Tuned,
}

impl From<KernelArg> for ConvKernel {
    fn from(k: KernelArg) -> Self {
        match k {
            KernelArg::Naive => ConvKernel::Naive,
            KernelArg::Tuned => ConvKernel::Tuned,
        }
    }
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Directory for input.png, conv1.png, ... (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write every tensor (input, weights, each layer's output) to this safetensors file.
    #[arg(long)]
    pub tensors: Option<PathBuf>,
    /// Also run the CPU reference and print the largest |GPU - CPU| difference per layer.
    #[arg(long)]
    pub verify: bool,
    /// Also write each conv layer's weights as kernels-LAYER.png (Cout × Cin tiles, blue-white-red).
    #[arg(long)]
    pub kernels: bool,
}

impl CommonArgs {
    pub fn order(&self) -> ChannelOrder {
        if self.bgr { ChannelOrder::Bgr } else { ChannelOrder::Rgb }
    }

    /// The run these options describe (numbers parsed and checked).
    pub fn source(&self) -> Result<Source> {
        let s = Source {
            image: self.image.clone(),
            input_tensor: self.input_tensor.clone(),
            order: self.order(),
            mean: self.mean.as_deref().map(|s| parse_triple("mean", s)).transpose()?,
            std: self.std.as_deref().map(|s| parse_triple("std", s)).transpose()?,
            weights: self.weights.clone(),
            arch: self.arch.clone(),
            seed: self.seed,
            kernel: self.kernel.into(),
            model: self.model.clone(),
            fit: match self.fit {
                FitArg::Crop => crate::source::Fit::Crop,
                FitArg::Stretch => crate::source::Fit::Stretch,
                FitArg::Pad => crate::source::Fit::Pad,
            },
            size: self
                .model_size
                .as_deref()
                .map(|s| crate::bench::parse_size(s).map(|(h, w)| (h as usize, w as usize)))
                .transpose()?,
            labels: self.labels.clone(),
        };
        s.check()?;
        Ok(s)
    }
}

/// The largest |GPU − CPU| difference `--verify` accepts, relative to the layer's largest
/// value when that exceeds 1: the README's promise of matching PyTorch within 1e-5.
pub const VERIFY_TOLERANCE: f32 = 1e-5;

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn progress_bar(len: u64, msg: &str, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len).with_message(msg.to_string());
    bar.set_style(
        indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// `convscope export`.
pub fn run_export(a: &ExportArgs) -> Result<()> {
    // Check everything the user gave before touching the GPU.
    crate::env::EngineEnv::from_env()?;
    let src = a.common.source()?;
    if src.model.is_some() {
        return model::run_export_model(a, &src);
    }
    let input = src.load_input()?;
    let net = src.network()?;
    net.shapes(input.tensor.shape)?;
    if a.kernels {
        for layer in &net.layers {
            if let crate::network::Op::Conv(c) = &layer.op {
                crate::kernels::check_size(c, &layer.name, crate::kernels::MAX_PIXELS)?;
            }
        }
    }
    prepare_outputs(a)?;

    let ctx = GpuContext::headless()?;
    say!("adapter: {}", ctx.describe());
    say!("input: {} ({})", input.name, input.tensor.shape);
    let mut engine = Engine::new(&ctx)?;
    let bar = progress_bar(
        net.layers.len() as u64,
        "layers (large image: running in bands)",
        "{msg} {bar:30} {pos}/{len} {elapsed}",
    );
    let progress = |done: usize, _: usize, _: &crate::exec::Activations| {
        bar.set_position(done as u64);
        true
    };
    let opts = RunOptions { progress: Some(&progress), ..Default::default() };
    let acts = engine.compute(&ctx, &net, src.kernel, &input.tensor, &opts)?;
    bar.finish_and_clear();
    let bands = acts.band_counts();
    if bands.iter().any(|&n| n > 1) {
        say!(
            "large image: layers ran in {} row bands to fit the GPU's buffer limits",
            bands.iter().max().unwrap_or(&1)
        );
    }
    print_layers(&acts, &net, src.kernel);
    say!("chain: {:.2} ms wall (submit to done)", acts.wall_ms);

    // Tensors and verification need CPU copies; read them before the buffers are freed.
    let outs: Vec<Tensor> = if a.tensors.is_some() || a.verify {
        (1..acts.shapes.len()).map(|i| acts.read(&ctx, i)).collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    write_grids(&ctx, &mut engine, acts, &a.out, src.order.rgb_indices())?;
    if a.kernels {
        write_kernels(&net, &a.out, src.order)?;
    }
    if a.verify {
        verify(&net, &input.tensor, &outs)?;
    }
    if let Some(t) = &a.tensors {
        export::write_tensors(t, &net, &input.tensor, &outs)?;
        say!("wrote {}", t.display());
    }
    Ok(())
}

/// One line per layer: name, shape, time and kernel.
fn print_layers(acts: &crate::exec::Activations, net: &Network, kernel: ConvKernel) {
    for i in 1..acts.shapes.len() {
        let time = match &acts.node_ms {
            Some((ms, timing)) => format!("{:9.2} ms {}", ms[i - 1], timing.name()),
            None => "   (no per-layer times on this adapter)".to_string(),
        };
        let what = match &net.layers[i - 1].op {
            crate::network::Op::Conv(_) => format!("{} kernel", kernel.name()),
            op => op.kind().to_string(),
        };
        say!("{:<8} {:<16} {time}  [{what}]", acts.names[i], acts.shapes[i].to_string());
    }
}

/// Writes every tensor's grid as `NAME.png`, freeing each tensor once drawn (large images
/// then fit in memory).
fn write_grids(
    ctx: &GpuContext,
    engine: &mut Engine,
    mut acts: crate::exec::Activations,
    out: &std::path::Path,
    rgb: [usize; 3],
) -> Result<()> {
    // Each layer is freed once its grid is written, which keeps large images in memory.
    engine.exec.trim();
    for i in 0..acts.shapes.len() {
        let grid = engine.vis.render(ctx, &acts, i, Look::default(), rgb)?;
        let path = out.join(format!("{}.png", acts.names[i]));
        write_texture_png(ctx, &grid.texture, &path)?;
        let scale = if grid.layout.step > 1 { format!(", scale 1/{}", grid.layout.step) } else { String::new() };
        say!(
            "wrote {} ({}x{}, {}x{} tiles{scale})",
            path.display(),
            grid.layout.width,
            grid.layout.height,
            grid.layout.rows,
            grid.layout.cols
        );
        drop(grid);
        acts.release(i);
        engine.exec.trim();
        ctx.wait()?;
    }
    Ok(())
}

/// Creates the output directory and checks the `--tensors` file's directory exists.
fn prepare_outputs(a: &ExportArgs) -> Result<()> {
    export::prepare_out_dir(&a.out)?;
    if let Some(t) = &a.tensors
        && let Some(parent) = t.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        bail!("cannot write {}: directory {} does not exist", t.display(), parent.display());
    }
    Ok(())
}

/// `export --kernels`: every conv layer's kernels as PNG (refused above the size cap).
fn write_kernels(net: &Network, out: &std::path::Path, order: ChannelOrder) -> Result<()> {
    let mut cin_is_image = true;
    for layer in &net.layers {
        if let crate::network::Op::Conv(c) = &layer.op {
            let rgb = (cin_is_image && c.cin == 3).then_some(order.rgb_indices());
            crate::kernels::check_size(c, &layer.name, crate::kernels::MAX_PIXELS)?;
            let path = out.join(format!("kernels-{}.png", layer.name));
            export::write_png(&path, &crate::kernels::render(c, rgb))?;
            say!("wrote {} ({} x {} kernels of {}x{})", path.display(), c.cout, c.cin, c.k, c.k);
        }
        // Only layers that keep the image's channels (not convs) leave it a colour image.
        cin_is_image &= !matches!(layer.op, crate::network::Op::Conv(_) | crate::network::Op::BatchNorm { .. });
    }
    Ok(())
}

/// Runs the CPU reference and prints the largest difference per layer; fails when any
/// layer differs by more than [`VERIFY_TOLERANCE`] · max(1, max |cpu|), or by NaN.
fn verify(net: &Network, input: &Tensor, gpu: &[Tensor]) -> Result<()> {
    let cpu = reference::forward(net, input)?;
    if cpu.len() != gpu.len() {
        bail!("verify: {} GPU layers but {} CPU layers", gpu.len(), cpu.len());
    }
    let mut failed = Vec::new();
    for ((layer, g), c) in net.layers.iter().zip(gpu).zip(&cpu) {
        let d = max_abs_diff(&g.data, &c.data);
        let scale = c.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        say!("verify {:<8} max |gpu - cpu| = {d:.3e}", layer.name);
        if d.is_nan() || d > VERIFY_TOLERANCE * scale {
            failed.push(format!("{} ({d:e})", layer.name));
        }
    }
    if !failed.is_empty() {
        bail!(
            "GPU and CPU results differ by more than {VERIFY_TOLERANCE:e} (relative to values above 1) in {}: the GPU driver computes wrongly",
            failed.join(", ")
        );
    }
    Ok(())
}

/// Dispatches a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Export(a)) => run_export(&a),
        Some(Command::Bench(b)) => run_bench(&b),
        None => run_viewer(&cli.view),
    }
}

/// The interactive viewer.
pub fn run_viewer(args: &CommonArgs) -> Result<()> {
    crate::viewer::run(args.source()?)
}

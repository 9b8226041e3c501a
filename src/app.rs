//! The command line: argument definitions and the commands they run (view, export).

use crate::conv::{Block, Engine, Kernel};
use crate::gpu::GpuContext;
use crate::input::{self, ChannelOrder};
use crate::network::Network;
use crate::tensor::{Tensor, max_abs_diff};
use crate::visual::{Look, Visualizer, write_texture_png};
use crate::{export, reference};
use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Prints a line to stdout; a closed pipe (`convscope ... | head`) ends the program
/// quietly instead of panicking.
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
    /// Input sizes as HxW (repeatable).
    #[arg(long = "size", default_values_t = ["225x400".to_string(), "1080x1920".to_string(), "2160x3840".to_string()])]
    pub sizes: Vec<String>,
    /// Which kernel(s) to time.
    #[arg(long, value_enum, default_value_t = BenchKernel::All)]
    pub kernel: BenchKernel,
    /// Register blocks for the tuned kernel, PXxOCV: x outputs × vec4 output-channel groups
    /// per invocation (repeatable, to compare).
    /// (default: the adapter's own choice, see README).
    #[arg(long = "block")]
    pub blocks: Vec<String>,
    /// Timed runs after one warm-up run.
    #[arg(long, default_value_t = 5)]
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
}

/// Parses `a,b,c` (three numbers) for --mean/--std.
pub fn parse_triple(flag: &str, s: &str) -> Result<[f32; 3]> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>().map_err(|_| anyhow::anyhow!("--{flag} {s:?}: {x:?} is not a number")))
        .collect::<Result<_>>()?;
    let [a, b, c] = v[..] else { bail!("--{flag} {s:?}: give three numbers, e.g. 0.485,0.456,0.406") };
    if !(a.is_finite() && b.is_finite() && c.is_finite()) {
        bail!("--{flag} {s:?}: values must be finite");
    }
    Ok([a, b, c])
}

/// Reads the `input` tensor of a safetensors file as `[1, C, H, W]`.
pub fn load_input_tensor(path: &std::path::Path) -> Result<Tensor> {
    let sd = crate::weights::StateDict::open(path)?;
    let p = sd.get("input").ok_or_else(|| anyhow::anyhow!("{} has no tensor named `input`", path.display()))?;
    match p.shape[..] {
        [1, c, h, w] if c > 0 && h > 0 && w > 0 => Ok(Tensor::new(crate::tensor::Shape::new(c, h, w), p.data.clone())),
        _ => bail!("{}: `input` has shape {:?}; expected [1, C, H, W]", path.display(), p.shape),
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelArg {
    Naive,
    Tuned,
}

impl From<KernelArg> for Kernel {
    fn from(k: KernelArg) -> Self {
        match k {
            KernelArg::Naive => Kernel::Naive,
            KernelArg::Tuned => Kernel::Tuned,
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

    /// The input tensor and a name for it.
    pub fn load_input(&self) -> Result<(Tensor, String)> {
        self.load_input_from(self.image.as_deref())
    }

    /// The input tensor from `image` (or --input-tensor, or the built-in scene), normalised
    /// with --mean/--std when given.
    pub fn load_input_from(&self, image: Option<&std::path::Path>) -> Result<(Tensor, String)> {
        let mean = self.mean.as_deref().map(|s| parse_triple("mean", s)).transpose()?;
        let std = self.std.as_deref().map(|s| parse_triple("std", s)).transpose()?;
        if let Some(sd) = std
            && sd.contains(&0.0)
        {
            bail!("--std must not contain 0");
        }
        if let (None, Some(p)) = (image, &self.input_tensor) {
            if mean.is_some() || std.is_some() {
                bail!("--mean/--std apply to images; an --input-tensor is used as it is");
            }
            return Ok((load_input_tensor(p)?, p.display().to_string()));
        }
        let (mut t, name) = match image {
            Some(p) => (input::tensor_from_rgb8(&input::load_rgb8(p)?, self.order()), p.display().to_string()),
            None => (input::tensor_from_rgb8(&input::builtin_scene(), self.order()), "built-in scene".into()),
        };
        if mean.is_some() || std.is_some() {
            let (m, sd) = (mean.unwrap_or([0.0; 3]), std.unwrap_or([1.0; 3]));
            input::normalise(&mut t, m, sd);
        }
        Ok((t, name))
    }

    /// The network these options describe, with seeded layers drawn from `seed`.
    pub fn network_with_seed(&self, seed: i64) -> Result<Network> {
        let weights = self.weights.as_deref().map(crate::weights::StateDict::open).transpose()?;
        let net = crate::arch::build(self.arch.as_deref(), weights.as_ref(), seed)?;
        net.check_finite()?;
        Ok(net)
    }

    pub fn network(&self) -> Result<Network> {
        self.network_with_seed(self.seed)
    }
}

/// `convscope export`.
pub fn run_export(a: &ExportArgs) -> Result<()> {
    // Check everything the user gave before touching the GPU.
    let (input, input_name) = a.common.load_input()?;
    let net = a.common.network()?;
    net.shapes(input.shape)?;
    export::prepare_out_dir(&a.out)?;
    if let Some(t) = &a.tensors
        && let Some(parent) = t.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        bail!("cannot write {}: directory {} does not exist", t.display(), parent.display());
    }

    let ctx = GpuContext::headless()?;
    say!("adapter: {}", ctx.describe());
    say!("input: {input_name} ({})", input.shape);
    let mut engine = Engine::new(&ctx);
    let gnet = engine.upload(&ctx, &net, Block::for_adapter(&ctx.info))?;
    let kernel: Kernel = a.common.kernel.into();
    let bar =
        indicatif::ProgressBar::new(net.layers.len() as u64).with_message("layers (large image: running in bands)");
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let acts = engine.run_with_progress(&ctx, &gnet, &input, kernel, &|done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let bands = acts.band_counts();
    if bands.iter().any(|&n| n > 1) {
        say!(
            "large image: layers ran in {} row bands to fit the GPU's buffer limits",
            bands.iter().max().unwrap_or(&1)
        );
    }
    for i in 1..acts.shapes.len() {
        let time = match &acts.gpu_ms {
            Some(ms) => format!("{:9.2} ms GPU", ms[i - 1]),
            None => "   (no GPU timestamps on this adapter)".to_string(),
        };
        let what = match &net.layers[i - 1].op {
            crate::network::Op::Conv(_) => format!("{} kernel", kernel.name()),
            op => op.kind().to_string(),
        };
        say!("{:<8} {:<16} {time}  [{what}]", acts.names[i], acts.shapes[i].to_string());
    }
    say!("chain: {:.2} ms wall (submit to done)", acts.wall_ms);

    // Tensors and verification need CPU copies; read them before the buffers are freed.
    let outs: Vec<Tensor> = if a.tensors.is_some() || a.verify {
        (1..acts.shapes.len()).map(|i| acts.read(&ctx, i)).collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    // Each layer is freed once its grid is written, which keeps large images in memory.
    engine.clear_cache();
    let mut acts = acts;
    let vis = Visualizer::new(&ctx);
    let rgb = a.common.order().rgb_indices();
    for i in 0..acts.shapes.len() {
        let grid = vis.render(&ctx, &acts, i, Look::default(), rgb)?;
        let path = a.out.join(format!("{}.png", acts.names[i]));
        write_texture_png(&ctx, &grid.texture, &path)?;
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
        acts.bands[i].clear();
        ctx.wait()?;
    }
    if a.kernels {
        let mut cin_is_image = true;
        for layer in &net.layers {
            if let crate::network::Op::Conv(c) = &layer.op {
                let rgb = (cin_is_image && c.cin == 3).then_some(rgb);
                let path = a.out.join(format!("kernels-{}.png", layer.name));
                export::write_png(&path, &crate::kernels::render(c, rgb))?;
                say!("wrote {} ({} x {} kernels of {}x{})", path.display(), c.cout, c.cin, c.k, c.k);
            }
            // Only layers that keep the image's channels (not convs) leave it a colour image.
            cin_is_image &= !matches!(layer.op, crate::network::Op::Conv(_) | crate::network::Op::BatchNorm { .. });
        }
    }
    if a.verify {
        verify(&net, &input, &outs)?;
    }
    if let Some(t) = &a.tensors {
        export::write_tensors(t, &net, &input, &outs)?;
        say!("wrote {}", t.display());
    }
    Ok(())
}

/// `convscope bench`.
pub fn run_bench(b: &BenchArgs) -> Result<()> {
    let sizes = b.sizes.iter().map(|s| crate::bench::parse_size(s)).collect::<Result<Vec<_>>>()?;
    let kernels = match b.kernel {
        BenchKernel::Naive => vec![Kernel::Naive],
        BenchKernel::Tuned => vec![Kernel::Tuned],
        BenchKernel::All => vec![Kernel::Naive, Kernel::Tuned],
    };
    if let Some(p) = &b.image {
        input::load_rgb8(p)?;
    }
    let mut blocks = b.blocks.iter().map(|s| crate::bench::parse_block(s)).collect::<Result<Vec<_>>>()?;
    let ctx = GpuContext::headless()?;
    if blocks.is_empty() {
        blocks.push(Block::for_adapter(&ctx.info));
    }
    let timing = if ctx.timestamps { "GPU timestamps" } else { "wall time, submit to done (no timestamp queries)" };
    if !b.json {
        say!("adapter: {}", ctx.describe());
        say!("median of {} runs after 1 warm-up; timing: {timing}", b.runs.max(1));
        say!("{:<7} {:<6} {:<11} {:<7} {:>11} {:>9}", "kernel", "block", "size", "layer", "ms", "GFLOP/s");
    }
    let spec = crate::bench::BenchSpec { image: b.image.clone(), sizes, kernels, blocks, runs: b.runs, seed: b.seed };
    // A progress bar on stderr (hidden when stderr is not a terminal).
    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:20} run {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let result = crate::bench::run(
        &ctx,
        &spec,
        &mut |r| {
            bar.suspend(|| {
                if b.json {
                    say!("{}", r.json());
                } else {
                    say!(
                        "{:<7} {:<6} {:<11} {:<7} {:>11.2} {:>9.2}",
                        r.kernel,
                        r.block,
                        r.size,
                        r.layer,
                        r.ms,
                        r.gflops
                    );
                }
            })
        },
        &|what, done, total| {
            bar.set_message(what.to_string());
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    );
    bar.finish_and_clear();
    result
}

/// Runs the CPU reference and prints the largest difference per layer; fails above 1e-4.
fn verify(net: &Network, input: &Tensor, gpu: &[Tensor]) -> Result<()> {
    let cpu = reference::forward(net, input)?;
    let mut worst = 0.0f32;
    for ((layer, g), c) in net.layers.iter().zip(gpu).zip(&cpu) {
        let d = max_abs_diff(&g.data, &c.data);
        worst = worst.max(d);
        say!("verify {:<8} max |gpu - cpu| = {d:.3e}", layer.name);
    }
    if worst.is_nan() || worst > 1e-4 {
        bail!("GPU and CPU results differ by {worst:e} (more than 1e-4): the GPU driver computes wrongly");
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
    crate::viewer::run(args)
}

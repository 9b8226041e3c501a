//! Helpers shared by the integration tests: fixtures and golden tensors.
#![allow(dead_code)]

use convscope::exec::{Activations, Executor};
use convscope::gpu::GpuContext;
use convscope::network::Network;
use convscope::ops::ConvKernel;
use convscope::ops::conv_tuned::Block;
use convscope::tensor::{Shape, Tensor};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A safetensors file of F32 tensors.
pub struct Golden {
    bytes: Vec<u8>,
}

impl Golden {
    /// A fixture by name, or a file by absolute path.
    pub fn open(name: &str) -> Self {
        let p = if Path::new(name).is_absolute() { PathBuf::from(name) } else { fixture(name) };
        let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
        Self { bytes }
    }
    fn st(&self) -> safetensors::SafeTensors<'_> {
        safetensors::SafeTensors::deserialize(&self.bytes).expect("valid safetensors")
    }
    pub fn vec(&self, name: &str) -> Vec<f32> {
        let st = self.st();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("tensor {name} missing"));
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
        bytemuck::pod_collect_to_vec(t.data())
    }
    /// Every tensor's name.
    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.st().names().into_iter().map(|s| s.to_string()).collect();
        n.sort();
        n
    }
    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.st().tensor(name).expect("tensor").shape().to_vec()
    }
    /// A `[1, C, H, W]` tensor.
    pub fn tensor(&self, name: &str) -> Tensor {
        let s = self.shape(name);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0], 1);
        Tensor::new(Shape::new(s[1], s[2], s[3]), self.vec(name))
    }
}

/// Asserts |a - b| <= tol elementwise, naming the worst element.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0.0f32, 0usize);
    // A NaN difference must count as the worst.
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        if d.is_nan() || d > worst.0 {
            worst = (d, i);
        }
    }
    assert!(
        worst.0 <= tol,
        "{what}: max |diff| {} at element {} (got {}, want {}) exceeds {tol}",
        worst.0,
        worst.1,
        got[worst.1],
        want[worst.1]
    );
    eprintln!("{what}: max |diff| = {:.3e}", worst.0);
}

/// The built `convscope` binary.
/// The built `convscope` binary, with autotuning off (blocks never change results, the
/// autotune tests turn it on, and measuring in every run made the suite minutes slower) and
/// its cache, when on, in a folder of the tests' own.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_convscope"));
    c.env("CONVSCOPE_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("autotune-cache"));
    c.env("CONVSCOPE_AUTOTUNE", "0");
    c
}

pub fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn gpu_available() -> bool {
    convscope::gpu::test_context().is_some()
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run convscope");
    eprintln!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

/// Fails unless the run failed with exactly one `error:` line containing `needle`.
pub fn assert_one_line_error(out: &Output, needle: &str) {
    assert!(!out.status.success(), "expected failure");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.contains("XDG_RUNTIME_DIR")).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(needle), "{err:?} should mention {needle:?}");
    assert!(!err.contains("panicked"));
}

/// Uploads `net` for `kernel` with `block` and runs it on `input`, keeping every tensor.
pub fn run_net(
    exec: &mut Executor,
    ctx: &GpuContext,
    net: &Network,
    input: &Tensor,
    kernel: ConvKernel,
    block: Block,
) -> Activations {
    let g = exec.upload_with_block(ctx, &net.graph(), kernel, block).expect("upload");
    exec.run(ctx, &g, input).expect("run")
}

/// An executor that ignores the environment (tests set their own limits).
pub fn executor(ctx: &GpuContext) -> Executor {
    Executor::with_env(ctx, &convscope::env::EngineEnv::default())
}

/// Runs `graph` on `input` on the GPU (tuned kernels) and compares its last node's tensor,
/// whole, with the CPU twins' within `tol`.
pub fn assert_graph_matches_cpu(
    ctx: &GpuContext,
    what: &str,
    graph: &convscope::graph::Graph,
    input: &Tensor,
    tol: f32,
) {
    let cpu = convscope::reference::forward_graph(graph, input).expect("CPU forward");
    let mut exec = executor(ctx);
    let g = exec.upload(ctx, graph, ConvKernel::Tuned).expect("upload");
    let acts = exec.run(ctx, &g, input).expect("run");
    let last = graph.nodes.len();
    let got = acts.read(ctx, last).expect("read back");
    let want = &cpu[last - 1];
    assert_eq!(got.shape, want.shape, "{what}");
    assert_close(what, &got.data, &want.data, tol);
}

/// A graph of `(name, op, inputs)` nodes, each writing the tensor of its name.
pub fn graph_of(ops: Vec<(&str, convscope::graph::Op, Vec<&str>)>) -> convscope::graph::Graph {
    convscope::graph::Graph {
        input: convscope::graph::INPUT.into(),
        nodes: ops
            .into_iter()
            .map(|(n, op, ins)| convscope::graph::Node {
                name: n.into(),
                op,
                inputs: ins.into_iter().map(String::from).collect(),
                output: n.into(),
            })
            .collect(),
    }
}

/// `c × h × w` values uniform in [-1, 1) from the PyTorch-compatible generator seeded `seed`.
pub fn random_input(seed: i64, c: usize, h: usize, w: usize) -> Tensor {
    let mut r = convscope::torch_init::Mt19937::new(seed);
    Tensor::new(Shape::new(c, h, w), r.uniform(c * h * w, -1.0, 1.0))
}

/// A BatchNorm over `c` channels with parameters from the generator seeded `seed`: scale in
/// [0.5, 1.5), shift in [-0.5, 0.5), mean in [-0.2, 0.2), variance in [0.5, 2).
pub fn random_bn(seed: i64, c: usize) -> convscope::graph::Op {
    let mut r = convscope::torch_init::Mt19937::new(seed);
    let mut w = |lo: f64, hi: f64| r.uniform(c, lo, hi);
    convscope::graph::Op::BatchNorm {
        weight: w(0.5, 1.5),
        bias: w(-0.5, 0.5),
        mean: w(-0.2, 0.2),
        var: w(0.5, 2.0),
        eps: 1e-5,
    }
}

/// How many of `a`'s values differ in their bits from `b`'s (same length asserted).
pub fn differing_bits(what: &str, a: &[f32], b: &[f32]) -> usize {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count()
}

//! Per-layer choice of the tuned convolution's register block, by measurement on the
//! adapter at hand (as cuDNN's benchmark mode and burn's autotune do): the first time a
//! layer shape runs, a few candidate blocks are compiled and timed (on a CPU adapter on a
//! slice of its rows, on a GPU on the whole layer), within a time budget, and the fastest is
//! kept in memory and on disk (`~/.cache/convscope/autotune-v7.json`, keyed by adapter,
//! driver and shape). A corrupt or stale file is ignored and rewritten. Every direct block
//! computes the same sums in the same order; the Winograd and split forms differ from them
//! by float rounding.

use super::{Executor, GpuNetwork, RunOptions, Timing, TunedLayer};
use crate::gpu::GpuContext;
use crate::graph::Graph;
use crate::ops::conv_tuned::Block;
use crate::ops::{ConvKernel, GpuNode};
use crate::plan::Keep;
use crate::tensor::{Shape, Tensor};
use anyhow::{Context as _, Result, anyhow};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// File format version: a file of another version is ignored. 2: subgroup blocks (`s`)
/// became candidates, so choices measured without them are measured again. 3: the kernels
/// changed under the same block names (halo rows, taps and 1×1 channel groups summed
/// before accumulating), which moves the best block (conv3 of the chain: 8x6s before,
/// 12x4s now). 4: Winograd blocks (`8x4w`) became candidates for 3×3 stride-1 convs.
/// 5: GPUs time whole layers with a smaller margin (choices made on 16-row probes were
/// up to 1.2× off on an H200). 6: 64-bit storage access on CPU adapters, and 1×1 convs
/// run on their plane as one row (the same blocks compare differently). 7: the image forms
/// (`8x8si`, `12x4si`, `8x4wi`: input rows, and vec4 weights, read as images) became the
/// CPU adapters' defaults and candidates in place of the forms without images.
pub const VERSION: u64 = 7;
/// Tuning time allowed per call (compiling and timing candidates); shapes left over keep
/// the adapter's default block this time and are tuned on a later run.
pub const BUDGET_MS: f64 = 800.0;
/// A candidate replaces the layer's default block only when it takes less than this
/// fraction of the default's time: on a CPU adapter, where a busy machine moves timings by
/// tens of percent; GPU timestamps of a whole layer repeat within a few percent (an H200:
/// 0.072–0.073 ms over three runs), and there a margin this wide kept blocks 1.2× slower
/// than the best (the chain's conv3 at 225×400: 8x2 0.200 ms against 16x2's 0.169).
pub fn margin(cpu: bool) -> f64 {
    if cpu { 0.85 } else { 0.95 }
}
/// Timed runs of each candidate (in turns; the best counts).
pub const ROUNDS: usize = 5;
/// Output rows the candidates are timed on at least (the cost per row of a layer hardly
/// varies), more for thin layers: see [`probe_rows`].
pub const PROBE_ROWS: usize = 16;
/// Arithmetic a probe does at least, in FLOP. 16 rows of the tutorial's 3→12 conv were
/// 0.2 ms on lavapipe, where noise chose a block 3× slower on the whole layer.
pub const PROBE_FLOP: f64 = 1e8;
/// The same on a GPU, which a slice does not fill as the layer does: on an H200 a 16-row
/// probe of the chain's conv2 (12→24, 5×5, 396 wide) chose 8x1, whose twice as many
/// invocations help only a probe that leaves most cores idle: 0.065 ms on the whole layer
/// against 8x2's 0.058; a 2 GFLOP probe of conv3 (90 of its 213 rows) kept 8x2 at 0.200
/// against 16x2's 0.169. 10 GFLOP is the whole layer for most convs, 0.4 ms on an H200.
pub const GPU_PROBE_FLOP: f64 = 1e10;

/// Output rows to time a conv of shape `c` on at `out_w` × `out_h` outputs: at least
/// [`PROBE_ROWS`] and `flop` ([`PROBE_FLOP`] on a CPU adapter, [`GPU_PROBE_FLOP`] on a
/// GPU), and enough that no candidate (16 outputs a row at
/// most) runs in the packed form ([`crate::ops::conv_tuned::PACK_BELOW`]) on the probe
/// when it does not on the layer: conv2 of the chain, probed on 18 rows, ran its 8x6s
/// packed and 12x4s won, but on the whole layer 8x6s was 1.3× faster. At most the layer.
pub fn probe_rows(c: &crate::network::Conv2d, out_w: usize, out_h: usize, flop: f64) -> usize {
    let per_row = 2.0 * (c.cin * c.cout * c.k * c.k * out_w.max(1)) as f64;
    let rows = (flop / per_row).ceil() as usize;
    let unpacked = crate::ops::conv_tuned::PACK_BELOW.div_ceil(out_w.div_ceil(16).max(1));
    rows.max(unpacked).clamp(PROBE_ROWS, out_h.max(PROBE_ROWS)).min(out_h.max(1))
}

/// The blocks tried for a layer, the adapter's default first. On CPU adapters
/// (lavapipe) wide blocks keep the 8-lane vectors busy; interleaved blocks (`l8`: eight
/// invocations load consecutive addresses) won for 1×1 convolutions, adjacent outputs for
/// larger kernels (they reuse each loaded input K times). With subgroup operations a CPU
/// adapter tries subgroup forms (`s`), whose weight loads are 8× fewer; which block wins
/// depends on the layer (3→12 channels: 16x3s; 24→48: 12x4s; 1×1 64→256: 8x8s, measured
/// on lavapipe), in their image form (`si`, `wi`: input rows read as images, see
/// `conv_tuned::image_form`; 5×5 24→48 at 217×392 12x4s 68.3 ms, 16x3si 59.4; Winograd 3×3
/// 64→64 at 56² 3.4 → 2.6 ms). 3×3 stride-1 convs also try the Winograd form `8x4w` (64→64 at 56²: 3.96
/// ms against 12x4s's 4.70; 12x4w no faster, and compiling takes 2–4 s on lavapipe, so
/// one). GPUs prefer moderate blocks, and on layers with few outputs (a ResNet's 14×14
/// and 7×7 stages) the split form (`1xOCVkS`), whose input channels are shared by S
/// invocations: one invocation per block of outputs leaves most of a large GPU idle there
/// (an H200: 256→256 3×3 at 14² 0.27 ms in its best direct block, 8x1, 0.097 in 1x1k16;
/// 512→512 at 7² 0.103 in 1x1k32; in a sweep of 10 split blocks over 8 shapes the best was
/// always one of these four).
pub fn candidates(cpu: bool, subgroups: bool, k: usize, stride: usize, default: Block) -> Vec<Block> {
    let b = |s: &str| Block::parse(s).ok();
    let names: &[&str] = match (cpu, subgroups, k) {
        // Image forms (which run without images where they do not apply: the same shader).
        (true, true, 1) => &["8x8si", "4x8si", "8x4l8"],
        // Few: on lavapipe compiling a wide unrolled block takes up to a second or two.
        (true, true, _) => &["16x3si", "12x4si", "8x6si", "8x4si"],
        (true, false, 1) => &["8x3l8", "8x4l8", "8x4", "24x3"],
        (true, false, _) => &["24x3", "16x4", "8x4"],
        (false, _, 1) => &["8x2l8", "4x2l8", "8x2", "4x4", "1x1k16", "1x2k16", "1x1k32", "1x2k32"],
        (false, _, _) => &["8x2", "4x2", "8x1", "16x2", "1x1k16", "1x2k16", "1x1k32", "1x2k32"],
    };
    let wino: &[&str] =
        if cpu && subgroups && crate::ops::conv_tuned::winograd_applies(k, stride) { &["8x4wi"] } else { &[] };
    let mut v = vec![default];
    v.extend(names.iter().chain(wino).filter_map(|n| b(n)).filter(|x| *x != default));
    v
}

/// The block a conv layer starts with before it is measured, and the one a candidate must
/// beat by [`margin`]: the adapter's default, except 1×1 convs on a CPU adapter with
/// subgroups, whose best block depends on the width (lavapipe, `bench --shape`: 64→256 at
/// 56² 8x8s 4.9 ms against 12x4s 6.4; 256→256 at 14² 4x8s 1.3 ms against 8x8s 2.3; 512→1280
/// at 1×1 4x8s 0.9 ms, its channel blocks packed into workgroups, against 8x4l8's 2.9); in
/// their image form where it applies (`8x8si`, `4x8si`; 1×1 64→256 at 56² 8x8s 2.4–3.7 ms
/// against 8x8si 2.0–2.8, 512→128 at 28² 1.8–3.7 against 1.4–2.2, three interleaved runs).
pub fn layer_default(adapter_default: Block, cpu: bool, subgroups: bool, k: usize, out_w: usize) -> Block {
    let name = match (cpu && subgroups, k, out_w) {
        (true, 1, 24..) => "8x8si",
        (true, 1, _) => "4x8si",
        _ => return adapter_default,
    };
    Block::parse(name).unwrap_or(adapter_default)
}

/// What the adapter is, for the cache key: a choice made on one machine is never used on
/// another.
pub fn adapter_key(info: &wgpu::AdapterInfo) -> String {
    format!("{} | {:?} | {} {}", info.name, info.backend, info.driver, info.driver_info)
}

/// A conv layer's shape for the cache key: `cin,cout,k,stride,pad,HxW` (input size).
pub fn shape_key(cin: usize, cout: usize, k: usize, stride: usize, pad: usize, h: usize, w: usize) -> String {
    format!("{cin},{cout},{k},{stride},{pad},{h}x{w}")
}

/// A measured choice.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    pub block: Block,
    /// Time of the probe with this block, ms.
    pub ms: f64,
}

/// The choices, in memory and (when a directory is given) on disk.
#[derive(Debug, Default)]
pub struct TuneCache {
    path: Option<PathBuf>,
    entries: BTreeMap<(String, String), Choice>,
    /// Why the file was not used, when it was not (corrupt, another version).
    pub ignored: Option<String>,
}

impl TuneCache {
    /// The cache directory: `CONVSCOPE_CACHE_DIR`, else `$XDG_CACHE_HOME/convscope`, else
    /// `~/.cache/convscope`; None when none can be named.
    pub fn default_dir(get: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if let Some(d) = non_empty("CONVSCOPE_CACHE_DIR") {
            return Some(PathBuf::from(d));
        }
        if let Some(d) = non_empty("XDG_CACHE_HOME") {
            return Some(Path::new(&d).join("convscope"));
        }
        non_empty("HOME").map(|h| Path::new(&h).join(".cache").join("convscope"))
    }

    /// Loads the cache file in `dir` (none: in memory only). A missing file is an empty
    /// cache; an unreadable, corrupt or other-version file is ignored (and replaced on the
    /// next save), with the reason in `ignored`.
    pub fn open(dir: Option<&Path>) -> TuneCache {
        let Some(dir) = dir else { return TuneCache::default() };
        let path = dir.join(format!("autotune-v{VERSION}.json"));
        let mut c = TuneCache { path: Some(path.clone()), ..Default::default() };
        match std::fs::read_to_string(&path) {
            Ok(text) => match parse(&text) {
                Ok(entries) => c.entries = entries,
                Err(e) => {
                    log::warn!("ignoring the autotune cache {}: {e:#}", path.display());
                    c.ignored = Some(format!("{e:#}"));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => c.ignored = Some(e.to_string()),
        }
        c
    }

    pub fn get(&self, adapter: &str, shape: &str) -> Option<Choice> {
        self.entries.get(&(adapter.to_string(), shape.to_string())).copied()
    }

    pub fn insert(&mut self, adapter: &str, shape: &str, c: Choice) {
        self.entries.insert((adapter.to_string(), shape.to_string()), c);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the file (to a temporary name, then renamed over the old one, so a reader
    /// never sees half a file). Without a directory this does nothing.
    pub fn save(&self) -> Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let dir = path.parent().ok_or_else(|| anyhow!("{} has no folder", path.display()))?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let entries: Vec<serde_json::Value> = self
            .entries
            .iter()
            .map(|((a, s), c)| serde_json::json!({"adapter": a, "shape": s, "block": c.block.name(), "ms": c.ms}))
            .collect();
        let text = serde_json::to_string_pretty(&serde_json::json!({"version": VERSION, "entries": entries}))?;
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

/// The entries of a cache file; entries whose block no longer parses are dropped.
fn parse(text: &str) -> Result<BTreeMap<(String, String), Choice>> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| anyhow!("not JSON ({e})"))?;
    if v.get("version").and_then(|x| x.as_u64()) != Some(VERSION) {
        return Err(anyhow!("not a version {VERSION} file"));
    }
    let list = v.get("entries").and_then(|e| e.as_array()).ok_or_else(|| anyhow!("no entries list"))?;
    let mut out = BTreeMap::new();
    for e in list {
        let s = |k: &str| e.get(k).and_then(|x| x.as_str());
        let (Some(a), Some(sh), Some(b)) = (s("adapter"), s("shape"), s("block")) else { continue };
        let ms = e.get("ms").and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
        if let Ok(block) = Block::parse(b) {
            out.insert((a.to_string(), sh.to_string()), Choice { block, ms });
        }
    }
    Ok(out)
}

impl Executor {
    /// Keeps autotune choices in `dir` (None: in memory only), or turns autotuning off.
    pub fn set_autotune(&mut self, on: bool, dir: Option<&std::path::Path>) {
        self.tune = on.then(|| TuneCache::open(dir));
    }

    /// Gives the tuned convolutions of `net` the register block measured fastest for their
    /// shape on this adapter at `input`'s size: from the cache, or by timing the candidates
    /// on a slice of the layer's rows while less than `budget_ms` has been spent (0: cached
    /// choices only; a shape once started is finished). Layers left over keep the
    /// adapter's default and are tuned on a later call. Off when a block was forced
    /// (`CONVSCOPE_BLOCK`) or `CONVSCOPE_AUTOTUNE=0`.
    pub fn autotune(
        &mut self,
        ctx: &GpuContext,
        net: &mut GpuNetwork,
        input: Shape,
        budget_ms: f64,
    ) -> Result<Vec<TunedLayer>> {
        let Some(mut cache) = self.tune.take() else { return Ok(Vec::new()) };
        let r = self.autotune_with(ctx, net, input, budget_ms, &mut cache);
        self.tune = Some(cache);
        r
    }

    fn autotune_with(
        &mut self,
        ctx: &GpuContext,
        net: &mut GpuNetwork,
        input: Shape,
        budget_ms: f64,
        cache: &mut TuneCache,
    ) -> Result<Vec<TunedLayer>> {
        if net.kernel != ConvKernel::Tuned {
            return Ok(Vec::new());
        }
        let shapes = net.graph.infer_shapes(input)?;
        let sources = net.graph.input_indices()?;
        // Blocks compare differently with 64-bit access, so its choices are kept apart.
        let adapter = adapter_key(&ctx.info) + if self.caches.wide { " | wide" } else { "" };
        let cpu = ctx.info.device_type == wgpu::DeviceType::Cpu;
        let t0 = Instant::now();
        let (mut out, mut changed, mut save) = (Vec::new(), false, false);
        // Called before every run: nothing here copies the graph or a layer's weights unless
        // the layer is measured (resnet18's 45 MB of weights had been copied each time).
        for i in 0..net.graph.nodes.len() {
            let GpuNode::ConvTuned(tc) = &net.nodes[i] else { continue };
            let current = tc.block;
            let (cin, cout, k, stride, pad) = match &net.graph.nodes[i].op {
                crate::graph::Op::Conv(c) => (c.cin, c.cout, c.k, c.stride, c.pad),
                crate::graph::Op::ConvG(g) if g.is_plain() => (g.cin, g.cout, g.kh, g.stride[0], g.pads[0]),
                _ => continue,
            };
            let ins = shapes[sources[i].first().copied().unwrap_or(0)];
            // A 1×1 stride-1 unpadded conv runs on its plane as one row (`run_geometry`).
            let o = shapes[i + 1];
            let width = if k == 1 && stride == 1 && pad == 0 { o.h * o.w } else { o.w };
            let default = layer_default(self.block, cpu, ctx.subgroups, k, width);
            let key = shape_key(cin, cout, k, stride, pad, ins.h, ins.w);
            let (block, measured) = match cache.get(&adapter, &key) {
                Some(ch) => (ch.block, false),
                None if t0.elapsed().as_secs_f64() * 1e3 < budget_ms => {
                    let c = match &net.graph.nodes[i].op {
                        crate::graph::Op::Conv(c) => c.clone(),
                        crate::graph::Op::ConvG(g) => g.as_plain().ok_or_else(|| anyhow::anyhow!("not plain"))?,
                        _ => continue,
                    };
                    let ch = self.measure(ctx, &c, ins, cpu, default)?;
                    log::info!("autotune {key}: block {} ({:.3} ms)", ch.block.name(), ch.ms);
                    cache.insert(&adapter, &key, ch);
                    save = true;
                    (ch.block, true)
                }
                // Not measured yet: the layer's default until it is.
                None => (default, false),
            };
            if block != current {
                let node = &net.graph.nodes[i];
                let gpu = GpuNode::upload(ctx, &node.name, &node.op, ConvKernel::Tuned, block);
                net.nodes[i] = gpu;
                changed = true;
            }
            if measured || cache.get(&adapter, &key).is_some() {
                out.push(TunedLayer { node: net.graph.nodes[i].name.clone(), block, measured });
            }
        }
        if changed {
            // Cached bind groups hold the replaced weights.
            self.caches.clear_bind_groups();
        }
        if save && let Err(e) = cache.save() {
            log::warn!("autotune choices not saved: {e:#}");
        }
        ctx.check_errors()?;
        Ok(out)
    }

    /// Times each candidate block on the first [`probe_rows`] output rows of a
    /// conv of shape `c` on an input of `ins`: the fastest (GPU timestamps where the
    /// adapter has them, else wall time; best of [`ROUNDS`] runs taken in turns after a warm-up each).
    fn measure(
        &mut self,
        ctx: &GpuContext,
        c: &crate::network::Conv2d,
        ins: Shape,
        cpu: bool,
        default: Block,
    ) -> Result<Choice> {
        let out = |n: usize| (n + 2 * c.pad).saturating_sub(c.k) / c.stride.max(1) + 1;
        let want = probe_rows(c, out(ins.w), out(ins.h), if cpu { PROBE_FLOP } else { GPU_PROBE_FLOP });
        let rows = ins.h.min((want - 1) * c.stride + c.k);
        let probe = Shape::new(c.cin, rows.max(1), ins.w);
        let graph = Graph {
            input: crate::graph::INPUT.into(),
            nodes: vec![crate::graph::Node {
                name: "autotune probe".into(),
                op: crate::graph::Op::Conv(c.clone()),
                inputs: vec![crate::graph::INPUT.into()],
                output: "probe".into(),
            }],
        };
        let x = Tensor::new(probe, vec![0.5; probe.len()]);
        let opts = RunOptions { keep: Keep::Only(vec![1]), ..Default::default() };
        // Every candidate compiled and warmed up first, then timed in turns, the best of
        // ROUNDS each: a burst of load from elsewhere then slows every candidate once
        // instead of all of one candidate's runs (timed one after another, a noisy minute
        // chose 8x6s for conv2 at 31.8 ms, 1.6× its best block).
        let mut timed = Vec::new();
        for block in candidates(cpu, ctx.subgroups, c.k, c.stride, default) {
            let g = self.upload_with_block(ctx, &graph, ConvKernel::Tuned, block)?;
            self.run_with(ctx, &g, &x, &opts)?;
            timed.push((block, g, f64::INFINITY));
        }
        for _ in 0..ROUNDS {
            for (_, g, ms) in timed.iter_mut() {
                let a = self.run_with(ctx, g, &x, &opts)?;
                let t = match &a.node_ms {
                    Some((v, Timing::Gpu)) => v.iter().sum(),
                    _ => a.wall_ms,
                };
                *ms = ms.min(t);
            }
        }
        let mut best: Option<Choice> = None;
        let mut default_ms = f64::INFINITY;
        for &(block, _, ms) in &timed {
            if block == default {
                default_ms = ms;
            }
            if best.is_none_or(|b| ms < b.ms) {
                best = Some(Choice { block, ms });
            }
        }
        // Another block must beat the default by a clear margin: on a busy machine timings
        // vary by tens of percent, and a choice made on noise would be kept for good.
        if best.is_some_and(|b| b.ms > default_ms * margin(cpu)) {
            best = Some(Choice { block: default, ms: default_ms });
        }
        best.ok_or_else(|| anyhow::anyhow!("no candidate block"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("convscope-autotune-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn choices_survive_a_round_trip_and_bad_files_are_ignored_then_replaced() {
        let d = dir("roundtrip");
        let mut c = TuneCache::open(Some(&d));
        assert!(c.is_empty() && c.ignored.is_none(), "a missing file is an empty cache");
        let b = Block::parse("8x3l8").unwrap();
        c.insert("lavapipe", "64,64,1,1,0,56x56", Choice { block: b, ms: 1.5 });
        c.save().unwrap();
        let back = TuneCache::open(Some(&d));
        assert_eq!(back.get("lavapipe", "64,64,1,1,0,56x56"), Some(Choice { block: b, ms: 1.5 }));
        assert_eq!(back.get("another adapter", "64,64,1,1,0,56x56"), None);
        let file = d.join(format!("autotune-v{VERSION}.json"));
        for bad in ["{not json", "{\"version\": 0, \"entries\": []}", "[1,2]", ""] {
            std::fs::write(&file, bad).unwrap();
            let c = TuneCache::open(Some(&d));
            assert!(c.is_empty() && c.ignored.is_some(), "{bad:?} is ignored");
            c.save().unwrap();
            assert!(TuneCache::open(Some(&d)).ignored.is_none(), "and rewritten whole");
        }
        // An entry naming a block this version cannot parse is dropped, the rest kept.
        std::fs::write(
            &file,
            format!(
                r#"{{"version":{VERSION},"entries":[{{"adapter":"a","shape":"s","block":"99x99","ms":1}},
                   {{"adapter":"a","shape":"t","block":"24x3","ms":2}}]}}"#
            ),
        )
        .unwrap();
        let c = TuneCache::open(Some(&d));
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("a", "t").map(|x| x.block.name()), Some("24x3".to_string()));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn cache_folder_follows_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(TuneCache::default_dir(env(&[("CONVSCOPE_CACHE_DIR", "/x")])), Some(PathBuf::from("/x")));
        assert_eq!(
            TuneCache::default_dir(env(&[("XDG_CACHE_HOME", "/c"), ("HOME", "/h")])),
            Some(PathBuf::from("/c/convscope"))
        );
        assert_eq!(TuneCache::default_dir(env(&[("HOME", "/h")])), Some(PathBuf::from("/h/.cache/convscope")));
        assert_eq!(TuneCache::default_dir(env(&[("CONVSCOPE_CACHE_DIR", " ")])), None);
    }

    #[test]
    fn probes_are_long_enough_to_time_and_never_past_the_layer() {
        let conv = |cin, cout, k| crate::network::Conv2d {
            cin,
            cout,
            k,
            stride: 1,
            pad: 0,
            weight: Vec::new(),
            bias: Vec::new(),
        };
        // The tutorial's conv1 at 396x596: 1800 FLOP per output, 1.07 MFLOP a row.
        assert_eq!(probe_rows(&conv(3, 12, 5), 596, 396, PROBE_FLOP), 94);
        // conv3: 34 MFLOP a row, but 37 invocations a row for the widest candidate: 28
        // rows, so every candidate runs unpacked as on the whole layer.
        assert_eq!(probe_rows(&conv(24, 48, 5), 592, 392, PROBE_FLOP), 28);
        // A wide layer: the floor of 16 rows.
        assert_eq!(probe_rows(&conv(24, 48, 5), 2000, 392, PROBE_FLOP), PROBE_ROWS);
        // A layer shorter than the probe: the whole layer.
        assert_eq!(probe_rows(&conv(3, 12, 5), 596, 40, PROBE_FLOP), 40);
        assert_eq!(probe_rows(&conv(3, 12, 5), 596, 3, PROBE_FLOP), 3);
        assert_eq!(probe_rows(&conv(1, 1, 1), 0, 0, PROBE_FLOP), 1);
    }

    #[test]
    fn one_by_one_convs_start_from_a_block_for_their_width() {
        let d = Block::parse("12x4s").unwrap();
        let name = |cpu, sg, k, w| layer_default(d, cpu, sg, k, w).name();
        assert_eq!(name(true, true, 1, 56), "8x8si");
        assert_eq!(name(true, true, 1, 14), "4x8si");
        assert_eq!(name(true, true, 1, 1), "4x8si");
        assert_eq!(name(true, true, 3, 56), "12x4s", "other kernels: the adapter's default");
        assert_eq!(name(true, false, 1, 56), "12x4s", "no subgroups: the adapter's default");
        assert_eq!(name(false, true, 1, 56), "12x4s", "GPUs: the adapter's default");
        for w in [1, 7, 14, 56] {
            let b = layer_default(d, true, true, 1, w);
            assert_eq!(candidates(true, true, 1, 1, b)[0], b, "the layer default is measured first");
        }
    }

    #[test]
    fn gpus_time_whole_layers_and_cpus_a_slice() {
        let conv =
            |cin, cout, k| crate::network::Conv2d { cin, cout, k, stride: 1, pad: 0, weight: vec![], bias: vec![] };
        // The chain's conv2 at 225×400 (392 outputs wide, 217 rows): a slice on lavapipe, all
        // of it on a GPU; a GPU probe of a 4K layer is still capped by its arithmetic.
        let c2 = conv(12, 24, 5);
        let cpu = probe_rows(&c2, 392, 217, PROBE_FLOP);
        assert!((PROBE_ROWS..217).contains(&cpu), "{cpu}");
        assert_eq!(probe_rows(&c2, 392, 217, GPU_PROBE_FLOP), 217);
        let big = probe_rows(&conv(24, 48, 5), 3836, 2156, GPU_PROBE_FLOP);
        assert!(big < 2156 && 2.0 * (24 * 48 * 25 * 3836 * big) as f64 >= GPU_PROBE_FLOP, "{big}");
        assert!(margin(false) > margin(true) && margin(false) < 1.0);
    }

    #[test]
    fn candidates_start_with_the_default_and_have_no_repeats() {
        let d = Block::parse("24x3").unwrap();
        for (cpu, sg, k, stride) in [
            (true, true, 1, 1),
            (true, true, 3, 1),
            (true, true, 3, 2),
            (true, false, 1, 1),
            (true, false, 3, 1),
            (false, false, 1, 1),
            (false, true, 5, 1),
        ] {
            let c = candidates(cpu, sg, k, stride, d);
            assert!(c.iter().all(|b| !b.sg || sg), "subgroup forms only where the device has subgroups");
            let wino = c.iter().any(|b| b.wino);
            assert_eq!(
                wino,
                cpu && sg && k == 3 && stride == 1,
                "Winograd only for 3×3 stride 1 ({cpu} {sg} {k} {stride})"
            );
            assert_eq!(c[0], d);
            assert_eq!(c.iter().any(|b| b.split > 1), !cpu, "split forms on GPUs only ({cpu} {sg} {k})");
            let mut names: Vec<String> = c.iter().map(Block::name).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), c.len());
        }
    }
}

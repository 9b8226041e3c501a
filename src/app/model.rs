//! `convscope export --model M.onnx`: every page's grid, the predictions, and optionally
//! every tensor under its ONNX name and a node-by-node check against the CPU reference.

use super::{ExportArgs, prepare_outputs, progress_bar};
use crate::engine::Engine;
use crate::exec::{Activations, RunOptions};
use crate::gpu::GpuContext;
use crate::model::{Prepared, page_file, page_file_name};
use crate::plan::Keep;
use crate::source::Source;
use crate::tensor::{Tensor, max_abs_diff};
use crate::visual::{Look, write_texture_png};
use crate::{export, predict, reference, say};
use anyhow::{Result, bail};

/// The ONNX tolerance: `max|gpu − cpu| ≤ 1e-4 · max(1, max|cpu|)` per node (the goldens').
pub const MODEL_TOLERANCE: f32 = 1e-4;

pub fn run_export_model(a: &ExportArgs, src: &Source) -> Result<()> {
    let prep = Prepared::new(src)?;
    let kernels: Vec<(String, crate::network::Conv2d)> = if a.kernels {
        let k: Vec<_> =
            prep.graph.nodes.iter().filter_map(|n| Some((n.name.clone(), crate::kernels::drawable(&n.op)?))).collect();
        for (name, c) in &k {
            crate::kernels::check_size(c, name, crate::kernels::MAX_PIXELS)?;
        }
        k
    } else {
        Vec::new()
    };
    prepare_outputs(a)?;
    let ctx = GpuContext::headless()?;
    say!("adapter: {}", ctx.describe());
    say!("model: {} ({} nodes on the GPU, opset {})", prep.model.producer, prep.graph.nodes.len(), prep.model.opset);
    say!("input: {} ({})", prep.input.name, prep.input.tensor.shape);
    let mut engine = Engine::new(&ctx)?;
    let bar = progress_bar(prep.graph.nodes.len() as u64, "nodes", "{msg} {bar:30} {pos}/{len} {elapsed}");
    let progress = |done: usize, _: usize, _: &crate::exec::Activations| {
        bar.set_position(done as u64);
        true
    };
    // Pages and the scores stay readable; other tensors' buffers are reused, unless every
    // tensor is wanted (--tensors, --verify).
    let keep = if a.tensors.is_some() || a.verify { Keep::All } else { Keep::Only(prep.kept()) };
    let opts = RunOptions { keep, progress: Some(&progress), ..Default::default() };
    let acts = engine.compute_graph(&ctx, &prep.graph, src.kernel, &prep.input.tensor, &opts)?;
    bar.finish_and_clear();
    say!("graph: {:.2} ms wall (submit to done)", acts.wall_ms);
    let need_all = a.tensors.is_some() || a.verify;
    let outs: Vec<Tensor> =
        if need_all { (1..acts.shapes.len()).map(|i| acts.read(&ctx, i)).collect::<Result<_>>()? } else { Vec::new() };
    write_pages(&ctx, &engine, &acts, &prep, a, src.order.rgb_indices())?;
    if let Some((t, is_prob)) = prep.scores {
        let scores = acts.read(&ctx, t)?.data;
        let ranked = predict::rank(&scores, prep.labels.as_deref(), is_prob);
        for p in ranked.iter().take(5) {
            say!("predict {:<12} score {:>10.6}  prob {:.4}  (index {})", p.label, p.score, p.prob, p.index);
        }
        let path = a.out.join("predictions.json");
        std::fs::write(&path, predict::to_json(&ranked))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        say!("wrote {}", path.display());
    }
    for (name, c) in &kernels {
        // A conv reading the image also gets each filter as a colour patch.
        let reads_image =
            prep.graph.nodes.iter().any(|n| &n.name == name && n.inputs.first() == Some(&prep.graph.input));
        let rgb = (reads_image && c.cin == 3).then_some(src.order.rgb_indices());
        let path = a.out.join(format!("kernels-{}", page_file_name(name)));
        export::write_png(&path, &crate::kernels::render(c, rgb))?;
        say!("wrote {} ({} x {} kernels of {}x{})", path.display(), c.cout, c.cin, c.k, c.k);
    }
    if a.verify {
        verify(&prep, &outs)?;
    }
    if let Some(t) = &a.tensors {
        write_tensors(t, &prep, &outs)?;
        say!("wrote {}", t.display());
    }
    Ok(())
}

/// `input.png` and one `NNN-<node>.png` per page.
fn write_pages(
    ctx: &GpuContext,
    engine: &Engine,
    acts: &Activations,
    prep: &Prepared,
    a: &ExportArgs,
    rgb: [usize; 3],
) -> Result<()> {
    for (k, &t) in prep.pages.iter().enumerate() {
        let grid = engine.vis.render(ctx, acts, t, Look::default(), rgb)?;
        let file = if t == 0 { "input.png".to_string() } else { page_file(k, &prep.graph.nodes[t - 1].name) };
        let path = a.out.join(file);
        write_texture_png(ctx, &grid.texture, &path)?;
        say!("wrote {} ({})", path.display(), acts.shapes[t]);
    }
    Ok(())
}

/// Every node's output against the CPU reference.
fn verify(prep: &Prepared, gpu: &[Tensor]) -> Result<()> {
    let cpu = reference::forward_graph(&prep.graph, &prep.input.tensor)?;
    if cpu.len() != gpu.len() {
        bail!("verify: {} GPU tensors but {} CPU tensors", gpu.len(), cpu.len());
    }
    let mut failed = Vec::new();
    for ((node, g), c) in prep.graph.nodes.iter().zip(gpu).zip(&cpu) {
        let d = max_abs_diff(&g.data, &c.data);
        let scale = c.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        say!("verify {:<40} max |gpu - cpu| = {d:.3e}", node.output);
        if d.is_nan() || d > MODEL_TOLERANCE * scale {
            failed.push(node.output.clone());
        }
    }
    if !failed.is_empty() {
        bail!("GPU and CPU differ beyond {MODEL_TOLERANCE:e} · max(1, |value|) at {}", failed.join(", "));
    }
    Ok(())
}

/// The input, every node output under its ONNX name and ONNX shape, and every float value
/// folded on the host.
fn write_tensors(path: &std::path::Path, prep: &Prepared, outs: &[Tensor]) -> Result<()> {
    let mut named: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let s = prep.input.tensor.shape;
    named.push(("input".into(), vec![1, s.c, s.h, s.w], prep.input.tensor.data.clone()));
    if prep.graph.input != "input" {
        named.push((prep.graph.input.clone(), vec![1, s.c, s.h, s.w], prep.input.tensor.data.clone()));
    }
    for (i, (n, t)) in prep.graph.nodes.iter().zip(outs).enumerate() {
        named.push((n.output.clone(), prep.dims_of(i + 1), t.data.clone()));
    }
    for (name, t) in &prep.folded {
        if !named.iter().any(|(n, _, _)| n == name) {
            named.push((name.clone(), t.dims.clone(), t.as_f32()));
        }
    }
    export::write_named_tensors(path, &named)
}

//! Which pipeline a band step runs: the convs' pipelines looked up by a key computed without
//! writing their shader text (written, and the pipeline built, only on a miss), the fused
//! epilogues' parameters and bindings.

use super::cache::{Bound, Caches};
use super::{GpuNetwork, RunBuffers};
use crate::gpu::GpuContext;
use crate::ops::conv_tuned::{self, Epilogue};
use crate::ops::{self, GpuNode, ShaderDesc, StepGeom};
use crate::plan::Plan;
use crate::plan::fusion::Fusion;

/// The pipeline of `node`'s step at geometry `g` (with fusion `fused`) and its shader's
/// binding table. Writing an unrolled block's text for every step of every run took ~9 ms of
/// each resnet18 or mobilenet_v3_small run on the CPU; looking it up by key ~1 ms a run.
pub(super) fn step_pipeline(
    caches: &mut Caches,
    ctx: &GpuContext,
    net: &GpuNetwork,
    node: &GpuNode,
    g: &StepGeom,
    fused: Option<&Fusion>,
) -> (wgpu::ComputePipeline, &'static ShaderDesc) {
    let e = fused.map_or_else(Epilogue::default, |f| epilogue(net, f));
    let key = match node {
        GpuNode::ConvTuned(c) => Some((conv_tuned::pipeline_key(&c.spec, &c.block, g, &e), c.shader(g))),
        GpuNode::Depthwise(d) => Some((d.pipeline_key(g, &e), &ops::depthwise::SHADER)),
        _ => None,
    };
    if let Some(hit) = key.and_then(|(k, s)| caches.cached(&k).map(|p| (p, s))) {
        return hit;
    }
    let spec = match (node, fused) {
        (GpuNode::ConvTuned(c), Some(_)) => conv_tuned::pipeline_fused(&c.spec, &c.block, g, &e),
        (GpuNode::Depthwise(d), Some(_)) => d.pipeline_fused(g, &e),
        (GpuNode::Binary(_), Some(_)) => ops::binary::pipeline_fused(&e, g.output),
        _ => node.pipeline(g),
    };
    (caches.pipeline(ctx, &spec), spec.shader)
}

/// The epilogue of fusion `f`: what the shader writes and which activation it applies.
fn epilogue(net: &GpuNetwork, f: &crate::plan::fusion::Fusion) -> Epilogue {
    let act = f.act.and_then(|a| match &net.nodes[a] {
        GpuNode::Pointwise(p) => p.fused_activation(),
        _ => None,
    });
    Epilogue {
        write_raw: f.write_raw,
        bn: f.bn.is_some(),
        write_bn: f.write_bn,
        act: act.map_or(0, |a| a.0),
        p: act.map_or([0.0; 2], |a| a.1),
        gate: f.gate.is_some(),
    }
}

/// The tuned conv's epilogue bindings (batch norm scale and shift, its two extra
/// outputs): the fused nodes' buffers, else stand-ins the shader never touches.
#[allow(clippy::too_many_arguments)]
pub(super) fn epilogue_bindings(
    spare: &mut Option<[wgpu::Buffer; 2]>,
    ctx: &GpuContext,
    plan: &Plan,
    net: &GpuNetwork,
    rb: &RunBuffers,
    fused: Option<&crate::plan::fusion::Fusion>,
    band: usize,
    base: &[Bound],
) -> Vec<Bound> {
    let spare = spare
        .get_or_insert_with(|| {
            let make = |label| {
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: 16,
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                })
            };
            [make("unused fused output a"), make("unused fused output b")]
        })
        .clone();
    // Read-only stand-in: binding 2, a buffer bound read-only (the packed bias, or the
    // depthwise conv's weights).
    let ro = base.get(2).cloned().unwrap_or_else(|| Bound::Buffer(spare[0].clone(), 0, None));
    let band_of = |t: usize| Bound::Buffer((*rb.bands[plan.tensors[t].bands[band].buffer]).clone(), 0, None);
    let mut out =
        vec![ro.clone(), ro, Bound::Buffer(spare[0].clone(), 0, None), Bound::Buffer(spare[1].clone(), 0, None)];
    if let Some(f) = fused {
        if let Some(bn) = f.bn {
            if let GpuNode::Pointwise(p) = &net.nodes[bn]
                && let Some((a, b)) = p.affine()
            {
                out[0] = Bound::Buffer(a.clone(), 0, None);
                out[1] = Bound::Buffer(b.clone(), 0, None);
            }
            if f.write_bn {
                out[2] = band_of(bn + 1);
            }
        }
        if let Some(act) = f.act {
            // A gated fusion writes the Mul's tensor in the activation's place.
            out[3] = band_of(f.gate.unwrap_or(act) + 1);
        }
    }
    out
}

/// The image an input band of `texels` vec4s is copied into: one (`kept`), shared by every
/// step (their passes run one after another), replaced by a taller one when a band needs
/// more rows (a shader reads only its band's texels; outputs from the rest are not stored).
pub(super) fn input_image(
    kept: &mut Option<(wgpu::Texture, wgpu::TextureView)>,
    ctx: &GpuContext,
    texels: u64,
) -> (wgpu::Texture, wgpu::TextureView) {
    let size = ops::image::extent(texels).unwrap_or(wgpu::Extent3d {
        width: ops::image::WIDTH,
        height: 1,
        depth_or_array_layers: 1,
    });
    match kept {
        Some((t, v)) if t.height() >= size.height => (t.clone(), v.clone()),
        _ => {
            let made = ops::image::texture(ctx, &format!("input image of {} rows", size.height), size);
            *kept = Some(made.clone());
            made
        }
    }
}

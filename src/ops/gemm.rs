//! `y = W x + b` on a flat input (ONNX Gemm, MatMul with a weight matrix) and Softmax over
//! a vector: a classifier's head. CPU twins: `reference::graph_ops::{gemm, softmax}`.

use super::{Dispatch, PipelineSpec, Res, ShaderDesc, WgslStruct, storage_init};
use crate::gpu::GpuContext;
use std::borrow::Cow;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "gemm.wgsl",
    source: include_str!("../../shaders/gemm.wgsl"),
    // params, input, weight, bias, output
    bindings: super::PARAMS_IN_TWO_OUT,
    params: Some(Params::layout),
};

pub const SOFTMAX: ShaderDesc = ShaderDesc {
    file: "softmax.wgsl",
    source: include_str!("../../shaders/softmax.wgsl"),
    // params, input, output
    bindings: super::PARAMS_IN_OUT,
    params: Some(SoftmaxParams::layout),
};

super::wgsl_struct! {
    /// Mirrors `Params` in `gemm.wgsl`.
    pub struct Params as "Params" {
        pub k: u32,
        pub n: u32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

super::wgsl_struct! {
    /// Mirrors `Params` in `softmax.wgsl`.
    pub struct SoftmaxParams as "Params" {
        pub n: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

/// A Gemm's weights on the GPU.
pub struct Gemm {
    k: usize,
    n: usize,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
    /// Runs [`subgroup_source`] (the device has subgroups, `k` a multiple of 4).
    subgroup: bool,
}

pub fn pipeline() -> PipelineSpec {
    PipelineSpec { key: "gemm".into(), source: Cow::Borrowed(SHADER.source), shader: &SHADER }
}

/// `gemm.wgsl` in subgroup form, for `k` a multiple of 4 on subgroups of 8 or more. On
/// lavapipe every storage load is a loop over the 8 lanes of a SIMD group; here the inputs
/// come 32 at a time, lane `l` of each subgroup loading the vec4 `8q + l` and
/// `subgroupBroadcast` handing every value to every lane, and each lane loads its weight
/// row as vec4s: 9 loads per 32 products instead of 64. The sum is the same: bias, then
/// the products in order. Lanes past `n` compute row `n − 1` and store nothing (every lane
/// takes part in the broadcasts).
pub fn subgroup_source() -> String {
    use std::fmt::Write as _;
    let src = SHADER.source;
    let (Some(a), Some(b)) = (src.find("// @main-begin"), src.find("// @main-end")) else {
        panic!("gemm.wgsl lost its @main markers");
    };
    let mut m = String::new();
    let w = &mut m;
    let _ = writeln!(w, "// One invocation computes output j = min(gid.x, n − 1), stored when gid.x < n.");
    let _ = writeln!(w, "@compute @workgroup_size(64, 1, 1)");
    let _ = writeln!(
        w,
        "fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) sgl: u32) {{"
    );
    let _ = writeln!(w, "    p = params;");
    let _ = writeln!(w, "    let j = min(gid.x, p.n - 1u);");
    let _ = writeln!(w, "    var acc = bias[j];");
    let _ = writeln!(w, "    let row = j * (p.k / 4u);");
    let _ = writeln!(w, "    for (var q = 0u; q < p.k / 32u; q++) {{");
    let _ = writeln!(w, "        let x = input4[q * 8u + sgl % 8u];");
    for l in 0..8 {
        let _ = writeln!(w, "        let w{l} = weight4[row + q * 8u + {l}u];");
        for c in ["x", "y", "z", "w"] {
            let _ = writeln!(w, "        acc = acc + w{l}.{c} * subgroupBroadcast(x.{c}, {l}u);");
        }
    }
    let _ = writeln!(w, "    }}");
    let _ = writeln!(w, "    for (var i = p.k / 32u * 8u; i < p.k / 4u; i++) {{");
    let _ = writeln!(w, "        let w = weight4[row + i];");
    let _ = writeln!(w, "        let x = input4[i];");
    for c in ["x", "y", "z", "w"] {
        let _ = writeln!(w, "        acc = acc + w.{c} * x.{c};");
    }
    let _ = writeln!(w, "    }}");
    let _ = writeln!(w, "    if (gid.x < p.n) {{\n        output[j] = acc;\n    }}");
    let _ = writeln!(w, "}}");
    let out = format!("{}{}{}", &src[..a], m, &src[b..]);
    let mut out = out;
    for (from, to) in [
        ("var<storage, read> input: array<f32>;", "var<storage, read> input4: array<vec4<f32>>;"),
        ("var<storage, read> weight: array<f32>;", "var<storage, read> weight4: array<vec4<f32>>;"),
    ] {
        assert!(out.contains(from), "gemm.wgsl no longer declares {from}");
        out = out.replacen(from, to, 1);
    }
    out
}

pub fn softmax_pipeline() -> PipelineSpec {
    PipelineSpec { key: "softmax".into(), source: Cow::Borrowed(SOFTMAX.source), shader: &SOFTMAX }
}

/// Softmax over the `n` values of the input.
pub fn softmax_dispatch<'a>(n: usize) -> Dispatch<'a> {
    let p = SoftmaxParams { n: n as u32, ..Default::default() };
    Dispatch {
        params: bytemuck::bytes_of(&p).to_vec(),
        bindings: vec![Res::Params, Res::Input(0), Res::Output],
        workgroups: (1, 1, 1),
    }
}

impl Gemm {
    pub fn upload(ctx: &GpuContext, name: &str, k: usize, n: usize, weight: &[f32], bias: &[f32]) -> Self {
        let bias = if bias.is_empty() { vec![0.0; n] } else { bias.to_vec() };
        Gemm {
            k,
            n,
            weight: storage_init(ctx, &format!("{name} weight"), weight),
            bias: storage_init(ctx, &format!("{name} bias"), &bias),
            subgroup: ctx.subgroups && k.is_multiple_of(4),
        }
    }

    pub fn pipeline(&self) -> PipelineSpec {
        if self.subgroup {
            PipelineSpec { key: "gemm subgroup".into(), source: Cow::Owned(subgroup_source()), shader: &SHADER }
        } else {
            pipeline()
        }
    }

    pub fn dispatch(&self) -> Dispatch<'_> {
        let p = Params { k: self.k as u32, n: self.n as u32, ..Default::default() };
        Dispatch {
            params: bytemuck::bytes_of(&p).to_vec(),
            bindings: vec![Res::Params, Res::Input(0), Res::Buffer(&self.weight), Res::Buffer(&self.bias), Res::Output],
            workgroups: ((self.n as u32).div_ceil(64), 1, 1),
        }
    }
}

//! Elementwise arithmetic with broadcasting (Add, Sub, Mul, Div): each operand the full
//! tensor, one value per channel, or a scalar; a weight operand is uploaded once. One
//! output per invocation, or four adjacent ones on planes of whole vec4s (the shader's
//! `main4`: a quarter of the storage accesses, which on a CPU adapter are loops over the
//! lanes). CPU twin: `reference::graph_ops::binary`.

use super::conv_tuned::Epilogue;
use super::{Bind, Dispatch, PipelineSpec, Res, ShaderDesc, WgslStruct, flat_workgroups, storage_init};
use crate::gpu::GpuContext;
use crate::graph::BinKind;
use crate::tensor::Shape;
use std::borrow::Cow;

pub const SHADER: ShaderDesc = ShaderDesc {
    file: "binary.wgsl",
    source: include_str!("../../shaders/binary.wgsl"),
    // params, a, b, output, the fused activation's output
    bindings: &[
        super::PARAMS,
        Bind::Storage { read_only: true },
        Bind::Storage { read_only: true },
        Bind::Storage { read_only: false },
        Bind::Storage { read_only: false },
    ],
    params: Some(Params::layout),
};

super::wgsl_struct! {
    /// Mirrors `Params` in `binary.wgsl`.
    pub struct Params as "Params" {
        pub n: u32,
        pub plane: u32,
        pub a_mode: u32,
        pub b_mode: u32,
        pub kind: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

/// A binary node: its kind and its constant operand, if any.
pub struct Binary {
    pub kind: BinKind,
    constant: Option<(wgpu::Buffer, Shape)>,
}

/// Whether an op with output shape `out` runs the vec4 form (`main4`): planes of whole
/// vec4s, so four adjacent outputs share their channel.
pub fn vec4_form(out: Shape) -> bool {
    out.plane().is_multiple_of(4)
}

/// The pipeline of an op with output shape `out` (see [`vec4_form`]).
pub fn pipeline(out: Shape) -> PipelineSpec {
    pipeline_fused(&Epilogue::default(), out)
}

/// The `store` and `store4` functions with a fused activation (`e.act`, its parameters
/// `e.p`), writing the binary op's own value too when `e.write_raw`.
pub fn store_fn(e: &Epilogue) -> String {
    let act = super::conv_tuned::activation_expr(e.act, e.p);
    let mut f = String::from("fn store(i: u32, y: f32) {\n");
    let mut f4 = format!("fn act1(y: f32) -> f32 {{\n    return {act};\n}}\nfn store4(i4: u32, y: vec4<f32>) {{\n");
    if e.write_raw {
        f += "    output[i] = y;\n";
        f4 += "    output4[i4] = y;\n";
    }
    if e.act != 0 {
        let gate = if e.gate { "y * " } else { "" };
        f += &format!("    out_act[i] = {gate}({act});\n");
        f4 += &format!("    out_act4[i4] = {gate}vec4<f32>(act1(y.x), act1(y.y), act1(y.z), act1(y.w));\n");
    }
    super::conv_tuned::with_erf(e, f + "}\n" + &f4 + "}\n")
}

/// The binary shader for output shape `out` with the epilogue `e` (only its activation
/// applies).
pub fn pipeline_fused(e: &Epilogue, out: Shape) -> PipelineSpec {
    let vec4 = vec4_form(out);
    let src = if *e == Epilogue::default() {
        Cow::Borrowed(SHADER.source)
    } else {
        Cow::Owned(super::conv_tuned::replace_store(SHADER.source, &store_fn(e)))
    };
    let (key, src) = match vec4 {
        true => ("binary vec4", Cow::Owned(super::as_main(&src, "main4"))),
        false => ("binary", src),
    };
    let key = if *e == Epilogue::default() { key.to_string() } else { format!("{key} fused {e:?}") };
    PipelineSpec { key, source: src, shader: &SHADER }
}

/// How an operand of shape `s` is read for an output of shape `out`: 0 full, 1 per
/// channel, 2 scalar.
pub fn mode(s: Shape, out: Shape) -> u32 {
    if s == out {
        0
    } else if s.len() == 1 {
        2
    } else {
        1
    }
}

impl Binary {
    pub fn upload(ctx: &GpuContext, name: &str, kind: BinKind, constant: Option<&(Vec<f32>, Shape)>) -> Self {
        // Whole vec4s: the vec4 form reads every operand as vec4s.
        let constant = constant.map(|(v, s)| {
            let mut v = v.clone();
            v.resize(v.len().next_multiple_of(4), 0.0);
            (storage_init(ctx, &format!("{name} constant operand"), &v), *s)
        });
        Binary { kind, constant }
    }

    pub fn dispatch(&self, out: Shape, ins: &[Shape], max_wg: u32) -> Dispatch<'_> {
        let (b_shape, b_res) = match &self.constant {
            Some((buf, s)) => (*s, Res::Buffer(buf)),
            None => (ins.get(1).copied().unwrap_or(out), Res::Input(1)),
        };
        let p = Params {
            n: out.len() as u32,
            plane: out.plane() as u32,
            a_mode: mode(ins[0], out),
            b_mode: mode(b_shape, out),
            kind: match self.kind {
                BinKind::Add => 0,
                BinKind::Sub => 1,
                BinKind::Mul => 2,
                BinKind::Div => 3,
            },
            ..Default::default()
        };
        Dispatch {
            params: bytemuck::bytes_of(&p).to_vec(),
            bindings: vec![Res::Params, Res::Input(0), b_res, Res::Output],
            workgroups: flat_workgroups(if vec4_form(out) { out.len() / 4 } else { out.len() }, max_wg),
        }
    }
}

//! Elementwise arithmetic with broadcasting (Add, Sub, Mul, Div): each operand the full
//! tensor, one value per channel, or a scalar; a weight operand is uploaded once.
//! CPU twin: `reference::graph_ops::binary`.

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

pub fn pipeline() -> PipelineSpec {
    PipelineSpec { key: "binary".into(), source: Cow::Borrowed(SHADER.source), shader: &SHADER }
}

/// The `store` function with a fused activation (`e.act`, its parameters `e.p`), writing
/// the binary op's own value too when `e.write_raw`.
pub fn store_fn(e: &Epilogue) -> String {
    let mut f = String::from("fn store(i: u32, y: f32) {\n");
    if e.write_raw {
        f += "    output[i] = y;\n";
    }
    if e.act != 0 {
        f += &format!("    out_act[i] = {};\n", super::conv_tuned::activation_expr(e.act, e.p));
    }
    super::conv_tuned::with_erf(e, f + "}\n")
}

/// The binary shader with the epilogue `e` (only its activation applies).
pub fn pipeline_fused(e: &Epilogue) -> PipelineSpec {
    if *e == Epilogue::default() {
        return pipeline();
    }
    let src = super::conv_tuned::replace_store(SHADER.source, &store_fn(e));
    PipelineSpec { key: format!("binary fused {e:?}"), source: Cow::Owned(src), shader: &SHADER }
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
        let constant = constant.map(|(v, s)| (storage_init(ctx, &format!("{name} constant operand"), v), *s));
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
            workgroups: flat_workgroups(out.len(), max_wg),
        }
    }
}

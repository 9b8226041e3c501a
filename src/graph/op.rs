//! The op enum: what a node computes, with its parameters, and the facts about each op that
//! do not need a GPU (kind, description, rows a band needs, FLOPs).

use crate::tensor::Shape;

/// A 2-D convolution: `[cout, cin, k, k]` weights in PyTorch order, one bias per output.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2d {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Conv2d {
    /// Output size along one axis, or None when the (padded) input is smaller than the kernel.
    pub fn out_len(&self, len: usize) -> Option<usize> {
        let padded = len + 2 * self.pad;
        (padded >= self.k).then(|| (padded - self.k) / self.stride + 1)
    }
    /// FLOPs of one forward pass on `out` (multiply and add counted separately).
    pub fn flops(&self, out: Shape) -> f64 {
        2.0 * (self.cout * self.cin * self.k * self.k) as f64 * out.plane() as f64
    }
}

/// What a layer does.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Conv(Conv2d),
    /// `max(x, 0)`.
    Relu,
    /// `x` if `x >= 0`, else `slope[c] · x`; one slope for all channels or one per channel.
    PRelu {
        slopes: Vec<f32>,
    },
    /// Max over `k × k` windows every `stride` pixels, no padding; `ceil` rounds the output
    /// size up (PyTorch `ceil_mode=True`: a window that starts inside the input but runs past
    /// its edge takes the max of the part inside).
    MaxPool {
        k: usize,
        stride: usize,
        ceil: bool,
    },
    /// BatchNorm2d in eval mode: `(x − mean) / sqrt(var + eps) · weight + bias`.
    BatchNorm {
        weight: Vec<f32>,
        bias: Vec<f32>,
        mean: Vec<f32>,
        var: Vec<f32>,
        eps: f32,
    },
    /// A convolution with everything ONNX allows: groups, dilation, per-axis stride,
    /// asymmetric padding, rectangular kernels; or its transpose.
    ConvG(ConvG),
    /// An elementwise function of one input.
    Unary(Unary),
    /// `a ∘ b` elementwise with broadcasting (same shape, per channel `[1,C,1,1]`, or a
    /// scalar); `b` is the node's second input, or `constant` when it is a weight.
    Binary {
        kind: BinKind,
        constant: Option<(Vec<f32>, Shape)>,
    },
    /// Max or average pooling with ONNX's attributes.
    Pool(Pool),
    /// Average or max over each channel's whole plane (GlobalAveragePool, GlobalMaxPool,
    /// ReduceMean over H and W).
    GlobalPool {
        max: bool,
    },
    /// The inputs one after the other along the channels.
    Concat,
    /// Channels `start .. end` of the input (Split, Slice along axis 1).
    SliceChannels {
        start: usize,
        end: usize,
    },
    /// Constant padding of H and W: top, left, bottom, right.
    Pad {
        pads: [usize; 4],
        value: f32,
    },
    /// Nearest or bilinear resizing to `out_h × out_w`.
    Resize(Resize),
    /// The same values under another shape (Reshape, Flatten, Identity, Dropout).
    Copy,
    /// Channel shuffle: `[1,g,C/g,H,W]` transposed to `[1,C/g,g,H,W]` (a 5-D Transpose
    /// between two Reshapes, as ShuffleNet exports it).
    ChannelShuffle {
        groups: usize,
    },
    /// `y = W x + b` on a flat input of `k` values: `weight` is `[n][k]` (Gemm, MatMul).
    Gemm {
        k: usize,
        n: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
    /// Softmax over all values of the input (a `[1, N]` vector).
    Softmax,
}

/// A general 2-D convolution (ONNX Conv / ConvTranspose); weights in ONNX order:
/// `[cout, cin/groups, kh, kw]` for Conv, `[cin, cout/groups, kh, kw]` for ConvTranspose.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvG {
    pub cin: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// top, left, bottom, right.
    pub pads: [usize; 4],
    pub groups: usize,
    pub transpose: bool,
    /// ConvTranspose's extra rows and columns at the bottom and right.
    pub output_padding: [usize; 2],
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl ConvG {
    /// Whether this is a depthwise convolution (one filter per channel, not transposed).
    pub fn is_depthwise(&self) -> bool {
        !self.transpose && self.groups == self.cin && self.cout == self.cin && self.groups > 1
    }

    /// Whether [`ConvG::as_plain`] gives a plain convolution (without copying the weights).
    pub fn is_plain(&self) -> bool {
        let [t, l, b, r] = self.pads;
        !self.transpose
            && self.groups == 1
            && self.dilation == [1, 1]
            && self.kh == self.kw
            && self.stride[0] == self.stride[1]
            && t == l
            && t == b
            && t == r
    }

    /// The same convolution as a plain [`Conv2d`] when it is one (one group, no dilation,
    /// square kernel, equal strides, symmetric padding, not transposed): the tuned kernel
    /// then runs it.
    pub fn as_plain(&self) -> Option<Conv2d> {
        self.is_plain().then(|| Conv2d {
            cin: self.cin,
            cout: self.cout,
            k: self.kh,
            stride: self.stride[0],
            pad: self.pads[0],
            weight: self.weight.clone(),
            bias: if self.bias.is_empty() { vec![0.0; self.cout] } else { self.bias.clone() },
        })
    }

    /// `conv` or `convtranspose`.
    pub fn kind_name(&self) -> &'static str {
        if self.transpose { "convtranspose" } else { "conv" }
    }

    /// Output size along one axis (0 = H, 1 = W) for an input of `len`.
    pub fn out_len(&self, axis: usize, len: usize) -> Option<usize> {
        let (k, s, d) = ([self.kh, self.kw][axis], self.stride[axis], self.dilation[axis]);
        let (p0, p1) = (self.pads[axis], self.pads[axis + 2]);
        let span = d * (k - 1) + 1;
        if self.transpose {
            ((len - 1) * s + span + self.output_padding[axis]).checked_sub(p0 + p1)
        } else {
            let padded = len + p0 + p1;
            (padded >= span).then(|| (padded - span) / s + 1)
        }
    }
}

/// Elementwise functions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Clip { min: f32, max: f32 },
    LeakyRelu { alpha: f32 },
    Sigmoid,
    HardSigmoid { alpha: f32, beta: f32 },
    HardSwish,
    Tanh,
    Erf,
}

/// Binary arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinKind {
    Add,
    Sub,
    Mul,
    Div,
}

/// ONNX MaxPool / AveragePool.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub max: bool,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// top, left, bottom, right.
    pub pads: [usize; 4],
    pub ceil: bool,
    pub count_include_pad: bool,
}

impl Pool {
    /// ONNX's pooling output size along one axis; a window must start inside the input or
    /// its left padding.
    pub fn out_len(&self, axis: usize, len: usize) -> Option<usize> {
        let (k, s, d) = (self.kernel[axis], self.stride[axis], self.dilation[axis]);
        let (p0, p1) = (self.pads[axis], self.pads[axis + 2]);
        let span = d * (k - 1) + 1;
        let padded = len + p0 + p1;
        if padded < span || s == 0 {
            return None;
        }
        let mut out = if self.ceil { (padded - span).div_ceil(s) + 1 } else { (padded - span) / s + 1 };
        if self.ceil && (out - 1) * s >= len + p0 {
            out -= 1;
        }
        Some(out)
    }
}

/// How output pixel centres map to input coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordMode {
    HalfPixel,
    PytorchHalfPixel,
    Asymmetric,
    AlignCorners,
}

/// Which input pixel the nearest mode takes at a tie or fraction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

/// ONNX Resize of H and W.
#[derive(Clone, Debug, PartialEq)]
pub struct Resize {
    pub linear: bool,
    pub coord: CoordMode,
    pub nearest: NearestMode,
    pub out_h: usize,
    pub out_w: usize,
}

/// PyTorch's pooling output size along one axis (no padding, dilation 1).
pub fn pool_out_len(len: usize, k: usize, stride: usize, ceil: bool) -> Option<usize> {
    if len < k || stride == 0 {
        return None;
    }
    let span = len - k;
    let mut out = if ceil { span.div_ceil(stride) + 1 } else { span / stride + 1 };
    // The last window must start inside the input.
    if ceil && (out - 1) * stride >= len {
        out -= 1;
    }
    Some(out)
}

impl Op {
    /// The kind, as the HUD and errors name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv(_) => "conv",
            Op::Relu => "relu",
            Op::PRelu { .. } => "prelu",
            Op::MaxPool { .. } => "maxpool",
            Op::BatchNorm { .. } => "batchnorm",
            Op::ConvG(c) if c.transpose => "convtranspose",
            Op::ConvG(_) => "conv",
            Op::Unary(u) => match u {
                Unary::Clip { .. } => "clip",
                Unary::LeakyRelu { .. } => "leakyrelu",
                Unary::Sigmoid => "sigmoid",
                Unary::HardSigmoid { .. } => "hardsigmoid",
                Unary::HardSwish => "hardswish",
                Unary::Tanh => "tanh",
                Unary::Erf => "erf",
            },
            Op::Binary { kind, .. } => match kind {
                BinKind::Add => "add",
                BinKind::Sub => "sub",
                BinKind::Mul => "mul",
                BinKind::Div => "div",
            },
            Op::Pool(p) if p.max => "maxpool",
            Op::Pool(_) => "avgpool",
            Op::GlobalPool { max: true } => "globalmaxpool",
            Op::GlobalPool { max: false } => "globalavgpool",
            Op::Concat => "concat",
            Op::SliceChannels { .. } => "slice",
            Op::Pad { .. } => "pad",
            Op::Resize(_) => "resize",
            Op::Copy => "copy",
            Op::ChannelShuffle { .. } => "channelshuffle",
            Op::Gemm { .. } => "gemm",
            Op::Softmax => "softmax",
        }
    }

    /// Per-channel scale and shift `(alpha, beta)` of a BatchNorm, computed as PyTorch's CPU
    /// inference does: `alpha = weight / sqrt(var + eps)`, `beta = bias − mean · alpha`.
    pub fn batchnorm_affine(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        let Op::BatchNorm { weight, bias, mean, var, eps } = self else { return None };
        let alpha: Vec<f32> = weight.iter().zip(var).map(|(w, v)| (1.0 / (v + eps).sqrt()) * w).collect();
        let beta = bias.iter().zip(mean).zip(&alpha).map(|((b, m), a)| b - m * a).collect();
        Some((alpha, beta))
    }

    /// A short description of the operation and its parameters, for the HUD and logs.
    pub fn describe(&self) -> String {
        match self {
            Op::Conv(c) => {
                let mut s = format!("Conv2d({}, {}, {})", c.cin, c.cout, c.k);
                if c.stride != 1 {
                    s += &format!(" stride {}", c.stride);
                }
                if c.pad != 0 {
                    s += &format!(" pad {}", c.pad);
                }
                s
            }
            Op::Relu => "ReLU".to_string(),
            Op::PRelu { slopes } => format!("PReLU({})", slopes.len()),
            Op::MaxPool { k, stride, ceil } => {
                format!("MaxPool2d({k}, {stride}{})", if *ceil { ", ceil_mode" } else { "" })
            }
            Op::BatchNorm { weight, eps, .. } => format!("BatchNorm2d({}, eps {eps:e}, eval)", weight.len()),
            Op::ConvG(c) => format!(
                "{}({}, {}, {}x{}) stride {:?} pads {:?} dilation {:?} groups {}",
                if c.transpose { "ConvTranspose" } else { "Conv" },
                c.cin,
                c.cout,
                c.kh,
                c.kw,
                c.stride,
                c.pads,
                c.dilation,
                c.groups
            ),
            Op::Pool(p) => format!(
                "{}({:?}) stride {:?} pads {:?}{}",
                if p.max { "MaxPool" } else { "AveragePool" },
                p.kernel,
                p.stride,
                p.pads,
                if p.ceil { " ceil_mode" } else { "" }
            ),
            Op::Resize(r) => {
                format!("Resize({} to {}x{})", if r.linear { "linear" } else { "nearest" }, r.out_h, r.out_w)
            }
            Op::Gemm { k, n, .. } => format!("Gemm({k} -> {n})"),
            op => op.kind().to_string(),
        }
    }

    /// Whether a chain of such ops can be cut into row bands (output rows depend on a
    /// window of input rows that `input_rows` describes).
    pub fn bandable(&self) -> bool {
        matches!(
            self,
            Op::Conv(_) | Op::Relu | Op::PRelu { .. } | Op::MaxPool { .. } | Op::BatchNorm { .. } | Op::Unary(_)
        )
    }

    /// Input rows `[lo, hi)` that output rows `[a, b)` depend on, for an input of `h` rows.
    pub fn input_rows(&self, a: usize, b: usize, h: usize) -> (usize, usize) {
        let (s, p, k) = match self {
            Op::Conv(c) => (c.stride as isize, c.pad as isize, c.k as isize),
            Op::MaxPool { k, stride, .. } => (*stride as isize, 0, *k as isize),
            _ => (1, 0, 1),
        };
        let (a, b, h) = (a as isize, b as isize, h as isize);
        let lo = (a * s - p).clamp(0, h);
        let hi = ((b - 1) * s + k - p).clamp(0, h);
        (lo as usize, hi.max(lo) as usize)
    }

    /// FLOPs of one forward pass producing `out` (multiply and add counted separately).
    pub fn flops(&self, out: Shape) -> f64 {
        match self {
            Op::Conv(c) => c.flops(out),
            Op::MaxPool { k, .. } => (k * k) as f64 * out.len() as f64,
            Op::ConvG(c) if c.transpose => {
                2.0 * (c.cout * c.kh * c.kw) as f64 * (c.cin / c.groups.max(1)) as f64 * out.plane() as f64
                    / (c.stride[0] * c.stride[1]) as f64
            }
            Op::ConvG(c) => 2.0 * (c.cout * (c.cin / c.groups.max(1)) * c.kh * c.kw) as f64 * out.plane() as f64,
            Op::Gemm { k, n, .. } => 2.0 * (*k * *n) as f64,
            Op::Pool(p) => (p.kernel[0] * p.kernel[1]) as f64 * out.len() as f64,
            _ => 2.0 * out.len() as f64,
        }
    }
}

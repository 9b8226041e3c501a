//! Fusing a convolution (plain or depthwise) with the batch norm and activation that
//! directly follow it (and a `Mul` of the activation's input and output right after, where
//! the activation's own output is needed nowhere else: SiLU as ONNX exports it), and a
//! binary op with the activation after it: one pass computes them all and writes each
//! output some later step, the caller or a page needs (a fused node's page still shows the
//! value that node produces). Pure data.

use crate::graph::{BinKind, Graph, Op};

/// A convolution node and the nodes folded into its pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fusion {
    pub conv: usize,
    pub bn: Option<usize>,
    pub act: Option<usize>,
    /// A `Mul` node of the activation's input and output (the activation's own output is
    /// then not written: nothing outside the fusion reads it, and no page keeps it).
    pub gate: Option<usize>,
    /// Whether the conv's own output and the batch norm's are written (the last output of
    /// the fusion always is).
    pub write_raw: bool,
    pub write_bn: bool,
}

impl Fusion {
    /// The nodes whose passes the conv's pass replaces.
    pub fn absorbed(&self) -> impl Iterator<Item = usize> {
        self.bn.into_iter().chain(self.act).chain(self.gate)
    }

    /// The tensors the fused pass writes besides the conv's own (tensor = node + 1).
    pub fn extra_outputs(&self) -> Vec<usize> {
        self.absorbed().map(|n| n + 1).collect()
    }
}

/// Whether `op` runs on a kernel with the fused epilogue: the tuned conv's or the
/// depthwise conv's.
fn tuned_conv(op: &Op) -> bool {
    match op {
        Op::Conv(_) => true,
        Op::ConvG(c) => c.is_plain() || c.is_depthwise(),
        _ => false,
    }
}

/// Whether `op` runs on the binary kernel, which can apply a following activation.
fn binary(op: &Op) -> bool {
    matches!(op, Op::Binary { .. })
}

fn activation(op: &Op) -> bool {
    matches!(op, Op::Relu | Op::Unary(_))
}

/// The fusions of `graph`: each tuned conv with a batch norm reading only its output right
/// after it, and/or an activation reading only the previous output right after that.
/// `needed(t)`: tensor `t` must be written (kept, or read by a node outside the fusion).
pub fn find(graph: &Graph, needed: &dyn Fn(usize, &[usize]) -> bool) -> Vec<Fusion> {
    let reads = |node: usize, tensor_name: &str| {
        graph.nodes[node].inputs.len() == 1 && graph.nodes[node].inputs[0] == tensor_name
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < graph.nodes.len() {
        let head = &graph.nodes[i].op;
        if !tuned_conv(head) && !binary(head) {
            i += 1;
            continue;
        }
        let mut last = i;
        let bn = (tuned_conv(head)
            && last + 1 < graph.nodes.len()
            && matches!(graph.nodes[last + 1].op, Op::BatchNorm { .. })
            && reads(last + 1, &graph.nodes[last].output))
        .then_some(last + 1);
        if let Some(b) = bn {
            last = b;
        }
        let act = (last + 1 < graph.nodes.len()
            && activation(&graph.nodes[last + 1].op)
            && reads(last + 1, &graph.nodes[last].output))
        .then_some(last + 1);
        if let Some(a) = act {
            last = a;
        }
        let gate = act.and_then(|a| {
            let g = a + 1;
            let (y, s) = (&graph.nodes[a].inputs[0], &graph.nodes[a].output);
            let mut ins: Vec<&String> = graph.nodes.get(g)?.inputs.iter().collect();
            ins.sort();
            let mut want = vec![y, s];
            want.sort();
            let mul = matches!(graph.nodes[g].op, Op::Binary { kind: BinKind::Mul, constant: None });
            let members: Vec<usize> = (i..=g).collect();
            (tuned_conv(head) && mul && ins == want && !needed(a + 1, &members)).then_some(g)
        });
        if let Some(g) = gate {
            last = g;
        }
        if last > i {
            let members: Vec<usize> = (i..=last).collect();
            let write_raw = needed(i + 1, &members);
            // The tensor the activation reads (the batch norm's, or the conv's).
            let write_bn = bn.is_some_and(|b| act.is_none() || needed(b + 1, &members));
            out.push(Fusion { conv: i, bn, act, gate, write_raw, write_bn });
        }
        i = last + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node `name` writing the tensor of its name.
    fn node(name: &str, op: Op, inputs: &[&str]) -> crate::graph::Node {
        crate::graph::Node {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            output: name.into(),
        }
    }

    #[test]
    fn conv_bn_relu_fuse_and_write_what_is_needed() {
        let sd = None;
        let net =
            crate::arch::build(Some("conv(3,4,3) relu conv(4,4,3) pool1=maxpool(2) conv(4,2,1) relu relu"), sd, 0)
                .unwrap();
        let g = net.graph();
        // Only the final outputs are needed.
        let f = find(&g, &|_, _| false);
        assert_eq!(
            f,
            vec![
                Fusion { conv: 0, bn: None, act: Some(1), gate: None, write_raw: false, write_bn: false },
                Fusion { conv: 4, bn: None, act: Some(5), gate: None, write_raw: false, write_bn: false },
            ]
        );
        // Everything kept: every output written.
        let f = find(&g, &|_, _| true);
        assert!(f.iter().all(|f| f.write_raw));
        assert_eq!(f[0].extra_outputs(), vec![2]);
    }

    #[test]
    fn a_mul_of_the_activations_input_and_output_is_a_gate_only_when_alone() {
        use crate::graph::{INPUT, Unary};
        let conv = || {
            Op::Conv(crate::graph::Conv2d {
                cin: 1,
                cout: 1,
                k: 1,
                stride: 1,
                pad: 0,
                weight: vec![1.0],
                bias: vec![0.0],
            })
        };
        let mul = || Op::Binary { kind: BinKind::Mul, constant: None };
        let silu = |second: &str| Graph {
            input: INPUT.into(),
            nodes: vec![
                node("c", conv(), &[INPUT]),
                node("s", Op::Unary(Unary::Sigmoid), &["c"]),
                node("m", mul(), &["s", second]),
            ],
        };
        let f = find(&silu("c"), &|_, _| false);
        assert_eq!(
            f,
            vec![Fusion { conv: 0, bn: None, act: Some(1), gate: Some(2), write_raw: false, write_bn: false }]
        );
        assert_eq!(f[0].absorbed().collect::<Vec<_>>(), vec![1, 2]);
        // The sigmoid's output needed (kept): no gate.
        assert_eq!(find(&silu("c"), &|t, _| t == 2)[0].gate, None);
        // A Mul of other operands is no gate.
        assert_eq!(find(&silu(INPUT), &|_, _| false)[0].gate, None);
    }

    #[test]
    fn binary_ops_take_a_following_activation_but_no_batch_norm() {
        use crate::graph::{BinKind, INPUT};
        let add = || Op::Binary { kind: BinKind::Add, constant: None };
        let bn = Op::BatchNorm { weight: vec![1.0], bias: vec![0.0], mean: vec![0.0], var: vec![1.0], eps: 1e-5 };
        let g = Graph {
            input: INPUT.into(),
            nodes: vec![
                node("a", add(), &[INPUT, INPUT]),
                node("r", Op::Relu, &["a"]),
                node("b", add(), &["r", "a"]),
                node("n", bn, &["b"]),
                node("r2", Op::Relu, &["n"]),
            ],
        };
        // "a" is read again by "b", so it is written; the batch norm after "b" is not
        // folded into a binary op (nor the ReLU after it, which does not follow "b").
        let f = find(&g, &|t, members| t == 1 && !members.contains(&2));
        assert_eq!(f, vec![Fusion { conv: 0, bn: None, act: Some(1), gate: None, write_raw: true, write_bn: false }]);
    }
}

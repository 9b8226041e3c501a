//! The plan of one run, as pure data: which GPU buffers exist (sizes, and which tensor bands
//! share them over time), which steps run in which order (node, band, rows), and the checks
//! that refuse a run before any GPU work (buffer limit, memory budget, dispatch limits).
//! Built from a graph, its tensor shapes and the adapter's limits; unit-tested on the CPU.

pub mod bands;
pub mod fusion;

use crate::graph::Graph;
use crate::tensor::Shape;
use anyhow::{Result, bail};
pub use bands::{band_bytes, owned};

/// The limits a plan must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest buffer one band may use (the device's binding and buffer limits, or lower).
    pub max_binding: u64,
    /// Largest total of all activation buffers of one run.
    pub memory_budget: u64,
    /// Most workgroups per dispatch dimension (channels are dispatched along one).
    pub max_workgroups: u32,
}

/// Which tensors stay readable after the run (their buffers are never reused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Every tensor: the viewer's pages, export's grids and `--tensors`.
    All,
    /// Only these tensor indices (0 = input, i + 1 = node i's output).
    Only(Vec<usize>),
}

impl Keep {
    fn keeps(&self, t: usize) -> bool {
        match self {
            Keep::All => true,
            Keep::Only(v) => v.contains(&t),
        }
    }
}

/// One band of one tensor: rows `row0 .. row0 + rows` of every channel (`[C][rows][W]`),
/// held in plan buffer `buffer`, owning rows `own_lo .. own_hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BandPlan {
    pub buffer: usize,
    pub row0: usize,
    pub rows: usize,
    pub own_lo: usize,
    pub own_hi: usize,
}

/// A tensor of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorPlan {
    pub name: String,
    pub shape: Shape,
    pub bands: Vec<BandPlan>,
    /// Readable after the run.
    pub kept: bool,
}

/// One GPU buffer: its size is the largest band it ever holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferPlan {
    pub bytes: u64,
    /// The bands it holds, in order, as `(tensor, band)`.
    pub holds: Vec<(usize, usize)>,
}

/// One dispatch: node `node` computes band `band` of its output from band `band` of its
/// input(s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub node: usize,
    pub band: usize,
    /// Input tensors, by index.
    pub inputs: Vec<usize>,
    /// The output tensor's index (`node + 1`).
    pub output: usize,
    /// The fusion this step runs (an index into [`Plan::fusions`]): it also writes the
    /// outputs of the nodes fused into it.
    pub fusion: Option<usize>,
}

impl Step {
    /// Whether this step writes tensor `t`.
    pub fn writes(&self, t: usize, plan_fusions: &[fusion::Fusion]) -> bool {
        self.output == t || self.fusion.is_some_and(|f| plan_fusions[f].extra_outputs().contains(&t))
    }
}

/// Everything a run does, before it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub tensors: Vec<TensorPlan>,
    pub buffers: Vec<BufferPlan>,
    pub steps: Vec<Step>,
    /// Convolutions run with the batch norm and activation after them in one pass.
    pub fusions: Vec<fusion::Fusion>,
}

impl Plan {
    /// Builds the plan of `graph` on tensors of `shapes` (from [`Graph::infer_shapes`]).
    /// Chains too large for one buffer are cut into the fewest row bands that fit; other
    /// graphs must fit whole.
    pub fn build(graph: &Graph, shapes: &[Shape], limits: &Limits, keep: &Keep) -> Result<Plan> {
        Self::build_fused(graph, shapes, limits, keep, false)
    }

    /// As [`Plan::build`]; with `fuse`, convolutions on the tuned kernel absorb the batch
    /// norm and activation right after them (unbanded runs only).
    pub fn build_fused(graph: &Graph, shapes: &[Shape], limits: &Limits, keep: &Keep, fuse: bool) -> Result<Plan> {
        let names: Vec<String> =
            std::iter::once(graph.input.clone()).chain(graph.nodes.iter().map(|n| n.output.clone())).collect();
        if shapes.len() != names.len() {
            bail!("internal: {} shapes for {} tensors", shapes.len(), names.len());
        }
        for (name, s) in names.iter().zip(shapes) {
            if s.c as u64 > limits.max_workgroups as u64 {
                bail!("{name} has {} channels, more than this GPU can dispatch ({})", s.c, limits.max_workgroups);
            }
        }
        if limits.max_binding == 0 {
            bail!("the GPU buffer limit is 0 bytes; raise CONVSCOPE_MAX_BINDING_KB");
        }
        let inputs = graph.input_indices()?;
        let ranges = if graph.is_bandable_chain() && !graph.nodes.is_empty() {
            chain_ranges(graph, &names, shapes, limits.max_binding)?
        } else {
            for (name, s) in names.iter().zip(shapes) {
                let b = band_bytes(*s, s.h);
                if b > limits.max_binding {
                    bail!(
                        "{name} ({s}) needs {} KiB, more than the {} KiB this GPU allows per buffer; use a smaller image (or a smaller --size for a model)",
                        b >> 10,
                        limits.max_binding >> 10
                    );
                }
            }
            shapes.iter().map(|s| vec![(0, s.h)]).collect()
        };
        let banded = ranges.iter().any(|r| r.len() > 1);
        let fusions = if fuse && !banded {
            // A tensor is needed when kept or read by a node outside the fusion.
            let needed = |t: usize, members: &[usize]| {
                keep.keeps(t) || inputs.iter().enumerate().any(|(n, ins)| ins.contains(&t) && !members.contains(&n))
            };
            fusion::find(graph, &needed)
        } else {
            Vec::new()
        };
        let absorbed: Vec<usize> = fusions.iter().flat_map(|f| f.absorbed()).collect();
        let steps: Vec<Step> = graph
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !absorbed.contains(i))
            .flat_map(|(i, _)| {
                let inputs = inputs[i].clone();
                let fusion = fusions.iter().position(|f| f.conv == i);
                (0..ranges[i + 1].len()).map(move |j| Step {
                    node: i,
                    band: j,
                    inputs: inputs.clone(),
                    output: i + 1,
                    fusion,
                })
            })
            .collect();
        let (tensors, buffers) = assign_buffers(&names, shapes, &ranges, &steps, &fusions, keep);
        let plan = Plan { tensors, buffers, steps, fusions };
        let total = plan.total_bytes();
        if total > limits.memory_budget {
            bail!(
                "this image needs {:.1} GiB of GPU memory for all layers, more than the {:.1} GiB allowed; \
                 use a smaller image (or raise CONVSCOPE_GPU_MEMORY_MB)",
                total as f64 / (1u64 << 30) as f64,
                limits.memory_budget as f64 / (1u64 << 30) as f64
            );
        }
        Ok(plan)
    }

    /// Bytes of all activation buffers.
    pub fn total_bytes(&self) -> u64 {
        self.buffers.iter().fold(0u64, |a, b| a.saturating_add(b.bytes))
    }

    /// Whether any tensor is cut into more than one band.
    pub fn banded(&self) -> bool {
        self.tensors.iter().any(|t| t.bands.len() > 1)
    }

    /// The steps of node `i`, in band order.
    pub fn steps_of(&self, node: usize) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(move |s| s.node == node)
    }
}

/// The fewest bands of a chain such that every band fits `cap` bytes.
fn chain_ranges(graph: &Graph, names: &[String], shapes: &[Shape], cap: u64) -> Result<Vec<Vec<(usize, usize)>>> {
    let ops: Vec<&crate::graph::Op> = graph.nodes.iter().map(|n| &n.op).collect();
    let h_last = shapes[shapes.len() - 1].h.max(1);
    let largest = |r: &[Vec<(usize, usize)>]| -> (u64, usize) {
        let mut max = (0u64, 0usize);
        for (i, bands) in r.iter().enumerate() {
            for &(lo, hi) in bands {
                let b = band_bytes(shapes[i], hi - lo);
                if b > max.0 {
                    max = (b, i);
                }
            }
        }
        max
    };
    // Bands only shrink as n grows, so search upwards: fast for huge inputs, then exactly.
    let mut n = 1usize;
    loop {
        let r = bands::band_ranges(&ops, shapes, n);
        let (max, worst) = largest(&r);
        if max <= cap {
            return Ok(r);
        }
        if n >= h_last {
            bail!(
                "{} ({}) is too wide for this GPU: one row band needs {} KiB, the limit is {} KiB per buffer; use a smaller image",
                names[worst],
                shapes[worst],
                max >> 10,
                cap >> 10
            );
        }
        n = n.saturating_mul(max.div_ceil(cap).min(h_last as u64) as usize).clamp(n + 1, h_last);
    }
}

/// Gives every band a buffer. A band's buffer is free again after the last step that reads
/// it and after its tensor's statistics (which run once the tensor's last band is written),
/// unless its tensor is kept; a later band takes a free buffer (growing it if needed)
/// before a new one is made.
fn assign_buffers(
    names: &[String],
    shapes: &[Shape],
    ranges: &[Vec<(usize, usize)>],
    steps: &[Step],
    fusions: &[fusion::Fusion],
    keep: &Keep,
) -> (Vec<TensorPlan>, Vec<BufferPlan>) {
    let n_tensors = shapes.len();
    // When each band is written (input: before step 0) and last needed.
    let produced_at = |t: usize, j: usize| -> usize {
        if t == 0 { 0 } else { steps.iter().position(|s| s.writes(t, fusions) && s.band == j).map_or(0, |p| p + 1) }
    };
    let stats_at =
        |t: usize| -> usize { if t == 0 { 0 } else { steps.iter().rposition(|s| s.output == t).map_or(0, |p| p + 1) } };
    let last_use = |t: usize, j: usize| -> usize {
        let read = steps.iter().rposition(|s| s.inputs.contains(&t) && s.band == j).map_or(0, |p| p + 1);
        read.max(stats_at(t))
    };
    let mut buffers: Vec<BufferPlan> = Vec::new();
    // Free-from time of each buffer (usize::MAX: never, kept).
    let mut busy_until: Vec<usize> = Vec::new();
    let mut tensors = Vec::with_capacity(n_tensors);
    for t in 0..n_tensors {
        let kept = keep.keeps(t);
        let mut bands_out = Vec::new();
        for (j, &(lo, hi)) in ranges[t].iter().enumerate() {
            let bytes = band_bytes(shapes[t], hi - lo).max(4);
            let start = produced_at(t, j);
            // A buffer is free for this band when its last holder was last needed strictly
            // before this band is written (same step: the step reads it while writing us).
            let free = (0..buffers.len())
                .filter(|&b| busy_until[b] < start)
                .min_by_key(|&b| (buffers[b].bytes < bytes, buffers[b].bytes.abs_diff(bytes)));
            let b = match free {
                Some(b) => b,
                None => {
                    buffers.push(BufferPlan { bytes: 0, holds: Vec::new() });
                    busy_until.push(0);
                    buffers.len() - 1
                }
            };
            buffers[b].bytes = buffers[b].bytes.max(bytes);
            buffers[b].holds.push((t, j));
            busy_until[b] = if kept { usize::MAX } else { last_use(t, j) };
            let (own_lo, own_hi) = owned(&ranges[t], j, shapes[t].h);
            bands_out.push(BandPlan { buffer: b, row0: lo, rows: hi - lo, own_lo, own_hi });
        }
        tensors.push(TensorPlan { name: names[t].clone(), shape: shapes[t], bands: bands_out, kept });
    }
    (tensors, buffers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Network;

    fn limits(max_binding: u64) -> Limits {
        Limits { max_binding, memory_budget: 4 << 30, max_workgroups: 65535 }
    }

    fn tutorial_plan(h: usize, w: usize, l: &Limits, keep: &Keep) -> Result<Plan> {
        let g = Network::tutorial(0).graph();
        let shapes = g.infer_shapes(Shape::new(3, h, w))?;
        Plan::build(&g, &shapes, l, keep)
    }

    #[test]
    fn kept_tensors_each_get_their_own_buffer() {
        let p = tutorial_plan(40, 30, &limits(1 << 30), &Keep::All).unwrap();
        assert_eq!(p.buffers.len(), 4);
        assert_eq!(p.steps.len(), 3);
        assert!(!p.banded());
        let sizes: Vec<u64> = p.buffers.iter().map(|b| b.bytes).collect();
        assert_eq!(sizes, vec![3 * 40 * 30 * 4, 12 * 36 * 26 * 4, 24 * 32 * 22 * 4, 48 * 28 * 18 * 4]);
    }

    #[test]
    fn buffers_are_reused_once_no_later_step_reads_them() {
        let keep = Keep::Only(vec![3]);
        let p = tutorial_plan(40, 30, &limits(1 << 30), &keep).unwrap();
        // input -> A, conv1 -> B, conv2 -> A (input is dead after conv1), conv3 -> B.
        assert_eq!(p.buffers.len(), 2);
        let holders: Vec<usize> = p.tensors.iter().map(|t| t.bands[0].buffer).collect();
        assert_eq!(holders[0], holders[2]);
        assert_eq!(holders[1], holders[3]);
        assert_ne!(holders[0], holders[1]);
        // A buffer grows to its largest band.
        assert_eq!(p.buffers[holders[0]].bytes, 24 * 32 * 22 * 4);
        assert!(p.total_bytes() < tutorial_plan(40, 30, &limits(1 << 30), &Keep::All).unwrap().total_bytes());
        // A step never writes the buffer it reads.
        for s in &p.steps {
            let out = p.tensors[s.output].bands[s.band].buffer;
            for &i in &s.inputs {
                assert_ne!(p.tensors[i].bands[s.band].buffer, out);
            }
        }
    }

    #[test]
    fn a_small_buffer_limit_bands_every_layer_with_its_halo() {
        let cap = 48 * 7 * 18 * 4; // a quarter of conv3's 28 rows
        let p = tutorial_plan(40, 30, &limits(cap), &Keep::All).unwrap();
        assert!(p.banded());
        for t in &p.tensors {
            for b in &t.bands {
                assert!(band_bytes(t.shape, b.rows) <= cap, "{} band of {} rows", t.name, b.rows);
            }
            let owned: usize = t.bands.iter().map(|b| b.own_hi - b.own_lo).sum();
            assert_eq!(owned, t.shape.h, "{} rows owned once", t.name);
        }
        let n = p.tensors[3].bands.len();
        assert_eq!(p.steps.len(), 3 * n);
        assert_eq!(p.steps_of(1).count(), n);
    }

    #[test]
    fn refusals_name_the_problem() {
        // One row of conv3 does not fit.
        let e = tutorial_plan(40, 30, &limits(100), &Keep::All).unwrap_err().to_string();
        assert!(e.contains("too wide for this GPU") && e.contains("per buffer"), "{e}");
        let e = tutorial_plan(40, 30, &limits(0), &Keep::All).unwrap_err().to_string();
        assert!(e.contains("CONVSCOPE_MAX_BINDING_KB"), "{e}");
        let small = Limits { memory_budget: 1 << 10, ..limits(1 << 30) };
        let e = tutorial_plan(40, 30, &small, &Keep::All).unwrap_err().to_string();
        assert!(e.contains("GPU memory") && e.contains("CONVSCOPE_GPU_MEMORY_MB"), "{e}");
        let few = Limits { max_workgroups: 10, ..limits(1 << 30) };
        let e = tutorial_plan(40, 30, &few, &Keep::All).unwrap_err().to_string();
        assert!(e.contains("conv1 has 12 channels"), "{e}");
    }

    #[test]
    fn branching_graphs_are_not_banded_and_refuse_oversized_tensors() {
        use crate::graph::{Graph, INPUT, Node, Op};
        let node = |n: &str| Node { name: n.into(), op: Op::Relu, inputs: vec![INPUT.into()], output: n.into() };
        let g = Graph { input: INPUT.into(), nodes: vec![node("a"), node("b")] };
        let shapes = g.infer_shapes(Shape::new(2, 10, 10)).unwrap();
        let p = Plan::build(&g, &shapes, &limits(1 << 20), &Keep::Only(vec![2])).unwrap();
        // The input is read by both nodes: "a" cannot take its buffer, "b" can take none of
        // the input's (still read by b itself) but a's, which nothing reads.
        let buf = |t: usize| p.tensors[t].bands[0].buffer;
        assert_ne!(buf(1), buf(0));
        assert_eq!(buf(2), buf(1));
        let e = Plan::build(&g, &shapes, &limits(100), &Keep::All).unwrap_err().to_string();
        assert!(e.contains("input (2x10x10) needs"), "{e}");
    }
}

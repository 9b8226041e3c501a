//! The viewer's pages, as data: which tensors are pages (the input and every node with an
//! image-shaped output), what the HUD says about each (op, attributes, inputs, ONNX
//! shape), the groups PageUp/PageDown jump between (a node name's `/` path), the
//! "convolutions only" view (a conv's page then shows the output after the batch norm and
//! activations that directly follow it), the node list of the side panel, and whether a
//! predictions page ends the list. Pure data, unit-tested without a window.

use crate::graph::{Graph, Op};

/// One page: a tensor and how to describe it.
#[derive(Clone, Debug, PartialEq)]
pub struct PageInfo {
    /// Tensor index (0 = input, i + 1 = node i).
    pub tensor: usize,
    /// The node's name (or `input`).
    pub name: String,
    /// The op and its parameters.
    pub detail: String,
    /// The tensors the node reads.
    pub inputs: Vec<String>,
    /// The group for PageUp/PageDown: the name up to its last `/` part.
    pub group: String,
    pub is_conv: bool,
}

/// One row of the side panel: every node, page or not.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRow {
    pub name: String,
    pub op: &'static str,
    pub dims: Vec<usize>,
    /// Its index in [`Pages::all`], when it is a page.
    pub page: Option<usize>,
}

/// The pages of one computation.
#[derive(Clone, Debug, PartialEq)]
pub struct Pages {
    pub all: Vec<PageInfo>,
    /// For the "convolutions only" view: (index in `all` of the conv's page, index in `all`
    /// of the page it shows: the last directly following elementwise node).
    pub convs: Vec<(usize, usize)>,
    pub rows: Vec<NodeRow>,
    /// A predictions page follows the last page.
    pub predictions: bool,
}

/// The group of a node name: `/layer1/layer1.0/conv1/Conv` → `/layer1/layer1.0`.
pub fn group_of(name: &str) -> String {
    let trimmed = name.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(i) => {
            let parent = &trimmed[..i];
            // The last part is the node itself when its parent is its module (`/conv1/Conv`).
            match parent.rfind('/') {
                Some(j) if j > 0 => parent[..j].to_string(),
                _ => parent.to_string(),
            }
        }
        None => String::new(),
    }
}

/// The node panel's tree: groups by path part, in graph order (consecutive nodes under the
/// same parts share a group).
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    /// A path part, a unique id for the widget, and what is under it.
    Group { name: String, id: String, entries: Vec<Entry> },
    /// A node, by its index in [`Pages::rows`].
    Node(usize),
}

impl Entry {
    /// Whether page `p` is under this entry.
    pub fn holds_page(&self, rows: &[NodeRow], p: usize) -> bool {
        match self {
            Entry::Node(i) => rows[*i].page == Some(p),
            Entry::Group { entries, .. } => entries.iter().any(|e| e.holds_page(rows, p)),
        }
    }
}

/// The path parts of a node name above the node itself: `/layer1/layer1.0/conv1/Conv` →
/// `[layer1, layer1.0, conv1]`.
fn parts(name: &str) -> Vec<&str> {
    let mut v: Vec<&str> = name.split('/').filter(|s| !s.is_empty()).collect();
    v.pop();
    v
}

/// Builds the tree of `rows`.
pub fn tree(rows: &[NodeRow]) -> Vec<Entry> {
    let mut root: Vec<Entry> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let mut level = &mut root;
        let mut path = String::new();
        for part in parts(&row.name) {
            path.push('/');
            path.push_str(part);
            let reuse = matches!(level.last(), Some(Entry::Group { name, .. }) if name == part);
            if !reuse {
                let id = format!("{path}#{i}");
                level.push(Entry::Group { name: part.to_string(), id, entries: Vec::new() });
            }
            let Some(Entry::Group { entries, .. }) = level.last_mut() else { unreachable!("a group was just ensured") };
            level = entries;
        }
        level.push(Entry::Node(i));
    }
    root
}

impl Pages {
    /// Pages of `graph`: the input and the nodes for which `is_page(tensor)` holds.
    pub fn new(
        graph: &Graph,
        dims: &dyn Fn(usize) -> Vec<usize>,
        is_page: &dyn Fn(usize) -> bool,
        predictions: bool,
    ) -> Self {
        let mut all = vec![PageInfo {
            tensor: 0,
            name: "input".into(),
            detail: String::new(),
            inputs: Vec::new(),
            group: String::new(),
            is_conv: false,
        }];
        let mut rows = Vec::new();
        for (i, n) in graph.nodes.iter().enumerate() {
            let t = i + 1;
            let page = is_page(t).then(|| {
                all.push(PageInfo {
                    tensor: t,
                    name: n.name.clone(),
                    detail: n.op.describe(),
                    inputs: n.inputs.clone(),
                    group: group_of(&n.name),
                    is_conv: matches!(n.op, Op::Conv(_) | Op::ConvG(_)),
                });
                all.len() - 1
            });
            rows.push(NodeRow { name: n.name.clone(), op: n.op.kind(), dims: dims(t), page });
        }
        let convs = conv_view(graph, &all);
        Pages { all, convs, rows, predictions }
    }

    /// Number of pages in the view (predictions included).
    pub fn count(&self, conv_only: bool) -> usize {
        let n = if conv_only { 1 + self.convs.len() } else { self.all.len() };
        n + usize::from(self.predictions)
    }

    /// The index in [`Pages::all`] shown at view position `v` (None: the predictions page).
    pub fn shown(&self, v: usize, conv_only: bool) -> Option<usize> {
        if conv_only {
            match v {
                0 => Some(0),
                v => self.convs.get(v - 1).map(|c| c.1),
            }
        } else {
            (v < self.all.len()).then_some(v)
        }
    }

    /// The view position showing page `p` of [`Pages::all`] (the closest conv at or before
    /// it in the conv view).
    pub fn position_of(&self, p: usize, conv_only: bool) -> usize {
        if !conv_only {
            return p.min(self.all.len().saturating_sub(1));
        }
        if p == 0 {
            return 0;
        }
        self.convs.iter().rposition(|c| c.0 <= p).map_or(0, |i| i + 1)
    }

    /// The first view position of the next (`+1`) or previous (`-1`) group from `v`.
    pub fn group_jump(&self, v: usize, forward: bool, conv_only: bool) -> usize {
        let n = self.count(conv_only) - usize::from(self.predictions);
        let group = |v: usize| self.shown(v, conv_only).map(|p| self.all[p].group.clone());
        let here = group(v);
        if forward {
            (v + 1..n).find(|&u| group(u) != here).unwrap_or(n.saturating_sub(1))
        } else {
            // Back to the start of the previous group.
            let mut u = v;
            while u > 0 && group(u - 1) == here {
                u -= 1;
            }
            if u == 0 {
                return 0;
            }
            let prev = group(u - 1);
            let mut w = u - 1;
            while w > 0 && group(w - 1) == prev {
                w -= 1;
            }
            w
        }
    }
}

/// For each conv page, the page showing its output after the elementwise nodes (batch
/// norm, activations) that directly and solely follow it.
fn conv_view(graph: &Graph, all: &[PageInfo]) -> Vec<(usize, usize)> {
    let page_of = |t: usize| all.iter().position(|p| p.tensor == t);
    let consumers = |t: usize| -> Vec<usize> {
        let name = if t == 0 { &graph.input } else { &graph.nodes[t - 1].output };
        graph.nodes.iter().enumerate().filter(|(_, n)| n.inputs.contains(name)).map(|(i, _)| i + 1).collect()
    };
    let elementwise = |t: usize| {
        matches!(graph.nodes[t - 1].op, Op::BatchNorm { .. } | Op::Relu | Op::PRelu { .. } | Op::Unary(_))
            && graph.nodes[t - 1].inputs.len() == 1
    };
    all.iter()
        .enumerate()
        .filter(|(_, p)| p.is_conv)
        .map(|(i, p)| {
            let mut t = p.tensor;
            loop {
                match consumers(t).as_slice() {
                    [next] if elementwise(*next) && page_of(*next).is_some() => t = *next,
                    _ => break,
                }
            }
            (i, page_of(t).unwrap_or(i))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Network;

    #[test]
    fn groups_follow_pytorch_names() {
        assert_eq!(group_of("/layer1/layer1.0/conv1/Conv"), "/layer1/layer1.0");
        assert_eq!(group_of("/stem/stem.0/Conv"), "/stem");
        assert_eq!(group_of("/Relu"), "");
        assert_eq!(group_of("conv1"), "");
    }

    #[test]
    fn conv_view_shows_the_output_after_following_activations() {
        let net = crate::arch::build(Some("conv(3,4,3) relu conv(4,4,3) pool1=maxpool(2) conv(4,2,1) relu"), None, 0)
            .unwrap();
        let g = net.graph();
        let p = Pages::new(&g, &|_| vec![1, 4, 8, 8], &|_| true, false);
        assert_eq!(p.all.len(), 7);
        // conv1 shows relu1 (page 2); conv2 has a pool after it (not elementwise): itself.
        assert_eq!(p.convs, vec![(1, 2), (3, 3), (5, 6)]);
        assert_eq!(p.count(true), 4);
        assert_eq!(p.shown(1, true), Some(2));
        assert_eq!(p.position_of(4, true), 2);
        let with_pred = Pages { predictions: true, ..p.clone() };
        assert_eq!(with_pred.count(false), 8);
        assert_eq!(with_pred.shown(7, false), None);
        assert_eq!(p.rows.len(), 6);
        assert_eq!(p.rows[1].op, "relu");
    }

    #[test]
    fn the_panel_tree_follows_the_name_paths_in_graph_order() {
        let row = |n: &str| NodeRow { name: n.into(), op: "conv", dims: vec![], page: None };
        let rows = vec![
            row("/stem/Conv"),
            row("/layer1/b0/conv1/Conv"),
            row("/layer1/b0/Relu"),
            row("/layer1/b1/conv1/Conv"),
            row("/Flatten"),
        ];
        let t = tree(&rows);
        let names = |es: &[Entry]| -> Vec<String> {
            es.iter()
                .map(|e| match e {
                    Entry::Group { name, .. } => name.clone(),
                    Entry::Node(i) => format!("#{i}"),
                })
                .collect()
        };
        assert_eq!(names(&t), ["stem", "layer1", "#4"]);
        let Entry::Group { entries, .. } = &t[1] else { panic!("layer1 is a group") };
        assert_eq!(names(entries), ["b0", "b1"]);
        let Entry::Group { entries: b0, .. } = &entries[0] else { panic!("b0 is a group") };
        assert_eq!(names(b0), ["conv1", "#2"]);
        let rows_with_page = vec![NodeRow { page: Some(7), ..row("/a/b/Conv") }];
        assert!(tree(&rows_with_page)[0].holds_page(&rows_with_page, 7));
    }

    #[test]
    fn page_up_and_down_jump_between_groups() {
        let mut net = Network::tutorial(0);
        for (l, name) in net.layers.iter_mut().zip(["/a/x/Conv", "/a/y/Conv", "/b/z/Conv"]) {
            l.name = name.into();
        }
        let g = net.graph();
        let p = Pages::new(&g, &|_| vec![1, 4, 8, 8], &|_| true, false);
        let groups: Vec<&str> = p.all.iter().map(|x| x.group.as_str()).collect();
        assert_eq!(groups, ["", "/a", "/a", "/b"]);
        assert_eq!(p.group_jump(0, true, false), 1);
        assert_eq!(p.group_jump(1, true, false), 3);
        assert_eq!(p.group_jump(3, false, false), 1);
        assert_eq!(p.group_jump(2, false, false), 0);
        assert_eq!(p.group_jump(3, true, false), 3);
    }
}

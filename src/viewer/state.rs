//! The viewer's state machine: which layer, zoom, look and panels are shown, and what each
//! key does. Pure data, unit-tested without a window.

use crate::grid::{Colormap, Norm};

/// Keys the viewer reacts to, independent of the windowing library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Next,
    Prev,
    First,
    Last,
    Digit(u8),
    Help,
    Escape,
    Quit,
    Norm,
    Colormap,
    Save,
    Reroll,
    Kernels,
    /// PageDown / PageUp: the next or previous group of nodes.
    GroupNext,
    GroupPrev,
    /// F: convolutions only.
    ConvOnly,
    /// P: the node panel.
    Panel,
}

/// What the application must do after a state change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Show another layer (textures already exist: no recompute).
    ShowLayer,
    /// Re-run only the colormap pass.
    Recolour,
    /// Save the current view's grid as PNG.
    Save,
    /// Re-initialise the weights with this seed and recompute.
    Reroll(i64),
    ToggleHelp,
    /// Show or hide the current conv layer's kernels.
    ToggleKernels,
    /// Zoom in or out (the tile shown alone, or None for the grid).
    Zoom(Option<usize>),
    /// Jump to the next (true) or previous group; the app knows the groups.
    GroupJump(bool),
    /// The "convolutions only" view was switched; the app maps the page across.
    ConvOnly,
    TogglePanel,
    Quit,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ViewState {
    pub layer: usize,
    /// Number of pages: the input plus one per network layer.
    pub pages: usize,
    /// The tile shown alone, if zoomed.
    pub zoom: Option<usize>,
    pub help: bool,
    /// Showing the current layer's kernels instead of its output.
    pub kernels: bool,
    pub norm: Norm,
    pub cmap: Colormap,
    pub seed: i64,
    /// Only convolution pages (each showing its output after the activation that follows).
    pub conv_only: bool,
    /// The node panel is shown.
    pub panel: bool,
}

impl ViewState {
    pub fn new(pages: usize, seed: i64) -> Self {
        Self {
            layer: 0,
            pages,
            zoom: None,
            help: false,
            kernels: false,
            norm: Norm::default(),
            cmap: Colormap::default(),
            seed,
            conv_only: false,
            panel: true,
        }
    }

    /// Shows view position `layer` (clamped to the pages).
    pub fn goto(&mut self, layer: usize) -> Vec<Action> {
        let layer = layer.min(self.pages.saturating_sub(1));
        if layer == self.layer && self.zoom.is_none() {
            return vec![];
        }
        self.layer = layer;
        self.zoom = None;
        vec![Action::ShowLayer]
    }

    /// Applies a key press.
    pub fn key(&mut self, key: Key) -> Vec<Action> {
        match key {
            Key::Next => self.goto(self.layer + 1),
            Key::Prev => self.goto(self.layer.saturating_sub(1)),
            Key::First => self.goto(0),
            Key::Last => self.goto(self.pages.saturating_sub(1)),
            Key::Digit(d) if (d as usize) < self.pages => self.goto(d as usize),
            Key::Digit(_) => vec![],
            Key::Help => {
                self.help = !self.help;
                vec![Action::ToggleHelp]
            }
            Key::Escape if self.zoom.is_some() => {
                self.zoom = None;
                vec![Action::Zoom(None)]
            }
            Key::Escape | Key::Quit => vec![Action::Quit],
            Key::Norm => {
                self.norm = self.norm.next();
                // The diverging colormap goes with the symmetric scale, and back.
                if self.norm == Norm::Symmetric {
                    self.cmap = Colormap::Bwr;
                } else if self.cmap == Colormap::Bwr {
                    self.cmap = Colormap::Viridis;
                }
                vec![Action::Recolour]
            }
            Key::Colormap => {
                self.cmap = self.cmap.next();
                vec![Action::Recolour]
            }
            Key::Save => vec![Action::Save],
            Key::Kernels => {
                self.kernels = !self.kernels;
                self.zoom = None;
                vec![Action::ToggleKernels]
            }
            Key::Reroll => {
                self.seed = self.seed.wrapping_add(1);
                vec![Action::Reroll(self.seed)]
            }
            Key::GroupNext => vec![Action::GroupJump(true)],
            Key::GroupPrev => vec![Action::GroupJump(false)],
            Key::ConvOnly => {
                self.conv_only = !self.conv_only;
                self.zoom = None;
                vec![Action::ConvOnly]
            }
            Key::Panel => {
                self.panel = !self.panel;
                vec![Action::TogglePanel]
            }
        }
    }

    /// A click on tile `tile` (None: outside any tile) zooms in, or back out when zoomed.
    pub fn click(&mut self, tile: Option<usize>) -> Vec<Action> {
        if self.zoom.is_some() {
            self.zoom = None;
            return vec![Action::Zoom(None)];
        }
        match tile {
            Some(t) => {
                self.zoom = Some(t);
                vec![Action::Zoom(Some(t))]
            }
            None => vec![],
        }
    }
}

/// The help panel's lines: key, what it does.
pub const HELP: &[(&str, &str)] = &[
    ("Right / Down", "next layer"),
    ("Left / Up", "previous layer"),
    ("Home / End", "first / last layer"),
    ("0-9", "jump to layer (0 = input)"),
    ("click a tile", "show that channel alone; click or Esc to return"),
    ("hover", "channel and exact value under the cursor"),
    ("N", "normalisation: per-channel, per-layer, symmetric"),
    ("C", "colormap: viridis, gray, bwr"),
    ("K", "kernels of the current conv layer: Cout x Cin tiles, blue < 0 < red"),
    ("S", "save this view's grid as PNG in the current directory"),
    ("R", "re-roll weights with the next seed"),
    ("drop a file", "load that image"),
    ("PageDown / PageUp", "next / previous group of nodes (ONNX models)"),
    ("F", "convolutions only: each conv shows its output after BN/activation"),
    ("P", "node panel: every node by its / path; click to jump"),
    ("H", "toggle this help"),
    ("Esc / Q", "quit"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrows_step_and_stop_at_the_ends() {
        let mut s = ViewState::new(4, 0);
        assert_eq!(s.key(Key::Prev), vec![]);
        assert_eq!(s.key(Key::Next), vec![Action::ShowLayer]);
        s.key(Key::Next);
        s.key(Key::Next);
        assert_eq!(s.layer, 3);
        assert_eq!(s.key(Key::Next), vec![]);
        assert_eq!(s.layer, 3);
        s.key(Key::First);
        assert_eq!(s.layer, 0);
        s.key(Key::Last);
        assert_eq!(s.layer, 3);
        s.key(Key::Digit(1));
        assert_eq!(s.layer, 1);
        assert_eq!(s.key(Key::Digit(9)), vec![]);
        assert_eq!(s.layer, 1);
    }

    #[test]
    fn zoom_click_and_escape() {
        let mut s = ViewState::new(4, 0);
        assert_eq!(s.click(None), vec![]);
        assert_eq!(s.click(Some(5)), vec![Action::Zoom(Some(5))]);
        assert_eq!(s.key(Key::Escape), vec![Action::Zoom(None)]);
        assert_eq!(s.zoom, None);
        s.click(Some(2));
        assert_eq!(s.click(Some(3)), vec![Action::Zoom(None)]);
        s.click(Some(2));
        s.key(Key::Next); // changing layer leaves zoom
        assert_eq!(s.zoom, None);
        assert_eq!(s.key(Key::Escape), vec![Action::Quit]);
        assert_eq!(s.key(Key::Quit), vec![Action::Quit]);
    }

    #[test]
    fn recolouring_and_reroll() {
        let mut s = ViewState::new(4, 7);
        assert_eq!(s.key(Key::Norm), vec![Action::Recolour]);
        assert_eq!(s.norm, Norm::PerLayer);
        s.key(Key::Norm);
        assert_eq!((s.norm, s.cmap), (Norm::Symmetric, Colormap::Bwr));
        s.key(Key::Norm);
        assert_eq!((s.norm, s.cmap), (Norm::PerChannel, Colormap::Viridis));
        s.key(Key::Colormap);
        assert_eq!(s.cmap, Colormap::Gray);
        assert_eq!(s.key(Key::Reroll), vec![Action::Reroll(8)]);
        assert_eq!(s.key(Key::Help), vec![Action::ToggleHelp]);
        assert!(s.help);
        assert_eq!(s.key(Key::Save), vec![Action::Save]);
        assert_eq!(s.key(Key::Kernels), vec![Action::ToggleKernels]);
        assert!(s.kernels);
        s.key(Key::Kernels);
        assert!(!s.kernels);
    }
}

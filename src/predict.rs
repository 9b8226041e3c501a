//! A classifier's predictions: its `[1, N]` output ranked best first, with labels (from the
//! model's metadata, a labels file, or the index) and probabilities (the output itself when
//! the network ends in Softmax, else its softmax).

use anyhow::{Result, anyhow, bail};
use std::path::Path;

/// One ranked class.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub index: usize,
    pub label: String,
    /// The network's output for this class.
    pub score: f32,
    /// Its probability.
    pub prob: f32,
}

/// Reads a labels file: one label per line.
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("cannot read labels {}: {e}", path.display()))?;
    let labels: Vec<String> = text.lines().map(|l| l.trim_end().to_string()).collect();
    if labels.is_empty() {
        bail!("labels file {} is empty; give one label per line", path.display());
    }
    Ok(labels)
}

/// The softmax of `v` (computed in f64 for a stable sum).
pub fn softmax(v: &[f32]) -> Vec<f32> {
    let m = v.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let e: Vec<f64> = v.iter().map(|&x| ((x - m) as f64).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| (x / s) as f32).collect()
}

/// `scores` ranked best first. `probabilities`: the scores already are (a final Softmax).
pub fn rank(scores: &[f32], labels: Option<&[String]>, probabilities: bool) -> Vec<Prediction> {
    let probs = if probabilities { scores.to_vec() } else { softmax(scores) };
    let mut out: Vec<Prediction> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| Prediction {
            index: i,
            label: labels.and_then(|l| l.get(i)).cloned().unwrap_or_else(|| i.to_string()),
            score: s,
            prob: probs[i],
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    out
}

/// The predictions as the JSON list `predictions.json` holds.
pub fn to_json(p: &[Prediction]) -> String {
    let v: Vec<serde_json::Value> = p
        .iter()
        .map(|p| serde_json::json!({"index": p.index, "label": p.label, "score": p.score, "prob": p.prob}))
        .collect();
    serde_json::Value::Array(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_best_first_with_labels_and_softmax() {
        let labels: Vec<String> = ["0", "90", "180", "270"].iter().map(|s| s.to_string()).collect();
        let r = rank(&[1.0, 3.0, 2.0, 0.0], Some(&labels), false);
        assert_eq!(r.iter().map(|p| p.label.as_str()).collect::<Vec<_>>(), ["90", "180", "0", "270"]);
        let total: f32 = r.iter().map(|p| p.prob).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!((r[0].prob - 3f32.exp() / (1f32.exp() + 3f32.exp() + 2f32.exp() + 1.0)).abs() < 1e-6);
        let r = rank(&[0.2, 0.8], None, true);
        assert_eq!((r[0].label.as_str(), r[0].prob), ("1", 0.8));
        let j: serde_json::Value = serde_json::from_str(&to_json(&r)).unwrap();
        assert_eq!(j[0]["index"], 1);
        assert_eq!(j[1]["label"], "0");
    }
}

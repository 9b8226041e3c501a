//! Row bands: how a chain too large for one GPU buffer is cut into horizontal bands, each
//! band of a layer holding the rows the next layer's window needs (its halo), and which
//! rows each band *owns* (counts in statistics, draws) so that every row is owned once.

use crate::graph::Op;
use crate::tensor::Shape;

/// Row ranges `[lo, hi)` of every tensor's bands (index 0 = input) of a chain whose node `i`
/// reads tensor `i` and writes tensor `i + 1`, when the last tensor is split into `n` bands.
/// Each band holds exactly the rows the next band needs (the halo included), widened so
/// that the bands cover every row.
pub fn band_ranges(ops: &[&Op], shapes: &[Shape], n: usize) -> Vec<Vec<(usize, usize)>> {
    let last = shapes.len() - 1;
    let h_last = shapes[last].h;
    let n = n.clamp(1, h_last.max(1));
    let mut ranges: Vec<Vec<(usize, usize)>> = vec![Vec::new(); shapes.len()];
    ranges[last] = (0..n).map(|j| (j * h_last / n, (j + 1) * h_last / n)).collect();
    for l in (0..last).rev() {
        let h = shapes[l].h;
        let mut need: Vec<(usize, usize)> = ranges[l + 1].iter().map(|&(a, b)| ops[l].input_rows(a, b, h)).collect();
        need[0].0 = 0;
        for j in 0..need.len() - 1 {
            need[j].1 = need[j].1.max(need[j + 1].0);
        }
        if let Some(lastb) = need.last_mut() {
            lastb.1 = h;
        }
        ranges[l] = need;
    }
    ranges
}

/// The rows band `j` of a tensor of `h` rows owns: from its start to the next band's start.
pub fn owned(ranges: &[(usize, usize)], j: usize, h: usize) -> (usize, usize) {
    let lo = if j == 0 { 0 } else { ranges[j].0.max(ranges[j - 1].0) };
    let hi = if j + 1 == ranges.len() { h } else { ranges[j + 1].0 };
    (lo.min(hi), hi)
}

/// Bytes one band of `rows` rows of a tensor of shape `s` takes (f32).
pub fn band_bytes(s: Shape, rows: usize) -> u64 {
    (s.c as u64).saturating_mul(rows as u64).saturating_mul(s.w as u64).saturating_mul(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Network;

    fn chain_ops(net: &Network) -> Vec<&Op> {
        net.layers.iter().map(|l| &l.op).collect()
    }

    #[test]
    fn bands_carry_the_halo_and_cover_every_row() {
        let net = Network::tutorial(0);
        let mut shapes = vec![Shape::new(3, 40, 30)];
        shapes.extend(net.shapes(shapes[0]).unwrap());
        let r = band_ranges(&chain_ops(&net), &shapes, 4);
        // conv3 output (28 rows) split in 4; each earlier layer adds the 4-row halo.
        assert_eq!(r[3], vec![(0, 7), (7, 14), (14, 21), (21, 28)]);
        assert_eq!(r[2], vec![(0, 11), (7, 18), (14, 25), (21, 32)]);
        assert_eq!(r[0], vec![(0, 19), (7, 26), (14, 33), (21, 40)]);
        for (l, ranges) in r.iter().enumerate() {
            let mut next = 0;
            for j in 0..ranges.len() {
                let (lo, hi) = owned(ranges, j, shapes[l].h);
                assert_eq!(lo, next, "layer {l} band {j}");
                assert!(ranges[j].0 <= lo && hi <= ranges[j].1);
                next = hi;
            }
            assert_eq!(next, shapes[l].h);
        }
        // Stride and padding: band edges map through (a·s − p) and ((b−1)·s + k − p).
        let net = Network::seeded_convs(0, &[(3, 4, 5, 2, 2)]);
        let shapes = vec![Shape::new(3, 37, 53), Shape::new(4, 19, 27)];
        let r = band_ranges(&chain_ops(&net), &shapes, 2);
        assert_eq!(r[1], vec![(0, 9), (9, 19)]);
        assert_eq!(r[0], vec![(0, 19), (16, 37)]);
    }

    #[test]
    fn more_bands_than_rows_is_clamped() {
        let net = Network::seeded_convs(0, &[(3, 4, 3, 1, 0)]);
        let shapes = vec![Shape::new(3, 5, 5), Shape::new(4, 3, 3)];
        let r = band_ranges(&chain_ops(&net), &shapes, 10);
        assert_eq!(r[1].len(), 3);
    }

    #[test]
    fn band_bytes_saturate_instead_of_wrapping() {
        assert_eq!(band_bytes(Shape::new(2, 3, 4), 3), 96);
        assert_eq!(band_bytes(Shape::new(usize::MAX, 3, 4), usize::MAX), u64::MAX);
    }
}

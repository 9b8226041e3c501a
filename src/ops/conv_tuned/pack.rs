//! How the tuned conv's weights are laid out on the GPU: vec4 over output channels for the
//! direct and split forms, one padded run per step for the subgroup form (the Winograd
//! form's packing is in `winograd.rs`).

use crate::graph::Conv2d;

/// Packs `[cout, cin, k, k]` weights as vec4 over output channels, `groups` groups of 4
/// (zero beyond `cout`), and the bias likewise.
pub fn pack_weights(c: &Conv2d, groups: usize) -> (Vec<f32>, Vec<f32>) {
    let kk = c.k * c.k;
    let mut w = vec![0.0f32; groups * c.cin * kk * 4];
    let mut b = vec![0.0f32; groups * 4];
    for co in 0..c.cout {
        let (g, lane) = (co / 4, co % 4);
        b[g * 4 + lane] = c.bias[co];
        for ci in 0..c.cin {
            for t in 0..kk {
                w[((g * c.cin + ci) * kk + t) * 4 + lane] = c.weight[(co * c.cin + ci) * kk + t];
            }
        }
    }
    (w, b)
}

/// Floats of packed weights one (output-channel block, input channel, kernel row) step of
/// the subgroup form reads: K taps × `ocv` vec4 groups, padded to whole loads of 8.
pub fn subgroup_run(k: usize, ocv: usize) -> usize {
    (4 * k * ocv).next_multiple_of(8)
}

/// Packs weights for the subgroup form: for each block of `4·ocv` output channels, input
/// channel and kernel row, one run of [`subgroup_run`] floats ordered (kx, group, lane),
/// zero-padded, so the eight lanes of a subgroup load a step's weights in
/// `run / 8` loads. `groups` (vec4 groups, a multiple of `ocv`) as in [`pack_weights`].
pub fn pack_weights_subgroup(c: &Conv2d, groups: usize, ocv: usize) -> Vec<f32> {
    let (k, run) = (c.k, subgroup_run(c.k, ocv));
    let blocks = groups / ocv;
    let mut w = vec![0.0f32; blocks * c.cin * k * run];
    for co in 0..c.cout {
        let (g, lane) = (co / 4, co % 4);
        let (b, o) = (g / ocv, g % ocv);
        for ci in 0..c.cin {
            for ky in 0..k {
                for kx in 0..k {
                    w[((b * c.cin + ci) * k + ky) * run + (kx * ocv + o) * 4 + lane] =
                        c.weight[((co * c.cin + ci) * k + ky) * k + kx];
                }
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_puts_four_output_channels_in_a_vec4() {
        let c = Conv2d {
            cin: 2,
            cout: 5,
            k: 1,
            stride: 1,
            pad: 0,
            weight: (0..10).map(|v| v as f32).collect(),
            bias: vec![10.0, 11.0, 12.0, 13.0, 14.0],
        };
        let (w, b) = pack_weights(&c, 2);
        assert_eq!(b, vec![10.0, 11.0, 12.0, 13.0, 14.0, 0.0, 0.0, 0.0]);
        // group 0, ci 0: channels 0..3 at ci 0 → weights 0, 2, 4, 6
        assert_eq!(&w[0..4], &[0.0, 2.0, 4.0, 6.0]);
        assert_eq!(&w[4..8], &[1.0, 3.0, 5.0, 7.0]);
        assert_eq!(&w[8..12], &[8.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn subgroup_packing_puts_a_steps_weights_in_one_padded_run() {
        // 6 output channels, 2 input channels, 3x3; blocks of ocv = 2 groups (8 channels).
        let (cout, cin, k) = (6, 2, 3);
        let weight: Vec<f32> = (0..cout * cin * k * k).map(|v| v as f32 + 1.0).collect();
        let c = Conv2d { cin, cout, k, stride: 1, pad: 0, weight: weight.clone(), bias: vec![0.0; cout] };
        let run = subgroup_run(k, 2);
        assert_eq!(run, 24, "3 taps × 2 groups × 4 channels, already whole loads of 8");
        assert_eq!(subgroup_run(1, 3), 16, "12 floats padded to 16");
        let w = pack_weights_subgroup(&c, 2, 2);
        assert_eq!(w.len(), cin * k * run);
        for co in 0..8 {
            for ci in 0..cin {
                for ky in 0..k {
                    for kx in 0..k {
                        let got = w[(ci * k + ky) * run + (kx * 2 + co / 4) * 4 + co % 4];
                        let want = if co < cout { weight[((co * cin + ci) * k + ky) * k + kx] } else { 0.0 };
                        assert_eq!(got, want, "co {co} ci {ci} ky {ky} kx {kx}");
                    }
                }
            }
        }
        // Every weight appears exactly once; the rest is padding.
        assert_eq!(w.iter().filter(|v| **v != 0.0).count(), weight.len());
    }
}

//! Winograd F(2×2, 3×3) on the CPU, stage by stage, in the order the tuned conv's Winograd
//! form (`ops::conv_tuned::winograd`, blocks `PXxOCVw`) computes: the weight transform the
//! host packs, the input transform, the products summed over input channels, the output
//! transform. Tests compare it with the direct [`super::conv2d`] and the GPU with both.
//!
//! Each 2×2 output tile of a 3×3 stride-1 conv is `Y = Aᵀ [Σ_ci (G g Gᵀ) ⊙ (Bᵀ d B)] A`,
//! `d` the 4×4 input patch: 16 products per input channel and tile instead of 36.
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016.)

use crate::network::Conv2d;
use crate::tensor::{Shape, Tensor};

/// `U = G g Gᵀ` for a 3×3 kernel `g` (row-major), `G = [[1,0,0],[½,½,½],[½,−½,½],[0,0,1]]`,
/// computed in f64 and rounded once: row-major 4×4.
pub fn weight_transform(g: &[f32]) -> [f32; 16] {
    const G: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
    let mut u = [0.0f32; 16];
    for i in 0..4 {
        for j in 0..4 {
            let mut s = 0.0f64;
            for a in 0..3 {
                for b in 0..3 {
                    s += G[i][a] * f64::from(g[a * 3 + b]) * G[j][b];
                }
            }
            u[i * 4 + j] = s as f32;
        }
    }
    u
}

/// `Bᵀ x` for one line of 4 values, `Bᵀ = [[1,0,−1,0],[0,1,1,0],[0,−1,1,0],[0,1,0,−1]]`.
pub fn input_line(x: [f32; 4]) -> [f32; 4] {
    [x[0] - x[2], x[1] + x[2], x[2] - x[1], x[1] - x[3]]
}

/// `V = Bᵀ d B` for a 4×4 patch `d` (rows of the input): each row transformed along x
/// first, then each column along the rows, as the shader does.
pub fn input_transform(d: &[[f32; 4]; 4]) -> [[f32; 4]; 4] {
    let e = d.map(input_line);
    let mut v = [[0.0; 4]; 4];
    for j in 0..4 {
        let c = input_line([e[0][j], e[1][j], e[2][j], e[3][j]]);
        for i in 0..4 {
            v[i][j] = c[i];
        }
    }
    v
}

/// `Aᵀ x` for one line of 4 values, `Aᵀ = [[1,1,1,0],[0,1,−1,−1]]`.
pub fn output_line(x: [f32; 4]) -> [f32; 2] {
    [x[0] + x[1] + x[2], x[1] - x[2] - x[3]]
}

/// `Y = Aᵀ M A` for a tile's summed products `M`: along the rows first, then along x.
pub fn output_transform(m: &[[f32; 4]; 4]) -> [[f32; 2]; 2] {
    let mut s = [[0.0; 4]; 2];
    for j in 0..4 {
        let c = output_line([m[0][j], m[1][j], m[2][j], m[3][j]]);
        s[0][j] = c[0];
        s[1][j] = c[1];
    }
    s.map(output_line)
}

/// A 3×3 stride-1 conv (any zero padding) by Winograd F(2×2, 3×3): the input channels
/// summed in pairs (each pair's two products added, then added to the tile's sum), the
/// bias added after the output transform, as the shader.
pub fn conv3x3(input: &Tensor, conv: &Conv2d) -> Tensor {
    assert!(conv.k == 3 && conv.stride == 1, "Winograd F(2×2, 3×3) is for 3×3 stride-1 convs");
    let s = input.shape;
    let (ho, wo) =
        (conv.out_len(s.h).expect("input smaller than kernel"), conv.out_len(s.w).expect("input smaller than kernel"));
    let u: Vec<[f32; 16]> =
        (0..conv.cout * conv.cin).map(|i| weight_transform(&conv.weight[i * 9..i * 9 + 9])).collect();
    let at = |ci: usize, y: isize, x: isize| {
        let inside = y >= 0 && x >= 0 && (y as usize) < s.h && (x as usize) < s.w;
        if inside { input.at(ci, y as usize, x as usize) } else { 0.0 }
    };
    let mut out = Tensor::zeros(Shape::new(conv.cout, ho, wo));
    for ty in (0..ho).step_by(2) {
        for tx in (0..wo).step_by(2) {
            let v: Vec<[[f32; 4]; 4]> = (0..conv.cin)
                .map(|ci| {
                    let d: [[f32; 4]; 4] = std::array::from_fn(|r| {
                        std::array::from_fn(|c| {
                            at(ci, (ty + r) as isize - conv.pad as isize, (tx + c) as isize - conv.pad as isize)
                        })
                    });
                    input_transform(&d)
                })
                .collect();
            for co in 0..conv.cout {
                let mut m = [[0.0f32; 4]; 4];
                for pair in (0..conv.cin).step_by(2) {
                    for (i, row) in m.iter_mut().enumerate() {
                        for (j, mij) in row.iter_mut().enumerate() {
                            let x = |ci: usize| v[ci][i][j] * u[co * conv.cin + ci][i * 4 + j];
                            let t = if pair + 1 < conv.cin { x(pair + 1) + x(pair) } else { x(pair) };
                            *mij += t;
                        }
                    }
                }
                let y = output_transform(&m);
                for (dy, row) in y.iter().enumerate() {
                    for (dx, val) in row.iter().enumerate() {
                        let (oy, ox) = (ty + dy, tx + dx);
                        if oy < ho && ox < wo {
                            out.data[(co * ho + oy) * wo + ox] = val + conv.bias[co];
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torch_init::Mt19937;

    fn rand(r: &mut Mt19937, n: usize) -> Vec<f32> {
        r.uniform(n, -1.0, 1.0)
    }

    #[test]
    fn transforms_of_a_single_tap_give_the_direct_conv() {
        // One input value at patch (r, c) and one weight tap at (a, b): the 2×2 outputs are
        // the direct conv's, out[y][x] = d[y + a][x + b] · g[a][b].
        for (a, b, r, c) in [(0, 0, 0, 0), (1, 2, 2, 3), (2, 1, 3, 1), (1, 1, 1, 1), (0, 2, 1, 3)] {
            let mut g = [0.0f32; 9];
            g[a * 3 + b] = 2.0;
            let mut d = [[0.0f32; 4]; 4];
            d[r][c] = 3.0;
            let (u, v) = (weight_transform(&g), input_transform(&d));
            let m: [[f32; 4]; 4] = std::array::from_fn(|i| std::array::from_fn(|j| u[i * 4 + j] * v[i][j]));
            let y = output_transform(&m);
            for (oy, row) in y.iter().enumerate() {
                for (ox, got) in row.iter().enumerate() {
                    let want = if oy + a == r && ox + b == c { 6.0 } else { 0.0 };
                    assert_eq!(*got, want, "tap ({a},{b}) input ({r},{c}) output ({oy},{ox})");
                }
            }
        }
    }

    #[test]
    fn winograd_conv_matches_the_direct_one() {
        let mut r = Mt19937::new(11);
        // (cin, cout, pad, h, w): odd sizes (partial tiles), an odd channel count (a
        // channel pair short of one), no padding and padding 2.
        for (cin, cout, pad, h, w) in [(3, 5, 1, 7, 9), (4, 2, 0, 6, 5), (1, 3, 2, 4, 4), (8, 4, 1, 11, 3)] {
            let input = Tensor::new(Shape::new(cin, h, w), rand(&mut r, cin * h * w));
            let conv = Conv2d {
                cin,
                cout,
                k: 3,
                stride: 1,
                pad,
                weight: rand(&mut r, cout * cin * 9),
                bias: rand(&mut r, cout),
            };
            let (got, want) = (conv3x3(&input, &conv), crate::reference::conv2d(&input, &conv));
            assert_eq!(got.shape, want.shape);
            assert_eq!(got.data.len(), want.data.len());
            for (i, (a, b)) in got.data.iter().zip(&want.data).enumerate() {
                assert!((a - b).abs() <= 1e-5, "({cin},{cout},{pad},{h}x{w}) element {i}: {a} vs {b}");
            }
        }
    }
}

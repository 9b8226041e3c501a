//! A minimal NCHW f32 tensor with batch size 1: the unit of data between stages.

use std::fmt;

/// Channels, height, width of a batch-1 NCHW tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    pub const fn new(c: usize, h: usize, w: usize) -> Self {
        Self { c, h, w }
    }
    pub const fn len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub const fn plane(&self) -> usize {
        self.h * self.w
    }
    /// Size in bytes as f32.
    pub const fn bytes(&self) -> u64 {
        self.len() as u64 * 4
    }
    /// The NCHW shape with its batch axis, as written to safetensors.
    pub fn nchw(&self) -> [usize; 4] {
        [1, self.c, self.h, self.w]
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.c, self.h, self.w)
    }
}

/// A batch-1 NCHW tensor of f32, C-contiguous.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Shape,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Shape, data: Vec<f32>) -> Self {
        assert_eq!(shape.len(), data.len(), "tensor data does not match its shape");
        Self { shape, data }
    }
    pub fn zeros(shape: Shape) -> Self {
        Self { shape, data: vec![0.0; shape.len()] }
    }
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.shape.h + y) * self.shape.w + x]
    }
    /// One channel's plane.
    pub fn channel(&self, c: usize) -> &[f32] {
        let p = self.shape.plane();
        &self.data[c * p..(c + 1) * p]
    }
}

/// Largest absolute elementwise difference between two slices: NaN when their lengths
/// differ or when one holds a NaN where the other does not (so a NaN never passes as
/// "no difference", which `f32::max` would make it).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::NAN;
    }
    let mut worst = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        if x.is_nan() && y.is_nan() {
            continue;
        }
        let d = (x - y).abs();
        if d.is_nan() {
            return f32::NAN;
        }
        if d > worst {
            worst = d;
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_propagate_nan_and_length_mismatch() {
        assert_eq!(max_abs_diff(&[1.0, 2.0], &[1.5, 2.0]), 0.5);
        assert!(max_abs_diff(&[1.0, f32::NAN], &[1.0, 2.0]).is_nan());
        assert!(max_abs_diff(&[1.0], &[1.0, 2.0]).is_nan());
        assert_eq!(max_abs_diff(&[f32::NAN], &[f32::NAN]), 0.0);
    }
}

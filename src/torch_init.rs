//! PyTorch's CPU default generator (MT19937) and the default `nn.Conv2d` initialisation,
//! reproduced bit for bit (see `docs/torch-default-init.md` in the shared docs).

/// The 32-bit Mersenne Twister, seeded and drawn exactly as `torch.manual_seed` does.
#[derive(Clone)]
pub struct Mt19937 {
    mt: [u32; 624],
    index: usize,
}

impl Mt19937 {
    /// `torch.manual_seed(seed)`: negative seeds wrap modulo 2^64, only the low 32 bits count.
    pub fn new(seed: i64) -> Self {
        let s32 = (seed as u64 & 0xFFFF_FFFF) as u32;
        let mut mt = [0u32; 624];
        mt[0] = s32;
        for j in 1..624 {
            let prev = mt[j - 1];
            mt[j] = 1_812_433_253u32.wrapping_mul(prev ^ (prev >> 30)).wrapping_add(j as u32);
        }
        Self { mt, index: 624 }
    }

    fn regenerate(&mut self) {
        for k in 0..624 {
            let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % 624] & 0x7FFF_FFFF);
            let mag = if y & 1 == 1 { 0x9908_B0DF } else { 0 };
            self.mt[k] = self.mt[(k + 397) % 624] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    /// One tempered 32-bit draw.
    pub fn next_u32(&mut self) -> u32 {
        if self.index == 624 {
            self.regenerate();
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9D2C_5680;
        y ^= (y << 15) & 0xEFC6_0000;
        y ^= y >> 18;
        y
    }

    /// `Tensor.uniform_(low, high)` on a float32 CPU tensor of `n` elements (C order).
    /// Uses the single-rounding (fused) form that torch's AVX2/AVX512 kernels produce.
    pub fn uniform(&mut self, n: usize, low: f64, high: f64) -> Vec<f32> {
        let lo = low as f32;
        let hi = high as f32;
        let range = hi - lo;
        (0..n)
            .map(|_| {
                let k = self.next_u32() & 0x00FF_FFFF;
                let x = k as f32 * (1.0 / 16_777_216.0);
                let v = x.mul_add(range, lo);
                if v == hi { lo } else { v }
            })
            .collect()
    }

    /// `torch.rand(n)`: `uniform_(0, 1)`.
    pub fn rand(&mut self, n: usize) -> Vec<f32> {
        self.uniform(n, 0.0, 1.0)
    }
}

/// Weight and bias of one `nn.Conv2d(cin, cout, k)` as PyTorch's default init draws them.
pub fn conv2d_default_init(rng: &mut Mt19937, cin: usize, cout: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
    let fan_in = (cin * k * k) as f64;
    let a = 5.0f64.sqrt();
    let gain = (2.0 / (1.0 + a * a)).sqrt();
    let std = gain / fan_in.sqrt();
    let bound_w = 3.0f64.sqrt() * std;
    let weight = rng.uniform(cout * cin * k * k, -bound_w, bound_w);
    let bound_b = 1.0 / fan_in.sqrt();
    let bias = rng.uniform(cout, -bound_b, bound_b);
    (weight, bias)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_test_vectors() {
        let mut r = Mt19937::new(0);
        let got: Vec<u32> = (0..5).map(|_| r.next_u32()).collect();
        assert_eq!(got, [2357136044, 2546248239, 3071714933, 3626093760, 2588848963]);
        let mut r = Mt19937::new(42);
        let got: Vec<u32> = (0..5).map(|_| r.next_u32()).collect();
        assert_eq!(got, [1608637542, 3421126067, 4083286876, 787846414, 3143890026]);
        let mut r = Mt19937::new(5489);
        let v = (0..10000).map(|_| r.next_u32()).last();
        assert_eq!(v, Some(4123659995));
    }

    #[test]
    fn seeds_use_low_32_bits() {
        let a: Vec<u32> = {
            let mut r = Mt19937::new(5);
            (0..3).map(|_| r.next_u32()).collect()
        };
        let b: Vec<u32> = {
            let mut r = Mt19937::new((1i64 << 32) + 5);
            (0..3).map(|_| r.next_u32()).collect()
        };
        assert_eq!(a, b);
        let c: Vec<u32> = {
            let mut r = Mt19937::new(-1);
            (0..3).map(|_| r.next_u32()).collect()
        };
        let d: Vec<u32> = {
            let mut r = Mt19937::new(0xFFFF_FFFF);
            (0..3).map(|_| r.next_u32()).collect()
        };
        assert_eq!(c, d);
    }

    #[test]
    fn worked_example_first_weight_is_fused() {
        let mut r = Mt19937::new(0);
        let (w, _) = conv2d_default_init(&mut r, 3, 12, 5);
        assert_eq!(w[0].to_bits(), 0xBA62_9FD9);
        assert_eq!(w[1].to_bits(), 0x3D7D_B81F);
        assert_eq!(w[2].to_bits(), 0xBDC2_A2CB);
        assert_eq!(w[3].to_bits(), 0xBDAE_096D);
    }
}

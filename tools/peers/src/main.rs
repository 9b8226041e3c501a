//! burn 0.22 on its wgpu backend, on the CPU adapter (lavapipe), timing the convolutions
//! `convscope bench --shape` times: one JSON line per shape, with the median of the runs.
//! Autotune runs during the warm-up (excluded); every timed run gets a fresh input, since
//! burn may reuse the results of identical calls.
//!
//! usage: convscope-peers [--runs N] [SHAPE ...]   SHAPE = Cin,Cout,K,HxW[,stride,pad,groups]
//! Without shapes: the tutorial chain at 225×400 (its three layers) and the ResNet shapes.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, DeviceKind, Distribution, Tensor};
use std::time::Instant;

#[derive(Clone, Copy, Debug)]
struct Shape {
    cin: usize,
    cout: usize,
    k: usize,
    h: usize,
    w: usize,
    stride: usize,
    pad: usize,
    groups: usize,
}

impl Shape {
    fn parse(s: &str) -> Result<Shape, String> {
        let p: Vec<&str> = s.split(',').collect();
        if !(4..=7).contains(&p.len()) {
            return Err(format!("shape {s:?} is not Cin,Cout,K,HxW[,stride,pad,groups]"));
        }
        let n = |i: usize, d: usize| -> Result<usize, String> {
            p.get(i).map_or(Ok(d), |v| v.trim().parse().map_err(|_| format!("shape {s:?}: {v:?} is not a number")))
        };
        let (h, w) = p[3].split_once('x').ok_or_else(|| format!("shape {s:?}: size is not HxW"))?;
        let num = |v: &str| v.parse::<usize>().map_err(|_| format!("shape {s:?}: {v:?} is not a number"));
        Ok(Shape { cin: n(0, 0)?, cout: n(1, 0)?, k: n(2, 0)?, h: num(h)?, w: num(w)?, stride: n(4, 1)?, pad: n(5, 0)?, groups: n(6, 1)? })
    }

    fn name(&self) -> String {
        format!("{},{},{},{}x{},{},{},{}", self.cin, self.cout, self.k, self.h, self.w, self.stride, self.pad, self.groups)
    }

    fn out(&self) -> (usize, usize) {
        let o = |n: usize| (n + 2 * self.pad - self.k) / self.stride + 1;
        (o(self.h), o(self.w))
    }

    fn flops(&self) -> f64 {
        let (oh, ow) = self.out();
        2.0 * (self.cout * (self.cin / self.groups) * self.k * self.k * oh * ow) as f64
    }
}

fn time(shape: Shape, runs: usize, device: &Device) -> f64 {
    let dist = Distribution::Uniform(-1.0, 1.0);
    let weight = Tensor::<4>::random([shape.cout, shape.cin / shape.groups, shape.k, shape.k], dist, device);
    let bias = Tensor::<1>::random([shape.cout], dist, device);
    let opts = ConvOptions::new([shape.stride; 2], [shape.pad; 2], [1, 1], shape.groups);
    let run = || {
        let x = Tensor::<4>::random([1, shape.cin, shape.h, shape.w], dist, device);
        // The input exists before the clock starts.
        std::hint::black_box(x.clone().sum().into_data().try_to_vec::<f32>().ok());
        let t = Instant::now();
        let y = conv2d(x, weight.clone(), Some(bias.clone()), opts.clone());
        // The sum needs every output, and reading its value waits for it (the data of
        // `into_data` is only fetched when read).
        let sum = y.sum().into_data().try_to_vec::<f32>();
        std::hint::black_box(sum.ok());
        t.elapsed().as_secs_f64() * 1e3
    };
    // Warm-up: autotune picks its kernel here.
    for _ in 0..3 {
        run();
    }
    let mut ms: Vec<f64> = (0..runs).map(|_| run()).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    ms[ms.len() / 2]
}

fn main() {
    let mut runs = 5;
    let mut shapes = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(5).max(1),
            "--help" | "-h" => {
                println!("usage: convscope-peers [--runs N] [Cin,Cout,K,HxW[,stride,pad,groups] ...]");
                return;
            }
            s => match Shape::parse(s) {
                Ok(sh) => shapes.push(sh),
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(2);
                }
            },
        }
    }
    if shapes.is_empty() {
        shapes = ["3,12,5,225x400", "12,24,5,221x396", "24,48,5,217x392", "64,64,3,56x56,1,1", "64,256,1,56x56", "96,96,3,56x56,1,1,96"]
            .iter()
            .map(|s| Shape::parse(s).expect("built-in shape"))
            .collect();
    }
    // burn's wgpu backend on the CPU adapter (lavapipe), as convscope runs there.
    let device = Device::wgpu(DeviceKind::Cpu);
    eprintln!("device: {device:?}");
    for s in shapes {
        let ms = time(s, runs, &device);
        println!(
            "{{\"peer\":\"burn-wgpu\",\"shape\":\"{}\",\"ms\":{:.3},\"gflops\":{:.2},\"timing\":\"wall\"}}",
            s.name(),
            ms,
            s.flops() / ms / 1e6
        );
    }
}

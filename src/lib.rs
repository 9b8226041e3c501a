//! convscope: see what every convolution layer of a CNN does to an image. The layers run
//! as WGSL compute shaders through wgpu; every GPU stage has a CPU twin in `reference`.

pub mod app;
pub mod arch;
pub mod bench;
pub mod bench_model;
pub mod engine;
pub mod env;
pub mod exec;
pub mod export;
pub mod gpu;
pub mod graph;
pub mod grid;
pub mod input;
pub mod kernels;
pub mod model;
pub mod network;
pub mod onnx;
pub mod ops;
pub mod plan;
pub mod predict;
pub mod reference;
pub mod source;
pub mod tensor;
pub mod torch_init;
pub mod viewer;
pub mod visual;
pub mod weights;

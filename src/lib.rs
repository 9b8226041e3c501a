//! convscope: see what every convolution layer of a CNN does to an image. The layers run
//! as WGSL compute shaders through wgpu; every GPU stage has a CPU twin in `reference`.

pub mod app;
pub mod arch;
pub mod bench;
pub mod conv;
pub mod export;
pub mod gpu;
pub mod grid;
pub mod input;
pub mod kernels;
pub mod network;
pub mod reference;
pub mod shader;
pub mod tensor;
pub mod torch_init;
pub mod viewer;
pub mod visual;
pub mod weights;

//! Output files: grid PNGs and a safetensors dump of every tensor, named as the golden
//! files name them (`input`, `conv1.weight`, `conv1.bias`, `conv1.out`, ...).

use crate::network::Network;
use crate::tensor::Tensor;
use anyhow::{Context, Result, anyhow};
use safetensors::tensor::{Dtype, TensorView};
use std::path::Path;

/// Creates `dir` (and parents) and checks a file can be written there.
pub fn prepare_out_dir(dir: &Path) -> Result<()> {
    let shown = dir.display();
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow!("cannot create output directory {shown}: {e}; choose a writable directory"))?;
    let probe = dir.join(".convscope-write-test");
    std::fs::write(&probe, b"")
        .map_err(|e| anyhow!("output directory {shown} is not writable: {e}; choose a writable directory"))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Writes an RGBA image as PNG.
pub fn write_png(path: &Path, img: &image::RgbaImage) -> Result<()> {
    img.save_with_format(path, image::ImageFormat::Png).with_context(|| format!("cannot write {}", path.display()))
}

/// Every tensor of a run: the input, each layer's weights under its name, each output as
/// `NAME.out`.
pub fn write_tensors(path: &Path, net: &Network, input: &Tensor, outputs: &[Tensor]) -> Result<()> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let bytes = |v: &[f32]| bytemuck::cast_slice::<f32, u8>(v).to_vec();
    owned.push(("input".into(), input.shape.nchw().to_vec(), bytes(&input.data)));
    for (layer, out) in net.layers.iter().zip(outputs) {
        for (name, shape, values) in layer.tensors() {
            owned.push((name, shape, bytes(values)));
        }
        owned.push((format!("{}.out", layer.name), out.shape.nchw().to_vec(), bytes(&out.data)));
    }
    let views = owned
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| anyhow!("cannot build tensor file: {e}"))?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("producer".to_string(), format!("convscope {}", env!("CARGO_PKG_VERSION")));
    meta.insert("layout".to_string(), "NCHW float32, batch 1".to_string());
    safetensors::serialize_to_file(views, Some(meta), path)
        .map_err(|e| anyhow!("cannot write {}: {e}; choose a writable path", path.display()))
}

/// Named F32 tensors `(name, shape, values)` as one safetensors file.
pub fn write_named_tensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, v)| bytemuck::cast_slice::<f32, u8>(v).to_vec()).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| anyhow!("cannot build tensor file: {e}"))?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("producer".to_string(), format!("convscope {}", env!("CARGO_PKG_VERSION")));
    safetensors::serialize_to_file(views, Some(meta), path)
        .map_err(|e| anyhow!("cannot write {}: {e}; choose a writable path", path.display()))
}

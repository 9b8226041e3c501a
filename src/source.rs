//! What a run is made of, independent of the command line: where the input comes from
//! (image, tensor file or the built-in scene, with its channel order and normalisation)
//! and how the network is built (`--arch`, `--weights`, seed). The CLI and the viewer both
//! build one of these; nothing here knows about either.

use crate::input::{self, ChannelOrder};
use crate::network::Network;
use crate::ops::ConvKernel;
use crate::tensor::{Shape, Tensor};
use anyhow::{Result, anyhow, bail};
use std::path::{Path, PathBuf};

/// The input and network options of a run.
#[derive(Clone, Debug, Default)]
pub struct Source {
    pub image: Option<PathBuf>,
    /// A safetensors file whose `input` tensor `[1,C,H,W]` is fed as it is.
    pub input_tensor: Option<PathBuf>,
    pub order: ChannelOrder,
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
    pub weights: Option<PathBuf>,
    pub arch: Option<String>,
    pub seed: i64,
    pub kernel: ConvKernel,
    /// An ONNX model instead of a chain.
    pub model: Option<PathBuf>,
    /// How an image meets a model's declared input size.
    pub fit: Fit,
    /// The input size for a model whose H and W are dynamic.
    pub size: Option<(usize, usize)>,
    /// Class labels, one per line, when the model has none.
    pub labels: Option<PathBuf>,
}

/// How an image is brought to a model's input size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fit {
    /// Scale so the image covers the input, then cut the centre (ImageNet, PaddleClas).
    #[default]
    Crop,
    /// Scale each axis to the input size.
    Stretch,
    /// Scale so the image fits inside the input, centred on black.
    Pad,
}

/// Brings an RGB image to `h × w` as `fit` says (Lanczos resampling).
pub fn fit_image(img: &image::RgbImage, h: usize, w: usize, fit: Fit) -> image::RgbImage {
    use image::imageops::{FilterType, crop_imm, overlay, resize};
    let (iw, ih) = (img.width() as f64, img.height() as f64);
    let (tw, th) = (w as u32, h as u32);
    match fit {
        Fit::Stretch => resize(img, tw, th, FilterType::Lanczos3),
        Fit::Crop | Fit::Pad => {
            let s =
                if fit == Fit::Crop { (w as f64 / iw).max(h as f64 / ih) } else { (w as f64 / iw).min(h as f64 / ih) };
            let (rw, rh) = (((iw * s).round() as u32).max(1), ((ih * s).round() as u32).max(1));
            let r = resize(img, rw, rh, FilterType::Lanczos3);
            if fit == Fit::Crop {
                let (x, y) = (rw.saturating_sub(tw) / 2, rh.saturating_sub(th) / 2);
                let c = crop_imm(&r, x, y, tw.min(rw), th.min(rh)).to_image();
                if c.dimensions() == (tw, th) { c } else { resize(&c, tw, th, FilterType::Lanczos3) }
            } else {
                let mut canvas = image::RgbImage::new(tw, th);
                overlay(&mut canvas, &r, (tw.saturating_sub(rw) / 2) as i64, (th.saturating_sub(rh) / 2) as i64);
                canvas
            }
        }
    }
}

/// A loaded input: the tensor, a name for it, and whether it came from an image file
/// (which a re-roll may read again) rather than a tensor file or the built-in scene.
#[derive(Clone, Debug)]
pub struct Input {
    pub tensor: Tensor,
    pub name: String,
    pub image: Option<PathBuf>,
}

/// Parses `a,b,c` (three finite numbers) for --mean/--std.
pub fn parse_triple(flag: &str, s: &str) -> Result<[f32; 3]> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>().map_err(|_| anyhow!("--{flag} {s:?}: {x:?} is not a number")))
        .collect::<Result<_>>()?;
    let [a, b, c] = v[..] else { bail!("--{flag} {s:?}: give three numbers, e.g. 0.485,0.456,0.406") };
    if !(a.is_finite() && b.is_finite() && c.is_finite()) {
        bail!("--{flag} {s:?}: values must be finite");
    }
    Ok([a, b, c])
}

/// Reads the `input` tensor of a safetensors file as `[1, C, H, W]`.
pub fn load_input_tensor(path: &Path) -> Result<Tensor> {
    let sd = crate::weights::StateDict::open(path)?;
    let p = sd.get("input").ok_or_else(|| anyhow!("{} has no tensor named `input`", path.display()))?;
    match p.shape[..] {
        [1, c, h, w] if c > 0 && h > 0 && w > 0 => Ok(Tensor::new(Shape::new(c, h, w), p.data.clone())),
        _ => bail!("{}: `input` has shape {:?}; expected [1, C, H, W]", path.display(), p.shape),
    }
}

impl Source {
    /// Checks the options that do not need a file: `--std` without zeros, no normalisation
    /// of a tensor input.
    pub fn check(&self) -> Result<()> {
        if self.std.is_some_and(|s| s.contains(&0.0)) {
            bail!("--std must not contain 0");
        }
        if self.input_tensor.is_some() && self.image.is_none() && (self.mean.is_some() || self.std.is_some()) {
            bail!("--mean/--std apply to images; an --input-tensor is used as it is");
        }
        if self.model.is_some() && (self.weights.is_some() || self.arch.is_some()) {
            bail!("--model runs an ONNX model; --weights and --arch describe a chain instead: give one or the other");
        }
        Ok(())
    }

    /// The input these options name.
    pub fn load_input(&self) -> Result<Input> {
        self.load_input_from(self.image.as_deref())
    }

    /// The input from `image` (or the tensor file, or the built-in scene), normalised with
    /// the mean and std when given.
    pub fn load_input_from(&self, image: Option<&Path>) -> Result<Input> {
        self.check()?;
        if let (None, Some(p)) = (image, &self.input_tensor) {
            return Ok(Input { tensor: load_input_tensor(p)?, name: p.display().to_string(), image: None });
        }
        let (mut t, name) = match image {
            Some(p) => (input::tensor_from_rgb8(&input::load_rgb8(p)?, self.order), p.display().to_string()),
            None => (input::tensor_from_rgb8(&input::builtin_scene(), self.order), "built-in scene".into()),
        };
        if self.mean.is_some() || self.std.is_some() {
            input::normalise(&mut t, self.mean.unwrap_or([0.0; 3]), self.std.unwrap_or([1.0; 3]));
        }
        Ok(Input { tensor: t, name, image: image.map(Path::to_path_buf) })
    }

    /// The input of an ONNX model: a tensor file fed as it is (key `input` or the model's
    /// input name), or an image (or the built-in scene) brought to the model's declared
    /// size (`--size` where it is dynamic, else the image's own) by `fit`, normalised.
    pub fn load_model_input(&self, model: &crate::onnx::Model) -> Result<Input> {
        self.check()?;
        let [c, h, w] = model.declared_chw();
        if let (None, Some(p)) = (&self.image, &self.input_tensor) {
            let sd = crate::weights::StateDict::open(p)?;
            let t = sd
                .get("input")
                .or_else(|| sd.get(&model.input))
                .ok_or_else(|| anyhow!("{} has no tensor named `input` or {:?}", p.display(), model.input))?;
            let Some([1, tc, th, tw]) =
                t.shape.get(..4).map(|s| [s[0], s[1], s[2], s[3]]).filter(|_| t.shape.len() == 4)
            else {
                bail!("{}: the input tensor has shape {:?}; expected [1, C, H, W]", p.display(), t.shape);
            };
            for (want, got, what) in [(c, tc, "channels"), (h, th, "height"), (w, tw, "width")] {
                if want.is_some_and(|v| v != got) {
                    bail!("{}: the tensor has {what} {got} but the model declares {}", p.display(), want.unwrap_or(0));
                }
            }
            let tensor = Tensor::new(Shape::new(tc, th, tw), t.data.clone());
            return Ok(Input { tensor, name: p.display().to_string(), image: None });
        }
        if c.is_some_and(|c| c != 3) {
            bail!(
                "the model takes {} channels; convscope feeds it RGB images (3 channels) or an --input-tensor",
                c.unwrap_or(0)
            );
        }
        let (img, name) = match &self.image {
            Some(p) => (input::load_rgb8(p)?, p.display().to_string()),
            None => (input::builtin_scene(), "built-in scene".to_string()),
        };
        let (th, tw) = match (h, w, self.size) {
            (Some(h), Some(w), _) => (h, w),
            (_, _, Some(s)) => s,
            _ => (img.height() as usize, img.width() as usize),
        };
        let fitted = fit_image(&img, th, tw, self.fit);
        let mut t = input::tensor_from_rgb8(&fitted, self.order);
        if self.mean.is_some() || self.std.is_some() {
            input::normalise(&mut t, self.mean.unwrap_or([0.0; 3]), self.std.unwrap_or([1.0; 3]));
        }
        Ok(Input { tensor: t, name, image: self.image.clone() })
    }

    /// The network, with seeded layers drawn from `seed`.
    pub fn network_with_seed(&self, seed: i64) -> Result<Network> {
        let weights = self.weights.as_deref().map(crate::weights::StateDict::open).transpose()?;
        let net = crate::arch::build(self.arch.as_deref(), weights.as_ref(), seed)?;
        net.check_finite()?;
        Ok(net)
    }

    /// The network with the options' own seed.
    pub fn network(&self) -> Result<Network> {
        self.network_with_seed(self.seed)
    }
}

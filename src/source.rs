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

//! Host-side ONNX tensors: initializers and `Constant`s decoded from `TensorProto` (raw,
//! typed or external data; float16/bfloat16/double converted to f32, int8..int64 and bool
//! to i64), and the values of constant subgraphs folded on the host.

use super::proto::{TensorProto, dtype};
use anyhow::{Result, anyhow, bail};
use std::path::Path;

/// The most elements one tensor may declare (1 Gi): far beyond any CNN's weights.
pub const MAX_ELEMENTS: usize = 1 << 30;

/// Element values of a host tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A tensor held on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub dims: Vec<usize>,
    pub data: Data,
}

/// Elements of `dims`, refusing overflow and absurd sizes.
pub fn numel(dims: &[usize], what: &str) -> Result<usize> {
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n <= MAX_ELEMENTS);
    n.ok_or_else(|| anyhow!("{what} declares dimensions {dims:?}, more than convscope can hold"))
}

impl HostTensor {
    pub fn f32(dims: Vec<usize>, v: Vec<f32>) -> Self {
        HostTensor { dims, data: Data::F32(v) }
    }
    pub fn i64(dims: Vec<usize>, v: Vec<i64>) -> Self {
        HostTensor { dims, data: Data::I64(v) }
    }

    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values as f32 (integers converted).
    pub fn as_f32(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// Values as i64 (floats truncated, as Cast does).
    pub fn as_i64(&self) -> Vec<i64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I64(v) => v.clone(),
        }
    }

    /// Decodes a `TensorProto`; external data is read from `dir` (the model's folder) and
    /// must stay inside it.
    pub fn from_proto(t: &TensorProto, dir: &Path) -> Result<HostTensor> {
        let what = format!("tensor {:?}", t.name);
        let dims: Vec<usize> = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| anyhow!("{what} has a negative dimension {d}")))
            .collect::<Result<_>>()?;
        let n = numel(&dims, &what)?;
        let external;
        let raw: &[u8] = if t.data_location == 1 || !t.external_data.is_empty() {
            external = read_external(t, dir, &what)?;
            &external
        } else {
            &t.raw_data
        };
        let data = decode(t, raw, n, &what)?;
        let got = match &data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        };
        if got != n {
            bail!("{what} declares {dims:?} ({n} values) but holds {got}; the file is damaged");
        }
        Ok(HostTensor { dims, data })
    }
}

fn decode(t: &TensorProto, raw: &[u8], n: usize, what: &str) -> Result<Data> {
    let from_raw = !raw.is_empty();
    let chunks = |size: usize| -> Result<std::slice::ChunksExact<'_, u8>> {
        if raw.len() != n.saturating_mul(size) {
            bail!("{what}: {} bytes of data for {n} values of {size} bytes; the file is damaged", raw.len());
        }
        Ok(raw.chunks_exact(size))
    };
    Ok(match t.data_type {
        dtype::FLOAT if from_raw => {
            Data::F32(chunks(4)?.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        dtype::FLOAT => Data::F32(t.float_data.clone()),
        dtype::DOUBLE if from_raw => Data::F32(
            chunks(8)?.map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32).collect(),
        ),
        dtype::DOUBLE => Data::F32(t.double_data.iter().map(|&x| x as f32).collect()),
        dtype::FLOAT16 | dtype::BFLOAT16 => {
            let bits: Vec<u16> = if from_raw {
                chunks(2)?.map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
            } else {
                t.int32_data.iter().map(|&x| x as u16).collect()
            };
            let f = |b: u16| {
                if t.data_type == dtype::FLOAT16 {
                    half::f16::from_bits(b).to_f32()
                } else {
                    half::bf16::from_bits(b).to_f32()
                }
            };
            Data::F32(bits.into_iter().map(f).collect())
        }
        dtype::INT64 if from_raw => Data::I64(
            chunks(8)?.map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect(),
        ),
        dtype::INT64 => Data::I64(t.int64_data.clone()),
        dtype::INT32 if from_raw => {
            Data::I64(chunks(4)?.map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect())
        }
        dtype::INT32 | dtype::INT8 | dtype::UINT8 | dtype::BOOL if !from_raw => {
            Data::I64(t.int32_data.iter().map(|&x| x as i64).collect())
        }
        dtype::INT8 => Data::I64(chunks(1)?.map(|c| c[0] as i8 as i64).collect()),
        dtype::UINT8 | dtype::BOOL => Data::I64(chunks(1)?.map(|c| c[0] as i64).collect()),
        other => bail!(
            "{what} has element type {other}, which convscope does not read (float, float16, bfloat16, double, int8..int64, bool)"
        ),
    })
}

/// Reads a tensor's external data: `location` relative to the model's folder (never
/// outside it), `offset` and `length` when given.
fn read_external(t: &TensorProto, dir: &Path, what: &str) -> Result<Vec<u8>> {
    let get = |k: &str| t.external_data.iter().find(|e| e.key == k).map(|e| e.value.as_str());
    let loc = get("location").ok_or_else(|| anyhow!("{what} has external data without a location"))?;
    let rel = Path::new(loc);
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        bail!("{what}: external data location {loc:?} leaves the model's folder; refusing to read it");
    }
    let path = dir.join(rel);
    let bytes =
        std::fs::read(&path).map_err(|e| anyhow!("{what}: cannot read its external data {}: {e}", path.display()))?;
    let parse = |k: &str| -> Result<Option<usize>> {
        get(k)
            .map(|v| v.parse::<usize>().map_err(|_| anyhow!("{what}: external data {k} {v:?} is not a number")))
            .transpose()
    };
    let offset = parse("offset")?.unwrap_or(0);
    let length = parse("length")?.unwrap_or(bytes.len().saturating_sub(offset));
    let end = offset.checked_add(length).filter(|&e| e <= bytes.len()).ok_or_else(|| {
        anyhow!(
            "{what}: external data {offset}+{length} runs past the end of {} ({} bytes)",
            path.display(),
            bytes.len()
        )
    })?;
    Ok(bytes[offset..end].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(dims: Vec<i64>, data_type: i32, raw: Vec<u8>) -> TensorProto {
        TensorProto { dims, data_type, raw_data: raw, name: "t".into(), ..Default::default() }
    }

    #[test]
    fn raw_and_typed_data_decode() {
        let t = proto(vec![2], dtype::FLOAT, [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect());
        assert_eq!(HostTensor::from_proto(&t, Path::new(".")).unwrap(), HostTensor::f32(vec![2], vec![1.5, -2.0]));
        let t =
            TensorProto { dims: vec![3], data_type: dtype::INT64, int64_data: vec![1, -2, 3], ..Default::default() };
        assert_eq!(HostTensor::from_proto(&t, Path::new(".")).unwrap().as_i64(), vec![1, -2, 3]);
        let h = half::f16::from_f32(0.5).to_bits().to_le_bytes().to_vec();
        let t = proto(vec![1], dtype::FLOAT16, h);
        assert_eq!(HostTensor::from_proto(&t, Path::new(".")).unwrap().as_f32(), vec![0.5]);
    }

    #[test]
    fn damaged_and_absurd_tensors_are_refused() {
        let t = proto(vec![4], dtype::FLOAT, vec![0; 8]);
        assert!(HostTensor::from_proto(&t, Path::new(".")).unwrap_err().to_string().contains("damaged"));
        let t = proto(vec![1 << 40, 1 << 40], dtype::FLOAT, vec![]);
        assert!(
            HostTensor::from_proto(&t, Path::new("."))
                .unwrap_err()
                .to_string()
                .contains("more than convscope can hold")
        );
        let t = proto(vec![-1], dtype::FLOAT, vec![]);
        assert!(HostTensor::from_proto(&t, Path::new(".")).unwrap_err().to_string().contains("negative"));
    }

    #[test]
    fn external_data_stays_inside_the_model_folder() {
        let mut t = proto(vec![1], dtype::FLOAT, vec![]);
        t.data_location = 1;
        t.external_data =
            vec![super::super::proto::StringStringEntryProto { key: "location".into(), value: "../x.bin".into() }];
        let e = HostTensor::from_proto(&t, Path::new("/tmp")).unwrap_err().to_string();
        assert!(e.contains("leaves the model's folder"), "{e}");
        t.external_data[0].value = "/etc/passwd".into();
        assert!(HostTensor::from_proto(&t, Path::new("/tmp")).is_err());
        t.external_data[0].value = "convscope-no-such-file.bin".into();
        let e = HostTensor::from_proto(&t, Path::new("/tmp")).unwrap_err().to_string();
        assert!(e.contains("cannot read its external data"), "{e}");
    }
}

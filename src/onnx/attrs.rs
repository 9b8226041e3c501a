//! A node's attributes by name, with ONNX's defaults supplied by the caller.

use super::proto::AttributeProto;
use super::tensor::HostTensor;
use std::collections::HashMap;
use std::path::Path;

/// Attributes of one node.
#[derive(Clone, Debug, Default)]
pub struct Attrs {
    map: HashMap<String, AttributeProto>,
    /// Tensor attributes, decoded.
    tensors: HashMap<String, HostTensor>,
}

impl Attrs {
    /// The node's attributes; tensor attributes are decoded (a damaged one is dropped and
    /// reported when used).
    pub fn new(list: &[AttributeProto], dir: &Path) -> anyhow::Result<Self> {
        let mut tensors = HashMap::new();
        for a in list {
            if let Some(t) = &a.t {
                tensors.insert(a.name.clone(), HostTensor::from_proto(t, dir)?);
            }
        }
        Ok(Attrs { map: list.iter().map(|a| (a.name.clone(), a.clone())).collect(), tensors })
    }

    /// One integer attribute (for tests).
    pub fn with_int(name: &str, v: i64) -> Self {
        let a = AttributeProto { name: name.into(), r#type: 2, i: v, ..Default::default() };
        Attrs { map: [(name.to_string(), a)].into(), tensors: HashMap::new() }
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.map.get(name).map_or(default, |a| a.i)
    }

    pub fn float(&self, name: &str, default: f32) -> f32 {
        self.map.get(name).map_or(default, |a| a.f)
    }

    pub fn ints(&self, name: &str) -> Vec<i64> {
        self.map.get(name).map_or_else(Vec::new, |a| a.ints.clone())
    }

    pub fn floats(&self, name: &str) -> Vec<f32> {
        self.map.get(name).map_or_else(Vec::new, |a| a.floats.clone())
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.map.get(name).map_or_else(|| default.to_string(), |a| String::from_utf8_lossy(&a.s).into_owned())
    }

    pub fn tensor(&self, name: &str) -> Option<&HostTensor> {
        self.tensors.get(name)
    }
}

//! Typed, checked access to the attributes of one ONNX node.

use super::proto::attribute_proto::AttributeType;
use super::proto::{AttributeProto, NodeProto, TensorProto};
use super::{corrupt, unsupported};
use crate::IoError;

/// The attributes of one node. Construction rejects attributes the op does not know, so an
/// attribute that would change the meaning of the op is never silently ignored.
pub(super) struct Attrs<'a> {
    attrs: &'a [AttributeProto],
    /// The node, for messages: `node 'conv1' (Conv)`.
    label: &'a str,
    path: &'a str,
}

impl<'a> Attrs<'a> {
    /// Checks that every attribute of `node` is in `known` and none is repeated.
    pub(super) fn new(
        node: &'a NodeProto,
        known: &[&str],
        label: &'a str,
        path: &'a str,
    ) -> Result<Self, IoError> {
        let mut seen = vec![false; known.len()];
        for a in &node.attribute {
            let name = a.name.as_deref().unwrap_or("");
            let Some(k) = known.iter().position(|&n| n == name) else {
                return Err(unsupported(
                    path,
                    format!("{label} has attribute '{name}'; supported attributes: {known:?}"),
                ));
            };
            if std::mem::replace(&mut seen[k], true) {
                return Err(corrupt(path, format!("{label} repeats attribute '{name}'")));
            }
            if a.ref_attr_name.is_some() {
                return Err(unsupported(
                    path,
                    format!("{label}: attribute '{name}' refers to a function attribute"),
                ));
            }
        }
        Ok(Attrs { attrs: &node.attribute, label, path })
    }

    /// The attribute `name` if present, after checking that it has type `ty` (an attribute with
    /// no type, as some old exporters write, is accepted).
    fn get(&self, name: &str, ty: AttributeType) -> Result<Option<&'a AttributeProto>, IoError> {
        let Some(a) = self.attrs.iter().find(|a| a.name.as_deref() == Some(name)) else {
            return Ok(None);
        };
        match a.r#type {
            None | Some(0) => Ok(Some(a)),
            Some(t) if t == ty as i32 => Ok(Some(a)),
            Some(t) => {
                let got = AttributeType::try_from(t).map(|t| t.as_str_name()).unwrap_or("an unknown type");
                Err(self.corrupt(format!("attribute '{name}' is {got}, expected {}", ty.as_str_name())))
            }
        }
    }

    /// True if the attribute is present.
    pub(super) fn has(&self, name: &str) -> bool {
        self.attrs.iter().any(|a| a.name.as_deref() == Some(name))
    }

    /// An integer attribute, or `default` when absent.
    pub(super) fn int(&self, name: &str, default: i64) -> Result<i64, IoError> {
        match self.get(name, AttributeType::Int)? {
            None => Ok(default),
            Some(a) => a.i.ok_or_else(|| self.corrupt(format!("attribute '{name}' has no integer value"))),
        }
    }

    /// A 0/1 integer attribute as a bool.
    pub(super) fn flag(&self, name: &str) -> Result<bool, IoError> {
        match self.int(name, 0)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.corrupt(format!("attribute '{name}' is {v}, expected 0 or 1"))),
        }
    }

    /// A float attribute, or `default` when absent.
    pub(super) fn float(&self, name: &str, default: f32) -> Result<f32, IoError> {
        match self.get(name, AttributeType::Float)? {
            None => Ok(default),
            Some(a) => a.f.ok_or_else(|| self.corrupt(format!("attribute '{name}' has no float value"))),
        }
    }

    /// An integer-list attribute, `None` when absent.
    pub(super) fn ints(&self, name: &str) -> Result<Option<&'a [i64]>, IoError> {
        Ok(self.get(name, AttributeType::Ints)?.map(|a| a.ints.as_slice()))
    }

    /// A float-list attribute, `None` when absent.
    pub(super) fn floats(&self, name: &str) -> Result<Option<&'a [f32]>, IoError> {
        Ok(self.get(name, AttributeType::Floats)?.map(|a| a.floats.as_slice()))
    }

    /// A string attribute, `None` when absent.
    pub(super) fn string(&self, name: &str) -> Result<Option<&'a [u8]>, IoError> {
        Ok(self.get(name, AttributeType::String)?.map(|a| a.s.as_deref().unwrap_or(&[])))
    }

    /// A tensor attribute, `None` when absent.
    pub(super) fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>, IoError> {
        match self.get(name, AttributeType::Tensor)? {
            None => Ok(None),
            Some(a) => {
                a.t.as_ref()
                    .map(Some)
                    .ok_or_else(|| self.corrupt(format!("attribute '{name}' has no tensor")))
            }
        }
    }

    /// A list of `n` integers in `lo..=hi`, or `default` when absent.
    pub(super) fn usizes<const N: usize>(
        &self,
        name: &str,
        default: [usize; N],
        lo: i64,
        hi: i64,
    ) -> Result<[usize; N], IoError> {
        let Some(v) = self.ints(name)? else { return Ok(default) };
        if v.len() != N {
            return Err(self.unsupported(format!(
                "attribute '{name}' has {} values {v:?}; only 2-D operations are supported (expected {N})",
                v.len()
            )));
        }
        let mut out = [0; N];
        for (o, &x) in out.iter_mut().zip(v) {
            if !(lo..=hi).contains(&x) {
                return Err(self.corrupt(format!("attribute '{name}' = {v:?} is outside {lo}..={hi}")));
            }
            *o = x as usize;
        }
        Ok(out)
    }

    /// A Corrupt error about this node.
    pub(super) fn corrupt(&self, detail: String) -> IoError {
        corrupt(self.path, format!("{}: {detail}", self.label))
    }

    /// An Unsupported error about this node.
    pub(super) fn unsupported(&self, detail: String) -> IoError {
        unsupported(self.path, format!("{}: {detail}", self.label))
    }
}

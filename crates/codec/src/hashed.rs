//! HashedNets tensors (`hashed_f32`, tag 8): `k` shared values and a seed, no index at all
//! (docs/FORMAT.md). Entry `p` (row-major) is `±values[h(p)]` by [`crate::hashing::bucket`].

use deepshrink_graph::Tensor;

use crate::bits::{put_varint, vlen, ByteReader};
use crate::hashing::bucket;
use crate::CodecError;

/// A hashed weight tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct HashedTensor {
    /// Shape of the virtual (dense) tensor.
    pub shape: Vec<usize>,
    /// Hash seed.
    pub seed: u64,
    /// The shared values (at least one, at most `u32::MAX`).
    pub values: Vec<f32>,
}

impl HashedTensor {
    /// The virtual tensor: entry `p` is `±values[bucket(seed, p, k)]`.
    pub fn to_dense(&self) -> Tensor {
        let numel: usize = self.shape.iter().product();
        let k = self.values.len() as u32;
        let data = (0..numel)
            .map(|p| {
                let (b, neg) = bucket(self.seed, p as u64, k);
                let v = self.values[b as usize];
                if neg {
                    -v
                } else {
                    v
                }
            })
            .collect();
        Tensor::f32(self.shape.clone(), data)
    }

    /// Payload bytes: `8 + vlen(k) + 4k`.
    pub fn payload_bytes(&self) -> usize {
        8 + vlen(self.values.len() as u64) + 4 * self.values.len()
    }
}

/// Writes the payload; returns the bytes of the shared values.
pub(crate) fn write(out: &mut Vec<u8>, name: &str, h: &HashedTensor) -> Result<usize, CodecError> {
    let numel: usize = h.shape.iter().product();
    if h.values.is_empty() || h.values.len() > numel.max(1) || h.values.len() > u32::MAX as usize {
        return Err(CodecError::Matrix {
            tensor: name.into(),
            shape: h.shape.clone(),
            detail: format!("{} shared values for {numel} entries", h.values.len()),
        });
    }
    out.extend_from_slice(&h.seed.to_le_bytes());
    put_varint(out, h.values.len() as u64);
    h.values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    Ok(4 * h.values.len())
}

/// Reads the payload of a tensor of `shape` (`numel` entries); returns it and the value bytes.
pub(crate) fn read(
    r: &mut ByteReader,
    shape: Vec<usize>,
    numel: usize,
) -> Result<(HashedTensor, usize), CodecError> {
    let name = r.section;
    let s = r.take(8, "hash seed")?;
    let seed = u64::from_le_bytes(s.try_into().expect("8 bytes"));
    let k = r.varint_max("shared value count", numel.clamp(1, u32::MAX as usize) as u64)?;
    if k == 0 {
        return Err(CodecError::range(name, "shared value count", "0"));
    }
    let bytes = r.take(4 * k, "shared values")?;
    let values = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok((HashedTensor { shape, seed, values }, 4 * k))
}

//! safetensors files: named tensors with a JSON header, read through a memory map.
//!
//! [`read()`] maps the file and copies each tensor out once, converting to the graph's
//! [`Tensor`]: `F32` and `I64` are read as they are, `F16` and `BF16` are widened to `F32`
//! (exactly), and every other dtype is [`IoError::Unsupported`], naming the tensor. The header,
//! offsets and lengths are checked by the `safetensors` crate before any data is touched; a
//! truncated or malformed file is [`IoError::Corrupt`]. [`write()`] writes `F32` and `I64` tensors
//! through [`crate::write_atomic`].

use std::collections::BTreeMap;
use std::path::Path;

use deepshrink_graph::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use crate::IoError;

/// Reads every tensor of a safetensors file, by name.
pub fn read(path: &Path) -> Result<BTreeMap<String, Tensor>, IoError> {
    let p = path.display().to_string();
    let io = |e| IoError::Io { path: p.clone(), source: e };
    let file = std::fs::File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.len() < 8 {
        return Err(IoError::Corrupt { path: p, detail: "shorter than the 8-byte header length".into() });
    }
    // SAFETY: the map is read-only and dropped before returning. Another process truncating or
    // rewriting the file while we read it is outside what any mapped reader can guard against;
    // deepshrink's own writers replace files by rename, which leaves this mapping intact.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    from_bytes(&map, &p)
}

/// Parses the bytes of a safetensors file; `path_for_errors` names the source in errors.
pub fn from_bytes(bytes: &[u8], path_for_errors: &str) -> Result<BTreeMap<String, Tensor>, IoError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| match e {
        SafeTensorError::IoError(source) => IoError::Io { path: path_for_errors.into(), source },
        e => IoError::Corrupt { path: path_for_errors.into(), detail: describe(&e) },
    })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.iter() {
        let shape = view.shape().to_vec();
        let raw = view.data();
        let data = match view.dtype() {
            Dtype::F32 => TensorData::F32(le_chunks(raw).map(f32::from_le_bytes).collect()),
            Dtype::I64 => TensorData::I64(le_chunks(raw).map(i64::from_le_bytes).collect()),
            Dtype::F16 => {
                TensorData::F32(le_chunks(raw).map(|b| f16_to_f32(u16::from_le_bytes(b))).collect())
            }
            Dtype::BF16 => TensorData::F32(
                le_chunks(raw).map(|b| f32::from_bits((u16::from_le_bytes(b) as u32) << 16)).collect(),
            ),
            other => {
                return Err(IoError::Unsupported {
                    path: path_for_errors.into(),
                    detail: format!("tensor '{name}' has dtype {other:?}; supported: F32, I64, F16, BF16"),
                })
            }
        };
        out.insert(name.to_string(), Tensor { shape, data });
    }
    Ok(out)
}

/// Writes tensors as a safetensors file (`F32` or `I64` each), atomically.
pub fn write(tensors: &BTreeMap<String, Tensor>, path: &Path) -> Result<(), IoError> {
    crate::write_atomic(path, &to_bytes(tensors, &path.display().to_string())?)
}

/// Encodes tensors as the bytes of a safetensors file; `path_for_errors` names the destination
/// in errors. Fails only if a tensor's data length does not match its shape.
pub fn to_bytes(tensors: &BTreeMap<String, Tensor>, path_for_errors: &str) -> Result<Vec<u8>, IoError> {
    let mut encoded = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        t.check(name).map_err(|source| IoError::Graph { path: path_for_errors.into(), source })?;
        let (dtype, bytes): (Dtype, Vec<u8>) = match &t.data {
            TensorData::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            TensorData::I64(v) => (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        };
        encoded.push((name, dtype, t.shape.clone(), bytes));
    }
    let mut views = Vec::with_capacity(encoded.len());
    for (name, dtype, shape, bytes) in &encoded {
        let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
            .map_err(|e| IoError::Corrupt { path: path_for_errors.into(), detail: describe(&e) })?;
        views.push((name.as_str(), view));
    }
    safetensors::serialize(views, &None)
        .map_err(|e| IoError::Corrupt { path: path_for_errors.into(), detail: describe(&e) })
}

fn le_chunks<const N: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    raw.chunks_exact(N).map(|c| {
        let mut b = [0u8; N];
        b.copy_from_slice(c);
        b
    })
}

fn describe(e: &SafeTensorError) -> String {
    match e {
        SafeTensorError::InvalidOffset(name) => format!("tensor '{name}' has invalid data offsets"),
        SafeTensorError::MetadataIncompleteBuffer => {
            "the data section does not match the header (truncated file?)".into()
        }
        e => format!("{e:?}"),
    }
}

/// IEEE half → single precision, exact (every f16 value is an f32 value).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        // Subnormal: value = frac × 2^-24, renormalised.
        (0, _) => {
            let shift = frac.leading_zeros() - 21; // bring the top set bit to position 10
            let frac = (frac << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (frac << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_matches_known_values() {
        // Bit patterns from numpy: np.array([...], np.float16).view(np.uint16).
        let cases: [(u16, f32); 8] = [
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95),
            (0x7bff, 65504.0),
            (0x0001, 5.960_464_5e-8),
            (0x03ff, 6.097_555e-5),
            (0x7c00, f32::INFINITY),
            (0x8000, -0.0),
        ];
        for (h, f) in cases {
            assert_eq!(f16_to_f32(h).to_bits(), f.to_bits(), "{h:#06x}");
        }
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn bf16_and_f16_tensors_widen_to_f32() {
        let h: Vec<u8> = [0x3c00u16, 0xc000].iter().flat_map(|x| x.to_le_bytes()).collect();
        let b: Vec<u8> = [0x3f80u16, 0x4040].iter().flat_map(|x| x.to_le_bytes()).collect();
        let views = vec![
            ("h", safetensors::tensor::TensorView::new(Dtype::F16, vec![2], &h).unwrap()),
            ("b", safetensors::tensor::TensorView::new(Dtype::BF16, vec![2], &b).unwrap()),
        ];
        let bytes = safetensors::serialize(views, &None).unwrap();
        let t = from_bytes(&bytes, "mem").unwrap();
        assert_eq!(t["h"], Tensor::f32(vec![2], vec![1.0, -2.0]));
        assert_eq!(t["b"], Tensor::f32(vec![2], vec![1.0, 3.0]));
    }

    #[test]
    fn other_dtypes_are_unsupported_naming_the_tensor() {
        let d = [0u8; 8];
        let views = vec![("w.int32", safetensors::tensor::TensorView::new(Dtype::I32, vec![2], &d).unwrap())];
        let bytes = safetensors::serialize(views, &None).unwrap();
        let e = from_bytes(&bytes, "mem").unwrap_err();
        assert!(matches!(&e, IoError::Unsupported { detail, .. } if detail.contains("w.int32")), "{e}");
    }
}

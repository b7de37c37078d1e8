//! `TensorProto` ⇄ [`Tensor`], with every length checked.

use deepshrink_graph::{Tensor, TensorData};

use super::proto::tensor_proto::{DataLocation, DataType};
use super::proto::TensorProto;
use super::{corrupt, unsupported};
use crate::IoError;

/// Converts the dims of a tensor, rejecting negative values and element counts that overflow.
/// Returns the shape and its element count.
pub(super) fn checked_dims(dims: &[i64], what: &str, path: &str) -> Result<(Vec<usize>, usize), IoError> {
    let mut shape = Vec::with_capacity(dims.len());
    let mut numel: usize = 1;
    for &d in dims {
        let d =
            usize::try_from(d).map_err(|_| corrupt(path, format!("{what} has negative dims {dims:?}")))?;
        numel = numel
            .checked_mul(d)
            .ok_or_else(|| corrupt(path, format!("{what} has dims {dims:?}, too many elements")))?;
        shape.push(d);
    }
    Ok((shape, numel))
}

/// Name of an ONNX data type code, for error messages.
pub(super) fn dtype_name(code: i32) -> String {
    DataType::try_from(code).map(|d| d.as_str_name().to_string()).unwrap_or_else(|_| format!("code {code}"))
}

/// Reads a tensor; `what` names it in errors (e.g. "initializer 'fc.weight'").
pub(super) fn from_proto(t: &TensorProto, what: &str, path: &str) -> Result<Tensor, IoError> {
    if t.data_location == Some(DataLocation::External as i32) || !t.external_data.is_empty() {
        return Err(unsupported(path, format!("{what} stores its data in an external file")));
    }
    if t.segment.is_some() {
        return Err(unsupported(path, format!("{what} is a segment of a larger tensor")));
    }
    let (shape, numel) = checked_dims(&t.dims, what, path)?;
    let raw = t.raw_data.as_deref().filter(|r| !r.is_empty());
    let code = t.data_type.unwrap_or(0);
    let data = match DataType::try_from(code) {
        Ok(DataType::Float) => TensorData::F32(match raw {
            Some(raw) => {
                only_raw(t.float_data.is_empty(), what, path)?;
                decode_raw::<4>(raw, numel, what, path)?.map(f32::from_le_bytes).collect()
            }
            None => typed(&t.float_data, numel, what, path)?,
        }),
        Ok(DataType::Int64) => TensorData::I64(match raw {
            Some(raw) => {
                only_raw(t.int64_data.is_empty(), what, path)?;
                decode_raw::<8>(raw, numel, what, path)?.map(i64::from_le_bytes).collect()
            }
            None => typed(&t.int64_data, numel, what, path)?,
        }),
        _ => {
            return Err(unsupported(
                path,
                format!("{what} has data type {}; only FLOAT and INT64 are supported", dtype_name(code)),
            ))
        }
    };
    Ok(Tensor { shape, data })
}

fn only_raw(typed_empty: bool, what: &str, path: &str) -> Result<(), IoError> {
    if typed_empty {
        Ok(())
    } else {
        Err(corrupt(path, format!("{what} has both raw_data and typed data")))
    }
}

fn typed<T: Copy>(data: &[T], numel: usize, what: &str, path: &str) -> Result<Vec<T>, IoError> {
    if data.len() != numel {
        return Err(corrupt(path, format!("{what} has {} values, its dims imply {numel}", data.len())));
    }
    Ok(data.to_vec())
}

fn decode_raw<'a, const N: usize>(
    raw: &'a [u8],
    numel: usize,
    what: &str,
    path: &str,
) -> Result<impl Iterator<Item = [u8; N]> + 'a, IoError> {
    if numel.checked_mul(N) != Some(raw.len()) {
        return Err(corrupt(
            path,
            format!("{what} has {} bytes of raw_data, its dims imply {numel} × {N}", raw.len()),
        ));
    }
    Ok(raw.chunks_exact(N).map(|c| {
        let mut b = [0u8; N];
        b.copy_from_slice(c);
        b
    }))
}

/// Writes a tensor with little-endian `raw_data`.
pub(super) fn to_proto(name: &str, t: &Tensor) -> TensorProto {
    let (code, raw) = match &t.data {
        TensorData::F32(v) => (DataType::Float, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::I64(v) => (DataType::Int64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
    };
    TensorProto {
        name: Some(name.to_string()),
        dims: t.shape.iter().map(|&d| d as i64).collect(),
        data_type: Some(code as i32),
        raw_data: Some(raw),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_typed_data_read_the_same() {
        let raw = to_proto("t", &Tensor::f32(vec![2], vec![1.5, -2.0]));
        let typed = TensorProto {
            dims: vec![2],
            data_type: Some(DataType::Float as i32),
            float_data: vec![1.5, -2.0],
            ..Default::default()
        };
        assert_eq!(from_proto(&raw, "t", "p").unwrap(), from_proto(&typed, "t", "p").unwrap());
        let ints = to_proto("i", &Tensor::i64(vec![3], vec![1, -1, i64::MAX]));
        assert_eq!(from_proto(&ints, "i", "p").unwrap().as_i64(), Some(&[1, -1, i64::MAX][..]));
    }

    #[test]
    fn bad_lengths_and_dims_are_corrupt() {
        let mut t = to_proto("t", &Tensor::f32(vec![2], vec![1.0, 2.0]));
        t.raw_data.as_mut().unwrap().pop();
        assert!(matches!(from_proto(&t, "t", "p"), Err(IoError::Corrupt { .. })));
        t.dims = vec![-1];
        assert!(matches!(from_proto(&t, "t", "p"), Err(IoError::Corrupt { .. })));
        t.dims = vec![i64::MAX, i64::MAX];
        assert!(matches!(from_proto(&t, "t", "p"), Err(IoError::Corrupt { .. })));
        t.dims = vec![1 << 40];
        assert!(matches!(from_proto(&t, "t", "p"), Err(IoError::Corrupt { .. })));
    }

    #[test]
    fn other_dtypes_and_external_data_are_unsupported() {
        let mut t = to_proto("t", &Tensor::f32(vec![1], vec![1.0]));
        t.data_type = Some(DataType::Double as i32);
        let e = from_proto(&t, "initializer 't'", "p").unwrap_err().to_string();
        assert!(e.contains("DOUBLE") && e.contains("'t'"), "{e}");
        t.data_type = Some(DataType::Float as i32);
        t.data_location = Some(DataLocation::External as i32);
        assert!(matches!(from_proto(&t, "t", "p"), Err(IoError::Unsupported { .. })));
    }
}

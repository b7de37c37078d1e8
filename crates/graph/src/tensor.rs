//! Dense tensors holding weights and constants.

use serde::{Deserialize, Serialize};

/// Element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// 64-bit signed integer (shapes, indices).
    I64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::I64 => 8,
        }
    }
}

/// The elements of a tensor, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TensorData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit integers.
    I64(Vec<i64>),
}

/// A dense tensor: a shape and row-major data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Elements, row-major; `numel(shape)` of them.
    pub data: TensorData,
}

impl Tensor {
    /// A float tensor. Panics in debug builds if the length does not match the shape; callers
    /// that read untrusted data check with [`Tensor::check`] instead.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data: TensorData::F32(data) }
    }

    /// An integer tensor.
    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data: TensorData::I64(data) }
    }

    /// A float tensor of zeros.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Tensor::f32(shape, vec![0.0; n])
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        match self.data {
            TensorData::F32(_) => DType::F32,
            TensorData::I64(_) => DType::I64,
        }
    }

    /// Number of elements the shape implies.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Number of stored elements.
    pub fn len(&self) -> usize {
        match &self.data {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
        }
    }

    /// True if the tensor holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the dense data.
    pub fn nbytes(&self) -> usize {
        self.len() * self.dtype().size()
    }

    /// The float data, if this is a float tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            TensorData::I64(_) => None,
        }
    }

    /// The float data, mutably.
    pub fn as_f32_mut(&mut self) -> Option<&mut Vec<f32>> {
        match &mut self.data {
            TensorData::F32(v) => Some(v),
            TensorData::I64(_) => None,
        }
    }

    /// The integer data, if this is an integer tensor.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Some(v),
            TensorData::F32(_) => None,
        }
    }

    /// Checks that the data length matches the shape.
    pub fn check(&self, name: &str) -> Result<(), crate::GraphError> {
        if self.numel() != self.len() {
            return Err(crate::GraphError::TensorLength {
                name: name.to_string(),
                shape: self.shape.clone(),
                expected: self.numel(),
                got: self.len(),
            });
        }
        Ok(())
    }
}

//! The closed set of operators.

use serde::{Deserialize, Serialize};
/// Attributes of a 2-D convolution (NCHW input, OIHW weight).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvAttrs {
    /// Stride along height and width.
    pub strides: [usize; 2],
    /// Padding: top, left, bottom, right (ONNX order: begins then ends).
    pub pads: [usize; 4],
    /// Dilation along height and width.
    pub dilations: [usize; 2],
    /// Number of groups; input and output channels must both be divisible by it.
    pub group: usize,
}

impl Default for ConvAttrs {
    fn default() -> Self {
        ConvAttrs { strides: [1, 1], pads: [0; 4], dilations: [1, 1], group: 1 }
    }
}

/// Attributes of a 2-D max or average pooling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolAttrs {
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub strides: [usize; 2],
    /// Padding: top, left, bottom, right.
    pub pads: [usize; 4],
    /// Round the output size up instead of down.
    pub ceil_mode: bool,
    /// Average pooling only: count padded cells in the divisor.
    pub count_include_pad: bool,
}

impl PoolAttrs {
    /// A square window with stride equal to the window and no padding.
    pub fn square(k: usize) -> Self {
        PoolAttrs {
            kernel: [k, k],
            strides: [k, k],
            pads: [0; 4],
            ceil_mode: false,
            count_include_pad: false,
        }
    }
}

/// One operator. The set is closed: importers map every supported ONNX op onto a variant and
/// reject the rest, naming them.
///
/// Inputs, in order, follow ONNX unless noted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// `Y = alpha * A' B' + beta * C`; inputs A, B and optionally C (broadcast to Y).
    Gemm {
        /// Scale of the product.
        alpha: f32,
        /// Scale of C.
        beta: f32,
        /// Use A transposed.
        trans_a: bool,
        /// Use B transposed (PyTorch's Linear exports with `trans_b`).
        trans_b: bool,
    },
    /// Matrix product of the last two dimensions, batch dimensions broadcast (numpy matmul).
    MatMul,
    /// 2-D convolution; inputs X, W (OIHW) and optionally a bias B.
    Conv(ConvAttrs),
    /// `max(x, 0)`.
    Relu,
    /// `x if x >= 0 else alpha * x`.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// Logistic sigmoid.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Clamp to `[min, max]` (ONNX passes these as constant inputs; they are folded here).
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// 2-D max pooling.
    MaxPool(PoolAttrs),
    /// 2-D average pooling.
    AveragePool(PoolAttrs),
    /// Mean over the spatial dimensions, keeping them as size 1.
    GlobalAveragePool,
    /// Batch normalization; inputs X, scale, bias, running mean, running variance.
    BatchNormalization {
        /// Added to the variance.
        epsilon: f32,
        /// Running-statistics momentum, ONNX convention: `running = running * m + batch * (1 - m)`.
        momentum: f32,
    },
    /// Reshape to 2-D: dimensions before `axis` become rows, the rest columns.
    Flatten {
        /// Split point (negative counts from the end).
        axis: i64,
    },
    /// Reshape to a constant target shape (`0` copies a dimension, `-1` is inferred).
    Reshape {
        /// Target shape.
        shape: Vec<i64>,
    },
    /// Permute dimensions.
    Transpose {
        /// The permutation; empty means reverse.
        perm: Vec<usize>,
    },
    /// Elementwise sum with numpy broadcasting.
    Add,
    /// Elementwise product with numpy broadcasting.
    Mul,
    /// Join along an axis.
    Concat {
        /// The axis (negative counts from the end).
        axis: i64,
    },
    /// Softmax along one axis.
    Softmax {
        /// The axis (negative counts from the end).
        axis: i64,
    },
    /// Dropout: identity at inference; zeroes a fraction of activations in training.
    Dropout {
        /// Fraction dropped in training.
        ratio: f32,
    },
    /// Copy.
    Identity,
    /// `+1` for `x >= 0`, `−1` otherwise: XNOR-Net's activation binarization. **Differs from
    /// ONNX `Sign` at exactly 0** (ONNX gives 0, deepshrink +1, as the XNOR-popcount kernel's
    /// sign bit does); NaN gives −1. Trained with the clipped straight-through estimator
    /// `∂y/∂x = 1{|x| ≤ 1}`.
    Sign,
}

impl Op {
    /// The ONNX op type name.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Gemm { .. } => "Gemm",
            Op::MatMul => "MatMul",
            Op::Conv(_) => "Conv",
            Op::Relu => "Relu",
            Op::LeakyRelu { .. } => "LeakyRelu",
            Op::Sigmoid => "Sigmoid",
            Op::Tanh => "Tanh",
            Op::Clip { .. } => "Clip",
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool(_) => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::BatchNormalization { .. } => "BatchNormalization",
            Op::Flatten { .. } => "Flatten",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Add => "Add",
            Op::Mul => "Mul",
            Op::Concat { .. } => "Concat",
            Op::Softmax { .. } => "Softmax",
            Op::Dropout { .. } => "Dropout",
            Op::Identity => "Identity",
            Op::Sign => "Sign",
        }
    }

    /// The ONNX op types deepshrink supports, for error messages.
    pub const SUPPORTED: &'static [&'static str] = &[
        "Gemm",
        "MatMul",
        "Conv",
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "Tanh",
        "Clip",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "BatchNormalization",
        "Flatten",
        "Reshape",
        "Transpose",
        "Add",
        "Mul",
        "Concat",
        "Softmax",
        "Dropout",
        "Identity",
        "Sign",
        "Constant",
    ];

    /// Allowed number of inputs (min, max).
    pub fn input_arity(&self) -> (usize, usize) {
        match self {
            Op::Gemm { .. } | Op::Conv(_) => (2, 3),
            Op::MatMul | Op::Add | Op::Mul => (2, 2),
            Op::BatchNormalization { .. } => (5, 5),
            Op::Concat { .. } => (1, usize::MAX),
            _ => (1, 1),
        }
    }
}

use std::fmt;

/// A buffer or a compressed structure does not fit the kernel's contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// The CSR structure is malformed; the message says where.
    Csr(String),
    /// A buffer has the wrong length.
    Length {
        /// Which buffer ("x", "y", "b", "values", "codes").
        what: &'static str,
        /// Length the shapes imply.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// A codebook code points past the end of the codebook.
    Code {
        /// Position of the non-zero.
        index: usize,
        /// Its code.
        code: usize,
        /// Codebook size.
        centroids: usize,
    },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Csr(m) => write!(f, "malformed sparse matrix: {m}"),
            KernelError::Length { what, expected, got } => {
                write!(f, "buffer '{what}' has {got} elements, expected {expected}")
            }
            KernelError::Code { index, code, centroids } => {
                write!(f, "non-zero {index} has code {code} but the codebook has {centroids} entries")
            }
        }
    }
}

impl std::error::Error for KernelError {}

/// Checks a buffer length.
pub(crate) fn expect_len(what: &'static str, got: usize, expected: usize) -> Result<(), KernelError> {
    if got == expected {
        Ok(())
    } else {
        Err(KernelError::Length { what, expected, got })
    }
}

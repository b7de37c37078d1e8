//! Reading and writing models and data sets.
//!
//! - [`onnx`]: ONNX import and export (opsets 11–18) to and from [`deepshrink_graph::Graph`].
//! - [`safetensors`]: memory-mapped safetensors read and write of named tensors.
//! - [`idx`]: IDX data sets (MNIST layout), gzipped or raw.
//!
//! Every reader treats its input as untrusted: lengths and offsets are checked before use and
//! every failure is an [`IoError`] naming the file and what is wrong. Writers go through
//! [`write_atomic`], so a failed write never leaves a half-written file behind.
#![deny(missing_docs)]

mod error;
pub mod idx;
pub mod onnx;
pub mod safetensors;

use std::path::Path;

pub use error::IoError;

use deepshrink_graph::Graph;

/// Loads a model by file extension: `.onnx` as ONNX. (safetensors files hold weights without a
/// graph; use [`safetensors::read`] for them.)
pub fn load_model(path: &Path) -> Result<Graph, IoError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => onnx::load(path),
        _ => Err(IoError::UnknownFormat { path: path.display().to_string() }),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// readers see either the old file or the complete new one, never a partial write.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    use std::io::Write;
    let err = |e: std::io::Error| IoError::Io { path: path.display().to_string(), source: e };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = path.file_name().ok_or_else(|| err(std::io::Error::other("not a file path")))?;
    let tmp = dir.join(format!(".{}.tmp{}", file_name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

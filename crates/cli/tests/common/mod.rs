//! Helpers shared by the end-to-end tests: running the binary, checking the one-line error
//! contract, and writing a small learnable IDX data set.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `deepshrink` binary with `args`.
pub fn deepshrink(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepshrink")).args(args).output().expect("run deepshrink")
}

/// Exit code 2 and exactly one `deepshrink: error:` line on stderr, no panic. Returns the line.
pub fn assert_error(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(err.starts_with("deepshrink: error: ") && !err.contains("panicked"), "stderr: {err}");
    err
}

/// An IDX image file of `n` images of `side` x `side` pixels.
pub fn idx_images(n: usize, side: usize, pixels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for d in [n, side, side] {
        b.extend_from_slice(&(d as u32).to_be_bytes());
    }
    b.extend_from_slice(pixels);
    b
}

/// An IDX label file.
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 1];
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

/// A learnable data set: class `k` of 4 lights up quadrant `k` of a `side` x `side` image, plus a
/// little deterministic noise. Written raw (not gzipped) for both splits.
pub fn write_quadrants(dir: &Path, n: usize, side: usize) {
    let mut pixels = Vec::with_capacity(n * side * side);
    let mut labels = Vec::with_capacity(n);
    let mut state = 12345u32;
    for i in 0..n {
        let k = i % 4;
        labels.push(k as u8);
        for r in 0..side {
            for c in 0..side {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let noise = (state >> 24) as u8 / 4;
                let q = (r >= side / 2) as usize * 2 + (c >= side / 2) as usize;
                pixels.push(if q == k { 200 + noise / 2 } else { noise });
            }
        }
    }
    for split in ["train", "t10k"] {
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), idx_images(n, side, &pixels)).unwrap();
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), idx_labels(&labels)).unwrap();
    }
}

/// Writes `n` quadrant images (28 x 28) to `dir` and trains LeNet-300-100 on them for one epoch
/// into `dir/m.onnx`. Returns the data directory and the model path.
pub fn trained_lenet(dir: &Path, n: usize) -> (String, String) {
    write_quadrants(dir, n, 28);
    let data = dir.to_str().unwrap().to_string();
    let model = dir.join("m.onnx").to_str().unwrap().to_string();
    let o =
        deepshrink(&["train", "--model", "lenet-300-100", "--data", &data, "--epochs", "1", "--out", &model]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    (data, model)
}

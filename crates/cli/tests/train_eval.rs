//! End-to-end tests of `deepshrink train` and `deepshrink eval` on small IDX data sets written by
//! the tests themselves: real learning, save/load consistency, and every bad-input case.

use std::path::Path;
use std::process::{Command, Output};

fn deepshrink(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepshrink")).args(args).output().expect("run deepshrink")
}

/// Exit code 2 and exactly one `deepshrink: error:` line on stderr, no panic.
fn assert_error(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(err.starts_with("deepshrink: error: ") && !err.contains("panicked"), "stderr: {err}");
    err
}

fn idx_images(n: usize, side: usize, pixels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for d in [n, side, side] {
        b.extend_from_slice(&(d as u32).to_be_bytes());
    }
    b.extend_from_slice(pixels);
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 1];
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

/// A learnable data set: class `k` of 4 lights up quadrant `k` of a `side` x `side` image, plus a
/// little deterministic noise. Written raw (not gzipped) for both splits.
fn write_quadrants(dir: &Path, n: usize, side: usize) {
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

#[test]
fn train_learns_then_eval_of_the_saved_model_agrees() {
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 512, 28);
    let out = dir.path().join("mlp.onnx");
    let data = dir.path().to_str().unwrap();
    let o = deepshrink(&[
        "train",
        "--model",
        "lenet-300-100",
        "--data",
        data,
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let trained = report["test"]["top1"].as_f64().unwrap();
    // Chance is 25%; the quadrant task is easy, so two epochs must learn it.
    assert!(trained > 0.95, "test top-1 after training {trained}");
    assert_eq!(report["epochs"].as_array().unwrap().len(), 2);

    let o = deepshrink(&["eval", out.to_str().unwrap(), "--data", data, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let eval: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(eval["samples"].as_u64(), Some(512));
    assert_eq!(eval["top1"].as_f64().unwrap(), trained, "saved model must score as trained");
    let loss_diff = (eval["loss"].as_f64().unwrap() - report["test"]["loss"].as_f64().unwrap()).abs();
    assert!(loss_diff < 1e-9, "loss differs by {loss_diff}");

    // The same seed repeats the run exactly.
    let o2 = deepshrink(&[
        "train",
        "--model",
        "lenet-300-100",
        "--data",
        data,
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--json",
    ]);
    let again: serde_json::Value = serde_json::from_slice(&o2.stdout).unwrap();
    assert_eq!(again["epochs"][1]["train_loss"], report["epochs"][1]["train_loss"]);
}

#[test]
fn unknown_zoo_name_exits_2() {
    let err = assert_error(&deepshrink(&["train", "--model", "lenet-9", "--epochs", "1"]));
    assert!(err.contains("lenet-9") && err.contains("lenet-5"), "{err}");
}

#[test]
fn missing_data_dir_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.onnx");
    let missing = dir.path().join("nope");
    let err = assert_error(&deepshrink(&[
        "train",
        "--model",
        "lenet-5",
        "--data",
        missing.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(err.contains("nope"), "{err}");
    assert!(!out.exists());
}

#[test]
fn truncated_images_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 16, 28);
    let f = dir.path().join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let err =
        assert_error(&deepshrink(&["train", "--model", "lenet-5", "--data", dir.path().to_str().unwrap()]));
    assert!(err.contains("train-images-idx3-ubyte"), "{err}");
}

#[test]
fn images_and_labels_of_different_counts_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 16, 28);
    std::fs::write(dir.path().join("t10k-labels-idx1-ubyte"), idx_labels(&[0; 15])).unwrap();
    let model = dir.path().join("m.onnx");
    // eval of a zoo name runs the untrained net: enough to reach the data check.
    let err = assert_error(&deepshrink(&["eval", "lenet-5", "--data", dir.path().to_str().unwrap()]));
    assert!(err.contains("15") || err.contains("16"), "{err}");
    assert!(!model.exists());
}

#[test]
fn data_that_does_not_fit_the_model_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 16, 8);
    let err =
        assert_error(&deepshrink(&["train", "--model", "lenet-5", "--data", dir.path().to_str().unwrap()]));
    assert!(err.contains("[1, 8, 8]") && err.contains("[1, 28, 28]"), "{err}");
}

#[test]
fn nonsense_options_exit_2() {
    for args in [
        &["train", "--model", "lenet-5", "--epochs", "0"][..],
        &["train", "--model", "lenet-5", "--lr", "-1"],
        &["train", "--model", "lenet-5", "--optimizer", "rmsprop"],
        &["train", "--model", "lenet-5", "--batch-size", "0"],
        &["eval", "lenet-5", "--split", "validation"],
    ] {
        let o = deepshrink(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn unwritable_output_exits_2_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 64, 28);
    let out = dir.path().join("missing-dir").join("m.onnx");
    assert_error(&deepshrink(&[
        "train",
        "--model",
        "lenet-300-100",
        "--data",
        dir.path().to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).collect();
    assert_eq!(leftovers.len(), 4, "only the four data files remain");
}

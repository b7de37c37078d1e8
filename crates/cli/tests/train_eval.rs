//! End-to-end tests of `deepshrink train` and `deepshrink eval` on small IDX data sets written by
//! the tests themselves: real learning, save/load consistency, and every bad-input case.

mod common;

use common::{assert_error, deepshrink, idx_labels, write_quadrants};

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

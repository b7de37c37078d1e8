//! `deepshrink compress` with a recipe `[teacher]`: the with/without comparison in the report,
//! and every bad-input case of the teacher (one line, exit 2, no output file).

mod common;

use std::path::Path;

use common::{assert_error, deepshrink, write_quadrants};

const PASSES: &str = r#"
[[pass]]
kind = "prune"
sparsity = 0.95
schedule = "one-shot"
retrain_epochs = 1

[[pass]]
kind = "share"
bits_fc = 2
finetune_epochs = 1
"#;

/// A data set and a LeNet-300-100 trained on it: (temp dir, data dir, model).
fn setup() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 256, 28);
    let data = dir.path().to_str().unwrap().to_string();
    let model = dir.path().join("m.onnx").to_str().unwrap().to_string();
    let o = deepshrink(&[
        "train",
        "--model",
        "lenet-300-100",
        "--data",
        &data,
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--out",
        &model,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    (dir, data, model)
}

fn compress(dir: &Path, data: &str, model: &str, teacher: &str, extra: &[&str]) -> std::process::Output {
    let recipe = dir.join("r.toml");
    std::fs::write(&recipe, format!("{teacher}\n{PASSES}")).unwrap();
    let (out, report) = (dir.join("m.dsk"), dir.join("report.json"));
    let mut args = vec![
        "compress",
        model,
        "--recipe",
        recipe.to_str().unwrap(),
        "--data",
        data,
        "--out",
        out.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--batch-size",
        "32",
    ];
    args.extend_from_slice(extra);
    deepshrink(&args)
}

#[test]
fn compare_reports_fine_tuning_with_and_without_the_teacher() {
    let (dir, data, model) = setup();
    // The teacher as a file (the model itself), compared from the command line.
    let teacher = format!("[teacher]\nmodel = {model:?}\ntemperature = 2.0\nalpha = 0.5");
    let o = compress(dir.path(), &data, &model, &teacher, &["--compare-teacher"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("| stage | with teacher | without teacher | difference (points) |"), "{text}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    let t = &r["teacher"];
    assert_eq!(t["config"]["temperature"], 2.0);
    assert_eq!(t["config"]["alpha"], 0.5);
    let (with, without) = (r["stages"].as_array().unwrap(), t["without_teacher"].as_array().unwrap());
    assert_eq!(with.len(), without.len());
    for (a, b) in with.iter().zip(without) {
        assert_eq!(a["stage"], b["stage"]);
        assert_eq!(a["kept"], b["kept"], "same masks either way");
    }
    // The baseline is the same model measured twice.
    assert_eq!(with[0]["test_top1"], without[0]["test_top1"]);

    // `compare = true` in the recipe does the same; without it there is no comparison.
    let o = compress(dir.path(), &data, &model, "[teacher]\ncompare = true", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("without teacher"));
    let o = compress(dir.path(), &data, &model, "[teacher]", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert!(r["teacher"]["without_teacher"].is_null());
    assert_eq!(r["teacher"]["config"]["model"], "self");
}

#[test]
fn limit_fine_tunes_on_the_first_n_images() {
    let (dir, data, model) = setup();
    let report = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap()
    };
    let o = compress(dir.path(), &data, &model, "[teacher]\ncompare = true", &["--limit", "64"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report();
    assert_eq!(r["train_samples"], 64);
    // The comparison without the teacher ran too; the test set is not limited.
    assert!(r["teacher"]["without_teacher"].is_array());
    assert_eq!(r["dsk_accuracy"]["samples"], 256);
    // A limit above the set's size takes the whole set (256 images).
    let o = compress(dir.path(), &data, &model, "", &["--limit", "100000"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(report()["train_samples"], 256);
}

#[test]
fn bad_teachers_exit_2_without_output() {
    let (dir, data, model) = setup();
    let d = dir.path();
    let cases: [(&str, &str, &[&str]); 7] = [
        ("[teacher]\nalpha = 2.0", "alpha must be in [0, 1]", &[]),
        ("[teacher]\ntemperature = 0.0", "temperature must be > 0", &[]),
        ("[teacher]\nmethod = \"at\"", "use \"kd\"", &[]),
        ("[teacher]\ncomapre = true", "comapre", &[]),
        ("[teacher]\nmodel = \"missing.onnx\"", "missing.onnx", &[]),
        ("", "--compare-teacher needs a [teacher]", &["--compare-teacher"]),
        ("[teacher]", "--limit must be at least 1", &["--limit", "0"]),
    ];
    for (teacher, needle, extra) in cases {
        let e = assert_error(&compress(d, &data, &model, teacher, extra));
        assert!(e.contains(needle), "{teacher}: {e}");
        assert!(!d.join("m.dsk").exists() && !d.join("report.json").exists(), "{teacher}: output written");
    }
    // An untrained zoo network cannot teach itself.
    let e = assert_error(&compress(d, &data, "lenet-300-100", "[teacher]", &[]));
    assert!(e.contains("untrained zoo network"), "{e}");
}

//! End-to-end tests of `deepshrink distill`: every method on a small learnable data set, and the
//! bad inputs of issue 6 (one line on stderr, exit 2, no output file).

mod common;

use std::path::Path;

use common::{assert_error, deepshrink, write_quadrants};
use deepshrink_graph::{Graph, Op, Tensor, ValueInfo};

/// Trains a cnn-small teacher on the quadrant data (it learns it perfectly in two epochs).
fn teacher(dir: &Path) -> String {
    let out = dir.join("teacher.onnx");
    let data = dir.to_str().unwrap();
    let o = deepshrink(&[
        "train",
        "--model",
        "cnn-small",
        "--data",
        data,
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out.to_str().unwrap().to_string()
}

fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 1024, 28);
    let t = teacher(dir.path());
    (dir, t)
}

#[test]
fn every_method_trains_a_student_and_reports_the_baseline() {
    let (dir, teacher) = setup();
    let data = dir.path().to_str().unwrap();
    for method in ["kd", "hint", "at"] {
        let out = dir.path().join(format!("{method}.onnx"));
        let report = dir.path().join(format!("{method}.json"));
        let o = deepshrink(&[
            "distill",
            "--teacher",
            &teacher,
            "--student",
            "cnn-tiny",
            "--data",
            data,
            "--method",
            method,
            "--epochs",
            "3",
            "--lr",
            "0.005",
            "--out",
            out.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{method}: {}", String::from_utf8_lossy(&o.stderr));
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert_eq!(r["teacher"]["params"], 162_806);
        assert_eq!(r["student"]["params"], 33_106);
        assert_eq!(r["method"], method);
        assert_eq!(r["runs"].as_array().unwrap().len(), 1);
        let top1 = r["distilled_top1"]["mean"].as_f64().unwrap();
        assert!(top1 > 0.9, "{method}: distilled student top-1 {top1}");
        assert!(r["baseline_top1"]["mean"].as_f64().unwrap() > 0.5);
        // The written student is the plain student: the hint regressor is gone.
        let g = deepshrink_io::load_model(&out).unwrap();
        assert_eq!(g.param_count(), 33_106, "{method}");
        assert!(g.weights.keys().all(|k| !k.starts_with("distill.")));
        if method == "at" {
            let pairs = r["plan"]["at_pairs"].as_array().unwrap();
            assert_eq!(pairs.len(), 3, "one pair per spatial size 28, 14, 7: {pairs:?}");
        }
        if method == "hint" {
            assert_eq!(r["plan"]["hint"], serde_json::json!(["relu3", "relu3"]));
        }
    }
}

fn bad(dir: &Path, teacher: &str, extra: &[&str]) -> String {
    let out = dir.join("student.onnx");
    let mut args = vec![
        "distill",
        "--teacher",
        teacher,
        "--student",
        "cnn-tiny",
        "--data",
        dir.to_str().unwrap(),
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let err = assert_error(&deepshrink(&args));
    assert!(!out.exists(), "no output on error");
    err
}

#[test]
fn bad_temperature_alpha_and_layers_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 16, 28);
    // An untrained zoo teacher is enough: these are refused before any training.
    let d = dir.path();
    assert!(bad(d, "cnn-small", &["--temperature", "0"]).contains("temperature must be > 0"));
    assert!(bad(d, "cnn-small", &["--temperature", "-2"]).contains("temperature must be > 0"));
    assert!(bad(d, "cnn-small", &["--alpha", "1.5"]).contains("alpha must be in [0, 1]"));
    assert!(bad(d, "cnn-small", &["--alpha", "-0.1"]).contains("alpha must be in [0, 1]"));
    let e = bad(d, "cnn-small", &["--method", "hint", "--hint", "relu3:relu3", "--no-regressor"]);
    assert!(e.contains("need a regressor"), "{e}");
    let e = bad(d, "cnn-small", &["--method", "hint", "--hint", "relu3:pool4"]);
    assert!(e.contains("same spatial size"), "{e}");
    let e = bad(d, "cnn-small", &["--method", "hint", "--hint", "nope:relu3"]);
    assert!(e.contains("no tensor named 'nope'"), "{e}");
    let e = bad(d, "cnn-small", &["--method", "at", "--at-pairs", "relu1:relu3"]);
    assert!(e.contains("same spatial size"), "{e}");
    let e = bad(d, "cnn-small", &["--method", "hint", "--hint-epochs", "2"]);
    assert!(e.contains("give more epochs"), "{e}");
}

#[test]
fn teacher_with_other_classes_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 16, 28);
    let mut g = Graph::new("four-classes", "input", &[1, 28, 28]);
    g.push("flat", Op::Flatten { axis: 1 }, &["input"]);
    g.add_weight("fc.weight", Tensor::f32(vec![4, 784], vec![0.01; 4 * 784]));
    g.add_weight("fc.bias", Tensor::f32(vec![4], vec![0.0; 4]));
    let op = Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true };
    g.push("fc", op, &["flat", "fc.weight", "fc.bias"]);
    g.outputs = vec![ValueInfo::batched("fc", &[4])];
    let path = dir.path().join("four.onnx");
    deepshrink_io::onnx::save(&g, &path).unwrap();
    let e = bad(dir.path(), path.to_str().unwrap(), &[]);
    assert!(e.contains("4 output classes") && e.contains("10"), "{e}");
}

//! `compress` with low-rank factorization, alone and combined with pruning, weight sharing and
//! Huffman coding: the report's per-layer low-rank rows, the container, `eval` and `export`.

mod common;

use common::{deepshrink, write_quadrants};

fn ok(o: &std::process::Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const RECIPE: &str = r#"
[[pass]]
kind = "svd"
rank = 12
skip = ["fc3.weight"]
check_speed = false
finetune_epochs = 1
lr = 1e-3

[[pass]]
kind = "prune"
sparsity = 0.5
schedule = "one-shot"
retrain_epochs = 1

[[pass]]
kind = "share"
bits_fc = 5
finetune_epochs = 0

[[pass]]
kind = "huffman"
"#;

#[test]
fn svd_then_prune_share_huffman_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 400, 28);
    let data = dir.path().to_str().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let model = p("m.onnx");
    ok(&deepshrink(&[
        "train",
        "--model",
        "lenet-300-100",
        "--data",
        data,
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--out",
        &model,
    ]));
    std::fs::write(p("r.toml"), RECIPE).unwrap();
    let (dsk, report) = (p("m.dsk"), p("report.json"));
    let md = ok(&deepshrink(&[
        "compress",
        &model,
        "--recipe",
        &p("r.toml"),
        "--data",
        data,
        "--out",
        &dsk,
        "--report",
        &report,
        "--batch-size",
        "32",
    ]));
    // The Markdown report has the low-rank table with both factored layers.
    assert!(md.contains("| svd | fc1.weight | 12 | 235500 -> 13308 |"), "{md}");
    assert!(md.contains("| svd | fc2.weight | 12 | 30100 -> 4900 |"), "{md}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let rows = r["factorized"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|row| row["factorized"] == true && row["rel_error"].as_f64().unwrap() > 0.0));
    // The pruned and shared factors are what the container stores and the runtime runs.
    let layers: Vec<&str> =
        r["layers"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert!(layers.contains(&"fc1.weight.svd_in") && layers.contains(&"fc2.weight.svd_out"), "{layers:?}");
    let dsk_top1 = r["dsk_accuracy"]["top1"].as_f64().unwrap();
    assert!(dsk_top1 > 0.9, "{dsk_top1}");
    let stages: Vec<&str> =
        r["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(
        stages,
        ["baseline", "svd (before fine-tuning)", "svd", "prune", "share (before fine-tuning)", "share"]
    );
    // eval on the container agrees with the report; export writes a runnable ONNX model.
    let e: serde_json::Value =
        serde_json::from_str(&ok(&deepshrink(&["eval", &dsk, "--data", data, "--json"]))).unwrap();
    assert_eq!(e["top1"].as_f64(), Some(dsk_top1));
    ok(&deepshrink(&["export", &dsk, "--to", &p("d.onnx")]));
    let e2: serde_json::Value =
        serde_json::from_str(&ok(&deepshrink(&["eval", &p("d.onnx"), "--data", data, "--json"]))).unwrap();
    assert!((e2["top1"].as_f64().unwrap() - dsk_top1).abs() < 0.02, "{e2} vs {dsk_top1}");
}

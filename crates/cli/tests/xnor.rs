//! XNOR-Net end to end: `compress` with `method = "xnor"` stores the inner layers as 1-bit codes
//! with a Sign node in the graph, the runtime runs them on the XNOR-popcount kernel, and `eval`
//! of the file gives the accuracy the pass measured in training; bad configurations exit 2.

mod common;

use std::process::Output;

use common::{assert_error, deepshrink, trained_lenet, write_quadrants};

fn ok(o: &Output) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

#[test]
fn xnor_stores_one_bit_runs_xnor_kernel_and_evals_as_trained() {
    let dir = tempfile::tempdir().unwrap();
    let (data, m) = trained_lenet(dir.path(), 200);
    let (data, m) = (data.as_str(), m.as_str());
    let recipe = dir.path().join("x.toml");
    std::fs::write(&recipe, "[[pass]]\nkind = \"qat\"\nmethod = \"xnor\"\nepochs = 1\n").unwrap();
    let (dsk, report) = (dir.path().join("m.dsk"), dir.path().join("r.json"));
    let (d, r) = (dsk.to_str().unwrap(), report.to_str().unwrap());
    ok(&deepshrink(&[
        "compress",
        m,
        "--recipe",
        recipe.to_str().unwrap(),
        "--data",
        data,
        "--out",
        d,
        "--report",
        r,
    ]));
    let rep: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let enc: Vec<(&str, &str)> = rep["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["name"].as_str().unwrap(), l["encoding"].as_str().unwrap()))
        .collect();
    // First and last layer stay float; fc2 is 1-bit (plus one f32 scale per output channel).
    assert_eq!(enc, [("fc1.weight", "dense_f32"), ("fc2.weight", "quant"), ("fc3.weight", "dense_f32")]);
    let bpw = rep["layers"][1]["bits_per_weight"].as_f64().unwrap();
    assert!((1.0..1.2).contains(&bpw), "{bpw}");
    // The file's accuracy (runtime, XNOR kernel) is the training-time accuracy of the pass.
    let stages = rep["stages"].as_array().unwrap();
    let trained = &stages[stages.len() - 1];
    assert_eq!(trained["stage"], "qat xnor");
    let e = ok(&deepshrink(&["eval", d, "--data", data, "--json"]));
    assert_eq!(e["top1"], trained["test_top1"]);
    assert_eq!(e["top1"], rep["dsk_accuracy"]["top1"]);
    let b = ok(&deepshrink(&["bench", d, "--batch", "1", "--runs", "3", "--json"]));
    let nodes = b["nodes"].as_array().unwrap();
    let kinds: Vec<&str> = nodes.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "xnor").count(), 1, "{b}");
    let text = b.to_string();
    assert!(text.contains("Sign"), "no Sign node in {text}");
}

#[test]
fn xnor_bad_configurations_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 8, 28);
    let data = dir.path().to_str().unwrap();
    let out = dir.path().join("m.dsk");
    for (model, text, needle) in [
        // LeNet-5 without its convolutions has two quantizable layers: nothing between the ends.
        ("lenet-5", "method = \"xnor\"\nconv = false", "at least 3"),
        ("lenet-300-100", "method = \"binary\"\nfloat_ends = false", "float_ends"),
        ("lenet-300-100", "method = \"xnor\"\nint_bits = 2", "int_bits"),
        ("lenet-300-100", "method = \"xnor\"\nlsq = true", "lsq"),
    ] {
        let r = dir.path().join("r.toml");
        std::fs::write(&r, format!("[[pass]]\nkind = \"qat\"\n{text}\nepochs = 1\n")).unwrap();
        let args = [
            "compress",
            model,
            "--recipe",
            r.to_str().unwrap(),
            "--data",
            data,
            "--out",
            out.to_str().unwrap(),
        ];
        let err = assert_error(&deepshrink(&args));
        assert!(err.contains(needle), "{text:?}: {err}");
        assert!(!out.exists());
    }
}

//! End-to-end tests of `compress`, `eval` on `.dsk`, `export` and `bench`, on a small learnable
//! data set written by the test, and every bad-input case of the container and recipes.

mod common;

use std::process::Output;

use common::{assert_error, deepshrink, trained_lenet, write_quadrants};

fn ok(o: &Output) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

const RECIPE: &str = r#"
[[pass]]
kind = "prune"
sparsity = 0.9
schedule = "one-shot"
retrain_epochs = 1
lr = 1e-3

[[pass]]
kind = "share"
bits_fc = 4
finetune_epochs = 1

[[pass]]
kind = "huffman"
"#;

/// A trained LeNet-300-100 on the quadrant task, compressed: (temp dir, data dir, model, dsk).
fn compressed() -> (tempfile::TempDir, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 400, 28);
    let data = dir.path().to_str().unwrap().to_string();
    let model = dir.path().join("m.onnx").to_str().unwrap().to_string();
    ok(&deepshrink(&[
        "train",
        "--model",
        "lenet-300-100",
        "--data",
        &data,
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--out",
        &model,
    ]));
    let recipe = dir.path().join("r.toml");
    std::fs::write(&recipe, RECIPE).unwrap();
    let dsk = dir.path().join("m.dsk").to_str().unwrap().to_string();
    let report = dir.path().join("report.json");
    let o = deepshrink(&[
        "compress",
        &model,
        "--recipe",
        recipe.to_str().unwrap(),
        "--data",
        &data,
        "--out",
        &dsk,
        "--report",
        report.to_str().unwrap(),
        "--batch-size",
        "32",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    (dir, data, model, dsk)
}

#[test]
fn compress_eval_export_bench_agree() {
    let (dir, data, model, dsk) = compressed();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    // The file really is smaller, and the report's byte count is the file's.
    let dsk_bytes = std::fs::metadata(&dsk).unwrap().len();
    assert_eq!(report["dsk_file_bytes"].as_u64(), Some(dsk_bytes));
    assert!(report["file_ratio"].as_f64().unwrap() > 10.0, "{}", report["file_ratio"]);
    // 90% of every layer pruned, 4-bit codebooks.
    for l in report["layers"].as_array().unwrap() {
        let (w, k) = (l["weights"].as_u64().unwrap(), l["kept"].as_u64().unwrap());
        assert_eq!(k, w - (w as f64 * 0.9).round() as u64, "{l}");
        assert_eq!(l["bits"].as_u64(), Some(4));
    }
    // `eval` of the .dsk (compressed execution) gives the accuracy the report measured...
    let e = ok(&deepshrink(&["eval", &dsk, "--data", &data, "--json"]));
    assert_eq!(e["top1"], report["dsk_accuracy"]["top1"]);
    assert!(e["top1"].as_f64().unwrap() > 0.9, "{e}");
    // ...and so does the dense ONNX export of it (same weights, dense execution).
    let onnx = dir.path().join("decoded.onnx");
    ok(&deepshrink(&["export", &dsk, "--to", onnx.to_str().unwrap()]));
    let d = ok(&deepshrink(&["eval", onnx.to_str().unwrap(), "--data", &data, "--json"]));
    assert_eq!(d["top1"], e["top1"]);
    assert!((d["loss"].as_f64().unwrap() - e["loss"].as_f64().unwrap()).abs() < 1e-4);
    // bench reports both executions for every node.
    let b = ok(&deepshrink(&["bench", &dsk, "--batch", "1", "--runs", "3", "--json"]));
    assert!(b["compressed_total_us"].as_f64().unwrap() > 0.0);
    let kinds: Vec<&str> =
        b["nodes"].as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| k.starts_with("sparse")).count(), 3, "{kinds:?}");
    // The uncompressed model still evaluates as before.
    ok(&deepshrink(&["eval", &model, "--data", &data, "--json"]));
}

#[test]
fn corrupt_truncated_and_wrong_version_dsk_exit_2() {
    let (dir, data, _, dsk) = compressed();
    let bytes = std::fs::read(&dsk).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("empty", Vec::new()),
        ("flipped", {
            let mut b = bytes.clone();
            let i = b.len() - 10;
            b[i] ^= 0x5a;
            b
        }),
        ("version", {
            let mut b = bytes.clone();
            // The version follows the 4-byte magic (docs/FORMAT.md).
            b[4] = b[4].wrapping_add(7);
            b
        }),
    ];
    for (name, b) in cases {
        let p = dir.path().join(format!("{name}.dsk"));
        std::fs::write(&p, b).unwrap();
        let err = assert_error(&deepshrink(&["eval", p.to_str().unwrap(), "--data", &data]));
        assert!(err.contains(&format!("{name}.dsk")), "{err}");
        let out = dir.path().join(format!("{name}.onnx"));
        assert_error(&deepshrink(&["export", p.to_str().unwrap(), "--to", out.to_str().unwrap()]));
        assert!(!out.exists(), "export left {name}.onnx behind");
    }
}

#[test]
fn bad_recipes_exit_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 40, 28);
    let data = dir.path().to_str().unwrap();
    let model = dir.path().join("m.onnx");
    ok(&deepshrink(&[
        "train",
        "--model",
        "lenet-300-100",
        "--data",
        data,
        "--epochs",
        "1",
        "--out",
        model.to_str().unwrap(),
    ]));
    let out = dir.path().join("m.dsk");
    for (text, needle) in [
        ("[[pass]]\nkind = \"magic\"\n", "magic"),
        ("[[pass]]\nkind = \"prune\"\nsparsity = 0.5\nfoo = 1\n", "foo"),
        ("[[pass]]\nkind = \"prune\"\nsparsity = 1.5\n", "[0, 1)"),
        ("[[pass]]\nkind = \"share\"\nbits_fc = 17\n", "1..=16"),
        ("[[pass]]\nkind = \"share\"\nbits_conv = 0\n", "1..=16"),
        ("[[pass]]\nkind = \"quantize\"\nbits = 3\n", "8, 4 or 2"),
        ("[[pass]]\nkind = \"quantize\"\nlayers = { \"fc1.weight\" = 16 }\n", "fc1.weight = 16"),
        ("[[pass]]\nkind = \"quantize\"\ngranularity = \"per-row\"\n", "per-row"),
        ("[[pass]]\nkind = \"quantize\"\npercentile = 0.0\n", "(0, 100]"),
        ("[[pass]]\nkind = \"quantize\"\ncalibration = \"entropy\"\n", "entropy"),
        (
            "[[pass]]\nkind = \"quantize\"\nactivations = \"static\"\ncalibration_samples = 0\n",
            "calibration_samples",
        ),
        ("not toml at all [[", "recipe"),
        ("[[pass]]\nkind = \"svd\"\nrank = 0\n", "rank 0"),
        ("[[pass]]\nkind = \"tucker2\"\nenergy = 1.5\n", "(0, 1]"),
        ("[[pass]]\nkind = \"cp\"\nrank = 4\nratio = 3.0\n", "exactly one"),
        ("[[pass]]\nkind = \"qat\"\nmethod = \"uniform\"\nbits = 9\n", "2..=8"),
        ("[[pass]]\nkind = \"qat\"\nmethod = \"fixed\"\nbits = 12\n", "8 or 16"),
        ("[[pass]]\nkind = \"qat\"\nmethod = \"sorcery\"\n", "sorcery"),
        ("[[pass]]\nkind = \"qat\"\nmethod = \"ternary\"\nlsq = true\n", "lsq"),
        ("[[pass]]\nkind = \"qat\"\nmethod = \"ttq\"\ngranularity = \"channel\"\n", "channel"),
        ("[[pass]]\nkind = \"circulant\"\nblock = 1\n", "larger block"),
        ("[[pass]]\nkind = \"circulant\"\ninit = \"zeros\"\n", "zeros"),
        ("[[pass]]\nkind = \"circulant\"\nlayers = { \"fc3.weight\" = 500 }\n", "larger than"),
    ] {
        let r = dir.path().join("r.toml");
        std::fs::write(&r, text).unwrap();
        let err = assert_error(&deepshrink(&[
            "compress",
            model.to_str().unwrap(),
            "--recipe",
            r.to_str().unwrap(),
            "--data",
            data,
            "--out",
            out.to_str().unwrap(),
        ]));
        assert!(err.contains(needle), "{text:?}: {err}");
        assert!(!out.exists());
    }
}

#[test]
fn model_without_prunable_layers_exits_2() {
    use deepshrink_graph::{Graph, Op, ValueInfo};
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 8, 28);
    let mut g = Graph::new("no-layers", "input", &[1, 28, 28]);
    let f = g.push("flatten", Op::Flatten { axis: 1 }, &["input"]);
    g.outputs.push(ValueInfo::batched(&f, &[784]));
    let model = dir.path().join("m.onnx");
    deepshrink_io::onnx::save(&g, &model).unwrap();
    let r = dir.path().join("r.toml");
    std::fs::write(&r, RECIPE).unwrap();
    let out = dir.path().join("m.dsk");
    let err = assert_error(&deepshrink(&[
        "compress",
        model.to_str().unwrap(),
        "--recipe",
        r.to_str().unwrap(),
        "--data",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(err.contains("no Gemm, MatMul or Conv"), "{err}");
    assert!(!out.exists());
}

/// The shipped int8 recipe: every Gemm weight stored as packed int8 (about 8 bits per weight,
/// 3.9x smaller than f32), run by the int8 kernel, and `eval` agrees with the report.
#[test]
fn int8_recipe_stores_packed_codes_and_runs_integer_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let (data, m) = trained_lenet(dir.path(), 200);
    let (data, m) = (data.as_str(), m.as_str());
    let recipe = concat!(env!("CARGO_MANIFEST_DIR"), "/../../recipes/int8.toml");
    let dsk = dir.path().join("m.dsk");
    let report = dir.path().join("r.json");
    let (d, r) = (dsk.to_str().unwrap(), report.to_str().unwrap());
    ok(&deepshrink(&["compress", m, "--recipe", recipe, "--data", data, "--out", d, "--report", r]));
    let rep: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for l in rep["layers"].as_array().unwrap() {
        assert_eq!(l["encoding"], "quant", "{l}");
        let bpw = l["bits_per_weight"].as_f64().unwrap();
        assert!((8.0..8.6).contains(&bpw), "{l}");
    }
    assert!(rep["file_ratio"].as_f64().unwrap() > 3.9, "{}", rep["file_ratio"]);
    let e = ok(&deepshrink(&["eval", d, "--data", data, "--json"]));
    assert_eq!(e["top1"], rep["dsk_accuracy"]["top1"]);
    let b = ok(&deepshrink(&["bench", d, "--batch", "1", "--runs", "3", "--json"]));
    let kinds: Vec<&str> =
        b["nodes"].as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "int8").count(), 3, "{kinds:?}");

    // Static activation scales: stored beside each weight (4 bytes more per layer), used by the
    // runtime, and `eval` still agrees with the report.
    let recipe = concat!(env!("CARGO_MANIFEST_DIR"), "/../../recipes/int8-static.toml");
    ok(&deepshrink(&["compress", m, "--recipe", recipe, "--data", data, "--out", d, "--report", r]));
    let bytes = std::fs::read(&dsk).unwrap();
    let model = deepshrink_codec::from_bytes(&bytes).unwrap();
    assert_eq!(model.quantized.len(), 3);
    for (name, q) in &model.quantized {
        let s = q.act_scale.unwrap_or_else(|| panic!("{name} has no activation scale"));
        assert!(s > 0.0 && s.is_finite(), "{name}: {s}");
    }
    let rep: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let e = ok(&deepshrink(&["eval", d, "--data", data, "--json"]));
    assert_eq!(e["top1"], rep["dsk_accuracy"]["top1"]);
}

/// QAT results are stored packed: TTQ as 2-bit codes with two scales (about 2 bits per weight)
/// run as two 2-bit products, LSQ int4 per channel on the int4 kernel; `eval` agrees with the
/// accuracy the compress report measured on the file.
#[test]
fn qat_recipes_store_packed_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (data, m) = trained_lenet(dir.path(), 200);
    let (data, m) = (data.as_str(), m.as_str());
    for (text, kind, bits) in [
        ("method = \"ttq\"", "ternary2", 2.0),
        ("method = \"uniform\"\nbits = 4\ngranularity = \"channel\"\nlsq = true", "int4", 4.0),
    ] {
        let recipe = dir.path().join("q.toml");
        std::fs::write(&recipe, format!("[[pass]]\nkind = \"qat\"\n{text}\nepochs = 1\n")).unwrap();
        let dsk = dir.path().join("m.dsk");
        let report = dir.path().join("r.json");
        let (d, r, q) = (dsk.to_str().unwrap(), report.to_str().unwrap(), recipe.to_str().unwrap());
        ok(&deepshrink(&["compress", m, "--recipe", q, "--data", data, "--out", d, "--report", r]));
        let rep: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        for l in rep["layers"].as_array().unwrap() {
            assert_eq!(l["encoding"], "quant", "{l}");
            let bpw = l["bits_per_weight"].as_f64().unwrap();
            assert!(bpw >= bits && bpw < bits + 0.7, "{l}");
        }
        let e = ok(&deepshrink(&["eval", d, "--data", data, "--json"]));
        assert_eq!(e["top1"], rep["dsk_accuracy"]["top1"]);
        let b = ok(&deepshrink(&["bench", d, "--batch", "1", "--runs", "3", "--json"]));
        let kinds: Vec<&str> =
            b["nodes"].as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == kind).count(), 3, "{kinds:?}");
    }
}

/// NaN weights cannot be quantized: one error line naming the tensor, exit 2, no output file.
#[test]
fn quantizing_nan_weights_exits_2() {
    use deepshrink_graph::{Graph, Op, Tensor, ValueInfo};
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 8, 28);
    let mut g = Graph::new("nan", "input", &[1, 28, 28]);
    let mut w = vec![0.01f32; 4 * 784];
    w[5] = f32::NAN;
    g.add_weight("fc.weight", Tensor::f32(vec![4, 784], w));
    g.push("flatten", Op::Flatten { axis: 1 }, &["input"]);
    let out = g.push(
        "fc",
        Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true },
        &["flatten", "fc.weight"],
    );
    g.outputs.push(ValueInfo::batched(&out, &[4]));
    let model = dir.path().join("m.onnx");
    deepshrink_io::onnx::save(&g, &model).unwrap();
    let recipe = concat!(env!("CARGO_MANIFEST_DIR"), "/../../recipes/int8.toml");
    let out = dir.path().join("m.dsk");
    let err = assert_error(&deepshrink(&[
        "compress",
        model.to_str().unwrap(),
        "--recipe",
        recipe,
        "--data",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(err.contains("fc.weight") && err.contains("non-finite"), "{err}");
    assert!(!out.exists());
}

/// A circulant LeNet-300-100 trained from a zoo initialisation: stored as `circulant_f32`, run on
/// the FFT kernel where it pays, `eval` agrees with the report, and `export` writes an ONNX
/// model (dense Gemms) with the same loss.
#[test]
fn circulant_recipe_stores_defining_values_and_runs_on_ffts() {
    let dir = tempfile::tempdir().unwrap();
    write_quadrants(dir.path(), 200, 28);
    let data = dir.path().to_str().unwrap();
    let recipe = concat!(env!("CARGO_MANIFEST_DIR"), "/../../recipes/circulant-b64.toml");
    let text = std::fs::read_to_string(recipe).unwrap().replace("epochs = 10", "epochs = 1");
    let r = dir.path().join("c.toml");
    std::fs::write(&r, text).unwrap();
    let dsk = dir.path().join("m.dsk");
    let report = dir.path().join("r.json");
    let (d, rep_path) = (dsk.to_str().unwrap(), report.to_str().unwrap());
    let args = ["compress", "lenet-300-100", "--recipe", r.to_str().unwrap(), "--data", data, "--out", d];
    ok(&deepshrink(&[&args[..], &["--report", rep_path, "--seed", "1"]].concat()));
    let rep: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for l in rep["layers"].as_array().unwrap() {
        assert_eq!(l["encoding"], "circulant_f32", "{l}");
    }
    // 4,928 values of 4 bytes plus biases, graph and headers.
    assert!(rep["dsk_file_bytes"].as_u64().unwrap() < 24_000, "{}", rep["dsk_file_bytes"]);
    let e = ok(&deepshrink(&["eval", d, "--data", data, "--json"]));
    assert_eq!(e["top1"], rep["dsk_accuracy"]["top1"]);
    let b = ok(&deepshrink(&["bench", d, "--batch", "1", "--runs", "3", "--json"]));
    let kinds: Vec<&str> =
        b["nodes"].as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "circulant").count(), 2, "{kinds:?}");
    let onnx = dir.path().join("m.onnx");
    ok(&deepshrink(&["export", d, "--to", onnx.to_str().unwrap()]));
    let e2 = ok(&deepshrink(&["eval", onnx.to_str().unwrap(), "--data", data, "--json"]));
    // FFT and dense products round differently: the losses agree closely, not bit for bit.
    assert!((e2["loss"].as_f64().unwrap() - e["loss"].as_f64().unwrap()).abs() < 1e-3, "{e2} vs {e}");
}

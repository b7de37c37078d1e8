//! End-to-end tests of the `deepshrink` binary: exit codes, error lines, output formats.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use deepshrink_graph::{Graph, Op, Tensor, ValueInfo};

fn deepshrink(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepshrink")).args(args).output().expect("run deepshrink")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 2, exactly one line on stderr starting with `deepshrink: error: `, no panic text.
fn assert_error_line(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(err.starts_with("deepshrink: error: "), "stderr: {err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "stderr: {err}");
    assert!(o.stdout.is_empty(), "stdout: {}", String::from_utf8_lossy(&o.stdout));
    err
}

/// 784 -> 32 -> 10 MLP in PyTorch `nn.Linear` layout.
/// Hand count: fc1 784*32 + 32 = 25,120 params and 25,088 MACs; fc2 330 params, 320 MACs.
fn mlp() -> Graph {
    let gemm = || Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true };
    let mut g = Graph::new("mlp", "x", &[1, 28, 28]);
    let f = g.push("flatten", Op::Flatten { axis: 1 }, &["x"]);
    let w1 = g.add_weight("fc1.weight", Tensor::zeros(vec![32, 784]));
    let b1 = g.add_weight("fc1.bias", Tensor::zeros(vec![32]));
    let h = g.push("fc1", gemm(), &[&f, &w1, &b1]);
    let r = g.push("relu", Op::Relu, &[&h]);
    let w2 = g.add_weight("fc2.weight", Tensor::zeros(vec![10, 32]));
    let b2 = g.add_weight("fc2.bias", Tensor::zeros(vec![10]));
    let y = g.push("fc2", gemm(), &[&r, &w2, &b2]);
    g.outputs.push(ValueInfo::batched(&y, &[10]));
    g
}

/// A safetensors file of f32 zeros, written by hand from the format: an 8-byte little-endian
/// header length, a JSON header of dtype, shape and data offsets per tensor, then the data.
fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>)]) {
    let mut header = Vec::new();
    let mut offset = 0usize;
    for (name, shape) in tensors {
        let n = 4 * shape.iter().product::<usize>();
        header.push(format!(
            r#""{name}":{{"dtype":"F32","shape":{shape:?},"data_offsets":[{offset},{}]}}"#,
            offset + n
        ));
        offset += n;
    }
    let mut header = format!("{{{}}}", header.join(",")).into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    bytes.resize(bytes.len() + offset, 0);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn inspect_missing_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-model.onnx");
    let o = deepshrink(&["inspect", path.to_str().unwrap()]);
    let err = assert_error_line(&o);
    assert!(err.contains("missing-model.onnx"), "{err}");
}

#[test]
fn inspect_garbage_onnx_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.onnx");
    std::fs::write(&path, b"\xff\xfe this is not a protobuf \x00\x01\x02\x08\x12").unwrap();
    let err = assert_error_line(&deepshrink(&["inspect", path.to_str().unwrap()]));
    assert!(err.contains("garbage.onnx"), "{err}");
}

#[test]
fn inspect_empty_onnx_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.onnx");
    std::fs::write(&path, b"").unwrap();
    assert_error_line(&deepshrink(&["inspect", path.to_str().unwrap()]));
}

#[test]
fn inspect_unknown_extension_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.pt");
    std::fs::write(&path, b"whatever").unwrap();
    let err = assert_error_line(&deepshrink(&["inspect", path.to_str().unwrap()]));
    assert!(err.contains("model.pt") && err.contains("unknown model format"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [&["inspect", "--frobnicate", "m.onnx"][..], &["frobnicate"], &[], &["inspect"]] {
        let o = deepshrink(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}");
    }
    assert_eq!(deepshrink(&["--help"]).status.code(), Some(0));
    assert_eq!(deepshrink(&["--version"]).status.code(), Some(0));
}

#[test]
fn inspect_json_gives_hand_counted_totals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.onnx");
    deepshrink_io::onnx::save(&mlp(), &path).unwrap();
    let o = deepshrink(&["inspect", "--json", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Exactly one JSON value on stdout: from_slice rejects trailing content.
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert!(v.is_object());
    assert_eq!(v["total_params"], 25_450);
    assert_eq!(v["total_macs"], 25_408);
    assert_eq!(v["total_bytes"], 25_450 * 4);
    let rows = v["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["flatten", "fc1", "relu", "fc2"]);
    assert_eq!(rows[1]["op"], "Gemm");
    assert_eq!(rows[1]["output_shape"], serde_json::json!([1, 32]));
}

#[test]
fn inspect_table_lists_layers_and_totals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.onnx");
    deepshrink_io::onnx::save(&mlp(), &path).unwrap();
    let o = deepshrink(&["inspect", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("| fc1 ") && out.contains("| Gemm ") && out.contains("25,120"), "{out}");
    assert!(out.contains("| total ") && out.contains("25,450"), "{out}");
    assert!(o.stderr.is_empty());
}

#[test]
fn inspect_safetensors_lists_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    write_safetensors(&path, &[("fc.weight".into(), vec![10, 784]), ("fc.bias".into(), vec![10])]);
    let o = deepshrink(&["inspect", "--json", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["total_params"], 7850);
    assert_eq!(v["rows"][1]["shape"], serde_json::json!([10, 784]));

    let o = deepshrink(&["inspect", path.to_str().unwrap()]);
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("| fc.weight | f32   | 10x784 |"), "{out}");
}

#[test]
fn inspect_truncated_safetensors_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.safetensors");
    write_safetensors(&path, &[("w".into(), vec![100])]);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let err = assert_error_line(&deepshrink(&["inspect", path.to_str().unwrap()]));
    assert!(err.contains("cut.safetensors"), "{err}");
}

/// `deepshrink inspect big | head -1` must not report an error when `head` closes the pipe.
#[test]
fn closed_stdout_pipe_exits_0_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.safetensors");
    // Far more table than a pipe buffer holds, so the writer is still writing when we close.
    let tensors: Vec<(String, Vec<usize>)> =
        (0..4000).map(|i| (format!("layer{i}.weight"), vec![2])).collect();
    write_safetensors(&path, &tensors);
    let mut child = Command::new(env!("CARGO_BIN_EXE_deepshrink"))
        .args(["inspect", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert!(err.is_empty(), "stderr: {err}");
}

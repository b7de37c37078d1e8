//! safetensors write → read round trip, and malformed files.

use std::collections::BTreeMap;

use deepshrink_graph::Tensor;
use deepshrink_io::{safetensors, IoError};

fn sample() -> BTreeMap<String, Tensor> {
    let mut m = BTreeMap::new();
    m.insert(
        "embeddings.word".into(),
        Tensor::f32(vec![3, 2], vec![0.5, -1.0, f32::MIN_POSITIVE, -0.0, 1e30, 7.0]),
    );
    m.insert("layer.0.bias".into(), Tensor::f32(vec![2], vec![1.0, 2.0]));
    m.insert("position_ids".into(), Tensor::i64(vec![1, 4], vec![0, 1, 2, i64::MAX]));
    m.insert("scalar".into(), Tensor::f32(vec![], vec![3.5]));
    m.insert("empty".into(), Tensor::f32(vec![0, 4], vec![]));
    m
}

#[test]
fn write_then_read_gives_the_same_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    safetensors::write(&sample(), &path).unwrap();
    assert_eq!(safetensors::read(&path).unwrap(), sample());
    // In-memory encoding gives the same bytes as the file.
    assert_eq!(safetensors::to_bytes(&sample(), "mem").unwrap(), std::fs::read(&path).unwrap());
}

#[test]
fn graph_weights_round_trip() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mlp.onnx");
    let Ok(g) = deepshrink_io::onnx::load(&p) else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.safetensors");
    safetensors::write(&g.weights, &path).unwrap();
    assert_eq!(safetensors::read(&path).unwrap(), g.weights);
}

#[test]
fn truncated_files_are_corrupt() {
    let bytes = safetensors::to_bytes(&sample(), "mem").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.safetensors");
    for n in [0, 4, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..n]).unwrap();
        let e = safetensors::read(&path);
        assert!(matches!(e, Err(IoError::Corrupt { .. })), "{n} bytes: {e:?}");
    }
    for n in 0..bytes.len() {
        assert!(matches!(safetensors::from_bytes(&bytes[..n], "cut"), Err(IoError::Corrupt { .. })), "{n}");
    }
}

#[test]
fn garbage_headers_are_corrupt() {
    let mut bad = 1_000_000u64.to_le_bytes().to_vec();
    bad.extend_from_slice(b"{}");
    assert!(matches!(safetensors::from_bytes(&bad, "huge-header"), Err(IoError::Corrupt { .. })));
    let header = br#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#;
    let mut bad = (header.len() as u64).to_le_bytes().to_vec();
    bad.extend_from_slice(header);
    bad.extend_from_slice(&[0; 8]);
    assert!(matches!(safetensors::from_bytes(&bad, "short-data"), Err(IoError::Corrupt { .. })));
}

#[test]
fn missing_file_is_an_io_error() {
    let e = safetensors::read(std::path::Path::new("/nonexistent/x.safetensors"));
    assert!(matches!(e, Err(IoError::Io { .. })));
}

#[test]
fn inconsistent_tensor_is_refused_on_write() {
    let mut m = BTreeMap::new();
    m.insert(
        "bad".to_string(),
        Tensor { shape: vec![3], data: deepshrink_graph::TensorData::F32(vec![1.0]) },
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    assert!(matches!(safetensors::write(&m, &path), Err(IoError::Graph { .. })));
    assert!(!path.exists());
}

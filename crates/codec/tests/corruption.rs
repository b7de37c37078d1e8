//! Corrupt, truncated, version-mismatched and mutated files are errors, never panics.

mod common;

use std::collections::BTreeMap;

use common::{lenet_300_100, random_blocked, random_sparse, Rng};
use deepshrink_codec::{
    from_bytes, from_bytes_with, to_bytes, CodecError, DskModel, PackOptions, ReadOptions,
};
use deepshrink_graph::Tensor;

/// A small model exercising every encoding and both stream codings.
fn small_file() -> Vec<u8> {
    let mut rng = Rng(5);
    let mut model = lenet_300_100(2, 0.1, Some(3));
    model.sparse.clear();
    model.sparse.insert("fc1.weight".into(), random_sparse(&mut rng, &[30, 78], 0.1, Some(3)));
    model.sparse.insert("fc2.weight".into(), random_sparse(&mut rng, &[10, 30], 0.3, None));
    model.sparse.insert("fc3.weight".into(), random_sparse(&mut rng, &[10, 10], 1.0, Some(2)));
    model.sparse.insert("blocked.weight".into(), random_blocked(&mut rng, &[6, 16], 4, 0.4, Some(3)));
    model.graph.weights.insert("fc1.bias".into(), Tensor::f32(vec![30], vec![0.5; 30]));
    model.graph.weights.insert("fc2.bias".into(), Tensor::f32(vec![10], vec![0.5; 10]));
    model.graph.weights.insert("steps".into(), Tensor::i64(vec![2], vec![1, 2]));
    let hashed = deepshrink_codec::HashedTensor { shape: vec![4, 6], seed: 3, values: vec![0.5, -0.25, 1.0] };
    let model = model.with_hashed(BTreeMap::from([("hashed.weight".to_string(), hashed)]));
    let circulant = deepshrink_codec::CirculantTensor {
        shape: vec![5, 7],
        block: 4,
        sign_seed: Some(11),
        values: (0..16).map(|i| i as f32 * 0.25 - 2.0).collect(),
    };
    let model = model.with_circulant(BTreeMap::from([("circulant.weight".to_string(), circulant)]));
    let (bytes, report) = to_bytes(&model, &PackOptions::default()).unwrap();
    let streams: Vec<bool> = report
        .tensors
        .iter()
        .flat_map(|t| [&t.index_stream, &t.code_stream])
        .flatten()
        .map(|s| s.huffman)
        .collect();
    assert!(streams.contains(&true) && streams.contains(&false), "{streams:?}");
    assert!(report.tensors.iter().any(|t| t.encoding == "sparse_block_codebook"));
    assert_eq!(from_bytes(&bytes).unwrap(), model);
    bytes
}

fn fuzz_opts() -> ReadOptions {
    ReadOptions { verify_checksums: false, max_tensor_elements: 1 << 20, max_graph_bytes: 1 << 20 }
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = small_file();
    for n in 0..bytes.len() {
        assert!(from_bytes(&bytes[..n]).is_err(), "prefix of {n} bytes accepted");
        assert!(from_bytes_with(&bytes[..n], &fuzz_opts()).is_err(), "prefix of {n} bytes accepted");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(from_bytes(&longer), Err(CodecError::TrailingBytes { extra: 1 })));
}

#[test]
fn truncations_of_a_lenet_file_are_errors() {
    let (bytes, _) = to_bytes(&lenet_300_100(1, 0.08, Some(5)), &PackOptions::default()).unwrap();
    for n in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
        assert!(from_bytes(&bytes[..n]).is_err(), "prefix of {n} bytes accepted");
    }
}

#[test]
fn every_single_byte_flip_is_detected() {
    let bytes = small_file();
    let mut rng = Rng(9);
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 1 + rng.below(255) as u8;
        let err = from_bytes(&b).expect_err(&format!("flip at {i} accepted"));
        if i >= 16 {
            assert!(
                matches!(err, CodecError::Checksum { .. } | CodecError::Truncated { .. }),
                "flip at {i}: {err}"
            );
        }
    }
}

#[test]
fn checksum_error_names_the_tensor() {
    let mut bytes = small_file();
    let n = bytes.len();
    bytes[n - 6] ^= 0x40; // inside the last tensor's payload
    let err = from_bytes(&bytes).unwrap_err();
    assert!(matches!(err, CodecError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("circulant.weight"), "{err}");
}

#[test]
fn version_mismatch_is_distinct_from_corruption() {
    let mut bytes = small_file();
    bytes[4] = 2;
    assert_eq!(from_bytes(&bytes).unwrap_err(), CodecError::UnsupportedVersion { found: 2, supported: 1 });
    let mut bytes = small_file();
    bytes[0] = b'P';
    assert!(matches!(from_bytes(&bytes), Err(CodecError::BadMagic { .. })));
    assert!(matches!(from_bytes(b"\x89DS"), Err(CodecError::Truncated { .. })));
    assert!(matches!(from_bytes(b""), Err(CodecError::Truncated { .. })));
    assert!(matches!(from_bytes(b"PK\x03\x04"), Err(CodecError::BadMagic { .. })));
}

#[test]
fn unknown_tag_is_named() {
    // One dense tensor; patch its tag and re-seal the section's CRC.
    let mut g = deepshrink_graph::Graph::default();
    g.add_weight("w", Tensor::f32(vec![1], vec![1.0]));
    let (mut bytes, report) = to_bytes(
        &DskModel { graph: g, sparse: BTreeMap::new(), ..Default::default() },
        &PackOptions::default(),
    )
    .unwrap();
    let start = report.header_and_graph_bytes;
    let tag_at = start + 4 + 2;
    assert_eq!(bytes[tag_at], 1);
    bytes[tag_at] = 200;
    let end = bytes.len() - 4;
    let crc = deepshrink_codec::crc32(&bytes[start..end]);
    bytes[end..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(from_bytes(&bytes).unwrap_err(), CodecError::UnknownTag { tensor: "w".into(), tag: 200 });
}

/// One random mutation: flips, overwrites with boundary values, inserts, deletes, truncation,
/// duplicated ranges.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let n = bytes.len().max(1);
    match rng.below(7) {
        0 => {
            let i = rng.below(n as u64) as usize % bytes.len().max(1);
            if !bytes.is_empty() {
                bytes[i] ^= 1 << rng.below(8);
            }
        }
        1 => {
            if !bytes.is_empty() {
                let i = rng.below(bytes.len() as u64) as usize;
                bytes[i] = [0, 1, 0x7F, 0x80, 0xFF, 2, 16, 17][rng.below(8) as usize];
            }
        }
        2 => {
            let i = rng.below(n as u64 + 1) as usize % (bytes.len() + 1);
            bytes.insert(i, rng.next_u64() as u8);
        }
        3 => {
            if !bytes.is_empty() {
                let i = rng.below(bytes.len() as u64) as usize;
                let len = (rng.below(16) as usize).min(bytes.len() - i);
                bytes.drain(i..i + len);
            }
        }
        4 => bytes.truncate(rng.below(n as u64 + 1) as usize),
        5 => {
            if bytes.len() > 8 {
                let i = rng.below(bytes.len() as u64 - 4) as usize;
                let v = [u32::MAX, 1 << 31, 0, 1 << 20][rng.below(4) as usize];
                bytes[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        _ => {
            if bytes.len() > 2 {
                let i = rng.below(bytes.len() as u64 - 1) as usize;
                let len = (rng.below(32) as usize).min(bytes.len() - i);
                let chunk: Vec<u8> = bytes[i..i + len].to_vec();
                let j = rng.below(bytes.len() as u64) as usize;
                bytes.splice(j..j, chunk);
            }
        }
    }
    // Keep the header's length field consistent half of the time so mutations reach the sections.
    if bytes.len() >= 16 && rng.below(2) == 0 {
        let len = bytes.len() as u64;
        bytes[8..16].copy_from_slice(&len.to_le_bytes());
    }
}

/// Emulates `cargo fuzz run dsk_reader` (fuzz/): thousands of deterministic mutations of valid
/// files, read with checksums off so the parsers behind them are reached. No input may panic.
#[test]
fn random_mutations_never_panic() {
    let seeds =
        [small_file(), to_bytes(&lenet_300_100(3, 0.01, Some(2)), &PackOptions::default()).unwrap().0];
    let mut rng = Rng(0xD5C0);
    let mut accepted = 0;
    for iter in 0..6000 {
        let mut b = seeds[iter % 2].clone();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut b);
        }
        if from_bytes_with(&b, &fuzz_opts()).is_ok() {
            accepted += 1;
        }
        let _ = from_bytes(&b);
    }
    // Some mutations (e.g. a flipped float bit) still give a valid file when checksums are off.
    assert!(accepted < 6000);
}

/// Writes seed files for the fuzzer: `DSK_SEED_DIR=fuzz/corpus/dsk_reader cargo test -p
/// deepshrink-codec --test corruption -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes fuzz seeds"]
fn write_fuzz_seeds() {
    let dir = std::path::PathBuf::from(std::env::var("DSK_SEED_DIR").expect("DSK_SEED_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("small.dsk"), small_file()).unwrap();
    let tiny = to_bytes(&lenet_300_100(3, 0.01, Some(2)), &PackOptions::default()).unwrap().0;
    std::fs::write(dir.join("tiny_lenet.dsk"), tiny).unwrap();
    let raw = to_bytes(&lenet_300_100(4, 0.005, None), &PackOptions { index_bits: Some(3), huffman: false });
    std::fs::write(dir.join("raw.dsk"), raw.unwrap().0).unwrap();
}

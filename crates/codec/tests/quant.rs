//! The `quant` encoding (tag 7): size formula against the bytes written, round trips at every
//! bit width and grouping, and hostile bytes rejected with errors, never panics.

mod common;

use std::collections::BTreeMap;

use common::Rng;
use deepshrink_codec::bits::vlen;
use deepshrink_codec::{
    from_bytes, from_bytes_with, to_bytes, DskModel, PackOptions, QuantMatrix, ReadOptions,
};
use deepshrink_graph::Graph;

fn random_quant(rng: &mut Rng, shape: &[usize], bits: u8, per_row: bool, zero_points: bool) -> QuantMatrix {
    let n: usize = shape.iter().product();
    let rows = shape.first().copied().unwrap_or(1);
    let g = if per_row { rows } else { 1 };
    QuantMatrix {
        shape: shape.to_vec(),
        bits,
        scales: (0..g).map(|_| rng.unit() as f32 * 0.1).collect(),
        zero_points: zero_points.then(|| (0..g).map(|_| rng.below(1 << bits) as u8).collect()),
        codes: (0..n).map(|_| rng.below(1 << bits) as u8).collect(),
        neg_scales: None,
        act_scale: None,
    }
}

fn model_of(name: &str, m: QuantMatrix) -> DskModel {
    DskModel {
        graph: Graph::default(),
        quantized: BTreeMap::from([(name.to_string(), m)]),
        ..Default::default()
    }
}

/// docs/FORMAT.md: `section = 8 + header + 2 + 4g + [4g] + [g] + [4] + rows * ceil(cols * bits / 8)`.
fn formula(name: &str, m: &QuantMatrix) -> usize {
    let header = vlen(name.len() as u64)
        + name.len()
        + 1
        + vlen(m.shape.len() as u64)
        + m.shape.iter().map(|&d| vlen(d as u64)).sum::<usize>();
    let g = m.scales.len();
    let rows = m.shape[0];
    let cols: usize = m.shape[1..].iter().product();
    8 + header
        + 2
        + 4 * g
        + m.zero_points.as_ref().map_or(0, |_| g)
        + m.neg_scales.as_ref().map_or(0, |_| 4 * g)
        + m.act_scale.map_or(0, |_| 4)
        + rows * (cols * m.bits as usize).div_ceil(8)
}

#[test]
fn size_formula_and_round_trip() {
    let mut rng = Rng(11);
    for shape in [vec![300, 784], vec![10, 3], vec![6, 1, 5, 5], vec![7, 13], vec![1, 1]] {
        for bits in [1u8, 2, 4, 8] {
            for per_row in [false, true] {
                for zp in [false, true] {
                    if bits == 1 && zp {
                        continue;
                    }
                    let mut m = random_quant(&mut rng, &shape, bits, per_row, zp);
                    // Every other matrix carries a static activation scale.
                    if rng.below(2) == 1 {
                        m.act_scale = Some(0.0123);
                    }
                    let model = model_of("fc.weight", m.clone());
                    let (bytes, report) = to_bytes(&model, &PackOptions::default()).unwrap();
                    let t = &report.tensors[0];
                    assert_eq!(t.total_bytes, formula("fc.weight", &m), "{shape:?} {bits} {per_row} {zp}");
                    assert_eq!(t.encoding, "quant");
                    assert_eq!(report.total_bytes, bytes.len());
                    let (back, report2) = from_bytes_with(&bytes, &ReadOptions::default()).unwrap();
                    assert_eq!(back, model);
                    assert_eq!(report2, report);
                }
            }
        }
    }
}

#[test]
fn int8_weights_are_four_times_smaller_than_f32() {
    // 300x784 per-row int8: 235200 code bytes + 300 scales against 940800 f32 bytes.
    let m = random_quant(&mut Rng(1), &[300, 784], 8, true, false);
    let (_, report) = to_bytes(&model_of("w", m), &PackOptions::default()).unwrap();
    let ratio = (300.0 * 784.0 * 4.0) / report.tensors[0].total_bytes as f64;
    assert!(ratio > 3.97 && ratio < 4.0, "{ratio}"); // 940800 / (235200 + 1200 + 2 + 23)
}

#[test]
fn decoded_values_follow_the_formula() {
    let m = QuantMatrix {
        shape: vec![2, 3],
        bits: 4,
        scales: vec![0.5, 2.0],
        zero_points: Some(vec![8, 3]),
        codes: vec![8, 9, 0, 3, 4, 15],
        neg_scales: None,
        act_scale: None,
    };
    let t = m.to_dense();
    assert_eq!(t.as_f32().unwrap(), &[0.0, 0.5, -4.0, 0.0, 2.0, 24.0]);
    let b = QuantMatrix {
        shape: vec![1, 3],
        bits: 1,
        scales: vec![0.25],
        zero_points: None,
        codes: vec![1, 0, 1],
        neg_scales: None,
        act_scale: None,
    };
    assert_eq!(b.to_dense().as_f32().unwrap(), &[0.25, -0.25, 0.25]);
    let sym = QuantMatrix {
        shape: vec![1, 2],
        bits: 8,
        scales: vec![1.0],
        zero_points: None,
        codes: vec![0, 255],
        neg_scales: None,
        act_scale: None,
    };
    assert_eq!(sym.to_dense().as_f32().unwrap(), &[-128.0, 127.0]);
}

#[test]
fn writer_refuses_bad_matrices() {
    let good = random_quant(&mut Rng(2), &[4, 5], 4, true, true);
    let cases: Vec<(QuantMatrix, &str)> = vec![
        (QuantMatrix { bits: 3, ..good.clone() }, "bits"),
        (QuantMatrix { codes: vec![16; 20], ..good.clone() }, "code"),
        (QuantMatrix { scales: vec![f32::NAN; 4], ..good.clone() }, "scale"),
        (QuantMatrix { scales: vec![1.0; 3], ..good.clone() }, "scales"),
        (QuantMatrix { zero_points: Some(vec![16; 4]), ..good.clone() }, "zero point"),
        (QuantMatrix { codes: vec![0; 19], ..good.clone() }, "codes"),
        (QuantMatrix { act_scale: Some(0.0), ..good.clone() }, "activation scale"),
        (QuantMatrix { act_scale: Some(f32::INFINITY), ..good.clone() }, "activation scale"),
    ];
    for (m, what) in cases {
        let e = to_bytes(&model_of("w", m), &PackOptions::default()).unwrap_err().to_string();
        assert!(e.contains(what) && e.contains("'w'"), "{e}");
    }
}

/// Every single-byte change and every truncation of a quant file is an error or a valid
/// model, never a panic (checksums off to reach the parser).
#[test]
fn mutated_files_never_panic() {
    let m = random_quant(&mut Rng(3), &[5, 7], 2, true, true);
    let (bytes, _) = to_bytes(&model_of("w", m), &PackOptions::default()).unwrap();
    let opts = ReadOptions { verify_checksums: false, ..ReadOptions::default() };
    for i in 16..bytes.len() {
        for v in [0u8, 1, 3, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] = v;
            let _ = from_bytes_with(&b, &opts);
        }
    }
    for n in 0..bytes.len() {
        assert!(from_bytes(&bytes[..n]).is_err());
    }
}

#[test]
fn reader_rejects_padding_bits_and_bad_flags() {
    // 1 row of 3 two-bit codes: one code byte whose top two bits are padding.
    let m = QuantMatrix {
        shape: vec![1, 3],
        bits: 2,
        scales: vec![1.0],
        zero_points: None,
        codes: vec![1, 2, 3],
        neg_scales: None,
        act_scale: None,
    };
    let (bytes, _) = to_bytes(&model_of("w", m), &PackOptions::default()).unwrap();
    let opts = ReadOptions { verify_checksums: false, ..ReadOptions::default() };
    let code_at = bytes.len() - 5; // last payload byte, before the CRC
    assert_eq!(bytes[code_at], 0b00_11_10_01);
    let mut b = bytes.clone();
    b[code_at] |= 0b1100_0000;
    assert!(from_bytes_with(&b, &opts).unwrap_err().to_string().contains("padding"));
    let flags_at = code_at - 4 - 1;
    let mut b = bytes.clone();
    b[flags_at] = 0x10;
    assert!(from_bytes_with(&b, &opts).unwrap_err().to_string().contains("flags"));
    let mut b = bytes;
    b[flags_at - 1] = 3;
    assert!(from_bytes_with(&b, &opts).unwrap_err().to_string().contains("bits"));
}

/// Two-scale ternary (TTQ, flag bit 2): code 3 is `+scale`, 2 is 0, 1 is `−neg_scale`; the
/// section is 4g bytes longer than one-scale 2-bit codes (docs/FORMAT.md) and round-trips.
#[test]
fn two_scale_ternary_round_trips_at_the_formula_size() {
    let mut rng = Rng(5);
    for (shape, per_row) in [(vec![300usize, 784], false), (vec![10, 3], true), (vec![6, 1, 5, 5], true)] {
        let mut m = random_quant(&mut rng, &shape, 2, per_row, false);
        m.codes.iter_mut().for_each(|c| *c = 1 + *c % 3);
        m.neg_scales = Some(m.scales.iter().map(|s| s * 0.5 + 0.01).collect());
        let model = model_of("w", m.clone());
        let (bytes, report) = to_bytes(&model, &PackOptions::default()).unwrap();
        assert_eq!(report.tensors[0].total_bytes, formula("w", &m), "{shape:?}");
        let (back, _) = from_bytes_with(&bytes, &ReadOptions::default()).unwrap();
        assert_eq!(back, model);
    }
    let m = QuantMatrix {
        shape: vec![1, 4],
        bits: 2,
        scales: vec![0.5],
        zero_points: None,
        codes: vec![3, 2, 1, 3],
        neg_scales: Some(vec![0.25]),
        act_scale: None,
    };
    assert_eq!(m.to_dense().as_f32().unwrap(), &[0.5, 0.0, -0.25, 0.5]);
    // Two scales only for 2-bit codes without zero points.
    assert!(QuantMatrix { bits: 4, ..m.clone() }.check("w").is_err());
    assert!(QuantMatrix { zero_points: Some(vec![2]), ..m.clone() }.check("w").is_err());
    assert!(QuantMatrix { neg_scales: Some(vec![f32::NAN]), ..m }.check("w").is_err());
}

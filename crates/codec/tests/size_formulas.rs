//! Every encoding's size formula (docs/FORMAT.md and the `Encoding` doc comments), computed here
//! independently of the writer, equals the bytes written.

mod common;

use std::collections::BTreeMap;

use common::{random_blocked, random_sparse, Rng};
use deepshrink_codec::bits::vlen;
use deepshrink_codec::huffman::HuffmanCode;
use deepshrink_codec::sparse_index::{gap_symbol_count, gap_symbols};
use deepshrink_codec::{code_width, to_bytes, DskModel, PackOptions, SparseMatrix, SparseValues, HEADER_LEN};
use deepshrink_graph::{Graph, Tensor};

fn header(name: &str, shape: &[usize]) -> usize {
    vlen(name.len() as u64)
        + name.len()
        + 1
        + vlen(shape.len() as u64)
        + shape.iter().map(|&d| vlen(d as u64)).sum::<usize>()
}

/// `stream = ceil(n * w / 8)` fixed, or `table + data` Huffman.
fn stream_bytes(symbols: &[u32], alphabet: usize, w: u32, huffman: bool) -> usize {
    let fixed = (symbols.len() * w as usize).div_ceil(8);
    if !huffman || symbols.is_empty() {
        return fixed;
    }
    let mut counts = vec![0u64; alphabet];
    symbols.iter().for_each(|&s| counts[s as usize] += 1);
    let code = HuffmanCode::from_counts(&counts);
    let n_len = code.lengths().iter().rposition(|&l| l > 0).map_or(0, |i| i + 1);
    let max = *code.lengths().iter().max().unwrap() as u32;
    let lw = (32 - max.leading_zeros()) as usize;
    let table = vlen(n_len as u64) + 1 + (n_len * lw).div_ceil(8);
    let data_len = code.total_bits(&counts).div_ceil(8) as usize;
    let h = table + vlen(data_len as u64) + data_len;
    h.min(fixed)
}

fn sparse_section(name: &str, m: &SparseMatrix, b: u32, huffman: bool) -> usize {
    let numel = m.rows() * m.cols();
    let mut n = 8 + header(name, &m.shape) + vlen(m.nnz() as u64) + 1;
    if m.nnz() != numel {
        let n_sym = gap_symbol_count(m, b);
        assert_eq!(n_sym, gap_symbols(m, b).len());
        n += 1 + vlen(n_sym as u64) + stream_bytes(&gap_symbols(m, b), 1 << b, b, huffman);
    }
    n + match &m.values {
        SparseValues::F32(v) => 4 * v.len(),
        SparseValues::Codebook { centroids, codes } => {
            let k = centroids.len();
            let syms: Vec<u32> = codes.iter().map(|&c| c as u32).collect();
            vlen(k as u64) + 4 * k + stream_bytes(&syms, k, code_width(k), huffman)
        }
    }
}

#[test]
fn code_width_formula() {
    let w: Vec<u32> = [0, 1, 2, 3, 4, 5, 32, 33, 256, 65536].iter().map(|&k| code_width(k)).collect();
    assert_eq!(w, vec![1, 1, 1, 2, 2, 3, 5, 6, 8, 16]);
}

#[test]
fn sparse_sections_match_their_formula() {
    let mut rng = Rng(11);
    for (i, shape) in [vec![30, 40], vec![8, 3, 5, 5], vec![1, 3000], vec![5, 5]].iter().enumerate() {
        for density in [0.0, 0.01, 0.1, 0.6, 1.0] {
            for bits in [None, Some(2), Some(5)] {
                let m = random_sparse(&mut rng, shape, density, bits);
                for huffman in [false, true] {
                    for b in [1u8, 3, 5, 8, 16] {
                        let name = format!("layer{i}.weight");
                        let model = DskModel {
                            graph: Graph::default(),
                            sparse: BTreeMap::from([(name.clone(), m.clone())]),
                            ..Default::default()
                        };
                        let (bytes, report) =
                            to_bytes(&model, &PackOptions { index_bits: Some(b), huffman }).unwrap();
                        let expected = sparse_section(&name, &m, b as u32, huffman);
                        assert_eq!(
                            report.tensors[0].total_bytes, expected,
                            "{shape:?} {density} {bits:?} {huffman} b={b}"
                        );
                        assert_eq!(bytes.len(), report.header_and_graph_bytes + expected);
                    }
                }
            }
        }
    }
}

#[test]
fn dense_sections_match_their_formula() {
    let mut g = Graph::default();
    g.add_weight("a", Tensor::f32(vec![3, 2], vec![1.0; 6]));
    g.add_weight("bias.long.name", Tensor::i64(vec![5], vec![7; 5]));
    g.add_weight("c", Tensor::f32(vec![], vec![1.0]));
    let model = DskModel { graph: g.clone(), sparse: BTreeMap::new(), ..Default::default() };
    let (bytes, report) = to_bytes(&model, &PackOptions::default()).unwrap();
    let mut offset = report.header_and_graph_bytes;
    for (name, t) in &g.weights {
        let align = t.dtype().size();
        let data_at = offset + 4 + header(name, &t.shape);
        let pad = data_at.next_multiple_of(align) - data_at;
        let expected = 8 + header(name, &t.shape) + pad + align * t.numel();
        let got = report.tensors.iter().find(|s| &s.name == name).unwrap().total_bytes;
        assert_eq!(got, expected, "{name}");
        offset += expected;
    }
    assert_eq!(offset, bytes.len());
    assert!(report.header_and_graph_bytes > HEADER_LEN);
}

/// Tags 5 and 6: a matrix pruned in aligned blocks stores block positions (a `rows x cols/B`
/// grid, one gap symbol per block) and one byte of block width after the `streams` byte.
#[test]
fn block_sections_match_their_formula() {
    let mut rng = Rng(12);
    for shape in [vec![30, 40], vec![8, 3, 4, 4], vec![3, 784]] {
        for density in [0.05, 0.3, 0.9] {
            for bits in [None, Some(5)] {
                let m = random_blocked(&mut rng, &shape, 4, density, bits);
                let cols = m.cols();
                // The block grid, built independently of the writer.
                let mut grid = vec![0.0f32; m.rows() * cols / 4];
                for r in 0..m.rows() {
                    for j in m.row_ptr[r] as usize..m.row_ptr[r + 1] as usize {
                        grid[(r * cols + m.col_idx[j] as usize) / 4] = 1.0;
                    }
                }
                let blocks = SparseMatrix::from_dense(&[m.rows(), cols / 4], &grid);
                assert_eq!(4 * blocks.nnz(), m.nnz());
                for huffman in [false, true] {
                    for b in [2u8, 5, 8] {
                        let model =
                            DskModel::new(Graph::default(), BTreeMap::from([("w".to_string(), m.clone())]));
                        let (_, report) =
                            to_bytes(&model, &PackOptions { index_bits: Some(b), huffman }).unwrap();
                        let t = &report.tensors[0];
                        let syms = gap_symbols(&blocks, b as u32);
                        let mut expected = 8 + header("w", &m.shape) + vlen(m.nnz() as u64) + 2;
                        expected +=
                            1 + vlen(syms.len() as u64) + stream_bytes(&syms, 1 << b, b as u32, huffman);
                        expected += match &m.values {
                            SparseValues::F32(v) => 4 * v.len(),
                            SparseValues::Codebook { centroids, codes } => {
                                let k = centroids.len();
                                let syms: Vec<u32> = codes.iter().map(|&c| c as u32).collect();
                                vlen(k as u64) + 4 * k + stream_bytes(&syms, k, code_width(k), huffman)
                            }
                        };
                        let name = if bits.is_some() { "sparse_block_codebook" } else { "sparse_block_f32" };
                        assert_eq!(
                            (t.encoding.as_str(), t.total_bytes),
                            (name, expected),
                            "{shape:?} {density}"
                        );
                    }
                }
            }
        }
    }
}

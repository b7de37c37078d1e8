//! Symbol streams stored fixed-width or canonical-Huffman coded (docs/FORMAT.md, "Streams").

use crate::bits::{put_varint, vlen, BitReader, BitWriter, ByteReader};
use crate::huffman::{entropy_bits, HuffmanCode, MAX_CODE_LEN};
use crate::{CodecError, StreamStats};

/// Stream coding numbers of the `streams` byte (append-only).
pub(crate) const FIXED: u8 = 0;
/// Canonical Huffman.
pub(crate) const HUFFMAN: u8 = 1;

/// A stream ready to append: its bytes (table, length and data) and statistics.
pub(crate) struct EncodedStream {
    pub bytes: Vec<u8>,
    pub stats: StreamStats,
}

impl EncodedStream {
    pub fn coding(&self) -> u8 {
        if self.stats.huffman {
            HUFFMAN
        } else {
            FIXED
        }
    }
}

fn histogram(symbols: &[u32], alphabet: usize) -> Vec<u64> {
    let mut counts = vec![0u64; alphabet];
    for &s in symbols {
        counts[s as usize] += 1;
    }
    counts
}

/// Bits needed to write `x`.
fn bit_width(x: u32) -> u32 {
    32 - x.leading_zeros()
}

/// Encodes `symbols` (each < `alphabet`, fitting `width` bits): Huffman if `allow_huffman` and
/// it is strictly smaller with its table, fixed-width otherwise.
pub(crate) fn encode(symbols: &[u32], alphabet: usize, width: u32, allow_huffman: bool) -> EncodedStream {
    let counts = histogram(symbols, alphabet);
    let code = HuffmanCode::from_counts(&counts);
    let fixed_bytes = (symbols.len() as u64 * width as u64).div_ceil(8) as usize;
    let mut stats = StreamStats {
        symbols: symbols.len(),
        width_bits: width,
        entropy_bits: entropy_bits(&counts),
        avg_code_bits: code.avg_bits(&counts),
        huffman: false,
        data_bytes: fixed_bytes,
        table_bytes: 0,
    };
    if allow_huffman && !symbols.is_empty() {
        let table = write_table(&code);
        let data_len = code.total_bits(&counts).div_ceil(8) as usize;
        let huff = table.len() + vlen(data_len as u64) + data_len;
        if huff < fixed_bytes {
            let mut bytes = table;
            stats.table_bytes = bytes.len();
            put_varint(&mut bytes, data_len as u64);
            let mut w = BitWriter::new();
            for &s in symbols {
                code.put(s as usize, &mut w);
            }
            let data = w.finish();
            debug_assert_eq!(data.len(), data_len);
            bytes.extend_from_slice(&data);
            stats.huffman = true;
            stats.data_bytes = bytes.len() - stats.table_bytes;
            return EncodedStream { bytes, stats };
        }
    }
    let mut w = BitWriter::new();
    for &s in symbols {
        w.put(s, width);
    }
    EncodedStream { bytes: w.finish(), stats }
}

/// `n_len`, `lw`, then the lengths `lw` bits each, padded to a byte.
fn write_table(code: &HuffmanCode) -> Vec<u8> {
    let lengths = code.lengths();
    let n_len = lengths.iter().rposition(|&l| l > 0).map_or(0, |i| i + 1);
    let max = lengths.iter().copied().max().unwrap_or(0).max(1);
    let lw = bit_width(max as u32);
    let mut out = Vec::new();
    put_varint(&mut out, n_len as u64);
    out.push(lw as u8);
    let mut w = BitWriter::new();
    for &l in &lengths[..n_len] {
        w.put(l as u32, lw);
    }
    out.extend_from_slice(&w.finish());
    out
}

/// Where a stream belongs, for errors.
pub(crate) struct StreamCtx<'a> {
    pub tensor: &'a str,
    pub stream: &'static str,
}

impl StreamCtx<'_> {
    fn err(&self, detail: impl Into<String>) -> CodecError {
        CodecError::Huffman { tensor: self.tensor.to_string(), stream: self.stream, detail: detail.into() }
    }
}

/// Reads a stream of exactly `n` symbols; Huffman symbols are < `alphabet`, fixed ones fit
/// `width` bits (range checks against a smaller alphabet are the caller's). Returns the symbols
/// and their statistics (as the encoder computed them).
pub(crate) fn decode(
    r: &mut ByteReader,
    coding: u8,
    n: usize,
    alphabet: usize,
    width: u32,
    ctx: &StreamCtx,
) -> Result<(Vec<u32>, StreamStats), CodecError> {
    let start = r.pos();
    let mut table_bytes = 0;
    let symbols = if coding == FIXED {
        let len = (n as u128 * width as u128).div_ceil(8);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let data = r.take(len, ctx.stream)?;
        let mut br = BitReader::new(data);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(br.bits(width).ok_or_else(|| ctx.err("fixed stream ends early"))?);
        }
        br.finish().map_err(|e| ctx.err(e))?;
        out
    } else {
        let n_len = r.varint_max("Huffman table size", alphabet as u64)?;
        let lw = r.u8("Huffman length width")? as u32;
        if !(1..=bit_width(MAX_CODE_LEN as u32)).contains(&lw) {
            return Err(ctx.err(format!("length width {lw} not in 1..=5")));
        }
        let tbl = r.take((n_len * lw as usize).div_ceil(8), "Huffman table")?;
        let mut br = BitReader::new(tbl);
        let mut lengths = vec![0u8; alphabet.min(n_len)];
        for l in lengths.iter_mut() {
            *l = br.bits(lw).ok_or_else(|| ctx.err("table ends early"))? as u8;
        }
        br.finish().map_err(|e| ctx.err(format!("table: {e}")))?;
        table_bytes = r.pos() - start;
        let code = HuffmanCode::from_lengths(lengths).map_err(|e| ctx.err(e))?;
        let data_len = r.varint_max("Huffman data length", r.remaining() as u64)?;
        if n as u64 > 8 * data_len as u64 {
            return Err(ctx.err(format!("{n} symbols cannot fit in {data_len} bytes")));
        }
        let data = r.take(data_len, "Huffman data")?;
        let dec = code.decoder();
        let mut br = BitReader::new(data);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(dec.decode(&mut br).map_err(|e| ctx.err(e))?);
        }
        br.finish().map_err(|e| ctx.err(e))?;
        out
    };
    let counts = histogram(&symbols, alphabet.max(1 << width.min(16)));
    let stats = StreamStats {
        symbols: n,
        width_bits: width,
        entropy_bits: entropy_bits(&counts),
        avg_code_bits: HuffmanCode::from_counts(&counts).avg_bits(&counts),
        huffman: coding == HUFFMAN,
        data_bytes: r.pos() - start - table_bytes,
        table_bytes,
    };
    Ok((symbols, stats))
}

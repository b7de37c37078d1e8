//! Canonical, length-limited Huffman codes (Huffman 1952; canonical ordering as DEFLATE, RFC 1951
//! section 3.2.2), and the entropy of a symbol histogram to compare them against.
//!
//! A code is fully described by one length per symbol: symbols are ordered by (length, symbol)
//! and get consecutive codes, so only the lengths are stored (docs/FORMAT.md, "Streams").
//!
//! ```
//! use deepshrink_codec::huffman::{entropy_bits, HuffmanCode};
//! let counts = [45u64, 13, 12, 16, 9, 5]; // CLRS's example
//! let code = HuffmanCode::from_counts(&counts);
//! assert_eq!(code.lengths(), &[1, 3, 3, 3, 4, 4]);
//! let avg = code.avg_bits(&counts);
//! assert!((avg - 2.24).abs() < 1e-12 && entropy_bits(&counts) <= avg);
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::bits::{BitReader, BitWriter};

/// Longest code the encoder produces and the decoder accepts.
pub const MAX_CODE_LEN: u8 = 24;

/// A canonical prefix code: a length and a code for every symbol of the alphabet (length 0 for
/// symbols that never occur).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HuffmanCode {
    lengths: Vec<u8>,
    codes: Vec<u32>,
}

impl HuffmanCode {
    /// The optimal code (limited to [`MAX_CODE_LEN`] bits) for symbols occurring `counts[s]`
    /// times. A single used symbol gets length 1; an empty histogram gives an empty code.
    pub fn from_counts(counts: &[u64]) -> HuffmanCode {
        let mut c = counts.to_vec();
        loop {
            let lengths = huffman_lengths(&c);
            if lengths.iter().all(|&l| l <= MAX_CODE_LEN) {
                return HuffmanCode::from_lengths(lengths).expect("Huffman lengths are complete");
            }
            // Flatten the distribution and rebuild; terminates at equal counts (depth <= 16).
            for x in c.iter_mut().filter(|x| **x > 0) {
                *x = (*x >> 1).max(1);
            }
        }
    }

    /// The canonical code with these lengths. Errors unless the lengths are <= [`MAX_CODE_LEN`]
    /// and complete (Kraft sum exactly 1), or exactly one symbol has length 1, or all are 0.
    pub fn from_lengths(lengths: Vec<u8>) -> Result<HuffmanCode, String> {
        let mut bl_count = [0u64; MAX_CODE_LEN as usize + 1];
        for (s, &l) in lengths.iter().enumerate() {
            if l > MAX_CODE_LEN {
                return Err(format!("symbol {s} has code length {l} > {MAX_CODE_LEN}"));
            }
            bl_count[l as usize] += 1;
        }
        bl_count[0] = 0;
        let used: u64 = bl_count.iter().sum();
        let kraft: u64 =
            (1..=MAX_CODE_LEN as usize).map(|l| bl_count[l] << (MAX_CODE_LEN as usize - l)).sum();
        let single = used == 1 && bl_count[1] == 1;
        if used > 0 && !single && kraft != 1u64 << MAX_CODE_LEN {
            let state = if kraft > 1u64 << MAX_CODE_LEN { "over-subscribed" } else { "incomplete" };
            return Err(format!("code lengths are {state} (Kraft sum {kraft} / 2^{MAX_CODE_LEN})"));
        }
        let mut next = [0u32; MAX_CODE_LEN as usize + 2];
        let mut code = 0u32;
        for len in 1..=MAX_CODE_LEN as usize {
            code = (code + bl_count[len - 1] as u32) << 1;
            next[len] = code;
        }
        let codes = lengths
            .iter()
            .map(|&l| {
                let c = next[l as usize];
                if l > 0 {
                    next[l as usize] += 1;
                }
                c
            })
            .collect();
        Ok(HuffmanCode { lengths, codes })
    }

    /// Code length of every symbol (0: unused).
    pub fn lengths(&self) -> &[u8] {
        &self.lengths
    }

    /// The code of `symbol` (its low `lengths()[symbol]` bits).
    pub fn code(&self, symbol: usize) -> u32 {
        self.codes[symbol]
    }

    /// Writes the code of `symbol`, which must have a non-zero length.
    pub fn put(&self, symbol: usize, w: &mut BitWriter) {
        debug_assert!(self.lengths[symbol] > 0, "symbol {symbol} has no code");
        w.put(self.codes[symbol], self.lengths[symbol] as u32);
    }

    /// Total bits of coding a stream with this histogram.
    pub fn total_bits(&self, counts: &[u64]) -> u64 {
        counts.iter().zip(&self.lengths).map(|(&c, &l)| c * l as u64).sum()
    }

    /// Average code length in bits per symbol for this histogram (0 for an empty one).
    pub fn avg_bits(&self, counts: &[u64]) -> f64 {
        let n: u64 = counts.iter().sum();
        if n == 0 {
            0.0
        } else {
            self.total_bits(counts) as f64 / n as f64
        }
    }

    /// A decoder for this code.
    pub fn decoder(&self) -> Decoder {
        let mut counts = [0u32; MAX_CODE_LEN as usize + 1];
        let mut symbols: Vec<(u8, u32)> = Vec::new();
        for (s, &l) in self.lengths.iter().enumerate() {
            if l > 0 {
                counts[l as usize] += 1;
                symbols.push((l, s as u32));
            }
        }
        symbols.sort_unstable();
        let max_len = symbols.last().map_or(0, |s| s.0);
        Decoder { counts, symbols: symbols.into_iter().map(|s| s.1).collect(), max_len }
    }
}

/// Empirical entropy `-Σ p log2 p` of a histogram, in bits per symbol: no prefix code of these
/// symbols averages fewer bits.
pub fn entropy_bits(counts: &[u64]) -> f64 {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / n).map(|p| -p * p.log2()).sum()
}

/// Decodes a canonical code one bit at a time (as zlib's `puff`): at most `max_len` steps.
#[derive(Debug, Clone)]
pub struct Decoder {
    counts: [u32; MAX_CODE_LEN as usize + 1],
    symbols: Vec<u32>,
    max_len: u8,
}

impl Decoder {
    /// The next symbol, or an error if the bits run out or form no code.
    pub fn decode(&self, r: &mut BitReader) -> Result<u32, String> {
        let (mut code, mut first, mut index) = (0i64, 0i64, 0i64);
        for len in 1..=self.max_len as usize {
            code |= r.bit().ok_or("data ends inside a code")? as i64;
            let count = self.counts[len] as i64;
            if code - first < count {
                return Ok(self.symbols[(index + code - first) as usize]);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err(format!("bits at offset {} form no code", r.consumed()))
    }
}

/// Unlimited Huffman code lengths; deterministic (ties broken by node id).
fn huffman_lengths(counts: &[u64]) -> Vec<u8> {
    let used: Vec<usize> = (0..counts.len()).filter(|&s| counts[s] > 0).collect();
    let mut lengths = vec![0u8; counts.len()];
    match used.len() {
        0 => return lengths,
        1 => {
            lengths[used[0]] = 1;
            return lengths;
        }
        _ => {}
    }
    // Nodes 0..used.len() are leaves; internal nodes follow, each after its children.
    let mut parent = vec![usize::MAX; 2 * used.len() - 1];
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> =
        used.iter().enumerate().map(|(i, &s)| Reverse((counts[s], i))).collect();
    let mut next = used.len();
    while heap.len() > 1 {
        let Reverse((wa, a)) = heap.pop().expect("two nodes");
        let Reverse((wb, b)) = heap.pop().expect("two nodes");
        parent[a] = next;
        parent[b] = next;
        heap.push(Reverse((wa + wb, next)));
        next += 1;
    }
    let mut depth = vec![0u32; parent.len()];
    for i in (0..parent.len() - 1).rev() {
        depth[i] = depth[parent[i]] + 1;
    }
    for (i, &s) in used.iter().enumerate() {
        lengths[s] = depth[i].min(255) as u8;
    }
    lengths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(counts: &[u64], stream: &[usize]) {
        let code = HuffmanCode::from_counts(counts);
        let mut w = BitWriter::new();
        for &s in stream {
            code.put(s, &mut w);
        }
        let bytes = w.finish();
        let dec = code.decoder();
        let mut r = BitReader::new(&bytes);
        for &s in stream {
            assert_eq!(dec.decode(&mut r).unwrap() as usize, s);
        }
        r.finish().unwrap();
    }

    #[test]
    fn canonical_codes_are_ordered_by_length_then_symbol() {
        let code = HuffmanCode::from_lengths(vec![2, 1, 3, 3]).unwrap();
        let c: Vec<u32> = (0..4).map(|s| code.code(s)).collect();
        assert_eq!(c, vec![0b10, 0b0, 0b110, 0b111]);
    }

    #[test]
    fn rejects_bad_length_tables() {
        assert!(HuffmanCode::from_lengths(vec![1, 1, 1]).is_err());
        assert!(HuffmanCode::from_lengths(vec![1, 2]).is_err());
        assert!(HuffmanCode::from_lengths(vec![0, 2]).is_err());
        assert!(HuffmanCode::from_lengths(vec![25, 1]).is_err());
        assert!(HuffmanCode::from_lengths(vec![0, 1, 0]).is_ok());
        assert!(HuffmanCode::from_lengths(vec![0, 0]).is_ok());
    }

    #[test]
    fn single_and_empty_alphabets() {
        round_trip(&[0, 7, 0], &[1; 7]);
        assert_eq!(HuffmanCode::from_counts(&[0, 0]).lengths(), &[0, 0]);
        let dec = HuffmanCode::from_counts(&[0, 0]).decoder();
        assert!(dec.decode(&mut BitReader::new(&[0])).is_err());
    }

    #[test]
    fn fibonacci_counts_are_length_limited() {
        let mut counts = vec![1u64, 1];
        while counts.len() < 40 {
            let n = counts.len();
            counts.push(counts[n - 1] + counts[n - 2]);
        }
        let code = HuffmanCode::from_counts(&counts);
        assert_eq!(*code.lengths().iter().max().unwrap(), MAX_CODE_LEN);
        round_trip(&counts, &(0..40).collect::<Vec<_>>());
    }

    #[test]
    fn dyadic_distribution_meets_entropy_exactly() {
        let counts = [8u64, 4, 2, 1, 1];
        let code = HuffmanCode::from_counts(&counts);
        assert!((code.avg_bits(&counts) - entropy_bits(&counts)).abs() < 1e-12);
    }

    #[test]
    fn skewed_distribution_is_within_one_bit_of_entropy() {
        // Geometric gaps as in a pruned layer keeping 8%: P(d) ∝ 0.92^d, 32 symbols.
        let counts: Vec<u64> = (0..32).map(|d| (1e6 * 0.92f64.powi(d)) as u64).collect();
        let code = HuffmanCode::from_counts(&counts);
        let (h, avg) = (entropy_bits(&counts), code.avg_bits(&counts));
        assert!(h <= avg && avg < h + 1.0, "H = {h}, avg = {avg}");
        assert!(avg <= 1.01 * h, "H = {h}, avg = {avg}");
    }
}

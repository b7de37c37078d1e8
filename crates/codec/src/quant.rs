//! Uniformly quantized and binary weights (`quant`, tag 7): integer codes of 8, 4, 2 or 1 bits
//! packed into bytes, with per-tensor or per-row scales and optional zero points
//! (docs/FORMAT.md, "`quant` (7)").

use deepshrink_graph::Tensor;

use crate::bits::ByteReader;
use crate::CodecError;

/// A weight tensor of integer codes, `rows = shape[0]`, `cols = Π shape[1..]`.
///
/// - `bits` 8, 4 or 2: `w = scale * (code - zero)`, codes in `0..2^bits`; without stored zero
///   points (symmetric) `zero = 2^(bits-1)`.
/// - `bits` 1 (binary): `w = scale * (2 * code - 1)`, i.e. `±scale`; no zero points.
///
/// - `bits` 2 with `neg_scales` (trained ternary, TTQ): code 3 is `+scale`, 2 is 0, 1 is
///   `−neg_scale` (in general `w = (code − 2) · (code ≥ 2 ? scale : neg_scale)`); no zero points.
///
/// Scales (and zero points) are one per tensor or one per row (output channel).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantMatrix {
    /// Shape of the dense tensor.
    pub shape: Vec<usize>,
    /// Bits per code: 1, 2, 4 or 8.
    pub bits: u8,
    /// One scale (per tensor) or `rows` scales (per row); finite, `>= 0`.
    pub scales: Vec<f32>,
    /// Zero points, as many as scales, each `< 2^bits`; `None`: symmetric (`2^(bits-1)`).
    pub zero_points: Option<Vec<u8>>,
    /// One code per element, row-major, each `< 2^bits`.
    pub codes: Vec<u8>,
    /// Scales of the negative codes, as many as `scales` (2-bit only): two-scale ternary.
    pub neg_scales: Option<Vec<f32>>,
    /// Static int8 scale of the activations this matrix multiplies (`x ≈ act_scale · q`, `q` in
    /// `[-127, 127]`), calibrated on data; `None`: activations are quantized per call (dynamic).
    /// Finite and `> 0`.
    pub act_scale: Option<f32>,
}

impl QuantMatrix {
    /// Number of rows (`shape[0]`).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Number of columns (product of `shape[1..]`).
    pub fn cols(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// True if there is one scale per row (and the tensor has more than one row).
    pub fn per_row(&self) -> bool {
        self.scales.len() != 1 || self.rows() == 1
    }

    /// Scale of row `r`.
    pub fn scale(&self, r: usize) -> f32 {
        self.scales[if self.scales.len() == 1 { 0 } else { r }]
    }

    /// Zero point of row `r` (for `bits > 1`).
    pub fn zero(&self, r: usize) -> u8 {
        match &self.zero_points {
            Some(z) => z[if z.len() == 1 { 0 } else { r }],
            None => 1 << (self.bits - 1),
        }
    }

    /// Scale of the negative codes of row `r` (the scale itself without `neg_scales`).
    pub fn neg_scale(&self, r: usize) -> f32 {
        match &self.neg_scales {
            Some(n) => n[if n.len() == 1 { 0 } else { r }],
            None => self.scale(r),
        }
    }

    /// The value a code of row `r` stands for.
    pub fn value(&self, r: usize, code: u8) -> f32 {
        if self.neg_scales.is_some() {
            let s = if code >= 2 { self.scale(r) } else { self.neg_scale(r) };
            s * (code as f32 - 2.0)
        } else if self.bits == 1 {
            self.scale(r) * (2.0 * code as f32 - 1.0)
        } else {
            self.scale(r) * (code as f32 - self.zero(r) as f32)
        }
    }

    /// Checks bits, lengths, code and zero-point ranges and scales; `name` labels the error.
    pub fn check(&self, name: &str) -> Result<(), CodecError> {
        let bad =
            |detail: String| CodecError::Matrix { tensor: name.into(), shape: self.shape.clone(), detail };
        if ![1, 2, 4, 8].contains(&self.bits) {
            return Err(bad(format!("{} bits per code; 1, 2, 4 or 8 are stored", self.bits)));
        }
        let (rows, numel) = (self.rows(), self.rows() * self.cols());
        if self.codes.len() != numel {
            return Err(bad(format!("{} codes for {numel} elements", self.codes.len())));
        }
        if self.scales.len() != 1 && self.scales.len() != rows {
            return Err(bad(format!("{} scales: expected 1 or {rows}", self.scales.len())));
        }
        if let Some(s) = self.scales.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
            return Err(bad(format!("scale {s} is not finite and >= 0")));
        }
        let limit = 1u16 << self.bits;
        if let Some(j) = self.codes.iter().position(|&c| c as u16 >= limit) {
            return Err(bad(format!("code {} at {j} does not fit {} bits", self.codes[j], self.bits)));
        }
        if let Some(n) = &self.neg_scales {
            if self.bits != 2 || self.zero_points.is_some() {
                return Err(bad("two scales are for 2-bit codes without zero points".into()));
            }
            if n.len() != self.scales.len() {
                return Err(bad(format!("{} negative scales for {} scales", n.len(), self.scales.len())));
            }
            if let Some(s) = n.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
                return Err(bad(format!("negative scale {s} is not finite and >= 0")));
            }
        }
        if let Some(z) = &self.zero_points {
            if self.bits == 1 {
                return Err(bad("binary codes have no zero points".into()));
            }
            if z.len() != self.scales.len() {
                return Err(bad(format!("{} zero points for {} scales", z.len(), self.scales.len())));
            }
            if let Some(v) = z.iter().find(|&&v| v as u16 >= limit) {
                return Err(bad(format!("zero point {v} does not fit {} bits", self.bits)));
            }
        }
        if let Some(a) = self.act_scale.filter(|a| !(a.is_finite() && *a > 0.0)) {
            return Err(bad(format!("activation scale {a} is not finite and > 0")));
        }
        Ok(())
    }

    /// The dense f32 tensor the codes stand for (exactly [`QuantMatrix::value`] per element).
    pub fn to_dense(&self) -> Tensor {
        let cols = self.cols().max(1);
        let data = self.codes.iter().enumerate().map(|(i, &c)| self.value(i / cols, c)).collect();
        Tensor::f32(self.shape.clone(), data)
    }

    /// Bytes of the packed codes: `rows * ceil(cols * bits / 8)`.
    pub fn packed_len(&self) -> usize {
        self.rows() * (self.cols() * self.bits as usize).div_ceil(8)
    }

    /// The codes packed row by row, each row starting on a byte, the first column in the lowest
    /// bits, padding bits zero (the stored layout; kernels read it as is).
    pub fn packed(&self) -> Vec<u8> {
        let (rows, cols, b) = (self.rows(), self.cols(), self.bits as usize);
        let (rb, per) = ((cols * b).div_ceil(8), 8 / b);
        let mut out = vec![0u8; rows * rb];
        for r in 0..rows {
            for c in 0..cols {
                out[r * rb + c / per] |= self.codes[r * cols + c] << ((c % per) * b);
            }
        }
        out
    }
}

/// Flag bit: one scale per row.
const PER_ROW: u8 = 1;
/// Flag bit: zero points stored.
const ZERO_POINTS: u8 = 2;
/// Flag bit: a second scale per group for the negative codes (2-bit two-scale ternary).
const TWO_SCALES: u8 = 4;
/// Flag bit: a static activation scale follows the zero points.
const ACT_SCALE: u8 = 8;

/// Appends the payload of a `quant` section; returns (side bytes: flags, scales and zero points;
/// code bytes).
pub(crate) fn write(out: &mut Vec<u8>, name: &str, m: &QuantMatrix) -> Result<(usize, usize), CodecError> {
    m.check(name)?;
    let start = out.len();
    out.push(m.bits);
    let per_row = m.scales.len() != 1;
    out.push(
        if per_row { PER_ROW } else { 0 }
            | if m.zero_points.is_some() { ZERO_POINTS } else { 0 }
            | if m.neg_scales.is_some() { TWO_SCALES } else { 0 }
            | if m.act_scale.is_some() { ACT_SCALE } else { 0 },
    );
    m.scales.iter().for_each(|s| out.extend_from_slice(&s.to_le_bytes()));
    if let Some(n) = &m.neg_scales {
        n.iter().for_each(|s| out.extend_from_slice(&s.to_le_bytes()));
    }
    if let Some(z) = &m.zero_points {
        out.extend_from_slice(z);
    }
    if let Some(a) = m.act_scale {
        out.extend_from_slice(&a.to_le_bytes());
    }
    let side = out.len() - start;
    let packed = m.packed();
    out.extend_from_slice(&packed);
    Ok((side, packed.len()))
}

/// Reads the payload of a `quant` section; returns the matrix and its side and code bytes.
pub(crate) fn read(r: &mut ByteReader, shape: Vec<usize>) -> Result<(QuantMatrix, usize, usize), CodecError> {
    let name = r.section;
    let start = r.pos();
    let bits = r.u8("bits")?;
    if ![1, 2, 4, 8].contains(&bits) {
        return Err(CodecError::range(name, "bits", format!("{bits}, expected 1, 2, 4 or 8")));
    }
    let flags = r.u8("flags")?;
    let two = flags & TWO_SCALES != 0;
    if flags & !(PER_ROW | ZERO_POINTS | TWO_SCALES | ACT_SCALE) != 0
        || (bits == 1 && flags & ZERO_POINTS != 0)
        || (two && (bits != 2 || flags & ZERO_POINTS != 0))
    {
        return Err(CodecError::range(name, "flags", format!("{flags:#04x} for {bits}-bit codes")));
    }
    let rows = shape.first().copied().unwrap_or(1);
    let cols: usize = shape.iter().skip(1).product();
    let g = if flags & PER_ROW != 0 { rows } else { 1 };
    let mut floats = |what: &'static str| -> Result<Vec<f32>, CodecError> {
        Ok(r.take(g.saturating_mul(4), what)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let scales = floats("scales")?;
    let neg_scales = if two { Some(floats("negative scales")?) } else { None };
    let zero_points = if flags & ZERO_POINTS != 0 { Some(r.take(g, "zero points")?.to_vec()) } else { None };
    let act_scale = if flags & ACT_SCALE != 0 {
        let b = r.take(4, "activation scale")?;
        Some(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    } else {
        None
    };
    let side = r.pos() - start;
    let b = bits as usize;
    let (rb, per) = ((cols * b).div_ceil(8), 8 / b);
    let packed = r.take(rows.saturating_mul(rb), "codes")?;
    let mask = ((1u16 << b) - 1) as u8;
    let mut codes = Vec::with_capacity(rows * cols);
    for (i, row) in packed.chunks_exact(rb.max(1)).take(rows).enumerate() {
        codes.extend((0..cols).map(|c| (row[c / per] >> ((c % per) * b)) & mask));
        let used = cols * b - (rb.saturating_sub(1)) * 8;
        if rb > 0 && used < 8 && row[rb - 1] >> used != 0 {
            return Err(CodecError::range(name, "padding bits", format!("row {i} has non-zero padding")));
        }
    }
    let m = QuantMatrix { shape, bits, scales, zero_points, codes, neg_scales, act_scale };
    m.check(name).map_err(|e| CodecError::range(name, "quantized tensor", e.to_string()))?;
    Ok((m, side, packed.len()))
}

//! Tensor sections: the encoding tag table and each encoding's writer and reader
//! (docs/FORMAT.md, "Tensor section body" and "Encoding tags").

use deepshrink_graph::{Tensor, TensorData};

use crate::bits::{put_varint, vlen, ByteReader};
use crate::sparse_index::{csr_from_gaps, csr_full, gap_symbols};
use crate::stream::{self, StreamCtx};
use crate::{CirculantTensor, CodecError, HashedTensor, QuantMatrix, SparseMatrix, SparseValues, TensorSize};

/// Section framing: `u32 body_len` before the body, `u32 crc` after it.
pub const SECTION_OVERHEAD: usize = 8;

/// The encoding of one tensor section. Append-only: numbers are never reused (docs/FORMAT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Encoding {
    // 0 is reserved and never valid.
    /// Dense f32, 4-byte aligned. `payload = pad + 4 * numel`.
    DenseF32 = 1,
    /// Dense i64, 8-byte aligned. `payload = pad + 8 * numel`.
    DenseI64 = 2,
    /// Sparse positions + raw f32 values. `payload = vlen(nnz) + 1 + index + 4 * nnz`, where
    /// `index = 1 + vlen(n_sym) + stream` (0 when every position is stored).
    SparseF32 = 3,
    /// Sparse positions + codebook indices. `payload = vlen(nnz) + 1 + index + vlen(k) + 4k +
    /// stream(codes)`; a fixed code stream is `ceil(nnz * max(1, ceil(log2 k)) / 8)` bytes.
    SparseCodebook = 4,
    /// [`Encoding::SparseF32`] with positions in aligned blocks of `B` consecutive columns, all
    /// `B` entries of a block stored. `payload = vlen(nnz) + 2 + index(blocks) + 4 * nnz`.
    SparseBlockF32 = 5,
    /// [`Encoding::SparseCodebook`] with block positions as in [`Encoding::SparseBlockF32`].
    /// `payload = vlen(nnz) + 2 + index(blocks) + vlen(k) + 4k + stream(codes)`.
    SparseBlockCodebook = 6,
    /// Integer codes of 8, 4, 2 or 1 bits packed into bytes, with scales and optional zero
    /// points. `payload = 2 + 4g + [g] + rows * ceil(cols * bits / 8)`, `g` = 1 or `rows`.
    Quant = 7,
    /// HashedNets: a seed and `k` shared f32 values. `payload = 8 + vlen(k) + 4k`.
    HashedF32 = 8,
    /// Block-circulant: flags, block size `b`, an optional sign seed and `p · q · b` f32 values.
    /// `payload = 1 + vlen(b) + [8] + 4 · p · q · b`.
    CirculantF32 = 9,
}

impl Encoding {
    /// The encoding of a tag, if known.
    pub fn from_tag(tag: u8) -> Option<Encoding> {
        Some(match tag {
            1 => Encoding::DenseF32,
            2 => Encoding::DenseI64,
            3 => Encoding::SparseF32,
            4 => Encoding::SparseCodebook,
            5 => Encoding::SparseBlockF32,
            6 => Encoding::SparseBlockCodebook,
            7 => Encoding::Quant,
            8 => Encoding::HashedF32,
            9 => Encoding::CirculantF32,
            _ => return None,
        })
    }

    /// The name used in reports and docs/FORMAT.md.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::DenseF32 => "dense_f32",
            Encoding::DenseI64 => "dense_i64",
            Encoding::SparseF32 => "sparse_f32",
            Encoding::SparseCodebook => "sparse_codebook",
            Encoding::SparseBlockF32 => "sparse_block_f32",
            Encoding::SparseBlockCodebook => "sparse_block_codebook",
            Encoding::Quant => "quant",
            Encoding::HashedF32 => "hashed_f32",
            Encoding::CirculantF32 => "circulant_f32",
        }
    }

    fn is_block(self) -> bool {
        matches!(self, Encoding::SparseBlockF32 | Encoding::SparseBlockCodebook)
    }

    fn has_codebook(self) -> bool {
        matches!(self, Encoding::SparseCodebook | Encoding::SparseBlockCodebook)
    }
}

/// Block widths the writer tries, widest first.
const BLOCK_WIDTHS: [usize; 4] = [16, 8, 4, 2];

/// The widest block width `B` such that `cols` is a multiple of `B` and the stored entries are
/// exactly a set of complete, aligned runs of `B` columns (a layer pruned with `block = B`).
pub(crate) fn block_width(m: &SparseMatrix) -> Option<usize> {
    let cols = m.cols();
    if m.nnz() == 0 || m.nnz() == m.rows() * cols {
        return None;
    }
    BLOCK_WIDTHS.into_iter().find(|&b| {
        cols.is_multiple_of(b)
            && m.nnz().is_multiple_of(b)
            && (0..m.rows()).all(|r| {
                let row = &m.col_idx[m.row_ptr[r] as usize..m.row_ptr[r + 1] as usize];
                row.len().is_multiple_of(b)
                    && row.chunks_exact(b).all(|c| {
                        (c[0] as usize).is_multiple_of(b)
                            && c.iter().enumerate().all(|(i, &x)| x == c[0] + i as u32)
                    })
            })
    })
}

/// The matrix of block positions (`rows x cols/B`, one entry per block) of a blocked matrix.
fn block_positions(m: &SparseMatrix, b: usize) -> SparseMatrix {
    let row_ptr = m.row_ptr.iter().map(|&p| p / b as u32).collect();
    let col_idx = m.col_idx.iter().step_by(b).map(|&c| c / b as u32).collect();
    let nblocks = m.nnz() / b;
    SparseMatrix {
        shape: vec![m.rows(), m.cols() / b],
        row_ptr,
        col_idx,
        values: SparseValues::F32(vec![0.0; nblocks]),
    }
}

/// The element positions of blocks of width `b` given by block positions.
fn expand_blocks(row_ptr: &[u32], col_idx: &[u32], b: usize) -> (Vec<u32>, Vec<u32>) {
    let rp = row_ptr.iter().map(|&p| p * b as u32).collect();
    let ci = col_idx.iter().flat_map(|&c| (0..b as u32).map(move |i| c * b as u32 + i)).collect();
    (rp, ci)
}

/// Index coding "none": every position is stored.
const INDEX_NONE: u8 = 2;

/// Starts a section at the end of `out`; returns its start for [`end_section`].
pub(crate) fn begin_section(out: &mut Vec<u8>) -> usize {
    out.extend_from_slice(&[0; 4]);
    out.len() - 4
}

/// Fills in the body length and appends the CRC.
pub(crate) fn end_section(out: &mut Vec<u8>, start: usize) -> Result<(), CodecError> {
    let len = u32::try_from(out.len() - start - 4)
        .map_err(|_| CodecError::range("section", "body length", "section larger than 4 GiB"))?;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let crc = crate::bits::crc32(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn put_header(out: &mut Vec<u8>, name: &str, enc: Encoding, shape: &[usize]) {
    put_varint(out, name.len() as u64);
    out.extend_from_slice(name.as_bytes());
    out.push(enc as u8);
    put_varint(out, shape.len() as u64);
    for &d in shape {
        put_varint(out, d as u64);
    }
}

fn size(name: &str, enc: Encoding, numel: usize, nnz: usize) -> TensorSize {
    TensorSize {
        name: name.to_string(),
        encoding: enc.name().to_string(),
        numel,
        nnz,
        header_bytes: 0,
        index_bytes: 0,
        value_bytes: 0,
        codebook_bytes: 0,
        table_bytes: 0,
        total_bytes: 0,
        index_stream: None,
        code_stream: None,
    }
}

/// Appends a dense tensor section.
pub(crate) fn write_dense(out: &mut Vec<u8>, name: &str, t: &Tensor) -> Result<TensorSize, CodecError> {
    t.check(name).map_err(|e| CodecError::Matrix {
        tensor: name.into(),
        shape: t.shape.clone(),
        detail: e.to_string(),
    })?;
    let start = begin_section(out);
    let (enc, align) = match t.data {
        TensorData::F32(_) => (Encoding::DenseF32, 4),
        TensorData::I64(_) => (Encoding::DenseI64, 8),
    };
    put_header(out, name, enc, &t.shape);
    out.resize(out.len().next_multiple_of(align), 0);
    let data_start = out.len();
    match &t.data {
        TensorData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
    let mut s = size(name, enc, t.numel(), t.numel());
    s.value_bytes = out.len() - data_start;
    end_section(out, start)?;
    s.total_bytes = out.len() - start;
    s.header_bytes = s.total_bytes - s.value_bytes;
    Ok(s)
}

/// Appends a sparse tensor section with `b`-bit relative indices (1..=16); streams are
/// Huffman-coded where that is smaller if `huffman`.
pub(crate) fn write_sparse(
    out: &mut Vec<u8>,
    name: &str,
    m: &SparseMatrix,
    b: u8,
    huffman: bool,
) -> Result<TensorSize, CodecError> {
    m.check(name)?;
    if !(1..=16).contains(&b) {
        return Err(CodecError::range(name, "index bits", format!("{b} not in 1..=16")));
    }
    let numel = m.rows() * m.cols();
    let block = block_width(m);
    let enc = match (&m.values, block) {
        (SparseValues::F32(_), None) => Encoding::SparseF32,
        (SparseValues::Codebook { .. }, None) => Encoding::SparseCodebook,
        (SparseValues::F32(_), Some(_)) => Encoding::SparseBlockF32,
        (SparseValues::Codebook { .. }, Some(_)) => Encoding::SparseBlockCodebook,
    };
    let mut s = size(name, enc, numel, m.nnz());
    let start = begin_section(out);
    put_header(out, name, enc, &m.shape);
    put_varint(out, m.nnz() as u64);
    let index = (m.nnz() != numel).then(|| {
        let syms = match block {
            Some(w) => gap_symbols(&block_positions(m, w), b as u32),
            None => gap_symbols(m, b as u32),
        };
        (syms.len(), stream::encode(&syms, 1 << b, b as u32, huffman))
    });
    let codes = match &m.values {
        SparseValues::Codebook { centroids, codes } => {
            let syms: Vec<u32> = codes.iter().map(|&c| c as u32).collect();
            Some(stream::encode(&syms, centroids.len(), code_width(centroids.len()), huffman))
        }
        SparseValues::F32(_) => None,
    };
    let index_coding = index.as_ref().map_or(INDEX_NONE, |(_, st)| st.coding());
    out.push(index_coding | codes.as_ref().map_or(0, |c| c.coding() << 2));
    if let Some(w) = block {
        out.push(w as u8);
    }
    s.header_bytes = out.len() - start;
    if let Some((n_sym, st)) = index {
        out.push(b);
        put_varint(out, n_sym as u64);
        out.extend_from_slice(&st.bytes);
        s.index_bytes = 1 + vlen(n_sym as u64) + st.stats.data_bytes;
        s.table_bytes += st.stats.table_bytes;
        s.index_stream = Some(st.stats);
    }
    match (&m.values, codes) {
        (SparseValues::F32(v), _) => {
            v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            s.value_bytes = 4 * v.len();
        }
        (SparseValues::Codebook { centroids, .. }, Some(st)) => {
            put_varint(out, centroids.len() as u64);
            centroids.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            s.codebook_bytes = vlen(centroids.len() as u64) + 4 * centroids.len();
            out.extend_from_slice(&st.bytes);
            s.value_bytes = st.stats.data_bytes;
            s.table_bytes += st.stats.table_bytes;
            s.code_stream = Some(st.stats);
        }
        (SparseValues::Codebook { .. }, None) => unreachable!("codes encoded above"),
    }
    end_section(out, start)?;
    s.total_bytes = out.len() - start;
    s.header_bytes += SECTION_OVERHEAD - 4;
    Ok(s)
}

/// Appends a `quant` tensor section (tag 7).
pub(crate) fn write_quant(out: &mut Vec<u8>, name: &str, m: &QuantMatrix) -> Result<TensorSize, CodecError> {
    let numel = m.rows() * m.cols();
    let mut s = size(name, Encoding::Quant, numel, numel);
    let start = begin_section(out);
    put_header(out, name, Encoding::Quant, &m.shape);
    let (side, codes) = crate::quant::write(out, name, m)?;
    end_section(out, start)?;
    s.total_bytes = out.len() - start;
    s.codebook_bytes = side;
    s.value_bytes = codes;
    s.header_bytes = s.total_bytes - side - codes;
    Ok(s)
}

/// Appends a `hashed_f32` tensor section (tag 8).
pub(crate) fn write_hashed(
    out: &mut Vec<u8>,
    name: &str,
    h: &HashedTensor,
) -> Result<TensorSize, CodecError> {
    let numel: usize = h.shape.iter().product();
    let mut s = size(name, Encoding::HashedF32, numel, numel);
    let start = begin_section(out);
    put_header(out, name, Encoding::HashedF32, &h.shape);
    s.value_bytes = crate::hashed::write(out, name, h)?;
    end_section(out, start)?;
    s.total_bytes = out.len() - start;
    s.header_bytes = s.total_bytes - s.value_bytes;
    Ok(s)
}

/// Appends a `circulant_f32` tensor section (tag 9).
pub(crate) fn write_circulant(
    out: &mut Vec<u8>,
    name: &str,
    t: &CirculantTensor,
) -> Result<TensorSize, CodecError> {
    let numel: usize = t.shape.iter().product();
    let mut s = size(name, Encoding::CirculantF32, numel, numel);
    let start = begin_section(out);
    put_header(out, name, Encoding::CirculantF32, &t.shape);
    s.value_bytes = crate::circulant::write(out, name, t)?;
    end_section(out, start)?;
    s.total_bytes = out.len() - start;
    s.header_bytes = s.total_bytes - s.value_bytes;
    Ok(s)
}

/// Bits of a fixed-width code for a codebook of `k` centroids: `max(1, ceil(log2 k))`.
pub fn code_width(k: usize) -> u32 {
    (usize::BITS - k.saturating_sub(1).leading_zeros()).max(1)
}

/// A decoded tensor.
pub(crate) enum Stored {
    Dense(Tensor),
    Sparse(SparseMatrix),
    Quant(QuantMatrix),
    Hashed(HashedTensor),
    Circulant(CirculantTensor),
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Parses a tensor section body that starts at file offset `body_offset`. `label` names the
/// section until its name is read.
pub(crate) fn read_tensor<'a>(
    body: &'a [u8],
    body_offset: usize,
    max_elements: usize,
    label: &'a str,
) -> Result<(String, Stored, TensorSize), CodecError> {
    let mut r = ByteReader::new(body, label);
    let name_len = r.varint_max("name length", body.len() as u64)?;
    let name = std::str::from_utf8(r.take(name_len, "name")?)
        .ok()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| CodecError::BadName(label.to_string()))?;
    r.section = name;
    let tag = r.u8("encoding tag")?;
    let enc = Encoding::from_tag(tag).ok_or_else(|| CodecError::UnknownTag { tensor: name.into(), tag })?;
    let rank = r.varint_max("rank", 32)?;
    let mut shape = Vec::with_capacity(rank);
    let mut numel = 1usize;
    for _ in 0..rank {
        let d = r.varint_max("dimension", max_elements as u64)?;
        numel = numel.checked_mul(d).filter(|&n| n <= max_elements).ok_or_else(|| {
            CodecError::range(name, "element count", format!("shape {shape:?}x{d} > {max_elements}"))
        })?;
        shape.push(d);
    }
    let mut s = size(name, enc, numel, numel);
    let stored = match enc {
        Encoding::DenseF32 | Encoding::DenseI64 => {
            let align = if enc == Encoding::DenseF32 { 4 } else { 8 };
            let pad = (body_offset + r.pos()).next_multiple_of(align) - (body_offset + r.pos());
            if r.take(pad, "alignment padding")?.iter().any(|&b| b != 0) {
                return Err(CodecError::range(name, "alignment padding", "non-zero padding byte"));
            }
            let len = numel.saturating_mul(align);
            let data = r.take(len, "dense data")?;
            s.value_bytes = data.len();
            let data = if align == 4 {
                TensorData::F32(f32s(data))
            } else {
                TensorData::I64(
                    data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect(),
                )
            };
            Stored::Dense(Tensor { shape, data })
        }
        Encoding::SparseF32
        | Encoding::SparseCodebook
        | Encoding::SparseBlockF32
        | Encoding::SparseBlockCodebook => {
            let m = read_sparse(&mut r, enc, shape, numel, &mut s)?;
            Stored::Sparse(m)
        }
        Encoding::HashedF32 => {
            let (h, values) = crate::hashed::read(&mut r, shape, numel)?;
            s.value_bytes = values;
            Stored::Hashed(h)
        }
        Encoding::CirculantF32 => {
            let (t, values) = crate::circulant::read(&mut r, shape)?;
            s.value_bytes = values;
            Stored::Circulant(t)
        }
        Encoding::Quant => {
            let (m, side, codes) = crate::quant::read(&mut r, shape)?;
            (s.codebook_bytes, s.value_bytes) = (side, codes);
            Stored::Quant(m)
        }
    };
    if r.remaining() != 0 {
        return Err(CodecError::range(name, "section body", format!("{} unread bytes", r.remaining())));
    }
    s.total_bytes = body.len() + SECTION_OVERHEAD;
    s.header_bytes = s.total_bytes - s.index_bytes - s.value_bytes - s.codebook_bytes - s.table_bytes;
    Ok((name.to_string(), stored, s))
}

fn read_sparse(
    r: &mut ByteReader,
    enc: Encoding,
    shape: Vec<usize>,
    numel: usize,
    s: &mut TensorSize,
) -> Result<SparseMatrix, CodecError> {
    let name = r.section;
    let rows = shape.first().copied().unwrap_or(1);
    let cols = deepshrink_graph::shape::checked_numel(shape.get(1..).unwrap_or(&[]))
        .filter(|&c| c <= u32::MAX as usize)
        .ok_or_else(|| CodecError::range(name, "columns", format!("shape {shape:?}")))?;
    let nnz = r.varint_max("entry count", numel.min(u32::MAX as usize) as u64)?;
    s.nnz = nnz;
    let streams = r.u8("stream codings")?;
    let (ic, cc) = (streams & 3, (streams >> 2) & 3);
    if streams >> 4 != 0 || ic > INDEX_NONE || cc > 1 || (!enc.has_codebook() && cc != 0) {
        return Err(CodecError::range(name, "stream codings", format!("byte {streams:#04x}")));
    }
    // Block encodings: positions are those of `w`-wide blocks on a `rows x cols/w` grid.
    let w = if enc.is_block() {
        let w = r.u8("block width")? as usize;
        if !(2..=16).contains(&w) || !cols.is_multiple_of(w) || !nnz.is_multiple_of(w) || ic == INDEX_NONE {
            return Err(CodecError::range(
                name,
                "block width",
                format!("{w} for {cols} columns, {nnz} entries and index coding {ic}"),
            ));
        }
        w
    } else {
        1
    };
    let (row_ptr, col_idx) = if ic == INDEX_NONE {
        if nnz != numel {
            return Err(CodecError::IndexOverflow {
                tensor: name.into(),
                detail: format!("no index stream but {nnz} of {numel} entries stored"),
            });
        }
        csr_full(rows, cols)
    } else {
        let start = r.pos();
        let b = r.u8("index bits")?;
        if !(1..=16).contains(&b) {
            return Err(CodecError::range(name, "index bits", format!("{b} not in 1..=16")));
        }
        let n_sym = r.varint_max("index symbol count", 8 * r.remaining() as u64)?;
        let ctx = StreamCtx { tensor: name, stream: "index" };
        let (syms, st) = stream::decode(r, ic, n_sym, 1 << b, b as u32, &ctx)?;
        s.index_bytes = r.pos() - start - st.table_bytes;
        s.table_bytes += st.table_bytes;
        s.index_stream = Some(st);
        let (rp, ci) = csr_from_gaps(&syms, b as u32, nnz / w, rows, cols / w, name)?;
        if w > 1 {
            expand_blocks(&rp, &ci, w)
        } else {
            (rp, ci)
        }
    };
    let values = if !enc.has_codebook() {
        let data = r.take(4 * nnz, "values")?;
        s.value_bytes = data.len();
        SparseValues::F32(f32s(data))
    } else {
        let start = r.pos();
        let k = r.varint_max("codebook size", 1 << 16)?;
        if k == 0 && nnz > 0 {
            return Err(CodecError::range(name, "codebook size", format!("0 centroids for {nnz} entries")));
        }
        let centroids = f32s(r.take(4 * k, "centroids")?);
        s.codebook_bytes = r.pos() - start;
        let ctx = StreamCtx { tensor: name, stream: "code" };
        let (syms, st) = stream::decode(r, cc, nnz, k, code_width(k), &ctx)?;
        if let Some(j) = syms.iter().position(|&c| c as usize >= k) {
            return Err(CodecError::CodeOutOfRange { tensor: name.into(), entry: j, code: syms[j], k });
        }
        s.value_bytes = st.data_bytes;
        s.table_bytes += st.table_bytes;
        s.code_stream = Some(st);
        SparseValues::Codebook { centroids, codes: syms.into_iter().map(|c| c as u16).collect() }
    };
    Ok(SparseMatrix { shape, row_ptr, col_idx, values })
}

//! The `.dsk` container: header, graph section, tensor sections (docs/FORMAT.md).

use deepshrink_graph::{Graph, GraphError};
use std::collections::BTreeMap;

use crate::bits::{crc32, ByteReader};
use crate::encoding::{
    begin_section, end_section, read_tensor, write_circulant, write_dense, write_hashed, write_quant,
    write_sparse, Stored,
};
use crate::{
    graph_section, CirculantTensor, CodecError, HashedTensor, QuantMatrix, SizeReport, SparseMatrix,
};

/// The first four bytes of every `.dsk` file.
pub const MAGIC: [u8; 4] = [0x89, b'D', b'S', b'K'];
/// The container version this crate writes and reads.
pub const VERSION: u16 = 1;
/// Bytes of the fixed file header: magic, version, flags, length.
pub const HEADER_LEN: usize = 16;

/// A model as stored in a `.dsk`: the graph with its densely stored weights (biases, unpruned
/// tensors) in `graph.weights`, the compressed weights by name in `sparse` and the quantized
/// ones in `quantized`, HashedNets tensors in `hashed` and block-circulant ones in `circulant`. A
/// name is in one of them, never two.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DskModel {
    /// The graph; `weights` holds the tensors stored dense.
    pub graph: Graph,
    /// Compressed weight tensors by name.
    pub sparse: BTreeMap<String, SparseMatrix>,
    /// Quantized (integer-coded, packed) weight tensors by name.
    pub quantized: BTreeMap<String, QuantMatrix>,
    /// HashedNets tensors (shared values and a seed) by name.
    pub hashed: BTreeMap<String, HashedTensor>,
    /// Block-circulant tensors (defining values and block size) by name.
    pub circulant: BTreeMap<String, CirculantTensor>,
}

impl DskModel {
    /// A model from a graph and compressed tensors; the dense copies of the compressed tensors
    /// are removed from `graph.weights`.
    pub fn new(mut graph: Graph, sparse: BTreeMap<String, SparseMatrix>) -> DskModel {
        graph.weights.retain(|name, _| !sparse.contains_key(name));
        DskModel { graph, sparse, ..Default::default() }
    }

    /// Adds quantized tensors, removing their dense (and sparse) copies.
    pub fn with_quantized(mut self, quantized: BTreeMap<String, QuantMatrix>) -> DskModel {
        self.graph.weights.retain(|name, _| !quantized.contains_key(name));
        self.sparse.retain(|name, _| !quantized.contains_key(name));
        self.quantized.extend(quantized);
        self
    }

    /// Adds hashed tensors, removing their other copies.
    pub fn with_hashed(mut self, hashed: BTreeMap<String, HashedTensor>) -> DskModel {
        self.graph.weights.retain(|name, _| !hashed.contains_key(name));
        self.sparse.retain(|name, _| !hashed.contains_key(name));
        self.quantized.retain(|name, _| !hashed.contains_key(name));
        self.hashed.extend(hashed);
        self
    }

    /// Adds block-circulant tensors, removing their other copies.
    pub fn with_circulant(mut self, circulant: BTreeMap<String, CirculantTensor>) -> DskModel {
        self.graph.weights.retain(|name, _| !circulant.contains_key(name));
        self.sparse.retain(|name, _| !circulant.contains_key(name));
        self.quantized.retain(|name, _| !circulant.contains_key(name));
        self.hashed.retain(|name, _| !circulant.contains_key(name));
        self.circulant.extend(circulant);
        self
    }

    /// The names stored in more than one place, or empty (a malformed model).
    fn duplicate_name(&self) -> Option<&String> {
        let mut seen = std::collections::BTreeSet::new();
        self.graph
            .weights
            .keys()
            .chain(self.sparse.keys())
            .chain(self.quantized.keys())
            .chain(self.hashed.keys())
            .chain(self.circulant.keys())
            .find(|n| n.is_empty() || !seen.insert(*n))
    }

    /// The graph with every hashed tensor expanded into `weights` (the runtime runs hashed
    /// layers dense: the hash saves storage, not time).
    pub fn graph_with_hashed(&self) -> Graph {
        let mut g = self.graph.clone();
        for (name, h) in &self.hashed {
            g.weights.insert(name.clone(), h.to_dense());
        }
        g
    }

    /// The graph with every compressed tensor decoded to dense f32 in `weights` — exactly the
    /// decoded values, bit for bit (what `deepshrink export` writes).
    pub fn to_dense_graph(&self) -> Graph {
        let mut g = self.graph.clone();
        for (name, m) in &self.sparse {
            g.weights.insert(name.clone(), m.to_dense());
        }
        for (name, m) in &self.quantized {
            g.weights.insert(name.clone(), m.to_dense());
        }
        for (name, h) in &self.hashed {
            g.weights.insert(name.clone(), h.to_dense());
        }
        for (name, t) in &self.circulant {
            g.weights.insert(name.clone(), t.to_dense());
        }
        g
    }

    /// Validates the graph with every weight in place (see [`Graph::validate`]). Reading a file
    /// checks the container; this checks that the model it holds is well formed.
    pub fn validate(&self) -> Result<(), GraphError> {
        self.to_dense_graph().validate()
    }
}

/// How [`to_bytes`] encodes compressed tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackOptions {
    /// Width `b` of a relative index (1..=16); `None`: 5 for tensors of rank <= 2 (fully
    /// connected), 8 for higher ranks (convolutions), as Han et al. 2016.
    pub index_bits: Option<u8>,
    /// Huffman-code each stream where that is smaller than fixed width (table included).
    pub huffman: bool,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions { index_bits: None, huffman: true }
    }
}

impl PackOptions {
    /// The index width for a tensor of this shape.
    pub fn index_bits_for(&self, shape: &[usize]) -> u8 {
        self.index_bits.unwrap_or(if shape.len() <= 2 { 5 } else { 8 })
    }
}

/// Limits and checks applied by [`from_bytes_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// Verify every section's CRC (on by default; the fuzz target turns it off to reach the
    /// parsers behind it).
    pub verify_checksums: bool,
    /// Largest element count of one tensor (bounds what a hostile file makes us allocate).
    pub max_tensor_elements: usize,
    /// Largest inflated graph JSON.
    pub max_graph_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { verify_checksums: true, max_tensor_elements: 1 << 28, max_graph_bytes: 64 << 20 }
    }
}

/// Encodes a model. Returns the file bytes and where they went; `report.total_bytes ==
/// bytes.len()`.
pub fn to_bytes(model: &DskModel, opts: &PackOptions) -> Result<(Vec<u8>, SizeReport), CodecError> {
    if let Some(name) = model.duplicate_name() {
        return Err(CodecError::BadName(name.clone()));
    }
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());

    let g = &model.graph;
    let start = begin_section(&mut out);
    let n_tensors = g.weights.len()
        + model.sparse.len()
        + model.quantized.len()
        + model.hashed.len()
        + model.circulant.len();
    graph_section::write(&mut out, g, n_tensors)?;
    end_section(&mut out, start)?;
    let header_and_graph_bytes = out.len();

    let mut tensors = Vec::new();
    for (name, t) in &g.weights {
        tensors.push(write_dense(&mut out, name, t)?);
    }
    for (name, m) in &model.sparse {
        tensors.push(write_sparse(&mut out, name, m, opts.index_bits_for(&m.shape), opts.huffman)?);
    }
    for (name, m) in &model.quantized {
        tensors.push(write_quant(&mut out, name, m)?);
    }
    for (name, h) in &model.hashed {
        tensors.push(write_hashed(&mut out, name, h)?);
    }
    for (name, t) in &model.circulant {
        tensors.push(write_circulant(&mut out, name, t)?);
    }
    let total = out.len();
    out[8..16].copy_from_slice(&(total as u64).to_le_bytes());
    Ok((out, SizeReport { total_bytes: total, header_and_graph_bytes, tensors }))
}

/// Decodes a `.dsk` file with the default [`ReadOptions`].
pub fn from_bytes(bytes: &[u8]) -> Result<DskModel, CodecError> {
    from_bytes_with(bytes, &ReadOptions::default()).map(|(m, _)| m)
}

/// Decodes a `.dsk` file and reports where its bytes go (the same report [`to_bytes`] gave).
/// Every length, offset, count and index is checked before use; a corrupt, truncated or hostile
/// file is an error, never a panic or an unbounded allocation.
pub fn from_bytes_with(bytes: &[u8], opts: &ReadOptions) -> Result<(DskModel, SizeReport), CodecError> {
    read_header(bytes)?;
    let mut r = ByteReader::new(&bytes[HEADER_LEN..], "file");
    let mut offset = HEADER_LEN;

    let body = read_section(&mut r, "graph", opts)?;
    let (mut graph, n_tensors) = graph_section::read(body, r.remaining() / 12, opts.max_graph_bytes)?;
    offset += body.len() + 8;
    let header_and_graph_bytes = offset;

    let mut sparse = BTreeMap::new();
    let mut quantized = BTreeMap::new();
    let mut hashed = BTreeMap::new();
    let mut circulant = BTreeMap::new();
    let mut tensors = Vec::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let label = format!("tensor #{i}");
        let body = read_section(&mut r, &label, opts)?;
        let (name, stored, size) = read_tensor(body, offset + 4, opts.max_tensor_elements, &label)?;
        if graph.weights.contains_key(&name)
            || sparse.contains_key(&name)
            || quantized.contains_key(&name)
            || hashed.contains_key(&name)
            || circulant.contains_key(&name)
        {
            return Err(CodecError::BadName(name));
        }
        match stored {
            Stored::Dense(t) => graph.weights.insert(name, t).is_none(),
            Stored::Sparse(m) => sparse.insert(name, m).is_none(),
            Stored::Quant(m) => quantized.insert(name, m).is_none(),
            Stored::Hashed(h) => hashed.insert(name, h).is_none(),
            Stored::Circulant(t) => circulant.insert(name, t).is_none(),
        };
        offset += size.total_bytes;
        tensors.push(size);
    }
    if r.remaining() != 0 {
        return Err(CodecError::TrailingBytes { extra: r.remaining() });
    }
    let report = SizeReport { total_bytes: bytes.len(), header_and_graph_bytes, tensors };
    Ok((DskModel { graph, sparse, quantized, hashed, circulant }, report))
}

fn read_header(bytes: &[u8]) -> Result<(), CodecError> {
    let n = bytes.len().min(4);
    if bytes[..n] != MAGIC[..n] {
        return Err(CodecError::BadMagic { found: bytes[..n].to_vec() });
    }
    let mut h = ByteReader::new(bytes, "header");
    h.take(4, "magic")?;
    let v = h.take(2, "version")?;
    let version = u16::from_le_bytes([v[0], v[1]]);
    if version != VERSION {
        return Err(CodecError::UnsupportedVersion { found: version, supported: VERSION });
    }
    let f = h.take(2, "flags")?;
    if f != [0, 0] {
        return Err(CodecError::range("header", "flags", format!("{f:02x?}, expected 0")));
    }
    let l = h.take(8, "length")?;
    let length = u64::from_le_bytes(l.try_into().expect("8 bytes"));
    if length < bytes.len() as u64 {
        return Err(CodecError::TrailingBytes {
            extra: bytes.len() - length.max(HEADER_LEN as u64) as usize,
        });
    }
    if length > bytes.len() as u64 {
        return Err(CodecError::Truncated {
            section: "header".into(),
            what: "file",
            offset: 0,
            needed: usize::try_from(length).unwrap_or(usize::MAX),
            available: bytes.len(),
        });
    }
    Ok(())
}

/// Reads one section's framing and returns its body, its CRC verified if asked.
fn read_section<'a>(r: &mut ByteReader<'a>, label: &str, opts: &ReadOptions) -> Result<&'a [u8], CodecError> {
    let len = r.u32("section length")? as usize;
    let body = r.take(len, "section body")?;
    let stored = r.u32("section checksum")?;
    if opts.verify_checksums {
        let mut framed = Vec::with_capacity(4 + len);
        framed.extend_from_slice(&(len as u32).to_le_bytes());
        framed.extend_from_slice(body);
        let computed = crc32(&framed);
        if computed != stored {
            let section = match peek_name(body) {
                Some(name) if label != "graph" => format!("{label} ('{name}'?)"),
                _ => label.to_string(),
            };
            return Err(CodecError::Checksum { section, stored, computed });
        }
    }
    Ok(body)
}

/// The tensor name at the start of a section body, if it looks like one (for error messages).
fn peek_name(body: &[u8]) -> Option<String> {
    let mut r = ByteReader::new(body, "");
    let n = r.varint_max("", 256).ok()?;
    std::str::from_utf8(r.take(n, "").ok()?).ok().map(str::to_string)
}

//! Exact byte accounting of a `.dsk` file, per tensor and per stream.

/// Statistics of one symbol stream (relative indices or codebook indices).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamStats {
    /// Symbols in the stream (for the index stream: entries plus fillers).
    pub symbols: usize,
    /// Fixed width of a symbol in bits.
    pub width_bits: u32,
    /// Empirical entropy of the symbols, `-Σ p log2 p`, bits per symbol.
    pub entropy_bits: f64,
    /// Average length of the canonical Huffman code built for this stream, bits per symbol
    /// (the code table excluded). Computed whether or not Huffman was chosen.
    pub avg_code_bits: f64,
    /// True if the stream is stored Huffman-coded, false if fixed-width.
    pub huffman: bool,
    /// Bytes of the stored stream data (Huffman table excluded, its length varint included).
    pub data_bytes: usize,
    /// Bytes of the Huffman code-length table (0 when fixed-width).
    pub table_bytes: usize,
}

/// Where the bytes of one tensor section go. The parts add up to `total_bytes`.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSize {
    /// Tensor name.
    pub name: String,
    /// Encoding name from the tag table (`dense_f32`, `sparse_codebook`, ...).
    pub encoding: String,
    /// Dense element count.
    pub numel: usize,
    /// Stored entries (numel for dense encodings).
    pub nnz: usize,
    /// Section framing, name, tag, shape, counts, flags and alignment padding.
    pub header_bytes: usize,
    /// Relative-index stream data (its width and symbol count included; Huffman table excluded).
    pub index_bytes: usize,
    /// Values: raw floats (dense or sparse) or the codebook-index stream data.
    pub value_bytes: usize,
    /// Codebook: centroid count and centroids.
    pub codebook_bytes: usize,
    /// Huffman code-length tables of both streams.
    pub table_bytes: usize,
    /// The whole section.
    pub total_bytes: usize,
    /// The relative-index stream, if any.
    pub index_stream: Option<StreamStats>,
    /// The codebook-index stream, if any.
    pub code_stream: Option<StreamStats>,
}

/// Bytes of a whole `.dsk` file: `total_bytes = header_and_graph_bytes + Σ tensors[i].total_bytes`
/// and equals the length of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeReport {
    /// The whole file.
    pub total_bytes: usize,
    /// File header and graph section.
    pub header_and_graph_bytes: usize,
    /// One entry per tensor section, in file order.
    pub tensors: Vec<TensorSize>,
}

//! The graph section body: tensor count, non-finite float attributes, deflated JSON of the graph
//! (docs/FORMAT.md, "Graph section body").
//!
//! JSON has no infinities or NaNs (serde_json writes them as `null`), but ops carry them: an
//! ONNX Clip without bounds imports as `Clip { min: -inf, max: inf }`. Such attributes are
//! written as 0 in the JSON and restored, bit for bit, from a patch list before it.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use deepshrink_graph::{Graph, Op};

use crate::bits::{put_varint, ByteReader};
use crate::CodecError;

/// The f32 attributes of an op, in declaration order (the patch list's field numbering).
fn float_fields(op: &mut Op) -> Vec<&mut f32> {
    match op {
        Op::Gemm { alpha, beta, .. } => vec![alpha, beta],
        Op::LeakyRelu { alpha } => vec![alpha],
        Op::Clip { min, max } => vec![min, max],
        Op::BatchNormalization { epsilon, momentum } => vec![epsilon, momentum],
        Op::Dropout { ratio } => vec![ratio],
        _ => vec![],
    }
}

/// Appends the body for `graph` (weights not written) followed by `n_tensors` sections.
pub(crate) fn write(out: &mut Vec<u8>, graph: &Graph, n_tensors: usize) -> Result<(), CodecError> {
    let mut skeleton = Graph {
        name: graph.name.clone(),
        inputs: graph.inputs.clone(),
        outputs: graph.outputs.clone(),
        nodes: graph.nodes.clone(),
        weights: BTreeMap::new(),
    };
    let mut patches = Vec::new();
    for (i, node) in skeleton.nodes.iter_mut().enumerate() {
        for (f, x) in float_fields(&mut node.op).into_iter().enumerate() {
            if !x.is_finite() {
                patches.push((i, f, x.to_bits()));
                *x = 0.0;
            }
        }
    }
    let json = serde_json::to_vec(&skeleton).map_err(|e| CodecError::Graph(e.to_string()))?;
    // Anything JSON cannot hold (a non-finite float this module does not know) fails here,
    // at write time, instead of producing an unreadable file.
    let back: Graph = serde_json::from_slice(&json).map_err(|e| CodecError::Graph(e.to_string()))?;
    if back != skeleton {
        return Err(CodecError::Graph("graph does not survive JSON (non-finite attribute?)".into()));
    }
    put_varint(out, n_tensors as u64);
    put_varint(out, patches.len() as u64);
    for (i, f, bits) in patches {
        put_varint(out, i as u64);
        out.push(f as u8);
        out.extend_from_slice(&bits.to_le_bytes());
    }
    let mut z = flate2::write::DeflateEncoder::new(out, flate2::Compression::best());
    z.write_all(&json).and_then(|_| z.try_finish()).map_err(|e| CodecError::Graph(e.to_string()))
}

/// Parses a graph section body; returns the graph (no weights) and the tensor count, which is
/// at most `max_tensors`.
pub(crate) fn read(body: &[u8], max_tensors: usize, max_json: usize) -> Result<(Graph, usize), CodecError> {
    let mut r = ByteReader::new(body, "graph");
    let n_tensors = r.varint_max("tensor count", max_tensors as u64)?;
    let n_patches = r.varint_max("patch count", r.remaining() as u64 / 6)?;
    let mut patches = Vec::with_capacity(n_patches);
    for _ in 0..n_patches {
        let node = r.varint_max("patched node", u32::MAX as u64)?;
        let field = r.u8("patched field")? as usize;
        let bits = r.u32("patched value")?;
        patches.push((node, field, bits));
    }
    let mut json = Vec::new();
    flate2::read::DeflateDecoder::new(r.rest())
        .take(max_json as u64 + 1)
        .read_to_end(&mut json)
        .map_err(|e| CodecError::Graph(format!("inflate: {e}")))?;
    if json.len() > max_json {
        return Err(CodecError::Graph(format!("graph JSON exceeds {max_json} bytes")));
    }
    let mut graph: Graph = serde_json::from_slice(&json).map_err(|e| CodecError::Graph(e.to_string()))?;
    if !graph.weights.is_empty() {
        return Err(CodecError::Graph("weights inside the graph section".into()));
    }
    for (node, field, bits) in patches {
        let slot = graph.nodes.get_mut(node).and_then(|n| float_fields(&mut n.op).into_iter().nth(field));
        *slot.ok_or_else(|| {
            CodecError::Graph(format!("patch of node {node} field {field}: no such attribute"))
        })? = f32::from_bits(bits);
    }
    Ok((graph, n_tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infinite_and_nan_attributes_survive_bit_for_bit() {
        let mut g = Graph::new("g", "x", &[4]);
        g.push("clip", Op::Clip { min: f32::NEG_INFINITY, max: f32::INFINITY }, &["x"]);
        g.push("lrelu", Op::LeakyRelu { alpha: f32::from_bits(0x7FC0_0123) }, &["clip"]);
        let mut body = Vec::new();
        write(&mut body, &g, 3).unwrap();
        let (back, n) = read(&body, 10, 1 << 20).unwrap();
        assert_eq!(n, 3);
        assert_eq!(back.nodes[0].op, g.nodes[0].op);
        match back.nodes[1].op {
            Op::LeakyRelu { alpha } => assert_eq!(alpha.to_bits(), 0x7FC0_0123),
            _ => panic!(),
        }
        assert!(read(&body, 2, 1 << 20).is_err());
    }
}

//! Per-tensor size of a weight file that has no graph (safetensors).

use std::collections::BTreeMap;

use deepshrink_graph::{DType, Tensor};
use serde::Serialize;

use crate::table::{human_bytes, render, shape, thousands, Align};

/// Size of one stored tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorRow {
    /// Tensor name, as in the file.
    pub name: String,
    /// Element type as held in memory.
    pub dtype: DType,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Number of elements.
    pub params: usize,
    /// Bytes of the dense data as held in memory.
    pub bytes: usize,
}

/// Per-tensor and total size of a set of named tensors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorSummary {
    /// Model name (usually the file it came from).
    pub model: String,
    /// One row per tensor, sorted by name.
    pub rows: Vec<TensorRow>,
    /// Sum of `params` over the rows.
    pub total_params: usize,
    /// Sum of `bytes` over the rows.
    pub total_bytes: usize,
}

/// Summarises named tensors, e.g. the contents of a safetensors file. Without a graph there is no
/// way to tell learned parameters from buffers (such as batch-norm running statistics), so every
/// element counts as a parameter.
pub fn summarize_tensors(map: &BTreeMap<String, Tensor>, model_name: &str) -> TensorSummary {
    let rows: Vec<TensorRow> = map
        .iter()
        .map(|(name, t)| TensorRow {
            name: name.clone(),
            dtype: t.dtype(),
            shape: t.shape.clone(),
            params: t.numel(),
            bytes: t.nbytes(),
        })
        .collect();
    TensorSummary {
        model: model_name.to_string(),
        total_params: rows.iter().map(|r| r.params).sum(),
        total_bytes: rows.iter().map(|r| r.bytes).sum(),
        rows,
    }
}

impl TensorSummary {
    /// An aligned Markdown table, one row per tensor and a totals row, followed by a one-line
    /// summary.
    pub fn to_markdown(&self) -> String {
        let headers = [
            ("tensor", Align::Left),
            ("dtype", Align::Left),
            ("shape", Align::Left),
            ("params", Align::Right),
            ("bytes", Align::Right),
        ];
        let mut cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    format!("{:?}", r.dtype).to_lowercase(),
                    shape(&r.shape),
                    thousands(r.params as u64),
                    thousands(r.bytes as u64),
                ]
            })
            .collect();
        cells.push(vec![
            "total".into(),
            String::new(),
            String::new(),
            thousands(self.total_params as u64),
            thousands(self.total_bytes as u64),
        ]);
        format!(
            "{}\n{}\n{} tensors, {} parameters, {}\n",
            self.model,
            render(&headers, &cells),
            self.rows.len(),
            thousands(self.total_params as u64),
            human_bytes(self.total_bytes as u64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_tensor() {
        let mut m = BTreeMap::new();
        m.insert("fc.weight".to_string(), Tensor::zeros(vec![10, 784]));
        m.insert("fc.bias".to_string(), Tensor::zeros(vec![10]));
        m.insert("steps".to_string(), Tensor::i64(vec![], vec![3]));
        let s = summarize_tensors(&m, "w.safetensors");
        let names: Vec<&str> = s.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["fc.bias", "fc.weight", "steps"]);
        assert_eq!((s.total_params, s.total_bytes), (7851, 7850 * 4 + 8));
        let md = s.to_markdown();
        assert!(md.contains("| fc.weight | f32   | 10x784 |  7,840 | 31,360 |"), "{md}");
        assert!(md.contains("| steps     | i64   | scalar |"), "{md}");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["rows"][0]["dtype"], "F32");
        assert_eq!(json["total_bytes"], 31_408);
    }
}

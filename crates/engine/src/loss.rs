//! Softmax cross-entropy and classification metrics.

use rayon::prelude::*;

/// Sums over one batch.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct BatchStats {
    pub loss_sum: f64,
    pub top1: usize,
    pub top5: usize,
}

/// Cross-entropy of softmax(`logits`) (`n` rows of `k` classes) against `labels`, averaged over the
/// batch, with the gradient `(softmax - onehot) / n` when `grad` is set. Labels were checked to be
/// below `k` by the caller.
pub(crate) fn cross_entropy(
    logits: &[f32],
    n: usize,
    labels: &[u32],
    grad: bool,
) -> (BatchStats, Option<Vec<f32>>) {
    let k = logits.len() / n;
    let mut g = if grad { vec![0.0f32; logits.len()] } else { Vec::new() };
    let per_row = |(i, row): (usize, &[f32]), gr: Option<&mut [f32]>| -> BatchStats {
        let y = labels[i] as usize;
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        let loss = (sum.ln() + max - row[y]) as f64;
        let better = row.iter().filter(|&&v| v > row[y]).count();
        if let Some(gr) = gr {
            for (j, (gj, v)) in gr.iter_mut().zip(row).enumerate() {
                let p = (v - max).exp() / sum;
                *gj = (p - if j == y { 1.0 } else { 0.0 }) / n as f32;
            }
        }
        BatchStats { loss_sum: loss, top1: (better == 0) as usize, top5: (better < 5) as usize }
    };
    let parts: Vec<BatchStats> = if grad {
        logits
            .par_chunks(k)
            .enumerate()
            .zip(g.par_chunks_mut(k))
            .map(|(r, gr)| per_row(r, Some(gr)))
            .collect()
    } else {
        logits.par_chunks(k).enumerate().map(|r| per_row(r, None)).collect()
    };
    let mut s = BatchStats::default();
    for p in parts {
        s.loss_sum += p.loss_sum;
        s.top1 += p.top1;
        s.top5 += p.top5;
    }
    (s, grad.then_some(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected from PyTorch 2.15: `F.cross_entropy(torch.tensor([[1.,2.,3.],[1.,0.,-1.]]),
    /// torch.tensor([2,1]))` = 0.9076059 (mean of 0.4076059 and 1.4076059).
    #[test]
    fn matches_pytorch_cross_entropy() {
        let logits = [1.0, 2.0, 3.0, 1.0, 0.0, -1.0];
        let (s, g) = cross_entropy(&logits, 2, &[2, 1], true);
        assert!((s.loss_sum / 2.0 - 0.9076059).abs() < 1e-6);
        assert_eq!(s.top1, 1);
        let g = g.unwrap();
        // Each row of the gradient sums to zero.
        assert!((g[0] + g[1] + g[2]).abs() < 1e-7 && (g[3] + g[4] + g[5]).abs() < 1e-7);
    }
}

//! Classification accuracy and loss over a data set.

use serde::{Deserialize, Serialize};

/// Accuracy and mean loss of a classifier over `samples` samples.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Accuracy {
    /// Fraction of samples whose label has the highest score, in `[0, 1]`.
    pub top1: f64,
    /// Fraction of samples whose label is among the five highest scores, in `[0, 1]`.
    pub top5: f64,
    /// Mean loss per sample (cross-entropy unless the report says otherwise).
    pub loss: f64,
    /// Number of samples measured.
    pub samples: usize,
}

impl std::fmt::Display for Accuracy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "top-1 {:.2}%, top-5 {:.2}%, loss {:.4} over {} samples",
            self.top1 * 100.0,
            self.top5 * 100.0,
            self.loss,
            self.samples
        )
    }
}

/// Accumulates [`Accuracy`] over batches of logits.
///
/// A sample counts as top-k correct when fewer than `k` classes score strictly higher than its
/// label, so ties go in the label's favour; with fewer than five classes top-5 is always correct.
/// A label outside `0..classes` or a NaN score for the label counts as wrong.
#[derive(Debug, Clone, Default)]
pub struct AccuracyMeter {
    top1: usize,
    top5: usize,
    loss_sum: f64,
    samples: usize,
}

impl AccuracyMeter {
    /// An empty meter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one batch: `logits` is row-major `[labels.len(), classes]` and `mean_loss` the batch's
    /// mean loss (weighted by the batch size in the final mean).
    ///
    /// Panics if `logits.len() != labels.len() * classes`: that is a caller bug, not bad data.
    pub fn add_batch(&mut self, logits: &[f32], labels: &[u32], classes: usize, mean_loss: f64) {
        assert_eq!(
            logits.len(),
            labels.len() * classes,
            "logits for {} samples of {classes} classes",
            labels.len()
        );
        for (row, &label) in logits.chunks_exact(classes.max(1)).zip(labels) {
            let Some(&score) = row.get(label as usize) else { continue };
            if score.is_nan() {
                continue;
            }
            let higher = row.iter().filter(|&&s| s > score).count();
            self.top1 += usize::from(higher < 1);
            self.top5 += usize::from(higher < 5);
        }
        self.loss_sum += mean_loss * labels.len() as f64;
        self.samples += labels.len();
    }

    /// The accuracy so far (all zeros before the first sample).
    pub fn finish(&self) -> Accuracy {
        if self.samples == 0 {
            return Accuracy::default();
        }
        let n = self.samples as f64;
        Accuracy {
            top1: self.top1 as f64 / n,
            top5: self.top5 as f64 / n,
            loss: self.loss_sum / n,
            samples: self.samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top1_top5_and_weighted_loss() {
        let mut m = AccuracyMeter::new();
        // 6 classes. Sample 0: label 2 is the max. Sample 1: label 0 is 3rd. Sample 2: label 5 is last.
        let logits = [
            0.0, 1.0, 9.0, 2.0, 3.0, 4.0, //
            5.0, 6.0, 7.0, 1.0, 1.0, 1.0, //
            9.0, 8.0, 7.0, 6.0, 5.0, 0.0,
        ];
        m.add_batch(&logits, &[2, 0, 5], 6, 1.0);
        // Second batch: one sample, a NaN label score and then an out-of-range label.
        m.add_batch(&[f32::NAN, 0.0, 0.0, 0.0, 0.0, 0.0], &[0], 6, 4.0);
        m.add_batch(&[0.0; 6], &[7], 6, 0.0);
        let a = m.finish();
        assert_eq!(a.samples, 5);
        assert_eq!((a.top1, a.top5), (1.0 / 5.0, 2.0 / 5.0));
        assert_eq!(a.loss, (3.0 * 1.0 + 4.0) / 5.0);
        assert_eq!(a.to_string(), "top-1 20.00%, top-5 40.00%, loss 1.4000 over 5 samples");
        assert_eq!(AccuracyMeter::new().finish(), Accuracy::default());
    }

    #[test]
    fn ties_count_for_the_label() {
        let mut m = AccuracyMeter::new();
        m.add_batch(&[1.0, 1.0], &[1], 2, 0.0);
        assert_eq!((m.finish().top1, m.finish().top5), (1.0, 1.0));
    }
}

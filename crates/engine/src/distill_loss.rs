//! Distillation losses and their gradients, on plain row-major buffers.
//!
//! - [`kd`]: Hinton et al. 2015, "Distilling the Knowledge in a Neural Network".
//! - [`hint`]: the FitNets hint loss (Romero et al. 2015), a mean squared error.
//! - [`attention_map`] and [`attention`]: activation-based attention transfer (Zagoruyko and
//!   Komodakis 2017), as in the paper's code (`at(x) = F.normalize(x.pow(2).mean(1).view(n, -1))`,
//!   `at_loss = (at(s) - at(t)).pow(2).mean()`, weighted by β/2).
//!
//! Every loss is checked against PyTorch (crates/engine/tests/fixtures/distill_reference.py) and
//! by finite differences.

/// Row-wise softmax of `z / t`.
fn softmax_t(z: &[f32], k: usize, t: f32) -> Vec<f32> {
    let mut p = vec![0.0f32; z.len()];
    for (row, out) in z.chunks(k).zip(p.chunks_mut(k)) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for (o, v) in out.iter_mut().zip(row) {
            *o = ((v - max) / t).exp();
            sum += *o;
        }
        out.iter_mut().for_each(|o| *o /= sum);
    }
    p
}

/// Knowledge distillation loss of student logits `s` against teacher logits `t` (both `[n, k]`)
/// and the labels, averaged over the batch:
///
/// `α·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1−α)·CE(s, y)`
///
/// The T² factor keeps the soft targets' gradient magnitude independent of T (Hinton et al.,
/// section 2). Returns the loss and its gradient with respect to `s`:
/// `α·T·(softmax(s/T) − softmax(t/T))/n + (1−α)(softmax(s) − onehot(y))/n`.
pub fn kd(s: &[f32], t: &[f32], labels: &[u32], temperature: f32, alpha: f32) -> (f64, Vec<f32>) {
    let n = labels.len();
    let k = s.len() / n.max(1);
    let ps = softmax_t(s, k, temperature);
    let pt = softmax_t(t, k, temperature);
    let p1 = softmax_t(s, k, 1.0);
    let (tf, nf) = (temperature as f64, n as f64);
    let mut kl = 0.0f64;
    let mut ce = 0.0f64;
    let mut g = vec![0.0f32; s.len()];
    for i in 0..n {
        let r = i * k..(i + 1) * k;
        for j in r.clone() {
            if pt[j] > 0.0 {
                kl += pt[j] as f64 * ((pt[j] as f64).ln() - (ps[j].max(f32::MIN_POSITIVE) as f64).ln());
            }
            let onehot = if j - i * k == labels[i] as usize { 1.0 } else { 0.0 };
            g[j] = (alpha * temperature * (ps[j] - pt[j]) + (1.0 - alpha) * (p1[j] - onehot)) / n as f32;
        }
        ce -= (p1[i * k + labels[i] as usize].max(f32::MIN_POSITIVE) as f64).ln();
    }
    let loss = alpha as f64 * tf * tf * kl / nf + (1.0 - alpha as f64) * ce / nf;
    (loss, g)
}

/// Mean squared error between a student's (regressed) activation and the teacher's, averaged
/// over every element (PyTorch's `F.mse_loss`), and its gradient `2(p − t)/len`.
pub fn hint(pred: &[f32], target: &[f32]) -> (f64, Vec<f32>) {
    let len = pred.len().max(1) as f32;
    let mut loss = 0.0f64;
    let g = pred
        .iter()
        .zip(target)
        .map(|(p, t)| {
            let d = p - t;
            loss += (d * d) as f64;
            2.0 * d / len
        })
        .collect();
    (loss / len as f64, g)
}

/// Attention maps of an activation `[n, c, h, w]` (or any `[n, c, ...]`): per sample the
/// channel mean of the squared activation over each position, divided by its L2 norm
/// (`F.normalize`, norm floored at 1e-12). Returns `n` maps of `h·w` values.
pub fn attention_map(act: &[f32], shape: &[usize]) -> Vec<f32> {
    let (n, c) = (shape[0], shape[1]);
    let hw: usize = shape[2..].iter().product();
    let mut q = vec![0.0f32; n * hw];
    for (sample, out) in act.chunks(c * hw).zip(q.chunks_mut(hw)) {
        for ch in sample.chunks(hw) {
            out.iter_mut().zip(ch).for_each(|(o, a)| *o += a * a / c as f32);
        }
        let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        out.iter_mut().for_each(|o| *o /= norm);
    }
    q
}

/// Attention transfer loss of a student activation `act` (`[n, c, h, w]`) against the teacher's
/// attention maps `target` (from [`attention_map`], `n·h·w` values):
/// `β/2 · mean((at(act) − target)²)`. Returns the loss and its gradient with respect to `act`.
pub fn attention(act: &[f32], shape: &[usize], target: &[f32], beta: f32) -> (f64, Vec<f32>) {
    let (n, c) = (shape[0], shape[1]);
    let hw: usize = shape[2..].iter().product();
    let len = (n * hw) as f32;
    let mut loss = 0.0f64;
    let mut g = vec![0.0f32; act.len()];
    for i in 0..n {
        let a = &act[i * c * hw..(i + 1) * c * hw];
        let mut q = vec![0.0f32; hw];
        for ch in a.chunks(hw) {
            q.iter_mut().zip(ch).for_each(|(o, v)| *o += v * v / c as f32);
        }
        let norm = q.iter().map(|v| v * v).sum::<f32>().sqrt();
        let r = norm.max(1e-12);
        let z: Vec<f32> = q.iter().map(|v| v / r).collect();
        let t = &target[i * hw..(i + 1) * hw];
        // dL/dz, then through z = q / max(|q|, eps) and q = mean_c a².
        let dz: Vec<f32> = z.iter().zip(t).map(|(z, t)| beta * (z - t) / len).collect();
        z.iter().zip(t).for_each(|(z, t)| loss += ((z - t) * (z - t)) as f64);
        let zdz: f32 = if norm > 1e-12 { z.iter().zip(&dz).map(|(a, b)| a * b).sum() } else { 0.0 };
        let dq: Vec<f32> = z.iter().zip(&dz).map(|(z, d)| (d - z * zdz) / r).collect();
        for (gc, ac) in g[i * c * hw..(i + 1) * c * hw].chunks_mut(hw).zip(a.chunks(hw)) {
            for ((gv, av), dqv) in gc.iter_mut().zip(ac).zip(&dq) {
                *gv = dqv * 2.0 * av / c as f32;
            }
        }
    }
    (beta as f64 / 2.0 * loss / len as f64, g)
}

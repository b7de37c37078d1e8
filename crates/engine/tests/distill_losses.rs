//! Distillation losses against PyTorch and finite differences.
//!
//! Expected numbers come from `python3 crates/engine/tests/fixtures/distill_reference.py`
//! (PyTorch 2.15, float64); the inputs are the same closed-form arrays as there.

use deepshrink_engine::distill_loss::{attention, attention_map, hint, kd};

fn arr(n: usize, f: impl Fn(usize) -> f64) -> Vec<f32> {
    (0..n).map(|i| f(i) as f32).collect()
}

fn close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() <= tol * (1.0 + w.abs()), "[{i}]: got {g}, want {w}");
    }
}

/// Central differences of `f` at every entry of `x`, against `grad`.
fn finite_diff(x: &[f32], grad: &[f32], f: impl Fn(&[f32]) -> f64) {
    let h = 1e-2f32;
    for i in 0..x.len() {
        let mut xp = x.to_vec();
        xp[i] += h;
        let mut xm = x.to_vec();
        xm[i] -= h;
        let numeric = (f(&xp) - f(&xm)) / (2.0 * h as f64);
        let tol = 1e-3 + 1e-2 * numeric.abs();
        assert!((numeric - grad[i] as f64).abs() < tol, "[{i}]: analytic {}, numeric {numeric}", grad[i]);
    }
}

fn kd_inputs() -> (Vec<f32>, Vec<f32>, Vec<u32>) {
    let s = arr(12, |i| ((i * 7) % 11) as f64 / 3.0 - 1.5);
    let t = arr(12, |i| ((i * 5) % 13) as f64 / 2.0 - 3.0);
    (s, t, vec![2, 0, 3])
}

#[test]
fn kd_matches_pytorch() {
    let (s, t, y) = kd_inputs();
    let (loss, g) = kd(&s, &t, &y, 4.0, 0.7);
    assert!((loss - 2.391221342527854).abs() < 1e-5, "loss {loss}");
    let want = [
        0.026614413833834973,
        0.05863831601637458,
        -0.33185705099520807,
        0.24660432114499853,
        -0.033512445878721014,
        -0.18411363943482278,
        0.23098165953259409,
        -0.013355574219050275,
        0.07147218754152745,
        0.1765431073425932,
        -0.16794267548119007,
        -0.08007261940293046,
    ];
    close(&g, &want, 1e-5);
    finite_diff(&s, &g, |s| kd(s, &t, &y, 4.0, 0.7).0);
}

#[test]
fn kd_with_alpha_zero_is_cross_entropy_and_t_squared_keeps_gradient_scale() {
    let (s, t, y) = kd_inputs();
    let (loss, _) = kd(&s, &t, &y, 3.0, 0.0);
    let (ce, _) = kd(&s, &s, &y, 1.0, 0.0);
    assert!((loss - ce).abs() < 1e-9);
    // A teacher equal to the student gives zero soft-target loss and gradient at any T.
    let (l, g) = kd(&s, &s, &y, 5.0, 1.0);
    assert!(l.abs() < 1e-6 && g.iter().all(|v| v.abs() < 1e-6));
    for temp in [2.0, 8.0] {
        let (_, g) = kd(&s, &t, &y, temp, 1.0);
        finite_diff(&s, &g, |s| kd(s, &t, &y, temp, 1.0).0);
    }
}

#[test]
fn hint_matches_pytorch() {
    let p = arr(10, |i| (i % 4) as f64 * 0.3 - 0.2);
    let q = arr(10, |i| ((i * 3) % 7) as f64 * 0.1);
    let (loss, g) = hint(&p, &q);
    assert!((loss - 0.185).abs() < 1e-6);
    let want = [-0.04, -0.04, -0.04, 0.1, -0.14, 0.0, 0.0, 0.14, -0.1, -0.1];
    close(&g, &want, 1e-6);
    finite_diff(&p, &g, |p| hint(p, &q).0);
}

#[test]
fn attention_transfer_matches_pytorch() {
    let a_s = arr(24, |i| ((i * 5) % 9) as f64 / 4.0 - 1.0);
    let a_t = arr(40, |i| ((i * 3) % 8) as f64 / 5.0 - 0.6);
    let map_t = attention_map(&a_t, &[2, 5, 2, 2]);
    let want_map = [
        0.5203520528006317,
        0.5741815755041451,
        0.5203520528006317,
        0.3588634846900907,
        0.35068254696394563,
        0.8015601073461613,
        0.3506825469639456,
        0.3339833780609006,
    ];
    close(&map_t, &want_map, 1e-6);
    let (loss, g) = attention(&a_s, &[2, 3, 2, 2], &map_t, 1e3);
    assert!((loss - 47.16280621921877).abs() < 1e-3, "loss {loss}");
    let want = [
        10.049311097875682,
        -1.0004845119566472,
        19.706034413574223,
        10.242387056323453,
        5.024655548937841,
        -3.001453535869942,
        6.5686781378580745,
        20.484774112646907,
        0.0,
        4.001938047826589,
        -6.5686781378580745,
        -15.363580584485181,
        5.643338408051577,
        31.067134776626123,
        8.46500761207737,
        3.5807522479083076,
        11.286676816103155,
        0.0,
        -11.28667681610316,
        -3.5807522479083076,
        -8.465007612077367,
        -31.067134776626123,
        -5.64333840805158,
        -10.742256743724923,
    ];
    close(&g, &want, 1e-4);
    // Finite differences at a smaller β, where the f32 loss keeps enough digits.
    let (_, g1) = attention(&a_s, &[2, 3, 2, 2], &map_t, 1.0);
    finite_diff(&a_s, &g1, |a| attention(a, &[2, 3, 2, 2], &map_t, 1.0).0);
}

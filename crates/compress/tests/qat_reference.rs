//! LSQ and TTQ gradients against PyTorch autograd: `fixtures/qat_reference.json`, written by
//! `fixtures/qat_reference.py` (torch 2, float64).

use deepshrink_compress::qat::rules::{
    lsq_backward, lsq_forward, lsq_init, ttq_backward, ttq_forward, ttq_threshold,
};
use serde_json::Value;

fn load() -> Value {
    serde_json::from_str(include_str!("fixtures/qat_reference.json")).unwrap()
}

fn vec(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn lsq_matches_pytorch() {
    let f = &load()["lsq"];
    let (w, s, c) = (vec(&f["w"]), vec(&f["s"]), vec(&f["c"]));
    let qp = 7.0;
    let (mut q, mut gw, mut gs) = (vec![0.0; 24], vec![0.0; 24], Vec::new());
    for (ch, (&step, init)) in s.iter().zip(vec(&f["init"])).enumerate() {
        let r = ch * 8..(ch + 1) * 8;
        lsq_forward(&w[r.clone()], step, qp, qp, &mut q[r.clone()]);
        gs.push(lsq_backward(&w[r.clone()], step, qp, qp, &c[r.clone()], &mut gw[r.clone()]));
        assert!((lsq_init(&w[r], qp) - init).abs() < 1e-6);
    }
    close(&q, &vec(&f["q"]), 1e-5, "q");
    close(&gs, &vec(&f["grad_s"]), 1e-5, "grad_s");
    close(&gw, &vec(&f["grad_w"]), 1e-6, "grad_w");
    // The fixture exercises clipping: some weight gradients are cut to zero.
    assert!(gw.contains(&0.0));
}

#[test]
fn ttq_matches_pytorch() {
    let f = &load()["ttq"];
    let (w, c) = (vec(&f["w"]), vec(&f["c"]));
    let (wp, wn) = (f["wp"].as_f64().unwrap() as f32, f["wn"].as_f64().unwrap() as f32);
    let delta = ttq_threshold(&w, f["t"].as_f64().unwrap() as f32);
    let (mut q, mut gw) = (vec![0.0; 24], vec![0.0; 24]);
    ttq_forward(&w, delta, wp, wn, &mut q);
    let (dp, dn) = ttq_backward(&w, delta, wp, wn, &c, &mut gw);
    close(&q, &vec(&f["q"]), 1e-6, "q");
    close(
        &[dp, dn],
        &[f["grad_wp"].as_f64().unwrap() as f32, f["grad_wn"].as_f64().unwrap() as f32],
        1e-5,
        "scales",
    );
    close(&gw, &vec(&f["grad_w"]), 1e-6, "grad_w");
}

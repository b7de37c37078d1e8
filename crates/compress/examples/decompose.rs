//! Times Tucker-2 (HOSVD + HOOI) and CP-ALS on kernels given as JSON, for
//! bench/lowrank_vs_tensorly.py: `decompose <in.json>` prints one JSON object.
//!
//! Input: `{"repeats": n, "cases": [{"name", "shape": [S, C, kh, kw], "kernel": [...],
//! "method": "tucker2" | "cp", "ranks": [r_out, r_in] | [r]}]}`. Settings match tensorly's
//! defaults: `partial_tucker` (100 HOOI rounds, tol 1e-4) and `parafac` (100 sweeps, tol 1e-8).

use std::time::Instant;

use deepshrink_compress::factorize::{cp, tucker};
use serde_json::{json, Value};

fn main() {
    let path = std::env::args().nth(1).expect("usage: decompose <in.json>");
    let input: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read input")).expect("json");
    let repeats = input["repeats"].as_u64().unwrap_or(5) as usize;
    let mut out = Vec::new();
    for case in input["cases"].as_array().expect("cases") {
        let s: Vec<usize> =
            case["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let shape = [s[0], s[1], s[2], s[3]];
        let w: Vec<f64> = case["kernel"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let r: Vec<usize> =
            case["ranks"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let method = case["method"].as_str().unwrap();
        let mut times = Vec::new();
        let mut error = 0.0;
        for _ in 0..repeats {
            let start = Instant::now();
            error = match method {
                "tucker2" => tucker::decompose(&w, shape, r[0], r[1], 100, 1e-4).unwrap().rel_error,
                _ => cp::decompose(&w, shape, r[0], 100, 1e-8, 0).unwrap().rel_error,
            };
            times.push(start.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        out.push(json!({"name": case["name"], "method": method, "ranks": r, "error": error,
                        "median_seconds": times[times.len() / 2]}));
    }
    println!("{}", json!({ "results": out }));
}

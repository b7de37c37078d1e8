//! The stored form of QAT weights: packed integer codes of the `quant` encoding (tag 7).

use deepshrink_codec::QuantMatrix;

use super::{Method, Quantizer};
use crate::{CompressError, State};

/// Moves every QAT layer of `state` (unpruned) to its packed form in [`State::quantized`], where
/// the export takes it from; 16-bit fixed-point layers lose their constraint and stay dense f32.
pub fn pack_state(state: &mut State) -> Result<(), CompressError> {
    let graph = state.model.to_graph();
    let names: Vec<String> = state.hook.constraints.keys().cloned().collect();
    for name in names {
        let c = &state.hook.constraints[&name];
        let (Some(q), None, Some(t)) = (&c.quant, &c.mask, graph.weights.get(&name)) else { continue };
        let w = t.as_f32().expect("compressible weights are f32");
        match to_quant_matrix(&name, q, &t.shape, w)? {
            Some(m) => {
                state.bits.insert(name.clone(), m.bits);
                state.quantized.insert(name, m);
            }
            None if q.method == Method::Fixed => {
                state.hook.constraints.remove(&name);
            }
            None => {}
        }
    }
    Ok(())
}

/// Code width a `bits`-bit uniform grid is stored in (the `quant` encoding holds 2, 4 and 8).
fn container_bits(bits: u8) -> u8 {
    match bits {
        0..=2 => 2,
        3..=4 => 4,
        _ => 8,
    }
}

/// The packed form of the quantized weight `w` (as the last [`Quantizer::apply`] left it):
/// binary as 1-bit codes with one scale per layer or channel, ternary as 2-bit codes
/// {−1, 0, +1} times `α`, uniform as 2/4/8-bit symmetric codes with their steps, 8-bit fixed point
/// as int8 codes with scale `2^−FL`, TTQ as 2-bit codes with two scales (`+wp`, `−wn`). `None`
/// for 16-bit fixed point (no 16-bit codes). Fails if the codes do not decode to exactly `w`.
pub fn to_quant_matrix(
    name: &str,
    q: &Quantizer,
    shape: &[usize],
    w: &[f32],
) -> Result<Option<QuantMatrix>, CompressError> {
    let bits = match q.method {
        Method::Binary | Method::Xnor => 1,
        Method::Ternary => 2,
        Method::Uniform => container_bits(q.bits),
        Method::Fixed if q.bits == 8 => 8,
        Method::Ttq => 2,
        Method::Fixed => return Ok(None),
    };
    let two = q.method == Method::Ttq;
    if q.scales.len() != q.groups * if two { 2 } else { 1 } || w.is_empty() {
        return Ok(None);
    }
    let glen = w.len() / q.groups;
    let zero = if bits == 1 { 0.0 } else { (1u32 << (bits - 1)) as f32 };
    let mut codes = Vec::with_capacity(w.len());
    let (scales, neg_scales) = if two {
        // TTQ: +wp is code 3, 0 is code 2, −wn is code 1 (two scales per layer).
        codes.extend(w.iter().map(|&v| 2 + (v > 0.0) as u8 - (v < 0.0) as u8));
        (vec![q.scales[0]], Some(vec![q.scales[1]]))
    } else {
        (q.scales.clone(), None)
    };
    for (g, &s) in w.chunks(glen).zip(&q.scales).filter(|_| !two) {
        let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
        codes.extend(g.iter().map(|&v| {
            if bits == 1 {
                (v >= 0.0) as u8
            } else {
                ((v * inv).round() + zero).clamp(0.0, 255.0) as u8
            }
        }));
    }
    let m = QuantMatrix {
        shape: shape.to_vec(),
        bits,
        scales,
        zero_points: None,
        codes,
        neg_scales,
        act_scale: None,
    };
    m.check(name).map_err(|e| CompressError::Config { pass: "qat", detail: e.to_string() })?;
    let dense = m.to_dense();
    let d = dense.as_f32().expect("f32");
    // Binary layers whose scale is 0 decode to 0 for either code; everything else must match
    // bit for bit, so the file runs exactly the trained model.
    if let Some(i) = (0..w.len()).find(|&i| d[i] != w[i] && !(d[i] == 0.0 && w[i] == 0.0)) {
        return Err(CompressError::Config {
            pass: "qat",
            detail: format!("'{name}': weight {i} = {} is not on its stored grid ({})", w[i], d[i]),
        });
    }
    Ok(Some(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qat::{Granularity, QatConfig};

    fn weights(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 0.3).collect()
    }

    /// Every packable method stores codes of its width that decode to exactly the trained
    /// weights, and the packed bytes are `rows · ceil(cols · bits / 8)`.
    #[test]
    fn packed_codes_decode_to_the_quantized_weights() {
        let shape = [6usize, 20];
        let w = weights(120);
        let cases = [
            (Method::Binary, 1, Granularity::Layer, 1),
            (Method::Binary, 1, Granularity::Channel, 1),
            (Method::Ternary, 2, Granularity::Layer, 2),
            (Method::Uniform, 2, Granularity::Layer, 2),
            (Method::Uniform, 3, Granularity::Channel, 4),
            (Method::Uniform, 4, Granularity::Channel, 4),
            (Method::Uniform, 6, Granularity::Layer, 8),
            (Method::Fixed, 8, Granularity::Layer, 8),
            (Method::Ttq, 2, Granularity::Layer, 2),
            // XNOR-Net: one α per output channel whatever `granularity` says.
            (Method::Xnor, 1, Granularity::Layer, 1),
        ];
        for (method, bits, granularity, stored) in cases {
            let cfg = QatConfig { method, bits, granularity, ..QatConfig::default() };
            let mut q = cfg.quantizer("w", &shape, 0).unwrap();
            let mut out = vec![0.0; 120];
            q.apply(&w, |_| true, &mut out);
            let m = to_quant_matrix("w", &q, &shape, &out).unwrap().unwrap();
            assert_eq!(m.bits, stored, "{method:?} {bits}");
            assert_eq!(m.to_dense().as_f32().unwrap(), &out[..], "{method:?} {bits}");
            assert_eq!(m.packed_len(), 6 * (20 * stored as usize).div_ceil(8));
            let groups = if granularity == Granularity::Channel || method == Method::Xnor { 6 } else { 1 };
            assert_eq!(m.scales.len(), groups);
            assert_eq!(m.neg_scales.is_some(), method == Method::Ttq);
        }
        let cfg = QatConfig { method: Method::Fixed, bits: 16, ..QatConfig::default() };
        let q = cfg.quantizer("w", &shape, 0).unwrap();
        assert!(to_quant_matrix("w", &q, &shape, &w).unwrap().is_none());
    }
}

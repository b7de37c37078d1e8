//! Running single ops on plain buffers, for runtimes that execute some nodes themselves: the
//! `.dsk` runtime runs compressed layers with its own kernels and every other node through here,
//! so each op's arithmetic exists once.

use deepshrink_graph::{Dim, Graph, Op, ValueInfo};

use crate::ops::{self, Buf};
use crate::rng::Rng;
use crate::EngineError;

/// Runs `op` in inference mode on `inputs` (shape and row-major data of each, in the op's input
/// order) and returns the output's shape and data. Shapes are checked first: a mismatch is an
/// error naming the op, never a panic.
pub fn infer_op(op: &Op, inputs: &[(&[usize], &[f32])]) -> Result<(Vec<usize>, Vec<f32>), EngineError> {
    let mut g = Graph::default();
    let names: Vec<String> = (0..inputs.len()).map(|i| format!("in{i}")).collect();
    for (name, (shape, data)) in names.iter().zip(inputs) {
        if shape.iter().product::<usize>() != data.len() {
            return Err(EngineError::Data(format!(
                "{}: input {name} has shape {shape:?} but {} values",
                op.name(),
                data.len()
            )));
        }
        g.inputs
            .push(ValueInfo { name: name.clone(), shape: shape.iter().map(|&d| Dim::Fixed(d)).collect() });
    }
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let out = g.push("op", op.clone(), &refs);
    g.outputs.push(ValueInfo { name: out, shape: Vec::new() });
    g.infer_shapes(1)?;
    let bufs: Vec<Buf> = inputs.iter().map(|(s, d)| Buf::new(s.to_vec(), d.to_vec())).collect();
    let ins: Vec<&Buf> = bufs.iter().collect();
    let (y, _) = ops::forward(op, &ins, false, &mut Rng::new(0));
    Ok((y.shape, y.data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_an_op_and_rejects_bad_shapes() {
        let (s, y) = infer_op(&Op::Add, &[(&[2], &[1.0, 2.0]), (&[1], &[10.0])]).unwrap();
        assert_eq!((s, y), (vec![2], vec![11.0, 12.0]));
        assert!(infer_op(&Op::Add, &[(&[2], &[1.0, 2.0]), (&[3], &[1.0, 2.0, 3.0])]).is_err());
        assert!(infer_op(&Op::Relu, &[(&[2], &[1.0])]).is_err());
    }

    /// sign(0) = +1 (the XNOR-popcount kernel's sign bit), NaN → −1; ONNX's Sign gives 0 at 0.
    #[test]
    fn sign_of_zero_is_plus_one() {
        let x = [-2.0f32, -1e-30, 0.0, -0.0, 1e-30, 3.0, f32::NAN];
        let (_, y) = infer_op(&Op::Sign, &[(&[7], &x)]).unwrap();
        assert_eq!(y, [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0, -1.0]);
    }
}

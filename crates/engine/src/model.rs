//! An executable model: a graph compiled to slot-indexed steps, with its weights.

use std::collections::HashMap;

use deepshrink_graph::{Graph, Op, Tensor};

use crate::ops::{self, Buf, Saved};
use crate::rng::Rng;
use crate::EngineError;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    /// A weight: index into `params`.
    Weight(usize),
    /// An activation (graph input or node output).
    Act,
}

#[derive(Debug, Clone)]
struct Step {
    op: Op,
    ins: Vec<usize>,
    out: usize,
}

/// A tensor's shape and row-major values.
pub type ShapedValues = (Vec<usize>, Vec<f32>);

/// A named weight of the model.
#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub name: String,
    pub value: Buf,
    /// Updated by the optimizer (false for batch-norm running statistics).
    pub trainable: bool,
}

/// Activations and saved state of one forward pass, for the backward pass.
pub(crate) struct Tape {
    vals: Vec<Option<Buf>>,
    saved: Vec<Saved>,
}

/// A graph ready to run: forward for inference, forward and backward for training.
///
/// Built once from a [`Graph`]; weights live here during training and are written back with
/// [`Model::to_graph`].
#[derive(Debug, Clone)]
pub struct Model {
    graph: Graph,
    kinds: Vec<Slot>,
    steps: Vec<Step>,
    pub(crate) params: Vec<Param>,
    input: usize,
    output: usize,
    /// The slot the loss reads: the output, or the input of a final Softmax.
    logits: usize,
    /// Steps run when computing the loss (a final Softmax is folded into the loss).
    loss_steps: usize,
    needs_grad: Vec<bool>,
    /// Last step that reads each slot (for freeing activations at inference).
    last_use: Vec<usize>,
    sample_shape: Vec<usize>,
    /// Slot of every activation (graph input and node outputs), by tensor name.
    act_slots: HashMap<String, usize>,
}

impl Model {
    /// Compiles a graph. Fails if it is invalid, its shapes do not fit, or it has other than one
    /// input and one output.
    pub fn new(mut graph: Graph) -> Result<Model, EngineError> {
        // The first input dimension is the batch, whatever the file declared (exporters often
        // fix it to 1); shapes are re-checked for every batch size that is run.
        if let Some(d) = graph.inputs.first_mut().and_then(|i| i.shape.first_mut()) {
            *d = deepshrink_graph::Dim::Sym("batch".into());
        }
        graph.infer_shapes(1)?;
        graph.infer_shapes(2)?;
        if graph.inputs.len() != 1 || graph.outputs.len() != 1 {
            return Err(EngineError::Unsupported(format!(
                "model has {} inputs and {} outputs; the engine runs models with one of each",
                graph.inputs.len(),
                graph.outputs.len()
            )));
        }
        let mut slot_of: HashMap<String, usize> = HashMap::new();
        let mut kinds = Vec::new();
        let mut params = Vec::new();
        let running_stats: Vec<&str> = graph
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::BatchNormalization { .. }))
            .flat_map(|n| n.inputs[3..].iter().map(|s| s.as_str()))
            .collect();
        for (name, t) in &graph.weights {
            let data = t.as_f32().ok_or_else(|| {
                EngineError::Unsupported(format!(
                    "weight '{name}' is {:?}; ops read f32 weights only",
                    t.dtype()
                ))
            })?;
            slot_of.insert(name.clone(), kinds.len());
            kinds.push(Slot::Weight(params.len()));
            params.push(Param {
                name: name.clone(),
                value: Buf::new(t.shape.clone(), data.to_vec()),
                trainable: !running_stats.contains(&name.as_str()),
            });
        }
        let input_name = graph.inputs[0].name.clone();
        slot_of.insert(input_name.clone(), kinds.len());
        kinds.push(Slot::Act);
        let mut steps = Vec::new();
        for n in &graph.nodes {
            for extra in &n.outputs[1..] {
                if graph.consumers(extra).next().is_some() || graph.outputs.iter().any(|o| &o.name == extra) {
                    return Err(EngineError::Unsupported(format!(
                        "node '{}' ({}) output '{extra}' is used; only the first output of a node can be",
                        n.name,
                        n.op.name()
                    )));
                }
            }
            let ins = n.inputs.iter().map(|i| slot_of[i]).collect();
            slot_of.insert(n.outputs[0].clone(), kinds.len());
            steps.push(Step { op: n.op.clone(), ins, out: kinds.len() });
            kinds.push(Slot::Act);
        }
        let output = slot_of[&graph.outputs[0].name];
        let (logits, loss_steps) = match steps.last() {
            Some(s) if s.out == output && matches!(s.op, Op::Softmax { .. }) => (s.ins[0], steps.len() - 1),
            _ => (output, steps.len()),
        };
        let mut needs_grad: Vec<bool> =
            kinds.iter().map(|k| matches!(k, Slot::Weight(p) if params[*p].trainable)).collect();
        for s in &steps {
            needs_grad[s.out] = s.ins.iter().any(|&i| needs_grad[i]);
        }
        let mut last_use = vec![0; kinds.len()];
        for (i, s) in steps.iter().enumerate() {
            s.ins.iter().for_each(|&x| last_use[x] = i);
        }
        last_use[output] = usize::MAX;
        let sample_shape = graph.inputs[0].sample_shape();
        let input = slot_of[&input_name];
        let act_slots =
            slot_of.into_iter().filter(|(_, s)| kinds[*s] == Slot::Act).collect::<HashMap<_, _>>();
        Ok(Model {
            graph,
            kinds,
            steps,
            params,
            input,
            output,
            logits,
            loss_steps,
            needs_grad,
            last_use,
            sample_shape,
            act_slots,
        })
    }

    /// Shape of one input sample (the input shape without the batch dimension).
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// The graph with the current weights.
    pub fn to_graph(&self) -> Graph {
        let mut g = self.graph.clone();
        for p in &self.params {
            g.weights.insert(p.name.clone(), Tensor::f32(p.value.shape.clone(), p.value.data.clone()));
        }
        g
    }

    /// Shape of a weight, by name.
    pub fn weight_shape(&self, name: &str) -> Option<&[usize]> {
        self.params.iter().find(|p| p.name == name).map(|p| &p.value.shape[..])
    }

    /// Names of the trainable weights.
    pub fn trainable_names(&self) -> Vec<&str> {
        self.params.iter().filter(|p| p.trainable).map(|p| p.name.as_str()).collect()
    }

    fn check_input(&self, x: &[f32], batch: usize) -> Result<(), EngineError> {
        if batch > 2 {
            // A graph may hard-code a batch size (a Reshape to [1, -1], say): refuse, don't panic.
            self.graph.infer_shapes(batch)?;
        }
        let per: usize = self.sample_shape.iter().product();
        if x.len() != per * batch {
            return Err(EngineError::Data(format!(
                "input '{}' expects samples of shape {:?} ({} values each); got {} values for a batch of {batch}",
                self.graph.inputs[0].name,
                self.sample_shape,
                per,
                x.len()
            )));
        }
        Ok(())
    }

    fn get<'a>(&'a self, vals: &'a [Option<Buf>], slot: usize) -> &'a Buf {
        match self.kinds[slot] {
            Slot::Weight(p) => &self.params[p].value,
            Slot::Act => vals[slot].as_ref().expect("value computed before use"),
        }
    }

    /// Runs the loss steps in training mode: keeps every activation and what each op saves for
    /// its backward pass, and updates batch-norm running statistics.
    fn run_train(&mut self, x: Vec<f32>, batch: usize, rng: &mut Rng) -> Tape {
        let upto = self.loss_steps;
        let mut shape = vec![batch];
        shape.extend_from_slice(&self.sample_shape);
        let mut vals: Vec<Option<Buf>> = vec![None; self.kinds.len()];
        vals[self.input] = Some(Buf::new(shape, x));
        let mut saved = Vec::with_capacity(upto);
        for i in 0..upto {
            let step = &self.steps[i];
            // A reshape of the graph input that nothing else reads: move the data, keep the shape
            // (the input needs no gradient, so no backward pass reads its values).
            let src = step.ins[0];
            if src == self.input && self.last_use[src] == i && step.ins.len() == 1 {
                let x = vals[src].as_mut().expect("input set");
                if let Some(shape) = ops::reshape_only(&step.op, &x.shape, true) {
                    let data = std::mem::take(&mut x.data);
                    vals[step.out] = Some(Buf::new(shape, data));
                    saved.push(Saved::None);
                    continue;
                }
            }
            let ins: Vec<&Buf> = step.ins.iter().map(|&s| self.get(&vals, s)).collect();
            let t0 = std::time::Instant::now();
            let (y, sv) = ops::forward(&step.op, &ins, true, rng);
            crate::profile::record(i, false, step.op.name(), t0);
            let out = step.out;
            if let (Saved::Bn { mean, var_unbiased, .. }, Op::BatchNormalization { momentum, .. }) =
                (&sv, &step.op)
            {
                let (m, ins) = (*momentum, step.ins.clone());
                self.update_running(ins[3], mean, m);
                self.update_running(ins[4], var_unbiased, m);
            }
            vals[out] = Some(y);
            saved.push(sv);
        }
        Tape { vals, saved }
    }

    fn update_running(&mut self, slot: usize, batch: &[f32], momentum: f32) {
        if let Slot::Weight(p) = self.kinds[slot] {
            let r = &mut self.params[p].value.data;
            r.iter_mut().zip(batch).for_each(|(r, b)| *r = *r * momentum + b * (1.0 - momentum));
        }
    }

    /// Inference: runs a batch of `batch` samples and returns the graph output.
    pub fn forward(&self, x: &[f32], batch: usize) -> Result<(Vec<usize>, Vec<f32>), EngineError> {
        self.check_input(x, batch)?;
        let tape = self.run_inference(x.to_vec(), batch, self.steps.len(), &[]);
        let y = tape.vals[self.output].clone().expect("output computed");
        Ok((y.shape, y.data))
    }

    /// Inference up to the loss input (pre-softmax logits), for evaluation.
    pub(crate) fn logits(&self, x: &[f32], batch: usize) -> Result<Buf, EngineError> {
        self.check_input(x, batch)?;
        let mut tape = self.run_inference(x.to_vec(), batch, self.loss_steps, &[]);
        Ok(tape.vals[self.logits].take().expect("logits computed"))
    }

    /// Training forward: returns the tape and the logits.
    pub(crate) fn forward_train(
        &mut self,
        x: Vec<f32>,
        batch: usize,
        rng: &mut Rng,
    ) -> Result<Tape, EngineError> {
        self.check_input(&x, batch)?;
        Ok(self.run_train(x, batch, rng))
    }

    /// Slots of named intermediate activations that a loss may read and send gradients to: each
    /// must be the output of a node that runs before the loss (not the graph input, not a final
    /// Softmax).
    pub(crate) fn tap_slots(&self, names: &[String]) -> Result<Vec<usize>, EngineError> {
        names
            .iter()
            .map(|n| {
                let slot = *self.act_slots.get(n).ok_or_else(|| {
                    EngineError::Config(format!("model '{}' has no tensor named '{n}'", self.graph.name))
                })?;
                if !self.steps[..self.loss_steps].iter().any(|s| s.out == slot) {
                    return Err(EngineError::Config(format!(
                        "tensor '{n}' is not an intermediate activation of model '{}'",
                        self.graph.name
                    )));
                }
                Ok(slot)
            })
            .collect()
    }

    /// A value on a training tape.
    pub(crate) fn tape_value<'a>(&'a self, tape: &'a Tape, slot: usize) -> &'a Buf {
        self.get(&tape.vals, slot)
    }

    /// Inference that also returns named intermediate activations (shape and values, in the order
    /// of `names`) besides the pre-softmax logits: what a teacher provides for distillation.
    pub fn forward_taps(
        &self,
        x: &[f32],
        batch: usize,
        names: &[String],
    ) -> Result<(Vec<f32>, Vec<ShapedValues>), EngineError> {
        self.check_input(x, batch)?;
        let slots = self.tap_slots(names)?;
        let mut tape = self.run_inference(x.to_vec(), batch, self.loss_steps, &slots);
        let taps = slots
            .iter()
            .map(|&s| {
                let b = tape.vals[s].clone().expect("tap computed");
                (b.shape, b.data)
            })
            .collect();
        let logits = tape.vals[self.logits].take().expect("logits computed");
        Ok((logits.data, taps))
    }

    /// Shape of a named intermediate activation for a batch of `batch` samples.
    pub fn tensor_shape(&self, name: &str, batch: usize) -> Result<Vec<usize>, EngineError> {
        let shapes = self.graph.infer_shapes(batch)?;
        shapes.get(name).cloned().ok_or_else(|| {
            EngineError::Config(format!("model '{}' has no tensor named '{name}'", self.graph.name))
        })
    }

    /// The logits on a training tape.
    pub(crate) fn tape_logits<'a>(&'a self, tape: &'a Tape) -> &'a Buf {
        self.get(&tape.vals, self.logits)
    }

    /// Backward from the logits gradient; returns a gradient for every param (None if frozen).
    #[cfg(test)]
    pub(crate) fn backward(&self, tape: Tape, dlogits: Vec<f32>) -> Vec<Option<Vec<f32>>> {
        self.backward_with(tape, dlogits, Vec::new())
    }

    /// Backward from the logits gradient plus gradients of the loss with respect to intermediate
    /// activations (`(slot, gradient)`, from [`Model::tap_slots`]), added in where those
    /// activations are produced.
    pub(crate) fn backward_with(
        &self,
        tape: Tape,
        dlogits: Vec<f32>,
        extra: Vec<(usize, Vec<f32>)>,
    ) -> Vec<Option<Vec<f32>>> {
        let Tape { vals, saved } = tape;
        let mut grads: Vec<Option<Vec<f32>>> = vec![None; self.kinds.len()];
        grads[self.logits] = Some(dlogits);
        for (slot, g) in extra {
            match &mut grads[slot] {
                Some(acc) => acc.iter_mut().zip(&g).for_each(|(a, b)| *a += b),
                none => *none = Some(g),
            }
        }
        for i in (0..self.loss_steps).rev() {
            let step = &self.steps[i];
            let Some(dy) = grads[step.out].take() else { continue };
            let need: Vec<bool> = step.ins.iter().map(|&s| self.needs_grad[s]).collect();
            if !need.iter().any(|&b| b) {
                continue;
            }
            let ins: Vec<&Buf> = step.ins.iter().map(|&s| self.get(&vals, s)).collect();
            let out = vals[step.out].as_ref().expect("output kept for backward");
            let t0 = std::time::Instant::now();
            let gs = ops::backward(&step.op, &ins, out, &saved[i], &dy, &need);
            crate::profile::record(i, true, step.op.name(), t0);
            for (k, g) in gs.into_iter().enumerate() {
                let (Some(g), true) = (g, need.get(k).copied().unwrap_or(false)) else { continue };
                let slot = step.ins[k];
                match &mut grads[slot] {
                    Some(acc) => acc.iter_mut().zip(&g).for_each(|(a, b)| *a += b),
                    none => *none = Some(g),
                }
            }
        }
        let mut out = vec![None; self.params.len()];
        for (slot, kind) in self.kinds.iter().enumerate() {
            if let Slot::Weight(p) = kind {
                if self.params[*p].trainable {
                    out[*p] =
                        grads[slot].take().or_else(|| Some(vec![0.0; self.params[*p].value.data.len()]));
                }
            }
        }
        out
    }
}

impl Model {
    /// Runs the first `upto` steps in inference mode, freeing each activation after its last use.
    /// Touches no model state.
    /// Slots in `keep` are never freed.
    fn run_inference(&self, x: Vec<f32>, batch: usize, upto: usize, keep: &[usize]) -> Tape {
        let m = self;
        let mut shape = vec![batch];
        shape.extend_from_slice(&m.sample_shape);
        let mut vals: Vec<Option<Buf>> = vec![None; m.kinds.len()];
        vals[m.input] = Some(Buf::new(shape, x));
        let mut rng = Rng::new(0);
        for i in 0..upto {
            let step = &m.steps[i];
            let src = step.ins[0];
            let kept = |s: usize| s == m.logits || keep.contains(&s);
            if m.kinds[src] == Slot::Act && m.last_use[src] == i && !kept(src) && step.ins.len() == 1 {
                let x = vals[src].as_ref().expect("value computed before use");
                if let Some(shape) = ops::reshape_only(&step.op, &x.shape, false) {
                    let data = vals[src].take().expect("value computed before use").data;
                    vals[step.out] = Some(Buf::new(shape, data));
                    continue;
                }
            }
            let ins: Vec<&Buf> = step.ins.iter().map(|&s| m.get(&vals, s)).collect();
            let (y, _) = ops::forward(&step.op, &ins, false, &mut rng);
            for &s in &step.ins {
                if m.last_use[s] == i && m.kinds[s] == Slot::Act && !kept(s) {
                    vals[s] = None;
                }
            }
            vals[step.out] = Some(y);
        }
        Tape { vals, saved: Vec::new() }
    }
}

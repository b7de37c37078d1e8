//! Reference networks, built as graphs with PyTorch's default initialisation.
//!
//! All take MNIST-shaped input `[batch, 1, 28, 28]` named `input` and return 10 logits named by
//! their last node.

use deepshrink_graph::{ConvAttrs, Graph, Op, PoolAttrs, Tensor};

use crate::rng::Rng;
use crate::EngineError;

/// Names accepted by [`build`].
pub const NAMES: &[&str] =
    &["lenet-300-100", "lenet-5", "vgg-small", "resnet-20", "cnn-small", "cnn-tiny", "mlp-tiny"];

/// Builds a zoo network with weights drawn from `seed`.
///
/// - `lenet-300-100`: 784-300-100-10 fully connected with ReLU (LeCun et al. 1998; Han et al. 2015).
/// - `lenet-5`: the Caffe variant Han et al. 2015 prune: conv 5x5x20, max-pool, conv 5x5x50,
///   max-pool, fc 500, ReLU, fc 10 (431k parameters).
/// - `vgg-small`: VGG-style, two blocks of two 3x3 convs (32, 64 channels) with batch norm and ReLU,
///   each followed by 2x2 max-pool, then fc 512, ReLU, dropout 0.5, fc 10 (1.67M parameters).
/// - `resnet-20`: He et al. 2016's CIFAR ResNet-20 (three stages of three basic blocks, 16/32/64
///   channels, projection shortcuts when the shape changes), global average pooling, fc 10.
/// - `cnn-small` and `cnn-tiny`: distillation students, about 10x and 50x fewer parameters than
///   `vgg-small`: conv 3x3 (16 / 8 channels), batch norm, ReLU, 2x2 max-pool, conv 3x3 (32 / 16),
///   batch norm, ReLU, 2x2 max-pool, fc 100 / 40, ReLU, fc 10 (162,806 and 33,106 parameters).
///   Their feature maps have the teacher's spatial sizes (28, 14, 7), so attention maps pair up.
/// - `mlp-tiny`: a fully connected distillation student in the manner of Hinton et al. 2015's
///   MNIST experiment, 784-40-40-10 with ReLU (33,450 parameters, 50.1x fewer than `vgg-small`).
pub fn build(name: &str, seed: u64) -> Result<Graph, EngineError> {
    let mut b = Builder::new(name, seed);
    match name {
        "lenet-300-100" => {
            b.flatten();
            b.linear("fc1", 784, 300);
            b.relu();
            b.linear("fc2", 300, 100);
            b.relu();
            b.linear("fc3", 100, 10);
        }
        "lenet-5" => {
            b.conv("conv1", 1, 20, 5, 1, 0);
            b.maxpool(2);
            b.conv("conv2", 20, 50, 5, 1, 0);
            b.maxpool(2);
            b.flatten();
            b.linear("fc1", 800, 500);
            b.relu();
            b.linear("fc2", 500, 10);
        }
        "vgg-small" => {
            let mut c = 1;
            for (blk, out) in [(1, 32), (2, 64)] {
                for i in 1..=2 {
                    b.conv(&format!("conv{blk}_{i}"), c, out, 3, 1, 1);
                    b.bn(&format!("bn{blk}_{i}"), out);
                    b.relu();
                    c = out;
                }
                b.maxpool(2);
            }
            b.flatten();
            b.linear("fc1", 64 * 7 * 7, 512);
            b.relu();
            b.dropout(0.5);
            b.linear("fc2", 512, 10);
        }
        "cnn-small" | "cnn-tiny" => {
            let (c1, c2, hidden) = if name == "cnn-small" { (16, 32, 100) } else { (8, 16, 40) };
            b.conv("conv1", 1, c1, 3, 1, 1);
            b.bn("bn1", c1);
            b.relu();
            b.maxpool(2);
            b.conv("conv2", c1, c2, 3, 1, 1);
            b.bn("bn2", c2);
            b.relu();
            b.maxpool(2);
            b.flatten();
            b.linear("fc1", c2 * 7 * 7, hidden);
            b.relu();
            b.linear("fc2", hidden, 10);
        }
        "mlp-tiny" => {
            b.flatten();
            b.linear("fc1", 784, 40);
            b.relu();
            b.linear("fc2", 40, 40);
            b.relu();
            b.linear("fc3", 40, 10);
        }
        "resnet-20" => {
            b.conv("conv1", 1, 16, 3, 1, 1);
            b.bn("bn1", 16);
            b.relu();
            let mut c = 16;
            for (stage, out) in [(1, 16), (2, 32), (3, 64)] {
                for blk in 0..3 {
                    let stride = if stage > 1 && blk == 0 { 2 } else { 1 };
                    let p = format!("layer{stage}.{blk}");
                    let skip_in = b.last.clone();
                    b.conv(&format!("{p}.conv1"), c, out, 3, stride, 1);
                    b.bn(&format!("{p}.bn1"), out);
                    b.relu();
                    b.conv(&format!("{p}.conv2"), out, out, 3, 1, 1);
                    let main = b.bn(&format!("{p}.bn2"), out);
                    let skip = if stride != 1 || c != out {
                        b.last = skip_in;
                        b.conv(&format!("{p}.shortcut.conv"), c, out, 1, stride, 0);
                        b.bn(&format!("{p}.shortcut.bn"), out)
                    } else {
                        skip_in
                    };
                    b.last = b.g.push(&format!("{p}.add"), Op::Add, &[&main, &skip]);
                    b.relu();
                    c = out;
                }
            }
            b.last = b.g.push("gap", Op::GlobalAveragePool, &[&b.last.clone()]);
            b.flatten();
            b.linear("fc", 64, 10);
        }
        _ => {
            return Err(EngineError::Config(format!(
                "unknown zoo model '{name}'; known: {}",
                NAMES.join(", ")
            )));
        }
    }
    Ok(b.finish())
}

struct Builder {
    g: Graph,
    rng: Rng,
    last: String,
    count: usize,
}

impl Builder {
    fn new(name: &str, seed: u64) -> Self {
        Builder {
            g: Graph::new(name, "input", &[1, 28, 28]),
            rng: Rng::new(seed),
            last: "input".into(),
            count: 0,
        }
    }

    fn uniform(&mut self, shape: Vec<usize>, bound: f32) -> Tensor {
        let n = shape.iter().product();
        Tensor::f32(shape, (0..n).map(|_| self.rng.range(-bound, bound)).collect())
    }

    fn auto(&mut self, kind: &str) -> String {
        self.count += 1;
        format!("{kind}{}", self.count)
    }

    fn node(&mut self, name: &str, op: Op, extra: &[String]) -> String {
        let mut ins = vec![self.last.as_str()];
        ins.extend(extra.iter().map(|s| s.as_str()));
        self.last = self.g.push(name, op, &ins.iter().map(|s| &**s).collect::<Vec<_>>());
        self.last.clone()
    }

    /// PyTorch's Linear init: weight and bias uniform in ±1/sqrt(fan_in).
    fn linear(&mut self, name: &str, fan_in: usize, out: usize) {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let w = self.uniform(vec![out, fan_in], bound);
        let bias = self.uniform(vec![out], bound);
        let w = self.g.add_weight(&format!("{name}.weight"), w);
        let bias = self.g.add_weight(&format!("{name}.bias"), bias);
        self.node(name, Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true }, &[w, bias]);
    }

    /// PyTorch's Conv2d init: uniform in ±1/sqrt(fan_in).
    fn conv(&mut self, name: &str, cin: usize, cout: usize, k: usize, stride: usize, pad: usize) {
        let bound = 1.0 / ((cin * k * k) as f32).sqrt();
        let w = self.uniform(vec![cout, cin, k, k], bound);
        let bias = self.uniform(vec![cout], bound);
        let w = self.g.add_weight(&format!("{name}.weight"), w);
        let bias = self.g.add_weight(&format!("{name}.bias"), bias);
        let attrs = ConvAttrs { strides: [stride; 2], pads: [pad; 4], ..Default::default() };
        self.node(name, Op::Conv(attrs), &[w, bias]);
    }

    fn bn(&mut self, name: &str, c: usize) -> String {
        let names: Vec<String> =
            [("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)]
                .iter()
                .map(|(p, v)| self.g.add_weight(&format!("{name}.{p}"), Tensor::f32(vec![c], vec![*v; c])))
                .collect();
        self.node(name, Op::BatchNormalization { epsilon: 1e-5, momentum: 0.9 }, &names)
    }

    fn relu(&mut self) {
        let n = self.auto("relu");
        self.node(&n, Op::Relu, &[]);
    }

    fn maxpool(&mut self, k: usize) {
        let n = self.auto("pool");
        self.node(&n, Op::MaxPool(PoolAttrs::square(k)), &[]);
    }

    fn flatten(&mut self) {
        let n = self.auto("flatten");
        self.node(&n, Op::Flatten { axis: 1 }, &[]);
    }

    fn dropout(&mut self, ratio: f32) {
        let n = self.auto("dropout");
        self.node(&n, Op::Dropout { ratio }, &[]);
    }

    fn finish(mut self) -> Graph {
        let out = self.last.clone();
        self.g.outputs = vec![deepshrink_graph::ValueInfo::batched(&out, &[10])];
        self.g
    }
}

#[cfg(test)]
mod tests {
    /// Counts by hand from the layer list above (conv: cout·cin·k² + cout; batch norm: 2·c;
    /// fc: out·in + out); vgg-small's 1,676,650 matches `deepshrink train --model vgg-small`.
    #[test]
    fn student_sizes() {
        let count = |n| super::build(n, 0).unwrap().param_count();
        assert_eq!(count("vgg-small"), 1_676_650);
        assert_eq!(count("cnn-small"), 160 + 32 + 4_640 + 64 + 156_900 + 1_010);
        assert_eq!(count("cnn-tiny"), 80 + 16 + 1_168 + 32 + 31_400 + 410);
        assert!(1_676_650 / count("cnn-small") >= 10 && 1_676_650 / count("cnn-tiny") >= 50);
        assert_eq!(count("mlp-tiny"), 31_400 + 1_640 + 410);
        assert!(1_676_650 / count("mlp-tiny") >= 50);
    }
}

"""Top-1 of exported XNOR-Net models in onnxruntime, on the 10,000 MNIST test images of
data/mnist (normalised as deepshrink does: (x / 255 - 0.1307) / 0.3081). Checks that the stored
graph (ONNX Sign nodes) runs outside deepshrink with the accuracy deepshrink measured.

    deepshrink export --to /tmp/lenet-5.xnor.onnx bench/results/quantization/lenet-5.xnor.dsk
    python3 bench/xnor_onnxruntime.py /tmp/lenet-5.xnor.onnx [more.onnx ...]
"""
import gzip
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

M = os.path.join(os.path.dirname(__file__), "..", "data", "mnist")


def load(name, offset):
    return np.frombuffer(gzip.open(os.path.join(M, name)).read(), np.uint8, offset=offset)


x = load("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
x = (x - 0.1307) / 0.3081
y = load("t10k-labels-idx1-ubyte.gz", 8)
for f in sys.argv[1:]:
    s = ort.InferenceSession(f, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    pred = np.concatenate([s.run(None, {name: x[i:i + 1000]})[0].argmax(1) for i in range(0, len(y), 1000)])
    ops = [n.op_type for n in onnx.load(f).graph.node]
    print(f"{f}: onnxruntime {ort.__version__} top-1 {100 * (pred == y).mean():.2f}% ops {ops}")

"""Independent PyTorch check of distillation as the recovery step (issue 6).

Repeats recipes/lenet-300-100-kd.toml's first stage outside deepshrink: the committed
LeNet-300-100 (98.41%), per-layer magnitude pruning (fc1/fc2 to SPARSITY, fc3 to FC3), then
EPOCHS of masked fine-tuning (Adam 1e-3, cosine to 0, batch 128) on the first LIMIT training
images, once with the uncompressed model's soft targets (alpha*T^2*KL + (1-alpha)*CE, PyTorch's
kl_div, the loss Hinton et al. 2015 and deepshrink's `kd` use) and once with cross-entropy only.
Checks that the sign and size of deepshrink's with/without difference are not a bug of ours.

    python3 bench/distillation_recovery_reference.py SPARSITY FC3 T ALPHA EPOCHS LIMIT [SEEDS [TEACHER]]
    python3 bench/distillation_recovery_reference.py 0.98 0.9 4 0.9 1 60000     # recipe's first stage

TEACHER (default: the model itself) is an .onnx file run by onnxruntime for the soft targets,
e.g. bench/results/distillation/vgg-small.onnx (recipes/lenet-300-100-kd-limited.toml's first
stage: 0.9 0.5 4 0.5 50 1000 3 bench/results/distillation/vgg-small.onnx).
"""
import gzip, sys, numpy as np, torch, torch.nn.functional as F, onnx
from onnx import numpy_helper
torch.set_num_threads(1)
def idx(p):
    b = gzip.open(p).read()
    if b[2] == 8 and b[3] == 3:
        return np.frombuffer(b, np.uint8, offset=16).reshape(-1, 784)
    return np.frombuffer(b, np.uint8, offset=8)
d = 'data/mnist/'
xtr = torch.tensor((idx(d+'train-images-idx3-ubyte.gz')/255.0 - 0.1307)/0.3081, dtype=torch.float32)
ytr = torch.tensor(idx(d+'train-labels-idx1-ubyte.gz').astype(np.int64))
xte = torch.tensor((idx(d+'t10k-images-idx3-ubyte.gz')/255.0 - 0.1307)/0.3081, dtype=torch.float32)
yte = torch.tensor(idx(d+'t10k-labels-idx1-ubyte.gz').astype(np.int64))
m = onnx.load('bench/results/deep-compression/lenet-300-100.onnx')
W = {t.name: torch.tensor(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
def fwd(p, x):
    h = F.relu(x @ p['fc1.weight'].T + p['fc1.bias'])
    h = F.relu(h @ p['fc2.weight'].T + p['fc2.bias'])
    return h @ p['fc3.weight'].T + p['fc3.bias']
acc = lambda p: (fwd(p, xte).argmax(1) == yte).float().mean().item()
print('model before compression, test top-1', acc(W))
if len(sys.argv) > 8:
    import onnxruntime as ort
    sess = ort.InferenceSession(sys.argv[8])
    lim = int(sys.argv[6])
    xin = xtr[:lim].numpy().reshape(-1, 1, 28, 28)
    tl = torch.tensor(np.concatenate([sess.run(None, {sess.get_inputs()[0].name: xin[i:i + 256]})[0]
                                      for i in range(0, lim, 256)]))
    print('teacher', sys.argv[8], 'train top-1 on the first', lim, (tl.argmax(1) == ytr[:lim]).float().mean().item())
else:
    with torch.no_grad(): tl = fwd(W, xtr)
sp = {'fc1.weight': float(sys.argv[1]), 'fc2.weight': float(sys.argv[1]), 'fc3.weight': float(sys.argv[2])}
T, a, epochs, limit = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
def run(kd, seed):
    torch.manual_seed(seed)
    p = {k: v.clone().requires_grad_(True) for k, v in W.items()}
    masks = {}
    for k, s in sp.items():
        w = p[k].detach().abs().flatten()
        kth = int(round(s * w.numel()))
        thr = w.sort().values[kth - 1]
        masks[k] = (p[k].detach().abs() > thr).float()
        with torch.no_grad(): p[k].mul_(masks[k])
    a0 = acc(p)
    opt = torch.optim.Adam(p.values(), lr=1e-3)
    n = min(limit, len(ytr)); steps = (n + 127) // 128
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + np.cos(np.pi * t / (steps * epochs))))
    for e in range(epochs):
        perm = torch.randperm(n)
        for i in range(steps):
            b = perm[i*128:(i+1)*128]
            s = fwd(p, xtr[b])
            ce = F.cross_entropy(s, ytr[b])
            if kd:
                kl = F.kl_div(F.log_softmax(s / T, 1), F.softmax(tl[b] / T, 1), reduction='batchmean')
                loss = a * T * T * kl + (1 - a) * ce
            else:
                loss = ce
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
            with torch.no_grad():
                for k in masks: p[k].mul_(masks[k])
    return a0, acc(p)
for seed in range(int(sys.argv[7]) if len(sys.argv) > 7 else 1):
    (a0, w), (_, wo) = run(True, seed), run(False, seed)
    print(f'seed {seed}: after pruning {a0:.4f}; with teacher {w:.4f}, without {wo:.4f}, diff {100*(w-wo):+.2f}')

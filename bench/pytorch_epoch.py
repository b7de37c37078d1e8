#!/usr/bin/env python3
"""PyTorch peer benchmark: wall time of one MNIST training epoch on CPU.

    python3 bench/pytorch_epoch.py [--models lenet-300-100,lenet-5] [--epochs 1] [--repeats 3]
                                   [--data data/mnist] [--threads 2]

For each model and repeat: fresh model (PyTorch default init, seeded by repeat), Adam lr 1e-3,
batch 128, data reshuffled each epoch. Only the training loop is timed (time.perf_counter);
data is decoded and normalised into in-memory tensors beforehand. Prints one JSON line per model:

    {"peer":"pytorch","model":"lenet-5","epoch_seconds":[...],"median":...,"test_accuracy":...}

epoch_seconds holds every timed epoch (repeats x epochs); test_accuracy is from the last repeat.
"""

import argparse
import gzip
import json
import os
import platform
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 0.1307, 0.3081


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic >> 8 != 0x08:  # 0x00 0x00 0x08 <ndim>: unsigned byte
        raise ValueError(f"{path}: unsupported IDX magic {magic:#x}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims)


def load_mnist(root):
    def split(prefix):
        x = read_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"))
        x = (x.astype(np.float32) / 255.0 - MEAN) / STD
        return (torch.from_numpy(x).unsqueeze(1).contiguous(),
                torch.from_numpy(y.astype(np.int64)))

    return split("train"), split("t10k")


class LeNet300100(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(nn.Module):
    """Caffe LeNet-5 (Han et al.): conv20-pool-conv50-pool-fc500-relu-fc10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)
        x = F.max_pool2d(self.conv2(x), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


MODELS = {"lenet-300-100": LeNet300100, "lenet-5": LeNet5}


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def run(name, train, test, epochs, batch, lr, seed):
    torch.manual_seed(seed)
    model = MODELS[name]()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xtr, ytr = train
    n = len(xtr)
    gen = torch.Generator().manual_seed(seed)
    times = []
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            xb, yb = xtr[idx], ytr[idx]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times, evaluate(model, *test)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", default="lenet-300-100,lenet-5")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in names:
        if m not in MODELS:
            ap.error(f"unknown model {m!r}; choose from {', '.join(MODELS)}")

    train, test = load_mnist(args.data)
    loadavg = round(os.getloadavg()[0], 2)  # a busy machine inflates times badly; record it
    for name in names:
        all_times, acc = [], None
        for r in range(args.repeats):
            times, acc = run(name, train, test, args.epochs, args.batch, args.lr, seed=r)
            all_times.extend(times)
        print(json.dumps({
            "peer": "pytorch",
            "model": name,
            "epoch_seconds": [round(t, 4) for t in all_times],
            "median": round(statistics.median(all_times), 4),
            "test_accuracy": acc,
            "epochs": args.epochs,
            "repeats": args.repeats,
            "batch": args.batch,
            "threads": args.threads,
            "torch": torch.__version__,
            "cpu": cpu_name(),
            "loadavg_start": loadavg,
        }), flush=True)


if __name__ == "__main__":
    main()

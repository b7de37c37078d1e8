"""Collects the quantization-aware-training rows of bench/results/quantization/training.md into
training.json, from the compress reports (<file>.json) and `deepshrink eval --json` outputs
(<file>.eval.json) in that directory, plus the fp32 baselines and the PTQ rows of results.json;
and, where `deepshrink bench <file>.dsk --batch 1 --runs 300 --json > <file>.bench.json` was run,
the median batch-1 latency of the file against the dense f32 model of the same run.

    python3 bench/qat_table.py
"""
import json
import os

D = os.path.join(os.path.dirname(__file__), "results", "quantization")
ROWS = [
    # (file stem, net, method, recipe, start)
    ("lenet-300-100.bc", "lenet-300-100", "BinaryConnect (1-bit, layer scale)", "binaryconnect.toml", "trained"),
    ("lenet-300-100.ttq", "lenet-300-100", "TTQ (2-bit, two learned scales)", "ttq.toml", "trained"),
    ("lenet-5.twn", "lenet-5", "TWN (2-bit)", "twn.toml", "trained"),
    ("lenet-5.ttq", "lenet-5", "TTQ (2-bit, two learned scales)", "ttq.toml", "trained"),
    ("lenet-5.int4-lsq", "lenet-5", "int4 per-channel QAT, LSQ", "int4-lsq.toml", "trained"),
    ("lenet-300-100.fixed16-sr", "lenet-300-100", "fixed point 16-bit, stochastic rounding", "fixed16-sr.toml", "scratch"),
    ("lenet-300-100.fixed8-sr", "lenet-300-100", "fixed point 8-bit, stochastic rounding", "fixed8-sr.toml", "scratch"),
    ("lenet-300-100.fixed8-nearest", "lenet-300-100", "fixed point 8-bit, round to nearest", "fixed8-nearest.toml", "scratch"),
    ("lenet-300-100.xnor", "lenet-300-100", "XNOR-Net (fc2 binary weights and inputs)", "xnor.toml", "trained"),
    ("lenet-300-100.xnor-all", "lenet-300-100", "XNOR-Net, every layer binary (float_ends = false)", "xnor-all.toml", "trained"),
    ("lenet-5.xnor", "lenet-5", "XNOR-Net (conv2, fc1 binary weights and inputs)", "xnor.toml", "trained"),
]

out = {"command": "deepshrink compress <net or .onnx> --recipe recipes/<recipe> --seed <s> --out <file>.dsk "
                  "--report <file>.json; deepshrink eval <file>.dsk --json > <file>.eval.json",
       "baselines": {"lenet-300-100": 0.9841, "lenet-5": 0.9930},
       "rows": []}
for stem, net, method, recipe, start in ROWS:
    path = os.path.join(D, stem + ".json")
    if not os.path.exists(path):
        continue
    rep = json.load(open(path))
    ev = json.load(open(os.path.join(D, stem + ".eval.json")))
    weights = sum(l["weights"] for l in rep["layers"])
    wbytes = sum(l["bytes_final"] for l in rep["layers"])
    out["rows"].append({
        "file": stem + ".dsk",
        "net": net,
        "method": method,
        "recipe": "recipes/" + recipe,
        "start": start,
        "train_time_top1": rep["stages"][-1]["test_top1"],
        "dsk_top1": ev["top1"],
        "encodings": sorted({l["encoding"] for l in rep["layers"]}),
        "weight_bytes_f32": 4 * weights,
        "weight_bytes_stored": wbytes,
        "bits_per_weight": round(8 * wbytes / weights, 3),
        "dsk_bytes": rep["dsk_file_bytes"],
        "file_ratio": round(rep["file_ratio"], 2),
    })
    q = [l for l in rep["layers"] if l["encoding"] == "quant"]
    if q and len(q) < len(rep["layers"]):
        qw = sum(l["weights"] for l in q)
        out["rows"][-1]["quant_layers"] = [l["name"] for l in q]
        out["rows"][-1]["quant_layers_bits_per_weight"] = round(8 * sum(l["bytes_final"] for l in q) / qw, 3)
    bench = os.path.join(D, stem + ".bench.json")
    if os.path.exists(bench):
        b = json.load(open(bench))
        out["rows"][-1]["latency_batch1_us"] = {"dsk": round(b["compressed_total_us"], 1), "dense_f32": round(b["dense_total_us"], 1)}
json.dump(out, open(os.path.join(D, "training.json"), "w"), indent=1)
for r in out["rows"]:
    print(f"| {r['net']} | {r['method']} | {r['train_time_top1']*100:.2f}% | {r['dsk_top1']*100:.2f}% "
          f"| {r['bits_per_weight']:.2f} | {r['weight_bytes_stored']:,} | {r['dsk_bytes']:,} | {r['file_ratio']}x |")

"""Markdown table of the distillation results in bench/results/distillation/*.json.

python3 bench/distillation_table.py [DIR]  (after bash bench/distillation.sh; DIR defaults to
bench/results/distillation/full, the first 10k-image matrix is bench/results/distillation, the
data-limited runs bench/results/distillation/limited); students or methods without a report are
left out)
"""
import json
import pathlib
import sys

OUT = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).parent / "results" / "distillation" / "full"
rows = []
for student in ["cnn-tiny", "mlp-tiny", "cnn-small"]:
    if not list(OUT.glob(f"{student}-*.json")):
        continue
    alone = None
    kd = OUT / f"{student}-kd.json"
    if kd.exists():
        r = json.loads(kd.read_text())
        alone = r["baseline_top1"]
        rows.append((student, r["student"]["params"], r["teacher"]["params"] / r["student"]["params"],
                     "alone", alone, [x["baseline"]["top1"] for x in r["runs"]], None))
    for m in ["kd", "hint", "at"]:
        p = OUT / f"{student}-{m}.json"
        if not p.exists():
            continue
        r = json.loads(p.read_text())
        d = r["distilled_top1"]
        delta = None if alone is None else d["mean"] - alone["mean"]
        rows.append((student, r["student"]["params"], r["teacher"]["params"] / r["student"]["params"],
                     m, d, [x["distilled"]["top1"] for x in r["runs"]], delta))

print("| student | params | teacher/student | training | test top-1 mean ± std | per seed | vs alone |")
print("|---|---:|---:|---|---:|---|---:|")
for s, p, ratio, m, d, per, delta in rows:
    seeds = ", ".join(f"{x * 100:.2f}" for x in per)
    dl = "" if delta is None else f"{delta * 100:+.2f}"
    print(f"| {s} | {p:,} | {ratio:.1f}x | {m} | {d['mean'] * 100:.2f}% ± {d['std'] * 100:.2f} | {seeds} | {dl} |")

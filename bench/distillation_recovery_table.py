"""Markdown table of distillation-as-recovery runs: `deepshrink compress` reports of one recipe
with a compared [teacher], one per seed; per stage, test top-1 with and without the teacher
(mean ± sample std over the seeds) and the paired difference.

python3 bench/distillation_recovery_table.py bench/results/distillation/recovery/<recipe>.seed*.json
"""
import json
import statistics
import sys

reports = [json.load(open(p)) for p in sorted(sys.argv[1:])]
if not reports:
    sys.exit("no reports given")


def ms(v):
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v) * 100:.2f}% ± {sd * 100:.2f}"


print(f"| stage | with teacher (mean ± std, {len(reports)} seeds) | without teacher | "
      "difference, points (mean ± std of the paired differences) | per seed (with / without) |")
print("|---|---:|---:|---:|---|")
for i, st in enumerate(reports[0]["stages"]):
    w = [r["stages"][i]["test_top1"] for r in reports]
    o = [r["teacher"]["without_teacher"][i]["test_top1"] for r in reports]
    d = [a - b for a, b in zip(w, o)]
    sd = statistics.stdev(d) if len(d) > 1 else 0.0
    per = ", ".join(f"{a * 100:.2f} / {b * 100:.2f}" for a, b in zip(w, o))
    print(f"| {st['stage']} | {ms(w)} | {ms(o)} | {statistics.mean(d) * 100:+.2f} ± {sd * 100:.2f} | {per} |")
dsk = [r["dsk_accuracy"]["top1"] for r in reports]
print(f"\n.dsk (with teacher): {ms(dsk)}; file {reports[0]['dsk_file_bytes']:,} bytes "
      f"({reports[0]['file_ratio']:.1f}x smaller)")

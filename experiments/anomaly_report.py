"""The report of experiments/anomaly.py: table.md beside the published numbers, auroc.png, anomalies.png,
metrics.jsonl (one record per class) and the metrics of results.json.

The published column: Golan & El-Yaniv, "Deep Anomaly Detection Using Geometric Transformations", NeurIPS 2018,
Table 1, Fashion-MNIST rows (AUROC in %, each method trained on one class, tested against all others). Only the
MEANS over the ten classes could be found here, in a public summary of the paper (the per-class rows and DAGMM's
mean were not found, and are left blank rather than guessed); see BUILD_NOTES.md "anomaly recipe (issue 24)".
"""
import json
import os
import time

import numpy as np

PUBLISHED_SOURCE = ("Golan & El-Yaniv, NeurIPS 2018 (arXiv 1805.10917), Table 1, Fashion-MNIST mean AUROC (%), as "
                    "quoted by a public summary of the paper; per-class rows not found")
PUBLISHED_MEAN = {"RAW-OC-SVM": 92.8, "CAE-OC-SVM": 91.7, "DSEBM": 86.6, "ADGAN": 88.4, "GEOM (OURS)": 93.5}
BEST_NON_SELF_SUPERVISED = "RAW-OC-SVM"


def read_class(path: str, names):
    """The record ``path`` holds if it has the AUROC of every score in ``names``, else None (an older record is
    scored again, its training resumed from its checkpoints)."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rec = json.load(f)
    return rec if all(f"{n}_auroc" in rec for n in names) else None


def write_class(rec: dict, names, t0: float, path: str, scores):
    """Prints the class's line (the AUROC of each score in ``names``) and writes its record to ``path``, with the
    indices of the 8 most normal and the 8 most anomalous test images by ``scores`` ``(N,)``."""
    order = np.argsort(np.asarray(scores))
    rec.update(most_normal=order[:8].tolist(), most_anomalous=order[::-1][:8].tolist())
    rec["class_s"] = time.perf_counter() - t0
    aurocs = ", ".join(f"{s} AUROC {rec[f'{s}_auroc']:.4f}" for s in names)
    print(f"class {rec['class']} ({rec['name']}): {aurocs} ({rec['class_s']:.0f} s)", flush=True)
    with open(path, "w") as f:
        json.dump(rec, f)


def write(out: str, per_class: dict, scorers, test_images, k: int) -> dict:
    """Write the report files into ``out`` from ``{class: record}``; return the metrics of results.json."""
    from deepcore.train import MetricsLog

    classes = sorted(per_class)
    means = {s: float(np.mean([per_class[c][f"{s}_auroc"] for c in classes])) for s in scorers}
    with MetricsLog(out) as log:
        for i, c in enumerate(classes):
            log.append({"step": i, **{key: v for key, v in per_class[c].items() if not key.startswith("most_")}})
    _table(out, per_class, classes, scorers, means, k)
    _bars(out, per_class, classes, scorers)
    _anomalies(out, per_class, classes, test_images)
    metrics = {f"{s}_mean_auroc": means[s] for s in scorers}
    metrics.update({f"{s}_auroc_class_{c}": per_class[c][f"{s}_auroc"] for s in scorers for c in classes})
    metrics.update(classes=len(classes), mean_seconds_per_class=float(np.mean([per_class[c]["class_s"]
                                                                                for c in classes])))
    best = PUBLISHED_MEAN[BEST_NON_SELF_SUPERVISED] / 100
    metrics["published_best_non_self_supervised_mean_auroc"] = best
    return metrics


def _table(out, per_class, classes, scorers, means, k):
    head = [f"ours {s}" + (f" (K={k})" if s.startswith("geo") else "") for s in scorers] + list(PUBLISHED_MEAN)
    lines = ["# One-class AUROC (%) on Fashion-MNIST, normal class vs the other nine", "",
             "| class | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    blank = [""] * len(PUBLISHED_MEAN)   # per-class published numbers: not found, not guessed
    for c in classes:
        ours = [f"{100 * per_class[c][f'{s}_auroc']:.1f}" for s in scorers]
        lines.append(f"| {c} {per_class[c]['name']} | " + " | ".join(ours + blank) + " |")
    mean = [f"**{100 * means[s]:.1f}**" for s in scorers] + [f"{v:.1f}" for v in PUBLISHED_MEAN.values()]
    lines += [f"| mean of {len(classes)} | " + " | ".join(mean) + " |", "",
              f"Published columns: {PUBLISHED_SOURCE}. The published means are over all ten classes; "
              "ours over the classes listed."]
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def _bars(out, per_class, classes, scorers):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / len(scorers)
    for i, s in enumerate(scorers):
        ax.bar(np.arange(len(classes)) + i * width, [per_class[c][f"{s}_auroc"] for c in classes], width, label=s)
    ax.axhline(PUBLISHED_MEAN[BEST_NON_SELF_SUPERVISED] / 100, color="k", ls="--", lw=1,
               label=f"{BEST_NON_SELF_SUPERVISED} mean (published)")
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, [per_class[c]["name"] for c in classes], rotation=30)
    ax.set_ylim(min([0.5] + [per_class[c][f"{s}_auroc"] - 0.05 for c in classes for s in scorers]), 1.0)
    ax.set_ylabel("AUROC")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "auroc.png"), dpi=100)
    plt.close(fig)


def _anomalies(out, per_class, classes, test_images):
    from deepcore.gan.grid import save_grid

    rows = [np.asarray(test_images)[per_class[c]["most_normal"] + per_class[c]["most_anomalous"]] for c in classes]
    images = np.concatenate(rows).astype(np.float32) / 127.5 - 1.0
    save_grid(images, os.path.join(out, "anomalies.png"), len(classes))
    with open(os.path.join(out, "anomalies.json"), "w") as f:
        json.dump({"rows": [per_class[c]["name"] for c in classes],
                   "columns": "8 most normal test images, then the 8 most anomalous (by the last scorer's default "
                              "score)"}, f)

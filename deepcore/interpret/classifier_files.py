"""The files a trained classifier leaves in its run folder: ``calibration.json`` (per-class accuracy, confusion
matrix, ECE/MCE, NLL), ``reliability.png`` and, for images, ``saliency.png`` (input-gradient maps)."""
from __future__ import annotations

import json
import os
from typing import Callable, Optional, Sequence

import numpy as np

from deepcore.interpret.attribution import attribution_map, saliency
from deepcore.interpret.calibration import classifier_report
from deepcore.interpret.plots import reliability_diagram, save_overlays


def classifier_files(out_dir: str, probs, labels, class_names: Sequence[str], *,
                     logits_fn: Optional[Callable] = None, images=None, examples: int = 8) -> dict:
    """Write ``calibration.json`` and ``reliability.png`` for class probabilities ``probs (N, K)`` of ``labels
    (N,)``; with ``logits_fn(images) -> (B, K)`` and ``images (N, H, W, C)`` also ``saliency.png``:
    ``|d logit(true class) / d pixel|`` of the first ``examples`` images, titled true -> predicted class.
    Returns ``{"test_ece", "test_mce", "test_nll_nats", "test_worst_class_accuracy"}``."""
    cal = classifier_report(probs, labels, num_classes=len(class_names))
    with open(os.path.join(out_dir, "calibration.json"), "w") as f:
        json.dump(dict(cal, class_names=list(class_names)), f, indent=1)
    reliability_diagram(os.path.join(out_dir, "reliability.png"), probs, labels,
                        title=f"test split: accuracy {cal['accuracy']:.4f}, ECE {cal['ece']:.4f}")
    if logits_fn is not None and images is not None:
        x, y = images[:examples], np.asarray(labels[:examples])
        maps = attribution_map(saliency(logits_fn, np.asarray(x, np.float32), y), "abs_max")
        save_overlays(os.path.join(out_dir, "saliency.png"), x, maps, titles=[
            f"{class_names[t]}\n-> {class_names[p]}" for t, p in zip(y, np.asarray(probs[:examples]).argmax(-1))])
    return {"test_ece": cal["ece"], "test_mce": cal["mce"], "test_nll_nats": cal["nll_nats"],
            "test_worst_class_accuracy": min(cal["per_class_accuracy"])}

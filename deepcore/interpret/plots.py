"""Pictures: attribution maps over images, reliability diagrams, training curves. matplotlib (Agg), PNG files."""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _as_map(a) -> np.ndarray:
    a = np.asarray(a, np.float32)
    return np.abs(a).sum(-1) if a.ndim == 3 else a


def save_overlays(path: str, images, attributions, *, titles: Optional[Sequence[str]] = None,
                  alpha: float = 0.55, cmap: str = "inferno") -> str:
    """A PNG with one column per example: the image on top, the attribution map laid over it below.

    ``images (N, H, W, C)`` (C = 1 or 3; uint8 or float) or ``(N, H, W)``; ``attributions`` the same
    shape or ``(N, H, W)`` maps (channels are reduced by sum of absolute values). Each map is scaled
    to its own 99th percentile. Returns ``path``.
    """
    plt = _plt()
    images, attributions = np.asarray(images), np.asarray(attributions)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or attributions.shape[:3] != images.shape[:3]:
        raise ValueError(f"expected images (N, H, W[, C]) and attributions (N, H, W[, C]) for the same N, H, W; "
                         f"got {images.shape} and {attributions.shape}")
    n = images.shape[0]
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n + 0.4, 3.4), squeeze=False)
    for i in range(n):
        img = images[i].astype(np.float32)
        img = (img - img.min()) / max(float(img.max() - img.min()), 1e-12)
        gray = img[..., 0] if img.shape[-1] == 1 else None
        m = _as_map(attributions[i])
        m = np.clip(m / max(float(np.percentile(np.abs(m), 99)), 1e-12), -1, 1)
        for row in (0, 1):
            ax = axes[row, i]
            ax.imshow(gray if gray is not None else img, cmap="gray" if gray is not None else None)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[1, i].imshow(m, cmap=cmap, alpha=alpha)
        if titles is not None:
            axes[0, i].set_title(str(titles[i]), fontsize=8)
    axes[0, 0].set_ylabel("input", fontsize=8)
    axes[1, 0].set_ylabel("attribution", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reliability_diagram(path: str, probs, labels, *, num_bins: int = 15, title: Optional[str] = None,
                        others: Optional[dict] = None) -> str:
    """A PNG: accuracy per confidence bin against the diagonal (perfect calibration), with the ECE in the
    legend and the bin counts below. ``others``: more ``{label: probs}`` drawn on the same axes (e.g. an
    ensemble against one member; ``probs`` may then be None). Returns ``path``."""
    from deepcore.interpret.calibration import calibration_bins, expected_calibration_error

    plt = _plt()
    series = {"model": probs} if others is None else {**({"model": probs} if probs is not None else {}), **others}
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(4.6, 5.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1, label="perfectly calibrated")
    width = 1.0 / num_bins
    for j, (name, p) in enumerate(series.items()):
        bins = {k: np.asarray(v) for k, v in calibration_bins(p, labels, num_bins).items()}
        ece = float(expected_calibration_error(p, labels, num_bins))
        keep = bins["count"] > 0
        centers = bins["edges"][:-1] + width / 2
        ax.plot(bins["confidence"][keep], bins["accuracy"][keep], marker="o", markersize=3,
                label=f"{name} (ECE {ece:.3f})")
        shift = (j - (len(series) - 1) / 2) * width / max(len(series), 1)
        axc.bar(centers + shift, bins["count"], width=width / max(len(series), 1), alpha=0.7)
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or "reliability diagram")
    axc.set_xlabel("confidence")
    axc.set_ylabel("count")
    axc.set_yscale("log")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def train_test_curves(path: str, curves: dict, *, gaps: Optional[dict] = None, train_label: str = "train",
                      title: Optional[str] = None) -> str:
    """A PNG with one panel per run: train and test accuracy over steps, titled with the generalisation gap.

    ``curves``: ``{run name: [{"step": int, "train_accuracy": float, "test_accuracy": float}, ...]}`` (the
    evaluations of each run, in order); ``gaps``: ``{run name: gap}`` measured elsewhere (default: train minus
    test accuracy of the last evaluation). Returns ``path``."""
    plt = _plt()
    cols = min(3, len(curves))
    rows = -(-len(curves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, sharey=True)
    for ax, (name, curve) in zip(axes.flat, curves.items()):
        steps = [c["step"] for c in curve]
        ax.plot(steps, [c["train_accuracy"] for c in curve], label=train_label)
        ax.plot(steps, [c["test_accuracy"] for c in curve], label="test", linestyle="--")
        gap = gaps[name] if gaps else curve[-1]["train_accuracy"] - curve[-1]["test_accuracy"]
        ax.set_title(f"{name.replace('_', ' ')}: gap {gap:.3f}", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title or "train vs test accuracy (gap: final train - test accuracy)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_curves(out_dir: str, keys: Sequence[str] = ("loss", "accuracy"), *,
                    name: str = "curves.png") -> Optional[str]:
    """``out_dir/curves.png``: each of ``keys`` over steps, train (``key``) and validation (``val_key``), read
    from ``out_dir/metrics.jsonl``; keys no record has are left out. Returns the path (None: nothing to draw)."""
    from deepcore.train.metrics_log import read_metrics

    records = read_metrics(out_dir)
    keys = [k for k in keys if any(k in r or f"val_{k}" in r for r in records)]
    if not keys:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for split, field in (("train", key), ("val", f"val_{key}")):
            pts = [(r["step"], r[field]) for r in records
                   if r.get("split") == split and isinstance(r.get(field), (int, float))]
            if pts:
                ax.plot(*zip(*pts), label="validation" if split == "val" else "train",
                        marker="." if split == "val" else None)
        ax.set_xlabel("step")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

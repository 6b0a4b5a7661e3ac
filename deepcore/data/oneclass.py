"""The one-class protocol: train on the training images of one class, score every test image.

    train, test = one_class_split(train_arrays, test_arrays, normal_class=3)
    # train: the rows of class 3 only; test: every row, plus test["normal"] (bool): label == 3

An anomaly detector is judged by the AUROC of its scores with the other classes as the positives
(``deepcore.metrics.roc_auc(scores, ~test["normal"])``), as in Golan & El-Yaniv (2018) and Ruff et al. (2018).
"""
from __future__ import annotations

import numpy as np


def one_class_split(train: dict, test: dict, normal_class: int, *, label: str = "label"):
    """``(train rows of normal_class, test with a bool "normal" column)`` from dicts of arrays sharing ``N``."""
    for name, split in (("train", train), ("test", test)):
        if label not in split:
            raise KeyError(f"one_class_split: the {name} arrays have no {label!r} column, got {sorted(split)}")
    classes = np.unique(np.asarray(train[label]))
    if normal_class not in classes:
        raise ValueError(f"one_class_split: normal_class: expected one of {classes.tolist()}, got {normal_class}")
    keep = np.asarray(train[label]) == normal_class
    return ({k: np.asarray(v)[keep] for k, v in train.items()},
            dict(test, normal=np.asarray(test[label]) == normal_class))


__all__ = ["one_class_split"]

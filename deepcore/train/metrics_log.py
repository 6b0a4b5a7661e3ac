"""The metrics of a run: ``out_dir/metrics.jsonl`` (one JSON record a line), optionally mirrored to
TensorBoard event files and a Weights & Biases run.

::

    with MetricsLog("runs/mlp", resume_step=None, tensorboard=True, wandb="my-project") as log:
        log.append({"step": 100, "split": "train", "loss": 0.31})
        log.append({"step": 100, "split": "val", "val_loss": 0.35})
    records = read_metrics("runs/mlp")          # the same list as log.records

A record is a dict with an int ``"step"``; ``"split"`` (``"train"``/``"val"``) marks metric records,
``"event"`` (with a ``"message"``) marks notices such as ``"nonfinite"``. TensorBoard and W&B receive every
numeric value of a metric record under its own key (``loss``, ``val_loss``; a population's per-member list
as ``loss/0``, ``loss/1``, ...) at the record's step, and events as text (TensorBoard only).
The optional writers need the ``tracking`` extra (``pip install -e '.[tracking]'``: tensorboardX, wandb).
"""
from __future__ import annotations

import json
import os
import time
from typing import Optional, Sequence, Union

FILE = "metrics.jsonl"


def read_metrics(out_dir_or_path: str) -> list:
    """The records of ``out_dir/metrics.jsonl`` (or of the ``.jsonl`` file given), oldest first; ``[]`` when
    there is no such file."""
    path = os.path.join(out_dir_or_path, FILE) if os.path.isdir(out_dir_or_path) else out_dir_or_path
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _scalars(rec: dict) -> dict:
    """The numeric values of a metric record, by TensorBoard/W&B tag (lists flattened to ``key/i``)."""
    out = {}
    for k, v in rec.items():
        if k == "step" or isinstance(v, (str, bool)) or v is None:
            continue
        if isinstance(v, (int, float)):
            out[k] = float(v)
        elif isinstance(v, list) and all(isinstance(x, (int, float)) for x in v):
            out.update({f"{k}/{i}": float(x) for i, x in enumerate(v)})
    return out


class MetricsLog:
    """Owns ``out_dir/metrics.jsonl`` of one run (and its TensorBoard / W&B mirrors).

    * ``out_dir`` None: records are only kept in memory (``.records``).
    * ``resume_step``: an int keeps the file's records up to that step (those past it came from a run killed
      before its next checkpoint) and drops the rest, and TensorBoard hides its events past it; None starts
      a new file.
    * ``tensorboard``: also write event files into ``out_dir/tb`` (tensorboardX; no TensorFlow needed).
    * ``wandb``: a project name, or a dict of ``wandb.init`` arguments (``project``, ``config``, ``mode``,
      ...), to mirror the records to a W&B run; ``WANDB_MODE=offline`` (or ``mode="offline"``) works without
      network (``wandb sync out_dir/wandb/offline-run-*`` uploads it later). The run id is kept in
      ``out_dir/wandb_run_id``, so a resumed run continues the same W&B run.
    * ``write``: False keeps records in memory only (processes other than 0 of a multi-process run).
    """

    def __init__(self, out_dir: Optional[str], *, resume_step: Optional[int] = None, tensorboard: bool = False,
                 wandb: Union[None, str, dict] = None, write: bool = True):
        self.out_dir = out_dir if write else None
        self.path = os.path.join(out_dir, FILE) if self.out_dir else None
        self.records, self._file, self._tb, self._wandb = [], None, None, None
        if (tensorboard or wandb) and not self.out_dir and write:
            raise ValueError("MetricsLog: tensorboard/wandb need an out_dir, got out_dir=None")
        if self.path is None:
            return
        os.makedirs(out_dir, exist_ok=True)
        if resume_step is not None:
            self.records = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
        with open(self.path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in self.records)
        self._file = open(self.path, "a")
        if tensorboard:
            from tensorboardX import SummaryWriter

            purge = None if resume_step is None else resume_step + 1
            # the suffix keeps a resumed run's file from overwriting one opened in the same second
            self._tb = SummaryWriter(os.path.join(out_dir, "tb"), purge_step=purge,
                                     filename_suffix=f".{time.time_ns()}")
        if wandb:
            self._wandb = _wandb_run(out_dir, wandb, resume=resume_step is not None)

    def append(self, rec: dict) -> None:
        """Add one record (a dict with ``"step"``) to ``.records``, the file and the mirrors."""
        self.records.append(rec)
        if self._file is None:
            return
        self._file.write(json.dumps(rec) + "\n")
        self._file.flush()
        step = int(rec["step"])
        if "event" in rec:
            if self._tb is not None:
                self._tb.add_text(rec["event"], str(rec.get("message", "")), step)
            return
        values = _scalars(rec)
        if self._tb is not None:
            for tag, v in values.items():
                self._tb.add_scalar(tag, v, step)
        if self._wandb is not None and values:
            self._wandb.log(values, step=step)

    def event(self, step: int, kind: str, message: str) -> str:
        """Append the notice ``{"step", "event": kind, "message"}``; returns ``message``."""
        self.append({"step": step, "event": kind, "message": message})
        return message

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        """Close the file and the mirrors (finishing the W&B run); ``.records`` stays readable."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _wandb_run(out_dir: str, spec: Union[str, dict], resume: bool):
    """A W&B run logging into ``out_dir/wandb``, the same run again when resuming."""
    try:
        import wandb
    except ImportError as e:
        raise ImportError("MetricsLog(wandb=...) needs the wandb package: pip install -e '.[tracking]'") from e
    kwargs = {"project": spec} if isinstance(spec, str) else dict(spec)
    id_file = os.path.join(out_dir, "wandb_run_id")
    if resume and os.path.exists(id_file):
        with open(id_file) as f:
            kwargs.setdefault("id", f.read().strip())
        kwargs.setdefault("resume", "allow")
    kwargs.setdefault("dir", out_dir)
    run = wandb.init(**kwargs)
    with open(id_file, "w") as f:
        f.write(run.id)
    return run


def eval_summary(records: list, minutes: Sequence[float] = (5, 10, 15)) -> dict:
    """From ``metrics.jsonl`` records: the last evaluation's ``val_accuracy`` and ``val_loss_nats``, the
    ``val_accuracy`` reached within each of ``minutes`` (by the records' ``val_wall_s``), and the last train
    record's ``train_examples_per_s`` (None where absent)."""
    vals = [r for r in records if r.get("split") == "val"]
    rates = [r["examples_per_s"] for r in records if r.get("split") == "train" and "examples_per_s" in r]
    out = {"val_accuracy": vals[-1].get("val_accuracy") if vals else None,
           "val_loss_nats": vals[-1].get("val_loss") if vals else None}
    for m in minutes:
        done = [r["val_accuracy"] for r in vals if r.get("val_wall_s", float("inf")) <= 60 * m]
        out[f"val_accuracy_at_{m:g}min"] = done[-1] if done else None
    return dict(out, train_examples_per_s=rates[-1] if rates else None)

"""deepcore.train.budget: training time excluding evaluations, across resumed segments, driving the schedule."""
import pytest

import deepcore.train.budget as budget_module
from deepcore.train import TimeBudget, warmup_cosine


def test_budget_stops_on_training_time_excludes_evaluations_and_drives_the_schedule(monkeypatch):
    clock = {"t": 100.0}
    monkeypatch.setattr(budget_module.time, "perf_counter", lambda: clock["t"])
    b = TimeBudget(minutes=1.0, total_steps=None, spent=30.0)    # 30 s already spent in an earlier segment
    seen = []

    def source(start):
        i = start
        while True:
            yield i
            i += 1

    def evaluate(state, batch):
        clock["t"] += 50.0          # a long evaluation: must not count
        return {"loss": 1.0}

    ev = b.excluded(evaluate)
    for x in b.batches(source)(5):
        seen.append((x, b.step))
        clock["t"] += 10.0          # a training step
        if x == 6:
            assert ev(None, None)["train_s"] == pytest.approx(50.0)   # 30 + two steps of 10
    assert [x for x, _ in seen] == [5, 6, 7] and [s for _, s in seen] == [5, 6, 7]
    assert b.expired and b.train_s == pytest.approx(60.0) and b.fit_steps is None
    assert b.time_left() == pytest.approx(0.0)
    assert b.progress() == 1.0
    steps = TimeBudget(minutes=None, total_steps=10)
    steps.step = 4
    assert steps.progress() == pytest.approx(0.4) and not steps.expired and steps.fit_steps == 10
    lr = warmup_cosine(1.0, warmup_steps=10, end_fraction=0.1)
    assert lr(0, 0.0) == pytest.approx(0.1) and lr(9, 0.0) == pytest.approx(1.0)
    assert lr(50, 0.5) == pytest.approx(0.55) and lr(50, 1.0) == pytest.approx(0.1)


def test_spent_before_reads_the_newest_checkpointed_evaluation(tmp_path):
    import json

    import numpy as np

    from deepcore.train import Checkpointer, spent_before

    assert spent_before(str(tmp_path)) == 0.0                      # no checkpoints: a fresh clock
    with Checkpointer(str(tmp_path / "checkpoints"), async_save=False) as ckpt:
        ckpt.save(4, {"w": np.zeros(2, np.float32)})
    recs = [{"step": 2, "split": "val", "val_train_s": 10.0}, {"step": 4, "split": "train", "loss": 1.0},
            {"step": 4, "split": "val", "val_train_s": 20.0}, {"step": 6, "split": "val", "val_train_s": 30.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert spent_before(str(tmp_path)) == 20.0                     # step 6 came after the newest checkpoint

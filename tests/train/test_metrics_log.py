"""MetricsLog: metrics.jsonl (truncate on resume, read back), TensorBoard event files, W&B offline runs."""
import importlib.util
import json

import pytest

from deepcore.train import MetricsLog, read_metrics


def _accumulated(tb_dir):
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(tb_dir))
    acc.Reload()
    return {tag: [(s.step, s.value) for s in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_truncate_on_resume_keeps_records_up_to_the_step(tmp_path):
    with MetricsLog(str(tmp_path)) as log:
        for s in range(1, 7):
            log.append({"step": s, "split": "train", "loss": 1.0 / s})
        log.append({"step": 6, "event": "nonfinite", "message": "m"})
    with MetricsLog(str(tmp_path), resume_step=4) as log:
        assert [r["step"] for r in log.records] == [1, 2, 3, 4]
        log.append({"step": 5, "split": "train", "loss": 7.0})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3, 4, 5]
    assert read_metrics(str(tmp_path)) == read_metrics(str(tmp_path / "metrics.jsonl")) == log.records
    assert log.records[-1] == {"step": 5, "split": "train", "loss": 7.0}
    with MetricsLog(str(tmp_path)) as log:  # no resume_step: a new file
        assert log.records == []
    assert read_metrics(str(tmp_path)) == [] and read_metrics(str(tmp_path / "absent")) == []


def test_memory_only_without_out_dir():
    log = MetricsLog(None)
    log.append({"step": 1, "loss": 2.0})
    assert log.records == [{"step": 1, "loss": 2.0}] and log.path is None
    with pytest.raises(ValueError, match="tensorboard/wandb need an out_dir"):
        MetricsLog(None, tensorboard=True)


@pytest.mark.skipif(importlib.util.find_spec("tensorboardX") is None, reason="tensorboardX not installed")
def test_tensorboard_mirrors_the_scalars_and_hides_steps_past_a_resume(tmp_path):
    pytest.importorskip("tensorboard")
    with MetricsLog(str(tmp_path), tensorboard=True) as log:
        for s in range(1, 5):
            log.append({"step": s, "split": "train", "loss": 0.5 * s, "member": [s, -s]})
        log.append({"step": 4, "split": "val", "val_loss": 3.25})
    got = _accumulated(tmp_path / "tb")
    assert got["loss"] == [(1, 0.5), (2, 1.0), (3, 1.5), (4, 2.0)]
    assert got["member/1"] == [(s, -s) for s in range(1, 5)] and got["val_loss"] == [(4, 3.25)]
    with MetricsLog(str(tmp_path), resume_step=2, tensorboard=True) as log:
        log.append({"step": 3, "split": "train", "loss": 9.0})
    assert _accumulated(tmp_path / "tb")["loss"] == [(1, 0.5), (2, 1.0), (3, 9.0)]


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed (the tracking extra)")
def test_wandb_offline_writes_its_run_files(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    with MetricsLog(str(tmp_path), wandb={"project": "deepcore-test", "mode": "offline"}) as log:
        log.append({"step": 1, "split": "train", "loss": 0.25})
    run_id = (tmp_path / "wandb_run_id").read_text()
    runs = list((tmp_path / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0

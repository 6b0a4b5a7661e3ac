"""Bad flag values: one line ``--flag: expected ..., got ...``, exit 2, at parse time (before any data is loaded
or anything compiled), and no file of an existing run in ``--out`` changes."""
import hashlib
import importlib
import os

import pytest
from _scripts import script  # noqa: F401  (puts experiments/ on sys.path)

import common


def _parser(name):
    mod = importlib.import_module(name)
    if name == "gan":
        return mod.add_flags(common.parser("gan", "", batch_size=64, lr=2e-4))
    return mod.build_parser() if name == "overfitting" else mod.parser()


def _digest(folder) -> str:
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(folder)):
        dirs.sort()
        for f in sorted(files):
            path = os.path.join(root, f)
            h.update(os.path.relpath(path, folder).encode())
            with open(path, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


@pytest.fixture
def run_dir(tmp_path):
    """An existing run's folder: results, metrics and a checkpoint file."""
    out = tmp_path / "run"
    (out / "checkpoints" / "4").mkdir(parents=True)
    (out / "results.json").write_text('{"experiment": "mlp"}')
    (out / "metrics.jsonl").write_text('{"step": 4, "loss": 0.5}\n')
    (out / "checkpoints" / "4" / "state").write_bytes(b"\x00\x01")
    return out


CASES = [
    ("mlp", ["--lr", "nan"], "--lr: expected a finite number, got nan"),
    ("mlp", ["--epochs", "inf"], "--epochs: expected a finite number, got inf"),
    ("char_transformer", ["--temperatures", "0.7", "nan"], "--temperatures: expected a finite number, got 0.7 nan"),
    ("gan", ["--ema-decay=-inf"], "--ema-decay: expected a finite number, got -inf"),
    ("gan", ["--z-dim", "x"], "argument --z-dim: invalid int value: 'x'"),      # argparse's own: one line too
    ("vit", ["--d-model", "30", "--heads", "4"], "--heads: expected a divisor of --d-model 30, got 4"),
    ("char_transformer", ["--heads", "3"], "--heads: expected a divisor of --d-model 128, got 3"),
    ("vit", ["--smoke", "--d-model", "15", "--heads", "3"],
     "--heads: expected a number that, capped at 2 by --smoke, divides its width 15, got 3"),
    ("mlp", ["--smoke", "--batch-size", "1024"],
     "--batch-size: expected at most 512 with --smoke (its training slice), got 1024"),
    ("overfitting", ["--batch-size", "2000"],
     "--batch-size: expected at most the 1000 training examples of --train-examples, got 2000"),
    ("mlp", ["--batch-size", "10", "--devices", "4"], "--batch-size: expected a multiple of --devices 4, got 10"),
    ("mlp", ["--dataset", "fashion-mnist"],
     "--dataset: expected one of cifar10, fashion_mnist, mnist, got fashion-mnist"),
    ("char_rnn", ["--dataset", "no_such_corpus"],
     "--dataset: expected one of fortunes, tiny_shakespeare or the path of a text file, got no_such_corpus"),
    ("cnn", ["--depths", "1", "2"], "--depths: expected 3 entries (one per --widths entry), got 1 2"),
    ("mlp", ["--widths", "64", "0"], "--widths: expected values >= 1, got 64 0"),
    ("seq_classify", ["--hidden", "0"], "--hidden: expected a value >= 1, got 0"),
    ("char_rnn", ["--dropout", "1"], "--dropout: expected a number in [0, 1), got 1.0"),
]


@pytest.mark.parametrize("name,flags,message", CASES)
def test_bad_flag_is_one_line_at_parse_time(run_dir, capsys, name, flags, message):
    before = _digest(run_dir)
    with pytest.raises(SystemExit) as e:
        common.parse(_parser(name), ["--out", str(run_dir), *flags])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"experiments/{name}.py: error: {message}"]
    assert _digest(run_dir) == before


def test_data_dir_that_is_a_file(run_dir, capsys):
    before = _digest(run_dir)
    a_file = run_dir / "results.json"
    with pytest.raises(SystemExit):
        common.parse(_parser("mlp"), ["--out", str(run_dir), "--data-dir", str(a_file)])
    assert capsys.readouterr().err.splitlines() == [
        f"experiments/mlp.py: error: --data-dir: expected a directory (or a path to create), not a file, got {a_file}"]
    assert _digest(run_dir) == before


def test_as_a_user_runs_it_one_line_and_the_run_untouched(run_dir):
    before = _digest(run_dir)
    proc = script("vit.py", "--out", str(run_dir), "--lr", "inf", timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["experiments/vit.py: error: --lr: expected a finite number, got inf"]
    assert _digest(run_dir) == before

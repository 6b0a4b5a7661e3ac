"""Running an experiment script as a user would: a subprocess, its results.json and metrics.jsonl."""
import json
import os
import subprocess
import sys

import _compile_cache

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "experiments"))  # so tests can import the scripts' helper modules

# the fields shared/experiments.md promises in every results.json
FIELDS = {"experiment", "config", "dataset", "metrics", "wall_s", "train_examples_per_s", "steps", "versions",
          "devices"}


def script(name, *flags, timeout=300):
    return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", name), *flags], capture_output=True,
                          text=True, timeout=timeout, env=_compile_cache.env())


def run(name, out, *flags):
    """A ``--smoke`` run into ``out`` that must succeed; returns (results.json, the process)."""
    proc = script(name, "--smoke", "--out", str(out), *flags)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f), proc


def records(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]

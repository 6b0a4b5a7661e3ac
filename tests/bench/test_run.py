"""bench/run.py's bookkeeping: the plan, peaks by dtype, the load flag and re-rendering from the records."""
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import run  # noqa: E402
from bench.workloads import GFLOP  # noqa: E402

REC = {"step_s": 0.5, "first_step_s": 2.0, "others_cores": 0.0, "loadavg": [0.1, 0.2], "cpu_per_step_s": 1.0,
       "device": "cpu", "first_loss": 2.0, "last_loss": 1.0}


def test_run_plan_and_peaks_by_dtype():
    cpu, gpu = run.full_plan("cpu"), run.full_plan("gpu")
    assert ("equinox", "W2", "float32") in cpu and ("deepcore_unrolled", "W1", "float32") not in cpu
    assert ("deepcore", "W4XL", "bfloat16") in gpu and all(i in ("pure_jax", "deepcore", "torch") for i, _, _ in gpu)
    peaks = run.peak_medians([{"peak_gflops": 100.0, "peak_bf16_gflops": 300.0}, {"peak_gflops": 120.0}])
    assert peaks == {"float32": 110.0, "bfloat16": 300.0}
    s = run.summarise({("deepcore", "W1", "float32"): [REC], ("deepcore", "W1", "bfloat16"): [REC]}, peaks)
    assert math.isclose(s[("deepcore", "W1", "float32")]["peak_frac"], GFLOP["W1"] / 0.5 / 110.0)
    assert math.isclose(s[("deepcore", "W1", "bfloat16")]["peak_frac"], GFLOP["W1"] / 0.5 / 300.0)


def test_flag_trusts_measured_cpu_time_over_the_lagging_load_average():
    assert not run.flagged(dict(REC, loadavg=[9.0, 8.0]))  # measured: nothing else ran
    assert run.flagged(dict(REC, others_cores=0.6))
    assert run.flagged(dict(REC, others_cores=None, loadavg=[9.0, 8.0]))  # not measurable: the load average decides
    assert not run.flagged(dict(REC, others_cores=None))


def test_render_rewrites_results_from_the_records(tmp_path):
    raw = tmp_path / "R.jsonl"
    recs = [dict(REC, kind="peak", peak_gflops=100.0, peak_bf16_gflops=200.0, n=2048, backend="cpu", device="cpu")]
    recs += [dict(REC, impl=i, workload="W1", dtype="float32", round=r, step_s=s)
             for r in (1, 2, 3) for i, s in (("pure_jax", 0.004), ("deepcore", 0.005))]
    recs.append({"kind": "run", "argv": ["--rounds", "3"], "wall_s": 60.0, "note": "a note", "date": "2026-01-02 03:04 UTC",
                 "machine": "a test machine"})
    raw.write_text("".join(json.dumps(r) + "\n" for r in recs))
    run.render(raw, tmp_path / "R.md", rounds=3)
    text = (tmp_path / "R.md").read_text()
    assert "Machine: a test machine" in text
    assert "**a note**" in text and "2026-01-02 03:04 UTC" in text and "bench/run.py --rounds 3" in text
    assert "| deepcore | 5.0 | 5.0 5.0 5.0 | 1.25 |" in text  # median step, rounds, ratio to the floor
    assert "fp32 100 GFLOP/s (used: 100); bf16 200 GFLOP/s (used: 200)" in text

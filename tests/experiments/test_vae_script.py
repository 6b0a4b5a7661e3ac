"""Smoke run of experiments/vae.py: the test ELBO in bits/dim and its parts, the pictures, one-line refusals."""
import math

import pytest
from _scripts import records, run, script

SHARED_DATA = pytest.mark.xdist_group("fashion_mnist_default_data_dir")


@SHARED_DATA
def test_vae_smoke_run(tmp_path):
    out = tmp_path / "run"
    results, _ = run("vae.py", out, "--iw-samples", "4", "--iw-examples", "40")
    m = results["metrics"]
    assert results["experiment"] == "vae" and results["steps"] == 6
    elbo, rec, kl = m["test_elbo_bits_per_dim"], m["test_rec_bits_per_dim"], m["test_kl_bits_per_dim"]
    assert 0 < elbo < 8          # 8 bits/dim: a uniform distribution over the 256 levels
    assert kl > 0 and math.isclose(elbo, rec + kl, rel_tol=1e-6)   # per-image sums in float32
    assert math.isclose(m["test_neg_elbo_nats"], elbo * 784 * math.log(2), rel_tol=1e-9)
    assert 0 < m["test_iw4_bits_per_dim"] < 8 and 0 < m["test_iw_subset_elbo_bits_per_dim"] < 8
    assert [r["step"] for r in records(out) if r.get("split") == "val"] == [3, 6]
    for picture in ("reconstructions.png", "samples.png", "curves.png"):
        assert (out / picture).stat().st_size > 1000


def test_vae_bad_flag_is_one_line(tmp_path):
    proc = script("vae.py", "--iw-samples", "-1", "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "experiments/vae.py: error: --iw-samples: expected a value >= 0, got -1"

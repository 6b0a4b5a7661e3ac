"""No false positives on correct code, kinks, dtypes, skipped/refused inputs, cost, and the CLI."""
import json
import os
import warnings

import jax
import jax.test_util
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore import catalog
from deepcore.catalog import Case
from deepcore.gradcheck import MODES, check_case, check_grads
from deepcore.gradcheck.__main__ import main

# fast suite: a representative subset in every mode at five seeds (kinks, state, randomness, int inputs,
# second order); `python -m deepcore.gradcheck --modes all --seeds 5` covers every catalog case.
SUBSET = ["relu", "batch_norm", "dropout"]


def _case(name):
    for c in catalog.LAYER_CASES + catalog.MODEL_CASES + catalog.FUNCTION_CASES:
        if c.name == name:
            return c
    pytest.skip(f"{name} not in the catalog")


@pytest.mark.parametrize("name", SUBSET)
def test_catalog_cases_pass_every_mode_five_seeds(name):
    for seed in range(5):
        r = check_case(_case(name), seed=seed, modes=MODES, k=2, full_max=32, samples=8, hvp_k=1)
        assert r.ok, r.table()
        assert any(res.verdict == "pass" for res in r.results)


@pytest.mark.parametrize("name", ["serial_mlp", "embedding", "gradient_penalty"])
def test_more_catalog_cases_one_seed(name):
    r = check_case(_case(name), seed=1, modes=MODES, k=2, full_max=32, samples=8, hvp_k=1)
    assert r.ok, r.table()


def test_large_leaf_passes_where_jax_check_grads_fails():
    """tanh(x @ W) with W 512x512 (262,144 parameters) in float64: jax.test_util.check_grads with its
    default step (order 2, its unnormalised random direction) reports a false failure; we pass."""
    x = np.random.default_rng(0).standard_normal((8, 512))
    w = np.random.default_rng(1).standard_normal((512, 512)) / np.sqrt(512)
    f = lambda w: jnp.sum(jnp.tanh(x @ w))  # noqa: E731
    r = check_grads(f, w, modes=MODES, samples=8, hvp_k=1)
    assert r.ok, r.table()
    with jax.enable_x64(True), pytest.raises(AssertionError):
        jax.test_util.check_grads(f, (jnp.asarray(w),), order=2, modes=("rev",))


def test_fast_mode_cost_depends_on_k_not_on_size():
    def evals(n, k):
        w = np.random.default_rng(0).standard_normal((n, n)) / np.sqrt(n)
        x = np.random.default_rng(1).standard_normal((2, n))
        return check_grads(lambda w: jnp.sum(jnp.tanh(x @ w)), w, modes=("fast",), k=k).evals

    small, large, more = evals(4, 3), evals(300, 3), evals(4, 6)
    assert small == large                      # 16 vs 90,000 parameters: the same evaluations
    assert more["f"] > small["f"] and more["jvp"] == 2 * small["jvp"]
    assert small["f"] == 3 * 8 + 1 and small["grad"] == 1   # k directions x 8 stencil points + centre


def test_kink_is_reported_and_moved_not_failed():
    x = np.array([0.0, 1.0, -2.0, 0.5])    # relu and abs exactly at their kink
    r = check_grads(lambda x: jnp.sum(jax.nn.relu(x) + jnp.abs(x - 1.0)), x, modes=("full",))
    assert r.ok, r.table()
    assert r.result("full/rev", "arg0").kinks > 0


def test_integer_inputs_skipped_and_complex_refused():
    f = lambda x, ids: jnp.sum(jnp.sin(x)[ids])  # noqa: E731
    r = check_grads(f, (np.ones(3), np.array([0, 2])), (0, 1), modes=("fast",))
    assert r.ok and r.skipped == ["arg1"] and {res.path for res in r.results} == {"arg0"}
    with pytest.raises(ValueError, match="complex"):
        check_grads(lambda z: jnp.sum(jnp.abs(z) ** 2), np.ones(3, np.complex64))


def test_float64_by_default_and_restored():
    seen = []
    check_grads(lambda x: seen.append(x.dtype) or jnp.sum(jnp.sin(x)), np.ones(3, np.float32), modes=("fast",))
    assert seen[0] == jnp.float64
    assert jnp.ones(2).dtype == jnp.float32   # x64 only for the check


def test_low_precision_warns_and_widens():
    with pytest.warns(UserWarning, match="float32"):
        r = check_grads(lambda x: jnp.sum(jnp.tanh(x) ** 2), np.linspace(-1, 1, 5), modes=("fast", "fwd-rev"),
                        dtype=jnp.float32)
    assert r.ok and r.dtype == "float32" and r.results[0].tol > 1e-3


def test_report_json_round_trip():
    r = check_grads(lambda p: jnp.sum(p["a"] ** 3), {"a": np.ones((2, 2))}, argnames=("params",), modes=("full",))
    d = json.loads(r.to_json())
    assert d["ok"] and d["results"][0]["path"] == "params/a" and d["results"][0]["where"].startswith("params/a[")


def test_cli_json_and_exit_status(capsys, monkeypatch):
    assert main(["--filter", "^(dense|dropout)$", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and {r["name"] for r in out["rows"]} == {"dense", "dropout"}
    assert {r["mode"] for r in out["rows"] if r["name"] == "dropout"} >= {"train fast/rev", "eval fast/rev"}


def test_cli_fails_on_a_wrong_gradient(capsys, monkeypatch):
    from deepcore import layers as L

    @jax.custom_vjp
    def bad_tanh(x):
        return jnp.tanh(x)

    bad_tanh.defvjp(lambda x: (jnp.tanh(x), x), lambda x, g: (1.01 * g * (1 - jnp.tanh(x) ** 2),))
    bad = Case("bad_tanh", lambda: L.serial(L.Dense(3), L.Activation(bad_tanh, "bad_tanh")), (2, 4))
    monkeypatch.setattr(catalog, "LAYER_CASES", catalog.LAYER_CASES + [bad])
    assert main(["--filter", "^bad_tanh$"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_cli_worker_processes_give_the_same_rows_in_catalog_order(capsys):
    # workers take the model and the function first and compile everything with XLA_FLAGS set to the fast
    # options; the JSON rows come in catalog order, the same as in this process: to the last digit for layers
    # and models (inputs drawn on the host, initialisers compiled the same way either way); a function case draws
    # its point with eager jax.random, compiled another way there, so its point differs by rounding
    pattern = "^(dense|relu|embedding|forecaster_lstm_quantiles|pinball)$"
    assert main(["--filter", pattern, "--json", "--jobs", "1"]) == 0
    serial = json.loads(capsys.readouterr().out)["rows"]
    assert main(["--filter", pattern, "--json", "--jobs", "2"]) == 0
    parallel = json.loads(capsys.readouterr().out)["rows"]
    key = lambda r: (r["name"], r["mode"], r["verdict"]) + ((r["max_rel_err"],) if r["kind"] != "function" else ())  # noqa: E731
    assert [key(r) for r in parallel] == [key(r) for r in serial]
    assert all(r["verdict"] == "pass" for r in parallel)
    names = list(dict.fromkeys(r["name"] for r in parallel))
    assert names == ["dense", "relu", "embedding", "forecaster_lstm_quantiles", "pinball"]


def test_cli_cache_a_second_process_loads_the_programs_the_first_compiled(tmp_path):
    import subprocess
    import sys
    cmd = [sys.executable, "-m", "deepcore.gradcheck", "--filter", "^relu$", "--jobs", "1", "--json",
           "--cache", str(tmp_path / "cache")]
    runs = []
    for _ in range(2):
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": root})
        assert out.returncode == 0, out.stderr[-2000:]
        runs.append(json.loads(out.stdout))
    first, second = runs
    assert first["cache_hits"] == 0 and first["cache_misses"] > 0      # a fresh directory: everything compiled
    written = len([p for p in (tmp_path / "cache").iterdir() if p.name.endswith("-cache")])
    assert written >= first["cache_misses"] > 0
    assert second["cache_hits"] == first["cache_misses"] and second["cache_misses"] == 0   # nothing recompiled
    key = lambda r: (r["name"], r["mode"], r["max_rel_err"], r["verdict"])  # noqa: E731
    assert [key(r) for r in second["rows"]] == [key(r) for r in first["rows"]]


def test_spectral_norm_hessian_is_a_surrogate_so_its_case_skips_second_order():
    # sigma = v^T W u with u, v held constant (Miyato et al.): the gradient is exact (dv is orthogonal to v), the
    # Hessian is not, and the checker sees it; the catalog case is therefore tagged first-order only
    from deepcore.gradcheck.cases import check_layer

    case = _case("dcgan_discriminator_sn")
    assert "gradcheck=first-order" in case.tags
    second = check_layer(case.make(), case.spec(np.float64), modes=("second",), train=(False,), seed=0,
                         dtype=jnp.float64, name=case.name)
    assert not second.ok and {r.mode for r in second.failures()} <= {"eval second/rr", "eval second/fr"}
    report = check_case(case, modes=MODES, seed=1)
    assert report.ok and not [r for r in report.results if "second" in r.mode]
    assert report.by_mode("eval fast/rev") and report.by_mode("eval full/fwd")


_CRASHING_WORKER = """
import os, signal
if os.environ.get("DEEPCORE_TEST_CRASH_CASE"):
    import deepcore.gradcheck.cli as cli
    _check = cli._check

    def crashing(kind, case, seed, modes, both):
        fast = "xla_cpu_use_fusion_emitters" in os.environ.get("XLA_FLAGS", "")
        if case.name == os.environ["DEEPCORE_TEST_CRASH_CASE"] and (fast or os.environ["DEEPCORE_TEST_CRASH_ALWAYS"]):
            os.kill(os.getpid(), signal.SIGSEGV)   # as a crash inside XLA would
        return _check(kind, case, seed, modes, both)

    cli._check = crashing
"""


@pytest.mark.parametrize("always", [False, True])
def test_cli_a_worker_that_dies_neither_hangs_the_run_nor_loses_a_case(tmp_path, monkeypatch, capsys, always):
    # a worker that segfaults (say, inside XLA) breaks its pool; the unfinished cases are checked again with XLA's
    # default options; a case whose worker dies there too gets an error row, and every other case its rows
    (tmp_path / "sitecustomize.py").write_text(_CRASHING_WORKER)   # run by every fresh worker interpreter
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), root, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("DEEPCORE_TEST_CRASH_CASE", "relu")
    monkeypatch.setenv("DEEPCORE_TEST_CRASH_ALWAYS", "1" if always else "")
    code = main(["--filter", "^(dense|relu|embedding|tanh)$", "--json", "--jobs", "2"])
    out = capsys.readouterr()
    rows = json.loads(out.out)["rows"]
    assert "a worker process died" in out.err
    assert [r["name"] for r in rows if r["name"] != "relu"] == ["dense"] * 3 + ["tanh"] * 3 + ["embedding"] * 3
    assert all(r["verdict"] == "pass" for r in rows if r["name"] != "relu")
    relu = [r for r in rows if r["name"] == "relu"]
    if always:
        assert code == 1 and [r["verdict"] for r in relu] == ["error"] and "died" in relu[0]["note"]
        assert "each in a worker of its own" in out.err
    else:   # it died only with the fast options: checked again with XLA's defaults, and it passes
        assert code == 0 and [r["verdict"] for r in relu] == ["pass"] * 3

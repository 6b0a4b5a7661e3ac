"""Print the planted-bug table (BUILD_NOTES "Gradient checker"): run every test of test_planted.py and
test_adapters.py that plants a bug, recording each report the tests make, and list what failed where.

    PYTHONPATH=$PWD python tests/gradcheck/planted_table.py
"""
import inspect
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import test_adapters  # noqa: E402
import test_planted  # noqa: E402

seen = []


def recording(fn):
    def run(*a, **kw):
        r = fn(*a, **kw)
        seen.append(r)
        return r
    return run


def main():
    for mod, names in ((test_planted, ("check_grads", "check_layer")),
                       (test_adapters, ("check_nnx", "check_equinox", "check_grads"))):
        for n in names:
            setattr(mod, n, recording(getattr(mod, n)))
    print("| test | passed | failing (mode: leaf) | location reported | seconds |\n|---|---|---|---|---|")
    tests = [(m, n, f) for m in (test_planted, test_adapters) for n, f in inspect.getmembers(m, inspect.isfunction)
             if n.startswith("test_") and f.__module__ == m.__name__ and ("bug" in n or m is test_planted)]
    for mod, name, fn in tests:
        params = [(1.01,), (1.0001,)] if name == "test_scaled_weight_gradient" else [()]
        for p in params:
            seen.clear()
            t = time.perf_counter()
            try:
                fn(*p)
                ok = "yes"
            except AssertionError as e:
                ok = f"NO: {str(e).splitlines()[0][:80]}"
            fails = sorted({(r.mode, r.path, r.where) for rep in seen for r in rep.failures()})
            modes = "; ".join(sorted({f"{m}: {p_}" for m, p_, _ in fails}))
            where = ", ".join(sorted({w for _, _, w in fails}))
            label = name + (f"[{p[0]}]" if p else "")
            print(f"| {label} | {ok} | {modes} | {where} | {time.perf_counter() - t:.1f} |", flush=True)


if __name__ == "__main__":
    main()

"""README's "loop a researcher copies" runs as written: killed and resumed, it ends where ``fit`` ends."""
import importlib.util
import io
import os
import re

import numpy as np
import optax
import pytest

import _common as C
from deepcore.train import classifier_loss, eval_step, fit, init_state, read_metrics, train_step

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def _readme_loop() -> str:
    text = open(README).read()
    m = re.search(r"<!-- the loop a researcher copies \(tested\) -->\n```python\n(.*?)```", text, re.S)
    assert m, "README.md lost its tested loop block"
    return m.group(1)


class _Pipe:
    batches = staticmethod(C.batches)


@pytest.mark.skipif(importlib.util.find_spec("tensorboardX") is None, reason="the block writes TensorBoard events")
def test_readme_loop_resumes_to_the_state_fit_reaches(tmp_path):
    tx = optax.adam(1e-2)
    loss = classifier_loss(C.model())
    fresh = lambda: init_state(C.model(), C.spec(), tx, seed=0)
    code = compile(_readme_loop(), "README.md", "exec")
    for total in (4, 8):   # the second run resumes from the first's final checkpoint
        ns = dict(loss=loss, tx=tx, state=fresh(), train_step=train_step, eval_step=eval_step, out=str(tmp_path),
                  total=total, batch_size=C.BATCH, pipe=_Pipe, val_batches=lambda: [C.batch_at(10_000)])
        exec(code, ns)
        assert ns["step"] == total and ns["first"] == (0 if total == 4 else 4)
    reference = fit(train_step(loss, tx), fresh(), C.batches, steps=8, stream=io.StringIO())
    np.testing.assert_array_equal(C.flat(ns["state"]), C.flat(reference.state))
    assert [(r["step"], r["split"]) for r in read_metrics(str(tmp_path))] == [(4, "train"), (4, "val"),
                                                                             (8, "train"), (8, "val")]

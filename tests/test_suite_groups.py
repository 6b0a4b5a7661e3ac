"""The suite's xdist groups hold: the tests of one ``xdist_group`` run in one worker process, in order.

The suite relies on them: the scripts that prepare Fashion-MNIST in the default data directory run one at a
time, and each session-scoped fixture of a grouped file (the 8-device sharding worker: about a minute) is built
once. With pytest 9.2 and pytest-xdist 3.8, ``--dist loadgroup`` silently stopped grouping
(pytest-dev/pytest-xdist#1386: xdist still writes the old ``_nodeid`` field); ``pyproject.toml`` keeps pytest
below 9.2 until xdist follows, and this file fails if grouping is lost again.
"""
import os

import pytest

pytestmark = pytest.mark.xdist_group("suite_groups_probe")
_FIRST_RAN_IN = set()   # the processes where the group's first test ran


def test_the_groups_first_test_runs():
    _FIRST_RAN_IN.add(os.getpid())


@pytest.mark.parametrize("i", range(7))
def test_the_rest_of_the_group_runs_after_it_in_the_same_process(i, request):
    if not any(item.name == "test_the_groups_first_test_runs" for item in request.session.items):
        pytest.skip("the group's first test is not part of this run")
    assert os.getpid() in _FIRST_RAN_IN, (
        "this test ran in another worker process than the first test of its xdist group, or before it: "
        "--dist loadgroup is not grouping (pytest-dev/pytest-xdist#1386)")

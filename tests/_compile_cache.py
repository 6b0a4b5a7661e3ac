"""One JAX compilation cache shared by the scripts a test session runs as subprocesses.

A smoke run of an experiment script is mostly compiling: a resumed run, or a second test running the same
recipe, compiles the same programs again (``diffusion.py --smoke``: 29 s cold, 14 s with its programs cached).
The session's first ``pytest_configure`` (``tests/conftest.py``) makes an empty directory and names it in
:data:`VAR`; xdist's workers inherit it; :func:`env` points a subprocess's JAX at it. Compiling is deterministic
and the cache is keyed by the program, the compile options, ``XLA_FLAGS`` and the versions, so a hit returns
the executable a fresh compile would build. The test processes themselves do not use it (the miscompile
guards compile in-process, as users do), nor do the tests that kill a run mid-way (their own launchers).
"""
import os

VAR = "DEEPCORE_TEST_COMPILE_CACHE"
# eviction on (a large bound) so that JAX takes the cache's file lock: two workers writing and reading the same
# small program at once never see a half-written entry
_SETTINGS = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
             "JAX_COMPILATION_CACHE_MAX_SIZE": str(4 * 2 ** 30)}


def env() -> dict:
    """This process's environment with the session's compilation cache switched on."""
    out = dict(os.environ)
    if os.environ.get(VAR):
        out.update(_SETTINGS, JAX_COMPILATION_CACHE_DIR=os.environ[VAR])
    return out

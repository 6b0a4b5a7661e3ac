"""A tiny model, deterministic synthetic batches and helpers shared by the train tests and their workers."""
import numpy as np

IN, HIDDEN, CLASSES, BATCH = 12, 16, 4, 16


def model():
    from deepcore.layers import Dense, Relu, serial
    return serial(Dense(HIDDEN), Relu, Dense(HIDDEN), Relu, Dense(CLASSES))


def spec():
    import jax
    import jax.numpy as jnp
    return jax.ShapeDtypeStruct((BATCH, IN), jnp.float32)


def batch_at(step: int, batch: int = BATCH):
    """The global batch of step ``step``: a function of the step only (the data contract's exact order)."""
    rng = np.random.default_rng(1000 + step)
    x = rng.normal(size=(batch, IN)).astype(np.float32)
    y = (np.abs(x[:, :CLASSES]).argmax(-1)).astype(np.int32)
    return {"x": x, "y": y}


def batches(start: int, rows=None):
    """``batches(start)`` per the loop's contract; ``rows(batch)`` selects this process's part."""
    step = start
    while True:
        b = batch_at(step)
        yield rows(b) if rows else b
        step += 1


def flat(tree):
    import jax
    return np.concatenate([np.asarray(a, np.float64).ravel() for a in jax.tree.leaves(tree)])


def hashes(directory, under=""):
    """``{relative path: sha256}`` of every file below ``directory/under`` (to show a fault changed nothing)."""
    import hashlib
    import os
    root = os.path.join(str(directory), under)
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out

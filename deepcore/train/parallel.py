"""Many devices and many processes: a mesh, data-parallel and fully-sharded layouts, multi-process input.

One step code for every layout: the pure update from :mod:`deepcore.train.step` is jitted with
shardings and XLA (GSPMD) inserts the collectives. The loss is a mean over the *global* batch, so the
gradient is the true one on any number of devices (no hand-written ``pmean``).

* Data parallel: ``mode="replicated"``: batch sharded over the ``data`` axis, params and optimiser
  state replicated.
* Fully sharded: ``mode="fsdp"``: additionally every parameter / optimiser-state array is split
  over ``data`` along its largest dimension divisible by the number of devices (smaller arrays stay
  replicated); XLA all-gathers weights for the forward/backward pass and reduce-scatters gradients.

Usage (one or many processes, the same script)::

    from deepcore.train import parallel
    parallel.initialize()                        # multi-process only; before any other JAX call
    mesh = parallel.make_mesh()                  # all devices of all processes on one "data" axis
    state = parallel.place_state(state, parallel.state_sharding(state, mesh, mode="fsdp"))
    step = train_step(loss_fn, tx, **parallel.step_shardings(state, mesh, mode="fsdp"))
    for local_batch in batches(0):               # this process's rows of the global batch
        state, metrics = step(state, parallel.shard_batch(local_batch, mesh))

Launching on a Slurm GPU cluster (one process per GPU; ``jax.distributed.initialize()`` reads
``SLURM_*`` to find the coordinator, the process count and this process's id)::

    #SBATCH --nodes=4 --ntasks-per-node=8 --gpus-per-task=1
    srun python experiments/mnist_mlp.py --out runs/x      # the script calls parallel.initialize()

(or one process per node owning all its GPUs: ``--ntasks-per-node=1 --gpus-per-node=8``). Each
process must read a disjoint shard of the data (``jax.process_index()`` / ``jax.process_count()``),
giving ``global_batch / process_count`` rows per step; checkpoints must go to a shared filesystem.
Without Slurm, pass the coordinator explicitly on every host::

    python train.py  # with parallel.initialize("10.0.0.1:1234", num_processes=4, process_id=RANK)

Launching on a Cloud TPU pod (every host runs the same command; ``initialize()`` auto-detects the pod)::

    gcloud compute tpus tpu-vm ssh NAME --zone ZONE --worker=all \\
        --command="cd deepcore && python experiments/mnist_mlp.py --out gs://bucket/run"

Open MPI (``mpirun -np N python train.py``) and Kubernetes (with the ``kubernetes`` package) are
auto-detected too.
"""
from __future__ import annotations

from typing import Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from deepcore.layers.logical import WILDCARD, spec_for
from deepcore.train.sharding import RULE_SETS

DATA = "data"


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, **kwargs) -> None:
    """Join a multi-process run: ``jax.distributed.initialize`` (cluster auto-detection with no
    arguments: Slurm, Open MPI, Cloud TPU, Kubernetes). Call before any other JAX computation."""
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id, **kwargs)


def make_mesh(devices=None, axis: str = DATA) -> Mesh:
    """A 1-D mesh over ``devices`` (default: every device of every process) named ``axis``."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (axis,))


def batch_sharding(mesh: Mesh, axis: str = DATA) -> NamedSharding:
    """Leading (batch) axis split over ``axis``."""
    return NamedSharding(mesh, P(axis))


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that keeps a whole copy of an array on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def state_sharding(state, mesh: Mesh, mode: str = "replicated", axis: str = DATA):
    """A pytree of ``NamedSharding`` matching ``state``: all replicated, or ``mode="fsdp"`` (fully sharded).

    The two modes are the rule sets ``sharding.RULE_SETS["replicated"]`` (``("*", None)``) and ``["fsdp"]``
    (``("*", axis)``: each array's largest dimension that divides ``axis``), applied to every array of the
    state without logical names; :mod:`deepcore.train.sharding` takes named axes and any mesh."""
    if mode not in ("replicated", "fsdp"):
        raise ValueError(f"mode must be 'replicated' or 'fsdp', got {mode!r}")
    rules = [(n, axis if v == DATA else v) for n, v in RULE_SETS[mode] if n == WILDCARD]

    def one(a):
        shape = np.shape(a)
        return NamedSharding(mesh, spec_for((WILDCARD,) * len(shape), shape, mesh, rules, strict=False))

    return jax.tree.map(one, state)


def step_shardings(state, mesh: Mesh, mode: str = "replicated", axis: str = DATA) -> dict:
    """Keyword arguments for ``train_step`` / ``eval_step``: ``state_sharding`` and ``batch_sharding``."""
    return {"state_sharding": state_sharding(state, mesh, mode, axis), "batch_sharding": batch_sharding(mesh, axis)}


def place_state(state, shardings):
    """Put a (host-identical) state onto ``shardings``; works when the mesh spans several processes."""

    def put(a, s):
        if isinstance(a, jax.Array) and a.sharding == s:
            return a
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, s, lambda idx: host[idx])

    return jax.tree.map(put, state, shardings)


def check_batch(batch, mesh: Mesh, axis: str = DATA, process_count: Optional[int] = None) -> None:
    """Raise ``ValueError`` naming the batch size and device count unless every leaf's global rows
    (this process's rows times ``process_count``) split evenly over the ``axis`` devices of ``mesh``."""
    n = mesh.shape[axis]
    pc = jax.process_count() if process_count is None else process_count
    for path, a in jax.tree_util.tree_leaves_with_path(batch):
        rows = np.shape(a)[0] * pc if np.ndim(a) else None
        if rows is None or rows % n:
            got = f"{rows} rows" if rows is not None else "a scalar"
            raise ValueError(f"shard_batch: batch{jax.tree_util.keystr(path)}: expected a batch size divisible by "
                             f"the {n} devices of mesh axis {axis!r}, got {got}")


def shard_batch(local_batch, mesh: Mesh, axis: str = DATA):
    """Global arrays from this process's rows of the batch (``global rows / process_count`` each).

    A batch whose global size does not split over the devices raises ``ValueError`` (:func:`check_batch`)."""
    check_batch(local_batch, mesh, axis)
    sharding = batch_sharding(mesh, axis)
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), local_batch)


def process_rows(batch, process_index: Optional[int] = None, process_count: Optional[int] = None):
    """This process's contiguous slice of a global host batch (for sources that yield global batches)."""
    i = jax.process_index() if process_index is None else process_index
    n = jax.process_count() if process_count is None else process_count

    def rows(a):
        if a.shape[0] % n:
            raise ValueError(f"global batch of {a.shape[0]} rows does not split over {n} processes")
        k = a.shape[0] // n
        return a[i * k:(i + 1) * k]

    return jax.tree.map(rows, batch)


def fetch(tree):
    """Host copies of (replicated or process-spanning) arrays: numpy leaves, safe in multi-process runs."""
    from jax.experimental import multihost_utils

    def get(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            if a.is_fully_replicated:
                return np.asarray(a.addressable_data(0))
            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(a)

    return jax.tree.map(get, tree)

"""In-memory batching: deterministic shuffling, resumable iteration, per-process shards, device placement.

The contract with the training loop is one function, ``batches(start_step) -> iterator of dicts of
numpy arrays``, whose first batch is the one for global step ``start_step``. Batch ``s`` depends only
on ``(seed, s)``, so a run resumed from a checkpoint at step ``s`` sees exactly the batches an
uninterrupted run would have seen.

    pipe = make_batches(ds.arrays, batch_size=128, seed=0)
    for step, batch in zip(range(start, total), pipe.batches(start)):   # or pipe(start)
        batch = to_device(batch, sharding)   # a NamedSharding over the data axis, or None

Epoch ``e`` visits the examples in ``permutation(seed, e)``; global step ``s`` is batch
``s % steps_per_epoch`` of epoch ``s // steps_per_epoch``. With ``process_count`` processes each takes
a contiguous ``batch_size // process_count`` slice of every global batch: the shards of one step are
disjoint and together they are the global batch.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Any, Callable, Iterator, Optional

import numpy as np


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of ``range(n)`` in epoch ``epoch``: a function of ``(seed, epoch)`` only."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def _default_process(index: Optional[int], count: Optional[int]) -> tuple:
    if index is not None and count is not None:
        return index, count
    import jax
    return (jax.process_index() if index is None else index,
            jax.process_count() if count is None else count)


@dataclasses.dataclass(frozen=True, eq=False)
class Pipeline:
    """Batches over ``arrays`` (a dict of numpy arrays sharing axis 0). ``batch_size`` is global.

    ``drop_remainder``: drop the last, short batch of each epoch (default). Without it the last
    batch is short, split as evenly as possible between processes, unless ``pad_remainder`` pads it
    to full size by repeating example 0; with ``pad_remainder`` every batch carries a boolean
    ``"mask"`` (False on padding) so evaluation can count each example exactly once.
    ``transform(batch) -> batch`` runs on the host, on this process's shard (numpy in, numpy out).
    ``num_epochs=None`` iterates forever.
    """
    arrays: dict
    batch_size: int
    seed: int = 0
    shuffle: bool = True
    drop_remainder: bool = True
    pad_remainder: bool = False
    process_index: int = 0
    process_count: int = 1
    num_epochs: Optional[int] = None
    transform: Optional[Callable[[dict], dict]] = None

    def __post_init__(self):
        sizes = {k: len(v) for k, v in self.arrays.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"arrays must share their first dimension, got {sizes}")
        if self.batch_size <= 0 or self.batch_size % self.process_count:
            raise ValueError(f"batch_size {self.batch_size} must be positive and divisible by "
                             f"process_count {self.process_count}")
        if not 0 <= self.process_index < self.process_count:
            raise ValueError(f"process_index {self.process_index} not in [0, {self.process_count})")
        if self.drop_remainder and self.num_examples < self.batch_size:
            raise ValueError(f"{self.num_examples} examples make no full batch of {self.batch_size}; "
                             f"use drop_remainder=False")

    @property
    def num_examples(self) -> int:
        return len(next(iter(self.arrays.values())))

    @property
    def local_batch_size(self) -> int:
        return self.batch_size // self.process_count

    @property
    def steps_per_epoch(self) -> int:
        n, b = self.num_examples, self.batch_size
        return n // b if self.drop_remainder else -(-n // b)

    @property
    def num_steps(self) -> Optional[int]:
        return None if self.num_epochs is None else self.num_epochs * self.steps_per_epoch

    def order(self, epoch: int) -> np.ndarray:
        n = self.num_examples
        return epoch_permutation(n, self.seed, epoch) if self.shuffle else np.arange(n)

    def indices(self, step: int, order: Optional[np.ndarray] = None) -> tuple:
        """``(example indices, mask)`` of this process's part of global step ``step``."""
        epoch, i = divmod(step, self.steps_per_epoch)
        order = self.order(epoch) if order is None else order
        glob = order[i * self.batch_size:(i + 1) * self.batch_size]
        mask = np.ones(len(glob), bool)
        if len(glob) < self.batch_size and self.pad_remainder:
            pad = self.batch_size - len(glob)
            glob = np.concatenate([glob, np.zeros(pad, glob.dtype)])
            mask = np.concatenate([mask, np.zeros(pad, bool)])
        if len(glob) == self.batch_size:
            lo = self.process_index * self.local_batch_size
            sl = slice(lo, lo + self.local_batch_size)
            return glob[sl], mask[sl]
        part = np.array_split(np.arange(len(glob)), self.process_count)[self.process_index]
        return glob[part], mask[part]

    def batch(self, step: int, order: Optional[np.ndarray] = None) -> dict:
        """This process's batch for global step ``step``: a dict of numpy arrays."""
        idx, mask = self.indices(step, order)
        out = {k: v[idx] for k, v in self.arrays.items()}
        if self.pad_remainder:
            out["mask"] = mask
        return self.transform(out) if self.transform is not None else out

    def batches(self, start_step: int = 0) -> Iterator[dict]:
        """Batches for global steps ``start_step, start_step + 1, ...`` (up to ``num_steps``)."""
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        step, epoch, order = start_step, None, None
        while self.num_steps is None or step < self.num_steps:
            e = step // self.steps_per_epoch
            if e != epoch:
                epoch, order = e, self.order(e)
            yield self.batch(step, order)
            step += 1

    __call__ = batches


def make_batches(arrays: dict, batch_size: int, seed: int = 0, *, shuffle: bool = True,
                 drop_remainder: bool = True, pad_remainder: bool = False,
                 process_index: Optional[int] = None, process_count: Optional[int] = None,
                 num_epochs: Optional[int] = None, transform: Optional[Callable] = None) -> Pipeline:
    """A :class:`Pipeline`; call it (or its ``.batches``) with a start step to iterate.

    ``process_index``/``process_count`` default to ``jax.process_index()``/``jax.process_count()``.
    """
    pi, pc = _default_process(process_index, process_count)
    return Pipeline(dict(arrays), batch_size, seed, shuffle, drop_remainder, pad_remainder,
                    pi, pc, num_epochs, transform)


def to_device(batch: Any, sharding=None) -> Any:
    """Place a host batch (this process's shard) on devices as global ``jax.Array``s.

    ``sharding``: e.g. ``NamedSharding(mesh, PartitionSpec("data"))``; each process passes its own
    part and the global batch is their concatenation along axis 0
    (``jax.make_array_from_process_local_data``). ``None``: ``jax.device_put`` to the default device.
    """
    import jax
    if sharding is None:
        return jax.device_put(batch)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)


def prefetch(batches: Iterator[dict], sharding=None, size: int = 2) -> Iterator[Any]:
    """Keep ``size`` batches in flight on the devices (transfers are asynchronous) ahead of use."""
    queue = collections.deque()
    it = iter(batches)
    for b in it:
        queue.append(to_device(b, sharding))
        if len(queue) > size:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def channel_stats(images: np.ndarray, scale: float = 255.0) -> tuple:
    """Per-channel ``(mean, std)`` of ``images / scale`` (shape ``(C,)`` each), e.g. for normalisation."""
    x = np.asarray(images, np.float64).reshape(-1, images.shape[-1]) / scale
    return x.mean(0).astype(np.float32), x.std(0).astype(np.float32)

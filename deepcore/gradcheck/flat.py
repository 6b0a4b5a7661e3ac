"""A flat vector of a check's numbers held as its leaves, so that a large check copies nothing n-sized on the host.

``theta`` and the gradient ``g`` are indexed by flat offsets everywhere in the checker (a leaf is the slice
``[start, start + size)``), but a whole-model check of millions of parameters should not concatenate its leaves
into a new host vector (for 10M float64 numbers that is 80 MB of fresh memory and, on a VM, about 0.4 s of page
faults, twice per check). :class:`Flat` answers a slice inside one leaf with a view of that leaf, and builds the
concatenated vector only when something asks for all of it (``np.asarray``; cached). It also carries the leaves
as device arrays of the check's dtype, when it has them, for the kernels to take as they are.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


class Flat:
    """``n`` numbers as host arrays ``parts`` (flat, float64), one per ``(start, shape)`` of ``layout``;
    ``device``: the same leaves as device arrays of the check's dtype (or None)."""

    def __init__(self, layout: Sequence, parts: Sequence[np.ndarray], device: Optional[list] = None):
        self.layout, self.parts, self.device = list(layout), list(parts), device
        self.n = sum(int(p.size) for p in self.parts)
        self._starts = np.asarray([a for a, _ in self.layout], np.int64)
        self._whole = None

    def __len__(self) -> int:
        return self.n

    @property
    def shape(self) -> tuple:
        return (self.n,)

    def __array__(self, dtype=None, copy=None):
        """The whole vector: built once and kept read-only; a new array where ``copy`` asks (``np.array``) or
        ``dtype`` differs, so no caller can write into the kept one."""
        if self._whole is None:
            self._whole = np.concatenate(self.parts) if self.parts else np.zeros(0)
            self._whole.setflags(write=False)
        if dtype is not None and np.dtype(dtype) != self._whole.dtype:
            return self._whole.astype(dtype)
        return self._whole.copy() if copy else self._whole

    def __getitem__(self, key):
        """A slice inside one leaf: a view of it; anything else: an index of the whole (concatenated) vector."""
        if isinstance(key, slice) and key.step in (None, 1) and self.parts:
            lo, hi, _ = key.indices(self.n)
            j = int(np.searchsorted(self._starts, lo, "right")) - 1
            start = int(self._starts[j])
            if hi <= start + self.parts[j].size:
                return self.parts[j][lo - start:max(lo, hi) - start]
        return np.asarray(self)[key]

    def norm(self) -> float:
        """The Euclidean norm of the whole vector, leaf by leaf (no concatenation)."""
        return float(np.sqrt(sum(float(np.dot(p, p)) for p in self.parts)))


def norm(a) -> float:
    """``np.linalg.norm`` of a flat vector, without concatenating a :class:`Flat`."""
    return a.norm() if isinstance(a, Flat) else float(np.linalg.norm(a))

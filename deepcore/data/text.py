"""Character-level language modelling: vocabulary, encode/decode, windows of T+1 characters.

    vocab = build_vocab(train_text)
    tokens = encode(vocab, train_text)                     # int32 (N,)
    pipe = lm_windows(tokens, seq_len=128, batch_size=64, seed=0)   # random windows
    batch = next(pipe.batches(start_step))   # {"inputs": int32 (B, T), "targets": int32 (B, T)}
    decode(vocab, batch["inputs"][0])

A window is ``T + 1`` consecutive tokens: ``inputs`` are its first ``T``, ``targets`` its last ``T``.
Batch ``s`` depends only on ``(seed, s)``, so iteration resumes mid-epoch from any step.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, Optional

import numpy as np

from deepcore.data.pipeline import Pipeline, _default_process

UNK = 0


@dataclasses.dataclass(frozen=True)
class Vocab:
    """``chars[i]`` is the character of id ``i``; id 0 is the unknown character, decoded as ``unk``."""
    chars: tuple
    unk: str = "\ufffd"

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)


def build_vocab(text: str, unk: str = "\ufffd") -> Vocab:
    """The sorted distinct characters of ``text`` (ids 1..), after the unknown id 0."""
    return Vocab((unk,) + tuple(sorted(set(text) - {unk})), unk)


def _codepoints(text: str) -> np.ndarray:
    # UTF-32 keeps surrogate-escaped bytes (U+DC80..U+DCFF) as their own code points.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)


def encode(vocab: Vocab, text: str) -> np.ndarray:
    """``int32 (len(text),)`` ids; characters outside the vocabulary map to the unknown id 0."""
    table = np.array([ord(c) for c in vocab.chars[1:]], np.uint32)
    order = np.argsort(table)
    table = table[order]
    cps = _codepoints(text)
    if table.size == 0:
        return np.zeros(len(cps), np.int32)
    pos = np.clip(np.searchsorted(table, cps), 0, table.size - 1)
    found = table[pos] == cps
    return np.where(found, order[pos] + 1, UNK).astype(np.int32)


def decode(vocab: Vocab, ids) -> str:
    """The string of ``ids`` (any integer array or sequence); id 0 decodes as ``vocab.unk``."""
    ids = np.asarray(ids).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= len(vocab.chars)):
        raise ValueError(f"ids must lie in [0, {len(vocab.chars)}), got range [{ids.min()}, {ids.max()}]")
    return "".join(vocab.chars[i] for i in ids.tolist())


def _gather_windows(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> dict:
    win = tokens[starts[:, None] + np.arange(seq_len + 1)[None, :]]
    return {"inputs": win[:, :-1], "targets": win[:, 1:]}


@dataclasses.dataclass(frozen=True, eq=False)
class RandomWindows:
    """Windows at uniformly random offsets; batch ``s`` drawn from ``rng(seed, s)``. No epochs."""
    tokens: np.ndarray
    seq_len: int
    batch_size: int
    seed: int = 0
    process_index: int = 0
    process_count: int = 1

    def batch(self, step: int) -> dict:
        rng = np.random.default_rng([self.seed, step])
        starts = rng.integers(0, len(self.tokens) - self.seq_len, size=self.batch_size)
        local = self.batch_size // self.process_count
        starts = starts[self.process_index * local:(self.process_index + 1) * local]
        return _gather_windows(self.tokens, starts, self.seq_len)

    def batches(self, start_step: int = 0) -> Iterator[dict]:
        step = start_step
        while True:
            yield self.batch(step)
            step += 1

    __call__ = batches


def lm_windows(tokens, seq_len: int, batch_size: int, seed: int = 0, *, mode: str = "random",
               shuffle: bool = True, drop_remainder: bool = True, num_epochs: Optional[int] = None,
               process_index: Optional[int] = None, process_count: Optional[int] = None):
    """Batches of ``{"inputs": (B, T), "targets": (B, T)}`` int32 windows of ``tokens`` (T = ``seq_len``).

    ``mode="random"``: every batch draws fresh random offsets (a :class:`RandomWindows`, endless).
    ``mode="sequential"``: the non-overlapping windows starting at ``0, T, 2T, ...`` (each target
    predicted once per epoch), shuffled per ``(seed, epoch)`` unless ``shuffle=False`` (then in
    text order, for evaluation); a :class:`~deepcore.data.pipeline.Pipeline`.
    Both take ``start_step`` and are shardable over processes like the image pipeline.
    """
    tokens = np.asarray(tokens, np.int32)
    if len(tokens) < seq_len + 1:
        raise ValueError(f"need at least seq_len + 1 = {seq_len + 1} tokens, got {len(tokens)}")
    pi, pc = _default_process(process_index, process_count)
    if batch_size % pc:
        raise ValueError(f"batch_size {batch_size} must be divisible by process_count {pc}")
    if mode == "random":
        return RandomWindows(tokens, seq_len, batch_size, seed, pi, pc)
    if mode != "sequential":
        raise ValueError(f"mode must be 'random' or 'sequential', got {mode!r}")
    starts = np.arange(0, len(tokens) - seq_len, seq_len)
    return Pipeline({"start": starts}, batch_size, seed, shuffle, drop_remainder, False, pi, pc,
                    num_epochs, lambda b: _gather_windows(tokens, b["start"], seq_len))

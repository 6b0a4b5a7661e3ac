"""Text at scale: documents streamed, tokenised and packed into fixed-length rows with segment ids.

    docs = data_source("fortunes", "train", documents=True)    # one record per document, on disk
    pipe = packed_text(docs, seq_len=128, batch_size=32, seed=0)  # character level unless tokenizer=
    batch = next(pipe.batches(start_step))
    # {"inputs", "targets", "segment_ids": int32 (B, T), "mask": bool (B, T)}

Epoch ``e`` concatenates the documents, in the order ``permutation(seed, e)``, into one token stream;
row ``k`` of the epoch is its tokens ``[kT, kT + T]`` (``inputs`` the first ``T``, ``targets`` the last
``T``). Rows are shuffled and batched per epoch exactly like :class:`~deepcore.data.pipeline.Pipeline`
(processes take contiguous slices), so batch ``s`` is a function of ``(seed, s)``: resuming needs only
the step. ``segment_ids`` number a row's documents from 1 (give them to attention to keep it within
documents); ``mask`` is False where the target is the first token of the next document. Nothing is
padded: the positions wasted are those masked targets and the epoch's last partial row.

Holding: each document's token count (4 bytes per document, from one indexing pass that also builds
the character vocabulary), the epoch's document order and offsets, and the batches in flight.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from deepcore.data.pipeline import Pipeline, _default_process, epoch_permutation
from deepcore.data.stream import StreamPipeline, read_records
from deepcore.data.text import Vocab, encode


def document_text(record, field: str = "text") -> str:
    """A record's text as ``str`` (``bytes`` decoded as UTF-8 with ``surrogateescape``)."""
    text = record[field] if isinstance(record, dict) else record
    if isinstance(text, np.ndarray):
        text = text.item()
    return text.decode("utf-8", "surrogateescape") if isinstance(text, bytes) else str(text)


class CharTokenizer:
    """Character-level tokeniser over a :class:`~deepcore.data.text.Vocab`: ``str -> int32 (n,)``."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab

    def __call__(self, text: str) -> np.ndarray:
        return encode(self.vocab, text)


def index_documents(source, tokenizer: Optional[Callable] = None, *, field: str = "text",
                    chunk: int = 1024) -> tuple:
    """``(lengths int32 (num_docs,), tokenizer)``: every document's token count, in one streamed pass.

    ``tokenizer=None``: character level, its vocabulary (:func:`~deepcore.data.text.build_vocab`'s
    order: id 0 unknown, then the sorted characters) collected in the same pass.
    """
    lengths = np.zeros(len(source), np.int32)
    chars = set()
    for lo in range(0, len(source), chunk):
        texts = [document_text(r, field) for r in read_records(source, range(lo, min(lo + chunk, len(source))))]
        if tokenizer is None:
            for t in texts:
                chars.update(t)
            lengths[lo:lo + len(texts)] = [len(t) for t in texts]
        else:
            lengths[lo:lo + len(texts)] = [len(tokenizer(t)) for t in texts]
    if tokenizer is None:
        tokenizer = CharTokenizer(Vocab(("\ufffd",) + tuple(sorted(chars - {"\ufffd"}))))
    return lengths, tokenizer


class ReadPacked:
    """Step -> this process's packed rows. A picklable callable; caches the epoch's document layout."""

    def __init__(self, plan: Pipeline, source, tokenizer, lengths, seq_len, seed, shuffle, field):
        self.plan, self.source, self.tokenizer, self.lengths = plan, source, tokenizer, lengths
        self.seq_len, self.seed, self.shuffle, self.field = seq_len, seed, shuffle, field
        self._layout = (None, None, None)

    def __getstate__(self):
        return dict(self.__dict__, _layout=(None, None, None))

    def layout(self, epoch: int) -> tuple:
        """``(document order, end offset of each in the epoch's token stream)``."""
        cached = self._layout           # read once: reader threads may replace it (near an epoch boundary)
        if cached[0] != epoch:
            n = len(self.lengths)
            order = (epoch_permutation(n, self.seed + 1, epoch) if self.shuffle else np.arange(n))
            cached = self._layout = (epoch, order, np.cumsum(self.lengths[order], dtype=np.int64))
        return cached[1:]

    def rows(self, epoch: int, rows) -> dict:
        order, ends = self.layout(epoch)
        t = self.seq_len
        spans = [(int(np.searchsorted(ends, k * t, "right")), int(np.searchsorted(ends, k * t + t, "right")))
                 for k in rows]
        needed = sorted({int(order[j]) for a, b in spans for j in range(a, b + 1)})
        docs = dict(zip(needed, (np.asarray(self.tokenizer(document_text(r, self.field)), np.int32)
                                 for r in read_records(self.source, needed))))
        toks = np.zeros((len(rows), t + 1), np.int32)
        seg = np.zeros((len(rows), t + 1), np.int32)
        for i, (k, (a, b)) in enumerate(zip(rows, spans)):
            stream = np.concatenate([docs[int(order[j])] for j in range(a, b + 1)])
            ids = np.concatenate([np.full(self.lengths[order[j]], j - a + 1, np.int32) for j in range(a, b + 1)])
            off = k * t - (ends[a] - self.lengths[order[a]])   # where row k starts inside document a
            toks[i], seg[i] = stream[off:off + t + 1], ids[off:off + t + 1]
        return {"inputs": toks[:, :-1], "targets": toks[:, 1:], "segment_ids": seg[:, :-1],
                "mask": seg[:, 1:] == seg[:, :-1]}

    def __call__(self, step: int) -> dict:
        step = int(step)
        return self.rows(step // self.plan.steps_per_epoch, self.plan.batch(step)["row"])


def packed_text(documents, seq_len: int, batch_size: int, seed: int = 0, *, tokenizer: Optional[Callable] = None,
                lengths=None, field: str = "text", shuffle: bool = True, num_epochs: Optional[int] = None,
                process_index: Optional[int] = None, process_count: Optional[int] = None,
                num_threads: int = 4, num_workers: int = 0, prefetch: int = 4) -> StreamPipeline:
    """Packed LM batches (see the module docstring) streamed from a random-access ``documents`` source.

    ``documents``: ``data_source(name, split, documents=True)``, any ``tfds.data_source`` with a text
    feature ``field``, or a sequence of strings. ``tokenizer``: any ``str -> int ids`` callable (default
    character level, the vocabulary from the indexing pass: ``pipe.read.tokenizer.vocab``).
    ``lengths``: the documents' token counts if known (skips the indexing pass; give ``tokenizer`` too).
    Remaining arguments as in :func:`~deepcore.data.stream.stream_batches`.
    """
    if lengths is None:
        lengths, tokenizer = index_documents(documents, tokenizer, field=field)
    elif tokenizer is None:
        raise ValueError("packed_text: lengths= needs the tokenizer= that counted them")
    lengths = np.asarray(lengths, np.int32)
    rows = (int(lengths.sum()) - 1) // seq_len
    pi, pc = _default_process(process_index, process_count)
    if rows < batch_size:
        raise ValueError(f"packed_text: expected at least batch_size={batch_size} rows of seq_len={seq_len}, "
                         f"got {rows} from {int(lengths.sum())} tokens")
    plan = Pipeline({"row": np.arange(rows, dtype=np.int64)}, batch_size, seed, shuffle, True, False, pi, pc,
                    num_epochs)
    read = ReadPacked(plan, documents, tokenizer, lengths, seq_len, seed, shuffle, field)
    return StreamPipeline(read, plan, num_threads, num_workers, prefetch)


def packing_waste(pipe: StreamPipeline, epoch: int = 0) -> dict:
    """Of one epoch's tokens, the fractions that train nothing: ``{"masked", "dropped", "total"}``.

    ``masked``: targets that start a new document (``mask`` False) in the rows the epoch uses;
    ``dropped``: tokens that are no target of a used row (the last partial row, the rows after the last
    full batch). ``total = 1 - trained targets / tokens``. Counted from the layout, reading no document.
    """
    read, plan = pipe.read, pipe.plan
    _, ends = read.layout(epoch)
    tokens, t = int(ends[-1]), read.seq_len
    n_used = plan.steps_per_epoch * plan.batch_size
    used = np.zeros(plan.num_examples, bool)
    used[plan.order(epoch)[:n_used]] = True
    starts = ends[:-1][(ends[:-1] >= 1) & (ends[:-1] <= plan.num_examples * t)]
    masked = int(np.count_nonzero(used[(starts - 1) // t]))
    targets = n_used * t
    return {"masked": masked / tokens, "dropped": (tokens - targets) / tokens,
            "total": 1 - (targets - masked) / tokens}

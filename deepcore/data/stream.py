"""Streaming batches from a prepared TFDS dataset (array_record through Grain), never held in memory.

    pipe = stream("fashion_mnist", "train", batch_size=128, seed=0, data_dir=d, num_workers=2)
    for batch in pipe.batches(start_step): ...   # {"image": uint8 (B/P, H, W, C), "label": int32 (B/P,)}

The same contract as :class:`deepcore.data.pipeline.Pipeline`, and the same plan: which examples make
global step ``s`` is decided by a :class:`Pipeline` over the example *indices* (epoch permutation of
``(seed, epoch)``, each process a contiguous slice of every global batch, the same remainder rules). So
for one seed the stream and the in-memory path give the same batch at every step, each process reads
only its own records, and a resumed run needs only the step it resumes at (the checkpointed integer).

Grain does the reading: a ``MapDataset`` over steps whose element ``s`` reads this process's records of
step ``s`` in one batched read (``tfds.data_source``: random access into array_record, decoding
included), runs ``preprocess`` on each example and ``transform`` on the batch, in ``num_threads``
threads, or ``num_workers`` worker processes (``mp_prefetch``), ``prefetch`` batches ahead. Resident
memory: the index (8 bytes per example), one permutation per epoch, and the batches in flight.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from deepcore.data.pipeline import Pipeline, _default_process
from deepcore.data.sources import read_records

IMAGE_FIELDS = ("image", "label")


def stack_records(records: list, fields: Optional[Sequence[str]] = IMAGE_FIELDS) -> dict:
    """Records (dicts) as one dict of arrays with a leading batch axis, typed like :func:`load`'s arrays:
    ``image`` uint8 ``(B, H, W, C)`` (a channel axis added to ``(H, W)`` images), ``label`` int32."""
    keys = fields if fields is not None else tuple(records[0]) if records else ()
    out = {}
    for k in keys:
        if k == "image":
            imgs = [np.asarray(r[k], np.uint8) for r in records]
            shapes = {im.shape for im in imgs}
            if len(shapes) > 1:
                raise ValueError(f"stream: expected images of one shape in a batch, got {sorted(shapes)[:3]}; "
                                 f"pass preprocess= to crop or resize each example")
            x = np.stack(imgs) if imgs else np.zeros((0, 0, 0, 0), np.uint8)
            out[k] = x[..., None] if x.ndim == 3 else x
        elif k == "label":
            out[k] = np.asarray([r[k] for r in records], np.int32)
        else:
            out[k] = np.stack([np.asarray(r[k]) for r in records])
    return out


class ReadBatch:
    """Step -> this process's batch: plan the indices, read, ``preprocess`` per example, stack, ``transform``.

    A picklable callable (Grain ships it to worker processes); caches the epoch's permutation.
    """

    def __init__(self, plan: Pipeline, source, preprocess=None, transform=None, fields=IMAGE_FIELDS):
        self.plan, self.source, self.preprocess, self.transform, self.fields = \
            plan, source, preprocess, transform, fields
        self._order = (None, None)

    def indices(self, step: int) -> dict:
        epoch = step // self.plan.steps_per_epoch
        cached = self._order            # read once: reader threads may replace it (near an epoch boundary)
        if cached[0] != epoch:
            cached = self._order = (epoch, self.plan.order(epoch))
        return self.plan.batch(step, cached[1])

    def __call__(self, step: int) -> dict:
        b = self.indices(int(step))
        records = read_records(self.source, b["index"])
        if self.preprocess is not None:
            records = [self.preprocess(r) for r in records]
        out = stack_records(records, self.fields)
        if "mask" in b:
            out["mask"] = b["mask"]
        return self.transform(out) if self.transform is not None else out

    def __getstate__(self):
        return dict(self.__dict__, _order=(None, None))


@dataclasses.dataclass(frozen=True, eq=False)
class StreamPipeline:
    """Batches read on demand through Grain; the interface of :class:`Pipeline` (``batches``, ``batch``,
    ``steps_per_epoch``, ``num_steps``, ``num_examples``, ``local_batch_size``)."""
    read: Callable[[int], dict]     # step -> this process's batch (a ReadBatch, or packing's ReadPacked)
    plan: Pipeline
    num_threads: int = 4
    num_workers: int = 0
    prefetch: int = 4

    num_examples = property(lambda self: self.plan.num_examples)
    steps_per_epoch = property(lambda self: self.plan.steps_per_epoch)
    num_steps = property(lambda self: self.plan.num_steps)
    local_batch_size = property(lambda self: self.plan.local_batch_size)
    batch_size = property(lambda self: self.plan.batch_size)

    def batch(self, step: int) -> dict:
        """This process's batch for global step ``step``, read now in this thread."""
        return self.read(step)

    def dataset(self, start_step: int = 0):
        """The Grain ``IterDataset`` of the batches from ``start_step`` on."""
        import grain
        stop = self.num_steps if self.num_steps is not None else 2 ** 62
        ds = grain.MapDataset.range(start_step, max(start_step, stop)).map(self.read)
        it = ds.to_iter_dataset(grain.ReadOptions(num_threads=self.num_threads,
                                                  prefetch_buffer_size=max(self.prefetch, self.num_threads)))
        if self.num_workers:
            from absl import flags   # Grain reads its absl flags in mp_prefetch: defaults unless the app parsed them
            if not flags.FLAGS.is_parsed():
                flags.FLAGS.mark_as_parsed()
            it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.num_workers,
                                                             per_worker_buffer_size=self.prefetch))
        return it

    def batches(self, start_step: int = 0) -> Iterator[dict]:
        """Batches for global steps ``start_step, start_step + 1, ...`` (up to ``num_steps``)."""
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        return iter(self.dataset(start_step))

    __call__ = batches


def stream_batches(source, batch_size: int, seed: int = 0, *, indices=None, shuffle: bool = True,
                   drop_remainder: bool = True, pad_remainder: bool = False,
                   process_index: Optional[int] = None, process_count: Optional[int] = None,
                   num_epochs: Optional[int] = None, preprocess: Optional[Callable] = None,
                   transform: Optional[Callable] = None, fields=IMAGE_FIELDS, num_threads: int = 4,
                   num_workers: int = 0, prefetch: int = 4) -> StreamPipeline:
    """A :class:`StreamPipeline` over a random-access ``source`` (``tfds.data_source``, or any sequence).

    ``indices``: the records that make the dataset (default all), e.g. a carved training subset.
    ``preprocess(record) -> record`` runs per example (decoded dict) in the workers, e.g. a crop;
    ``transform(batch) -> batch`` per batch as in :func:`make_batches`; ``fields``: the features kept
    (``None``: all). The other arguments mean what they mean in :func:`make_batches`.
    """
    pi, pc = _default_process(process_index, process_count)
    index = np.arange(len(source), dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
    plan = Pipeline({"index": index}, batch_size, seed, shuffle, drop_remainder, pad_remainder, pi, pc,
                    num_epochs)
    return StreamPipeline(ReadBatch(plan, source, preprocess, transform, fields), plan, num_threads,
                          num_workers, prefetch)


def split_indices(name: str, split: str, *, data_dir=None, download=True, manual_dir=None,
                  validation_fraction: float = 0.1, validation_seed: int = 0) -> tuple:
    """``(source, indices)`` of a split as :func:`deepcore.data.load` defines it (carved validation included).

    ``name``: a deepcore image dataset (``fashion_mnist``, ``mnist``, ``cifar10``; splits ``train``,
    ``validation``, ``test``, ``train+validation``), or any TFDS dataset prepared in array_record
    under ``data_dir`` (e.g. ``imagenet2012``), whose split is any TFDS split string.
    """
    from deepcore.data import prepare
    from deepcore.data.sources import carve_validation
    if name not in prepare.IMAGE_DATASETS:
        import tensorflow_datasets as tfds
        return tfds.data_source(name, split=split, data_dir=data_dir, download=False), None
    parts = split.split("+")
    bad = [p for p in parts if p not in ("train", "validation", "test")]
    if bad or (len(parts) > 1 and "test" in parts):
        raise ValueError(f"stream: split {split!r} unknown; use train, validation, test or train+validation")
    stored = "test" if parts == ["test"] else "train"
    src = prepare.data_source(name, stored, data_dir=data_dir, download=download, manual_dir=manual_dir)
    if stored == "test":
        return src, None
    tr, va = carve_validation(len(src), validation_fraction, validation_seed)
    return src, np.concatenate([{"train": tr, "validation": va}[p] for p in parts])


def stream(name: str, split: str, batch_size: int, seed: int = 0, *, data_dir=None, download: bool = True,
           manual_dir=None, validation_fraction: float = 0.1, validation_seed: int = 0,
           **options) -> StreamPipeline:
    """:func:`stream_batches` over a named split (see :func:`split_indices`); ``options`` go to it.

    For deepcore's image datasets batch ``s`` equals ``make_batches(load(name, split).arrays, ...)``'s
    batch ``s`` for the same seed and options.
    """
    src, idx = split_indices(name, split, data_dir=data_dir, download=download, manual_dir=manual_dir,
                             validation_fraction=validation_fraction, validation_seed=validation_seed)
    return stream_batches(src, batch_size, seed, indices=idx, **options)


INPUTS = ("memory", "stream")


def image_batches(input: str, name: str, split: str, batch_size: int, seed: int = 0, *, data_dir=None,
                  download: bool = True, validation_fraction: float = 0.1, validation_seed: int = 0,
                  max_examples: Optional[int] = None, num_workers: int = 0, num_threads: int = 4, **options):
    """The batches of a named image split, held in memory (``input="memory"``: :func:`make_batches` over
    :func:`load`'s arrays) or streamed from disk (``"stream"``: :func:`stream`); the same batch at every step.

    Both return an object with ``batches(start_step)``, ``steps_per_epoch``, ``num_examples``; ``options``
    are :func:`make_batches`'s (``shuffle``, ``drop_remainder``, ``pad_remainder``, ``process_index``,
    ``process_count``, ``num_epochs``, ``transform``). ``max_examples``: the split's first examples only.
    """
    from deepcore.data.pipeline import make_batches
    from deepcore.data.sources import load
    where = dict(data_dir=data_dir, download=download, validation_fraction=validation_fraction,
                 validation_seed=validation_seed)
    if input == "memory":
        return make_batches(load(name, split, max_examples=max_examples, **where).arrays, batch_size, seed, **options)
    if input != "stream":
        raise ValueError(f"--input: expected one of {INPUTS}, got {input!r}")
    src, idx = split_indices(name, split, **where)
    idx = np.arange(len(src)) if idx is None else idx
    return stream_batches(src, batch_size, seed, indices=idx[:max_examples] if max_examples else idx,
                          num_workers=num_workers, num_threads=num_threads, **options)


def stream_channel_stats(pipe: StreamPipeline, max_examples: Optional[int] = None, chunk: int = 4096) -> tuple:
    """Per-channel ``(mean, std)`` of ``image / 255`` over the stream's examples (the first ``max_examples``),
    read in chunks: what :func:`channel_stats` gives on the arrays, without holding them."""
    read = pipe.read
    index = read.plan.arrays["index"][:max_examples]
    s = s2 = n = 0
    for lo in range(0, len(index), chunk):
        x = stack_records(read_records(read.source, index[lo:lo + chunk]), ("image",))["image"]
        x = np.asarray(x, np.float64).reshape(-1, x.shape[-1]) / 255.0
        s, s2, n = s + x.sum(0), s2 + (x * x).sum(0), n + len(x)
    mean = s / n
    return mean.astype(np.float32), np.sqrt(np.maximum(s2 / n - mean * mean, 0)).astype(np.float32)

"""Streaming input (Grain over random-access sources): same batches as memory, per-process shards, exact
resume, and TFDS's own mock data written in the real on-disk format (array_record, JPEG-encoded images)."""
import io

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.testing.mocking import RandomFakeGenerator  # what tfds.testing.mock_data generates with

from deepcore.data import load, make_batches
from deepcore.data.stream import split_indices, stream, stream_batches

pytestmark = pytest.mark.xdist_group("data_test_stream")


class LoggedSource:
    """A random-access source of dicts that records which indices were read (item access only)."""

    def __init__(self, arrays):
        self.arrays, self.read = arrays, []

    def __len__(self):
        return len(self.arrays["label"])

    def __getitem__(self, i):
        self.read.append(i)
        return {k: v[i] for k, v in self.arrays.items()}


def toy(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(0, 256, (n, 4, 4, 1), dtype=np.uint8),
            "label": rng.integers(0, 10, n).astype(np.int32)}


def same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


@pytest.mark.parametrize("drop", [True, False])
def test_stream_gives_the_memory_paths_batches(drop):
    arrays = toy(50)
    kw = dict(seed=3, drop_remainder=drop, pad_remainder=not drop, process_index=0, process_count=1, num_epochs=3)
    mem = list(make_batches(arrays, 8, **kw).batches(0))
    st = list(stream_batches(LoggedSource(arrays), 8, num_threads=2, **kw).batches(0))
    assert len(st) == len(mem) == 3 * (6 if drop else 7)
    assert all(same(a, b) for a, b in zip(mem, st))


@pytest.mark.parametrize("count", [1, 2])
def test_processes_read_disjoint_records_covering_each_epoch_once(count):
    arrays, b = toy(48), 12      # 4 full batches an epoch
    for epoch in range(2):     # a run that ends after this epoch (so prefetching reads nothing beyond it)
        srcs = [LoggedSource(arrays) for _ in range(count)]
        pipes = [stream_batches(s, b, seed=1, process_index=i, process_count=count, num_threads=2,
                                num_epochs=epoch + 1) for i, s in enumerate(srcs)]
        for p in pipes:
            batches = list(p.batches(4 * epoch))
            assert len(batches) == 4 and all(len(x["label"]) == b // count for x in batches)
        reads = [sorted(s.read) for s in srcs]
        assert sorted(sum(reads, [])) == list(range(48))            # each record once per epoch, all of them
        if count == 2:
            assert not set(reads[0]) & set(reads[1])                 # shards disjoint


@pytest.mark.parametrize("count", [1, 2])
def test_killed_and_resumed_run_continues_with_the_same_batches(count):
    arrays = toy(40)
    make = lambda i: stream_batches(LoggedSource(arrays), 8, seed=5, process_index=i, process_count=count,
                                    num_threads=2)
    whole = [list(zip(range(12), make(i).batches(0))) for i in range(count)]   # uninterrupted, 2.4 epochs
    for s in (0, 3, 5, 7, 11):                                                # killed before step s
        for i in range(count):
            first = list(zip(range(s), make(i).batches(0)))                   # the run that was killed
            resumed = list(zip(range(12 - s), make(i).batches(s)))            # a fresh process resumes at s
            batches = [b for _, b in first] + [b for _, b in resumed]
            assert all(same(a, b) for (_, a), b in zip(whole[i], batches))
    glob = [b for _, b in zip(range(12), make_batches(arrays, 8, seed=5, process_index=0, process_count=1).batches(0))]
    for step, g in enumerate(glob):                                           # shards make the global batch
        parts = [whole[i][step][1] for i in range(count)]
        assert same(g, {k: np.concatenate([p[k] for p in parts]) for k in g})


def test_worker_processes_give_the_same_batches():
    arrays = toy(40)
    kw = dict(seed=2, process_index=0, process_count=1)
    ref = [b for _, b in zip(range(6), stream_batches(LoggedSource(arrays), 8, num_threads=1, **kw).batches(3))]
    it = stream_batches(LoggedSource(arrays), 8, num_workers=1, **kw).batches(3)
    got = [next(it) for _ in range(6)]
    assert all(same(a, b) for a, b in zip(ref, got))


# --- TFDS mock data written in the real on-disk format -------------------------------------------------

class MockImagenet2012(tfds.core.GeneratorBasedBuilder):
    """imagenet2012's features (JPEG images of any size, 1000 labels, file names), filled with TFDS's own
    mock examples (``tfds.testing.mock_data``'s generator, ``RandomFakeGenerator``), written as array_record."""
    VERSION = tfds.core.Version("1.0.0")
    pkg_dir_path = epath.Path(__file__).parent    # defined in a test module, not a package

    def _info(self):
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(num_classes=1000), "file_name": tfds.features.Text()}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(24), "validation": self._generate_examples(10)}

    def _generate_examples(self, n):
        from PIL import Image
        for i, ex in enumerate(RandomFakeGenerator(self.info.features, n, seed=n)):
            buf = io.BytesIO()
            Image.fromarray(ex["image"]).save(buf, format="JPEG")   # encode the mock image as ImageNet stores it
            yield i, {"image": buf.getvalue(), "label": int(ex["label"]), "file_name": f"mock_{n}_{i}.JPEG"}


def center_crop(ex, size=4):
    """Per-example preprocessing: the central ``size x size`` window (mock images are 5..49 pixels a side)."""
    img = ex["image"]
    h, w = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
    return dict(ex, image=img[h:h + size, w:w + size])


def test_tfds_mock_imagenet_on_disk_streams_like_its_data_source(tmp_path):
    MockImagenet2012(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
    src, idx = split_indices("mock_imagenet2012", "train", data_dir=str(tmp_path))
    assert idx is None and len(src) == 24
    pipe = stream("mock_imagenet2012", "train", 8, seed=0, data_dir=str(tmp_path), process_index=0,
                  process_count=1, preprocess=center_crop, num_workers=0)
    seen = []
    for step, batch in zip(range(3), pipe.batches(0)):
        assert batch["image"].shape == (8, 4, 4, 3) and batch["image"].dtype == np.uint8
        assert batch["label"].dtype == np.int32
        order = pipe.plan.batch(step)["index"]
        want = [center_crop(src[int(i)]) for i in order]       # the data source's own decoding, one at a time
        assert np.array_equal(batch["image"], np.stack([w["image"] for w in want]))
        assert batch["label"].tolist() == [int(w["label"]) for w in want]
        seen += order.tolist()
    assert sorted(seen) == list(range(24))
    with pytest.raises(ValueError, match="preprocess="):        # images of many sizes need a crop
        stream("mock_imagenet2012", "validation", 10, data_dir=str(tmp_path), process_index=0,
               process_count=1).batch(0)


def test_stream_under_tfds_mock_data_matches_load(tmp_path):
    """``tfds.testing.mock_data`` intercepts the same data_source the stream reads (item access only)."""
    with tfds.testing.mock_data(num_examples=40):
        arrays = load("fashion_mnist", "train", data_dir=str(tmp_path), download=False).arrays
        pipe = stream("fashion_mnist", "train", 12, seed=1, data_dir=str(tmp_path), download=False,
                      process_index=0, process_count=1, num_threads=1)
        got = [b for _, b in zip(range(4), pipe.batches(0))]
    want = [b for _, b in zip(range(4), make_batches(arrays, 12, seed=1, process_index=0, process_count=1).batches(0))]
    assert len(arrays["label"]) == 36 and all(same(a, b) for a, b in zip(want, got))

"""Dataset sources: TFDS (mocked), offline preparation from real and synthetic files, clear failures."""
import gzip
import io
import os
import socket
import tarfile
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from deepcore.data import formats, prepare, sources
from deepcore.data.sources import DatasetUnavailable, load, load_text

# session-scoped fixtures and the whole file on one xdist worker: built once (a module-scoped one is rebuilt
# whenever the worker runs another file's tests in between)
pytestmark = pytest.mark.xdist_group("data_test_sources")

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FORTUNES_DIR = "/usr/share/games/fortunes"


def need(path, package):
    """Skip (or fail under CI) when a Debian dataset package is missing."""
    if not os.path.exists(path):
        msg = f"{path} missing: apt-get install {package}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def rows(images, labels):
    """Each example as one bytes row (label byte + pixels), sorted: a multiset fingerprint."""
    flat = np.concatenate([np.asarray(labels, np.uint8)[:, None], np.asarray(images, np.uint8).reshape(len(images), -1)], 1)
    return np.sort(np.ascontiguousarray(flat).view(f"V{flat.shape[1]}").ravel())


# --- TFDS paths under tfds.testing.mock_data --------------------------------------------------------

def test_mock_fashion_mnist_splits(tmp_path):
    with tfds.testing.mock_data(num_examples=20):
        tr = load("fashion_mnist", "train", data_dir=str(tmp_path), download=False)
        va = load("fashion_mnist", "validation", data_dir=str(tmp_path), download=False)
        full = load("fashion_mnist", "train+validation", data_dir=str(tmp_path), download=False)
        te = load("fashion_mnist", "test", data_dir=str(tmp_path), download=False)
    assert tr.arrays["image"].shape == (18, 28, 28, 1) and tr.arrays["image"].dtype == np.uint8
    assert tr.arrays["label"].dtype == np.int32 and va.info.num_examples == 2 and len(te) == 20
    assert tr.info.num_classes == 10 and tr.info.shape == (28, 28, 1)
    assert rows(full.arrays["image"], full.arrays["label"]).tolist() == rows(
        np.concatenate([tr.arrays["image"], va.arrays["image"]]),
        np.concatenate([tr.arrays["label"], va.arrays["label"]])).tolist()


def test_mock_tiny_shakespeare_text(tmp_path):
    with tfds.testing.mock_data(num_examples=3):
        text = load_text("tiny_shakespeare", "train", data_dir=str(tmp_path), download=False)
    assert isinstance(text, str) and len(text) > 0


def test_carve_validation_deterministic_disjoint_covering():
    tr, va = sources.carve_validation(1000, 0.1, seed=3)
    tr2, va2 = sources.carve_validation(1000, 0.1, seed=3)
    assert len(va) == 100 and np.array_equal(va, va2) and np.array_equal(tr, tr2)
    assert not set(tr) & set(va) and set(tr) | set(va) == set(range(1000))
    assert not np.array_equal(va, sources.carve_validation(1000, 0.1, seed=4)[1])


def test_unknown_names_and_splits():
    with pytest.raises(ValueError, match="unknown image dataset"):
        load("imagenet")
    with pytest.raises(ValueError, match="unknown split"):
        load("fashion_mnist", "dev")


# --- real Fashion-MNIST, prepared offline once per module -------------------------------------------

@pytest.fixture(scope="session")
def fashion(tmp_path_factory):
    """Fashion-MNIST prepared offline into a fresh data_dir, then loaded: (data_dir, {split: Dataset})."""
    need(FASHION_DIR, "dataset-fashion-mnist")
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    splits = ("train", "validation", "test")
    return data_dir, dict(zip(splits, load("fashion_mnist", splits, data_dir=data_dir, download=False)))


def test_prepared_fashion_mnist_matches_idx_files(fashion):
    data_dir, ds = fashion
    for split, parts in (("test", [ds["test"]]), ("train", [ds["train"], ds["validation"]])):
        images, labels = formats.read_idx_split(FASHION_DIR, split)
        got_images = np.concatenate([d.arrays["image"] for d in parts])
        got_labels = np.concatenate([d.arrays["label"] for d in parts])
        assert got_images.shape == images.shape and got_images.dtype == np.uint8
        assert np.array_equal(rows(got_images, got_labels), rows(images, labels))
    assert (len(ds["train"]), len(ds["validation"]), len(ds["test"])) == (54000, 6000, 10000)
    assert "deepcore_images/fashion_mnist" in ds["test"].info.origin
    assert os.path.isdir(os.path.join(data_dir, "deepcore_images", "fashion_mnist", "1.0.0"))


def test_prepared_copy_loads_through_tfds_data_source(fashion):
    data_dir, ds = fashion
    src = tfds.data_source("deepcore_images/fashion_mnist", split="test", data_dir=data_dir, download=False)
    assert len(src) == 10000 and src[0]["image"].shape == (28, 28, 1) and src[0]["image"].dtype == np.uint8
    got = rows(np.stack([src[i]["image"] for i in range(50)]), np.array([src[i]["label"] for i in range(50)]))
    assert set(got.tolist()) <= set(rows(ds["test"].arrays["image"], ds["test"].arrays["label"]).tolist())


@pytest.mark.parametrize("split", ["train", "validation", "train+validation", "test"])
def test_streamed_split_gives_the_in_memory_batches(fashion, split):
    """The flag: image_batches("stream", ...) reads the prepared files and gives load + make_batches' batches."""
    from deepcore.data import channel_stats, image_batches, make_batches, stream_channel_stats
    data_dir, ds = fashion
    kw = dict(data_dir=data_dir, download=False, process_index=0, process_count=1)
    parts = [ds[p].arrays for p in split.split("+")]
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    mem = (image_batches("memory", "fashion_mnist", split, 256, seed=4, **kw) if split == "validation" else
           make_batches(arrays, 256, seed=4, process_index=0, process_count=1))
    st = image_batches("stream", "fashion_mnist", split, 256, seed=4, **kw)
    assert (st.num_examples, st.steps_per_epoch) == (mem.num_examples, mem.steps_per_epoch)
    last = mem.steps_per_epoch - 1       # the end of epoch 0 into epoch 1
    for _, a, b in zip(range(3), mem.batches(last), st.batches(last)):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    if split == "validation":
        np.testing.assert_allclose(stream_channel_stats(st), channel_stats(ds["validation"].arrays["image"]),
                                   rtol=1e-5)
        with pytest.raises(ValueError, match="--input: expected one of"):
            image_batches("disk", "fashion_mnist", split, 256, **kw)


@pytest.mark.parametrize("splits, caps", [(("train", "validation", "test"), (512, 256, 256)),
                                          (("train+validation",), (54010,)),   # the cap crosses into validation
                                          (("validation", "test"), (None, 7)), (("test",), (20000,))])
def test_capped_splits_equal_slices_of_the_whole_splits_and_read_only_those_examples(fashion, monkeypatch, splits,
                                                                                    caps):
    data_dir, ds = fashion
    read = []
    real = sources.read_records
    monkeypatch.setattr(sources, "read_records", lambda src, idx: read.append(len(idx)) or real(src, idx))
    got = load("fashion_mnist", splits, data_dir=data_dir, download=False, max_examples=caps)
    for split, cap, d in zip(splits, caps, got):
        parts = [ds[p].arrays for p in split.split("+")]
        want = {k: np.concatenate([p[k] for p in parts])[:cap] for k in parts[0]}
        assert d.arrays.keys() == want.keys() and d.info.num_examples == len(want["label"]), split
        assert all(np.array_equal(d.arrays[k], want[k]) and d.arrays[k].dtype == want[k].dtype for k in want), split
        assert d.info.shape == (28, 28, 1)
    # only the examples the caps take are read (a cap above a split's size: the whole split), each once
    size = lambda split: sum(len(ds[p]) for p in split.split("+"))  # noqa: E731
    assert sum(read) == sum(size(s) if c is None else min(c, size(s)) for s, c in zip(splits, caps)), read
    one = load("fashion_mnist", "test", data_dir=data_dir, download=False, max_examples=5)
    assert np.array_equal(one.arrays["image"], ds["test"].arrays["image"][:5])
    with pytest.raises(ValueError, match=r"^max_examples: expected one entry per split \(2\), got 1$"):
        load("fashion_mnist", ("train", "test"), data_dir=data_dir, download=False, max_examples=(3,))


# --- real fortunes ----------------------------------------------------------------------------------

def test_fortune_files_skip_indexes_and_duplicates():
    need(FORTUNES_DIR, "fortunes")
    files = formats.fortune_files(FORTUNES_DIR)
    assert files and not any(f.endswith(".dat") for f in files)
    real = [os.path.realpath(f) for f in files]
    assert len(set(real)) == len(real)
    assert os.path.realpath(os.path.join(FORTUNES_DIR, "fortunes")) in real


def test_fortunes_round_trip_byte_for_byte(tmp_path):
    need(FORTUNES_DIR, "fortunes")
    corpus = formats.read_corpus(formats.fortune_files(FORTUNES_DIR))
    parts = [load_text("fortunes", s, data_dir=str(tmp_path), download=False, as_bytes=True)
             for s in ("train", "validation", "test")]
    assert b"".join(parts) == corpus
    assert load_text("fortunes", "train+validation+test", data_dir=str(tmp_path), as_bytes=True) == corpus
    assert parts[0].endswith(b"\n%\n") and parts[1].endswith(b"\n%\n")   # cuts between fortunes
    assert 0.85 < len(parts[0]) / len(corpus) < 0.95 and len(parts[1]) > 0 and len(parts[2]) > 0
    assert load_text("fortunes", "validation", data_dir=str(tmp_path)) == parts[1].decode("utf-8")


def test_a_first_preparation_off_a_terminal_draws_no_progress_bars_and_says_so_in_one_stdout_line(tmp_path):
    # a script refused after its data is prepared must still print exactly one line on stderr
    import subprocess
    import sys
    need(FORTUNES_DIR, "fortunes")
    code = ("from deepcore.data.prepare import data_source; import sys; "
            "src = data_source('fortunes', 'train', data_dir=sys.argv[1]); print(len(src))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Generating" not in proc.stderr and "%|" not in proc.stderr, proc.stderr[-2000:]
    said = [line for line in proc.stdout.splitlines() if line.startswith("deepcore.data: preparing")]
    assert said == [f"deepcore.data: preparing deepcore_text/fortunes from {FORTUNES_DIR} into {tmp_path} "
                    "(once; later runs read the prepared copy)"], proc.stdout
    assert proc.stdout.splitlines()[-1] == "1"   # one record: the split's text


def test_local_text_file_round_trip(tmp_path):
    blob = "".join(f"line {i} \u00e9\u4e2d\n" for i in range(200)).encode() + b"bad \xff byte\n"
    path = tmp_path / "corpus.txt"
    path.write_bytes(blob)
    parts = [load_text(str(path), s) for s in ("train", "validation", "test")]
    assert "".join(parts).encode("utf-8", "surrogateescape") == blob
    assert parts[0].endswith("\n") and parts[1].endswith("\n")


# --- synthetic MNIST and CIFAR-10 through the same offline builder ----------------------------------

def _idx_bytes(arr):
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def test_mnist_from_idx_files_under_data_dir(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "mnist"
    src.mkdir()
    want = {}
    for split, n in (("train", 30), ("test", 10)):
        imgs, labs = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
        want[split] = (imgs, labs)
        for stem, arr in zip(formats.IDX_FILES[split], (imgs, labs)):
            with gzip.open(src / (stem + ".gz"), "wb") as f:
                f.write(_idx_bytes(arr))
    ds = load("mnist", "test", data_dir=str(tmp_path), download=False)
    assert np.array_equal(rows(ds.arrays["image"], ds.arrays["label"]), rows(want["test"][0][..., None], want["test"][1]))
    ds = load("mnist", "train+validation", data_dir=str(tmp_path), download=False)
    assert np.array_equal(rows(ds.arrays["image"], ds.arrays["label"]), rows(want["train"][0][..., None], want["train"][1]))


def test_cifar10_binary_archive_is_read_as_hwc(tmp_path):
    rng = np.random.default_rng(1)
    batches = {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in formats.CIFAR10_FILES["train"] + formats.CIFAR10_FILES["test"]:
            recs = rng.integers(0, 256, (4, 3073)).astype(np.uint8)
            recs[:, 0] %= 10
            batches[name] = recs
            info = tarfile.TarInfo("cifar-10-batches-bin/" + name)
            info.size = recs.nbytes
            tar.addfile(info, io.BytesIO(recs.tobytes()))
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / formats.CIFAR10_ARCHIVE).write_bytes(buf.getvalue())
    ds = load("cifar10", "test", data_dir=str(tmp_path), download=False)
    recs = batches["test_batch.bin"]
    want = recs[:, 1:].reshape(4, 3, 32, 32).transpose(0, 2, 3, 1)
    assert ds.info.shape == (32, 32, 3) and ds.info.class_names[0] == "airplane"
    assert np.array_equal(rows(ds.arrays["image"], ds.arrays["label"]), rows(want, recs[:, 0]))
    assert len(load("cifar10", "train+validation", data_dir=str(tmp_path), download=False)) == 20


# --- missing data: fast, one clear line -------------------------------------------------------------

def test_missing_data_without_download_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sources.IMAGE_DATASETS, "fashion_mnist",
                        (str(tmp_path / "no-debian"),) + sources.IMAGE_DATASETS["fashion_mnist"][1:])
    t = time.perf_counter()
    with pytest.raises(DatasetUnavailable) as err:
        load("fashion_mnist", data_dir=str(tmp_path / "empty"), download=False)
    assert time.perf_counter() - t < 5
    msg = str(err.value)
    assert "\n" not in msg and "apt-get install dataset-fashion-mnist" in msg
    assert os.path.join(str(tmp_path / "empty"), "fashion_mnist") in msg


def test_missing_data_without_network_fails_fast(tmp_path, monkeypatch):
    probed = []
    monkeypatch.setattr(prepare, "network_available", lambda url, timeout=2.0: probed.append(url) or False)
    t = time.perf_counter()
    with pytest.raises(DatasetUnavailable, match="no network"):
        load_text("tiny_shakespeare", data_dir=str(tmp_path), download=True)
    assert time.perf_counter() - t < 5 and probed == [sources.UPSTREAM["tiny_shakespeare"]]


def test_network_probe_sees_open_and_closed_ports():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert sources.network_available(f"http://127.0.0.1:{port}/", timeout=2)
    finally:
        server.close()
    assert not sources.network_available(f"http://127.0.0.1:{port}/", timeout=2)

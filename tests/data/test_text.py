"""Character LM data: vocabulary with unknown fallback, exact encode/decode, resumable windows."""
import itertools
import os

import numpy as np
import pytest

from deepcore.data.text import build_vocab, decode, encode, lm_windows

TEXT = "To be, or not to be: that is the question.\n\u00e9\u4e2d\udcff" * 20


def take(it, k):
    return list(itertools.islice(it, k))


def test_vocab_encode_decode_round_trip_and_unknowns():
    vocab = build_vocab(TEXT)
    assert vocab.chars[0] == "\ufffd" and len(vocab) == len(set(TEXT)) + 1
    ids = encode(vocab, TEXT)
    assert ids.dtype == np.int32 and ids.shape == (len(TEXT),) and ids.min() >= 1
    assert decode(vocab, ids) == TEXT
    assert decode(vocab, ids).encode("utf-8", "surrogateescape") == TEXT.encode("utf-8", "surrogateescape")
    unk = encode(vocab, "tZo")
    assert unk.tolist()[1] == 0 and decode(vocab, unk) == "t\ufffdo"
    with pytest.raises(ValueError, match="ids must lie in"):
        decode(vocab, [len(vocab)])


def test_windows_are_shifted_slices_of_the_tokens():
    tokens = np.arange(1000, dtype=np.int32)
    for mode in ("random", "sequential"):
        b = next(lm_windows(tokens, 16, 8, seed=0, mode=mode, process_index=0, process_count=1).batches(3))
        assert b["inputs"].shape == b["targets"].shape == (8, 16) and b["inputs"].dtype == np.int32
        assert np.array_equal(b["targets"], b["inputs"] + 1)                   # next token
        assert np.array_equal(b["inputs"], b["inputs"][:, :1] + np.arange(16))  # contiguous


@pytest.mark.parametrize("mode", ["random", "sequential"])
def test_windows_resume_and_shard(mode):
    tokens = np.random.default_rng(0).integers(0, 50, 5000).astype(np.int32)
    pipe = lm_windows(tokens, 32, 8, seed=7, mode=mode, process_index=0, process_count=1)
    full = take(pipe.batches(0), 45)
    resumed = take(pipe.batches(30), 15)
    assert all(np.array_equal(a["inputs"], b["inputs"]) for a, b in zip(full[30:], resumed))
    assert not np.array_equal(full[0]["inputs"], full[1]["inputs"])
    shards = [lm_windows(tokens, 32, 8, seed=7, mode=mode, process_index=i, process_count=2) for i in range(2)]
    merged = np.concatenate([next(s.batches(30))["targets"] for s in shards])
    assert np.array_equal(merged, full[30]["targets"])


def test_sequential_epoch_predicts_each_target_once():
    tokens = np.arange(1001, dtype=np.int32)
    pipe = lm_windows(tokens, 10, 4, mode="sequential", shuffle=False, drop_remainder=False, num_epochs=1,
                      process_index=0, process_count=1)
    targets = np.concatenate([b["targets"].ravel() for b in pipe.batches(0)])
    assert np.array_equal(targets, np.arange(1, 1001))


def test_fortunes_vocabulary_round_trips_the_training_text(tmp_path):
    if not os.path.isdir("/usr/share/games/fortunes"):
        if os.environ.get("CI"):
            pytest.fail("/usr/share/games/fortunes missing: apt-get install fortunes")
        pytest.skip("/usr/share/games/fortunes missing: apt-get install fortunes")
    from deepcore.data.sources import load_text
    train = load_text("fortunes", "train", data_dir=str(tmp_path), download=False)
    vocab = build_vocab(train)
    assert 90 < len(vocab) < 400
    ids = encode(vocab, train)
    assert decode(vocab, ids).encode("utf-8", "surrogateescape") == \
        load_text("fortunes", "train", data_dir=str(tmp_path), as_bytes=True)
    test_ids = encode(vocab, load_text("fortunes", "test", data_dir=str(tmp_path)))
    assert (test_ids == 0).mean() < 0.01

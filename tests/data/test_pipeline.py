"""In-memory pipeline: determinism, mid-epoch resume, per-process shards, remainders, device placement."""
import itertools

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from deepcore.data.pipeline import Pipeline, channel_stats, make_batches, prefetch, to_device

N = 103


def arrays(n=N):
    return {"x": np.arange(n), "y": np.arange(n) * 10}


def take(it, k):
    return list(itertools.islice(it, k))


def test_resume_mid_epoch_replays_the_uninterrupted_order():
    pipe = make_batches(arrays(), 8, seed=5, process_index=0, process_count=1)
    full = take(pipe.batches(0), 40)               # 12 steps per epoch: crosses three epochs
    for start in (0, 5, 12, 17, 35):
        resumed = take(pipe(start), 40 - start)
        assert all(np.array_equal(a["x"], b["x"]) and np.array_equal(a["y"], b["y"])
                   for a, b in zip(full[start:], resumed))
        assert len(resumed) == 40 - start
    assert all(np.array_equal(b["y"], b["x"] * 10) for b in full)   # rows stay aligned across keys


def test_shuffle_depends_on_seed_and_epoch_only():
    a = make_batches(arrays(), 8, seed=1, process_index=0, process_count=1)
    b = make_batches(arrays(), 8, seed=1, process_index=0, process_count=1)
    c = make_batches(arrays(), 8, seed=2, process_index=0, process_count=1)
    assert np.array_equal(a.batch(3)["x"], b.batch(3)["x"])
    assert not np.array_equal(a.batch(3)["x"], c.batch(3)["x"])
    assert not np.array_equal(a.order(0), a.order(1))
    unshuffled = make_batches(arrays(), 8, shuffle=False, process_index=0, process_count=1)
    assert np.array_equal(unshuffled.batch(1)["x"], np.arange(8, 16))


def test_drop_remainder_epoch_visits_distinct_examples():
    pipe = make_batches(arrays(), 8, seed=0, process_index=0, process_count=1)
    assert pipe.steps_per_epoch == N // 8
    xs = np.concatenate([pipe.batch(s)["x"] for s in range(pipe.steps_per_epoch)])
    assert len(xs) == len(set(xs.tolist())) == (N // 8) * 8


@pytest.mark.parametrize("drop", [True, False])
def test_process_shards_are_disjoint_and_cover_the_global_batch(drop):
    glob = make_batches(arrays(), 8, seed=3, drop_remainder=drop, process_index=0, process_count=1)
    shards = [make_batches(arrays(), 8, seed=3, drop_remainder=drop, process_index=i, process_count=4)
              for i in range(4)]
    seen = []
    for step in range(glob.steps_per_epoch):
        parts = [s.batch(step)["x"] for s in shards]
        if drop or step < glob.steps_per_epoch - 1:
            assert all(len(p) == 2 for p in parts)
        merged = np.concatenate(parts)
        assert len(set(merged.tolist())) == len(merged)
        assert np.array_equal(merged, glob.batch(step)["x"])
        seen.extend(merged.tolist())
    assert len(seen) == len(set(seen)) == (N // 8 * 8 if drop else N)


def test_pad_remainder_masks_padding_for_exact_evaluation():
    pipe = make_batches(arrays(), 8, seed=0, drop_remainder=False, pad_remainder=True,
                        process_index=1, process_count=2, num_epochs=1)
    other = make_batches(arrays(), 8, seed=0, drop_remainder=False, pad_remainder=True,
                         process_index=0, process_count=2, num_epochs=1)
    batches = list(pipe.batches(0)) + list(other.batches(0))
    assert len(batches) == 2 * pipe.steps_per_epoch == 2 * 13
    assert all(b["x"].shape == (4,) and b["mask"].dtype == bool for b in batches)
    real = np.concatenate([b["x"][b["mask"]] for b in batches])
    assert sorted(real.tolist()) == list(range(N))


def test_num_epochs_and_transform():
    pipe = make_batches(arrays(), 10, seed=0, num_epochs=2, process_index=0, process_count=1,
                        transform=lambda b: {**b, "x": b["x"] + 1000})
    out = list(pipe.batches(0))
    assert len(out) == 20 and all(b["x"].min() >= 1000 for b in out)
    assert len(list(pipe.batches(15))) == 5


def test_bad_arguments_are_one_clear_error():
    with pytest.raises(ValueError, match="divisible by process_count"):
        make_batches(arrays(), 10, process_index=0, process_count=4)
    with pytest.raises(ValueError, match="share their first dimension"):
        Pipeline({"a": np.zeros(3), "b": np.zeros(4)}, 2)
    with pytest.raises(ValueError, match="no full batch"):
        make_batches(arrays(5), 8, process_index=0, process_count=1)


def test_to_device_with_data_sharding_and_prefetch():
    devices = np.array(jax.devices())
    sharding = NamedSharding(Mesh(devices, ("data",)), PartitionSpec("data"))
    b = len(devices) * 4
    pipe = make_batches({"image": np.random.default_rng(0).integers(0, 255, (64, 4, 4, 1), np.uint8),
                         "label": np.arange(64, dtype=np.int32)}, b, seed=0)
    host = take(pipe.batches(2), 3)
    dev = take(prefetch(pipe.batches(2), sharding, size=2), 3)
    for h, d in zip(host, dev):
        assert isinstance(d["image"], jax.Array) and d["image"].sharding.is_equivalent_to(sharding, 4)
        assert np.array_equal(np.asarray(d["image"]), h["image"]) and np.array_equal(np.asarray(d["label"]), h["label"])
    plain = to_device(host[0])
    assert np.array_equal(np.asarray(plain["label"]), host[0]["label"])


def test_channel_stats():
    images = np.stack([np.zeros((2, 2)), np.full((2, 2), 255.0)], -1)[None].repeat(3, 0)
    mean, std = channel_stats(images)
    assert np.allclose(mean, [0, 1]) and np.allclose(std, [0, 0])

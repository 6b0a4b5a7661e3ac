"""Packed text: rows are the epoch's token stream, segment ids keep attention inside documents (checked
through deepcore's TransformerLM), exact resume and per-process shards, any tokeniser, little waste."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepcore.data.packing import index_documents, packed_text, packing_waste
from deepcore.data.pipeline import epoch_permutation
from deepcore.data.text import build_vocab, encode

pytestmark = pytest.mark.xdist_group("data_test_packing")


def corpus(n=40, seed=0):
    rng = np.random.default_rng(seed)
    words = ["fox", "dog", "über", "a", "jumps", "lazy", "the", "%", "naïve"]
    return [" ".join(rng.choice(words, rng.integers(0, 12))) for _ in range(n)]   # some documents empty


def expected_rows(docs, order, seq_len, tokenize):
    """The epoch's rows computed independently: concatenate the documents in ``order``, cut every T."""
    toks = [np.asarray(tokenize(docs[j]), np.int32) for j in order]
    stream = np.concatenate(toks)
    seg = np.concatenate([np.full(len(t), i, np.int32) for i, t in enumerate(toks)])
    rows = (len(stream) - 1) // seq_len
    out = []
    for k in range(rows):
        w, s = stream[k * seq_len:k * seq_len + seq_len + 1], seg[k * seq_len:k * seq_len + seq_len + 1]
        s = s - s[0] + 1
        out.append({"inputs": w[:-1], "targets": w[1:], "segment_ids": s[:-1], "mask": s[1:] == s[:-1]})
    return out


def test_rows_are_the_epochs_token_stream_cut_every_seq_len():
    docs = corpus()
    pipe = packed_text(docs, seq_len=16, batch_size=4, seed=7, process_index=0, process_count=1, num_threads=2)
    vocab = build_vocab("".join(docs))
    assert pipe.read.tokenizer.vocab == vocab                        # the indexing pass found the same characters
    tokenize = lambda t: encode(vocab, t)
    for epoch in range(2):
        rows = expected_rows(docs, epoch_permutation(len(docs), 8, epoch), 16, tokenize)
        row_order = pipe.plan.order(epoch)
        for step in range(epoch * pipe.steps_per_epoch, (epoch + 1) * pipe.steps_per_epoch):
            got = pipe.batch(step)
            ks = row_order[(step % pipe.steps_per_epoch) * 4:][:4]
            for key in got:
                assert np.array_equal(got[key], np.stack([rows[k][key] for k in ks])), (step, key)
    assert got["inputs"].dtype == np.int32 and got["segment_ids"].dtype == np.int32 and got["mask"].dtype == bool


def test_any_tokeniser_callable_and_known_lengths():
    docs = corpus(30, seed=1)
    byte_level = lambda t: np.frombuffer(t.encode("utf-8"), np.uint8).astype(np.int32)
    lengths, tok = index_documents(docs, byte_level)
    assert tok is byte_level and lengths.tolist() == [len(d.encode("utf-8")) for d in docs]
    pipe = packed_text(docs, 8, 2, seed=0, tokenizer=byte_level, lengths=lengths, shuffle=False,
                       process_index=0, process_count=1)
    rows = expected_rows(docs, range(len(docs)), 8, byte_level)
    assert all(np.array_equal(pipe.batch(0)[k], np.stack([rows[0][k], rows[1][k]])) for k in rows[0])
    with pytest.raises(ValueError, match="tokenizer="):
        packed_text(docs, 8, 2, lengths=lengths, process_index=0, process_count=1)


@pytest.mark.parametrize("count", [1, 2])
def test_resume_and_process_shards(count):
    docs = corpus(60, seed=2)
    make = lambda i: packed_text(docs, 12, 4, seed=3, process_index=i, process_count=count, num_threads=2)
    steps = 2 * make(0).steps_per_epoch + 1
    whole = [[b for _, b in zip(range(steps), make(i).batches(0))] for i in range(count)]
    for s in (1, steps // 2, steps - 1):
        for i in range(count):
            resumed = [b for _, b in zip(range(steps - s), make(i).batches(s))]   # a fresh process at step s
            assert all(np.array_equal(a[k], b[k]) for a, b in zip(whole[i][s:], resumed) for k in a)
    glob = packed_text(docs, 12, 4, seed=3, process_index=0, process_count=1)
    for step in range(steps):
        g = glob.batch(step)
        assert all(np.array_equal(g[k], np.concatenate([whole[i][step][k] for i in range(count)])) for k in g)
    assert glob.steps_per_epoch == make(0).steps_per_epoch


def test_packed_sequences_never_attend_across_documents_through_the_transformer():
    from deepcore.models.transformer import LMConfig, lm_apply, lm_init
    docs = corpus(30, seed=4)
    pipe = packed_text(docs, 24, 2, seed=0, process_index=0, process_count=1)
    b = next(b for b in map(pipe.batch, range(pipe.steps_per_epoch)) if b["segment_ids"].max() >= 3)
    cfg = LMConfig(vocab_size=len(pipe.read.tokenizer.vocab), d_model=16, num_layers=1, num_heads=2, max_len=24)
    params = lm_init(cfg, jax.random.PRNGKey(0))
    logits = jax.jit(lambda toks: lm_apply(cfg, params, toks, segment_ids=jnp.asarray(b["segment_ids"]))[0])
    base = np.asarray(logits(b["inputs"]))
    row = int(np.argmax(b["segment_ids"].max(1)))
    seg = b["segment_ids"][row]
    for s in np.unique(seg):
        inside, other = seg == s, seg != s
        changed = b["inputs"].copy()
        changed[row, other] = (changed[row, other] + 1) % cfg.vocab_size       # every other document's tokens
        out = np.asarray(logits(changed))
        np.testing.assert_array_equal(out[row, inside], base[row, inside])    # this document sees none of it
        assert not np.allclose(out[row, other], base[row, other])             # (and the change is visible)


def test_fortunes_packing_wastes_under_5_percent(tmp_path):
    if not os.path.isdir("/usr/share/games/fortunes"):
        pytest.skip("apt-get install fortunes")
    from deepcore.data.prepare import data_source
    docs = data_source("fortunes", "train", data_dir=str(tmp_path), documents=True)
    assert len(docs) > 10000 and b"\n%\n" not in docs[0]["text"]
    pipe = packed_text(docs, 128, 32, seed=0, process_index=0, process_count=1)
    waste = packing_waste(pipe)
    b = pipe.batch(5)
    assert waste["total"] < 0.05
    assert abs(waste["masked"] + waste["dropped"] - waste["total"]) < 1e-12
    assert b["inputs"].shape == (32, 128) and (~b["mask"]).sum() > 0     # fortunes are shorter than 128

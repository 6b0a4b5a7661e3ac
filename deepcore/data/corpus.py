"""A character corpus for language modelling: its ids and vocabulary, exact evaluation windows, samples as text.

    corpus = load_corpus("fortunes", data_dir, max_chars={"train": 50_000, "validation": 4_000})
    val = eval_windows(corpus.validation, seq_len=128, batch_size=128)      # list of batches
    metrics = window_nll(logits, batch["targets"], batch["weight"])          # inside the eval step
    write_samples("out/samples.txt", corpus.vocab, generate, length=300, temperatures=[0.7, 1.0], seed=0)

* **Corpus**: ``deepcore.data.load_text``'s fixed train / validation split; the vocabulary is the training
  split's characters (id 0: unknown).
* **Evaluation**: the validation ids cut into consecutive windows of ``seq_len``; every character after the
  first is predicted exactly once, from the earlier characters of its own window (no context crosses a window
  boundary). The per-batch ``weight`` makes the mean over batches of :func:`window_nll` the exact mean
  negative log-likelihood over every predicted character (nats, and bits per character).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import numpy as np


class Corpus(NamedTuple):
    name: str
    vocab: object       # deepcore.data.Vocab of the training split
    train: np.ndarray   # int32 (N,) ids
    validation: np.ndarray  # int32 (M,) ids


def load_corpus(dataset: str, data_dir=None, *, max_chars: Optional[dict] = None) -> Corpus:
    """Train and validation ids of ``dataset`` (a text dataset name or a file) with the training split's
    vocabulary; ``max_chars`` (``{"train": n, "validation": m}``) keeps the first characters of each split."""
    from deepcore.data.sources import load_text
    from deepcore.data.text import build_vocab, encode

    train, val = (load_text(dataset, s, data_dir=data_dir) for s in ("train", "validation"))
    if max_chars:
        train, val = train[:max_chars["train"]], val[:max_chars["validation"]]
    vocab = build_vocab(train)
    return Corpus(dataset, vocab, encode(vocab, train), encode(vocab, val))


def eval_windows(ids, seq_len: int, batch_size: int) -> list:
    """``ids (M,)`` as consecutive windows: batches of ``{"inputs", "targets": int32 (B, T), "weight": (B, T)}``.

    Every target ``ids[1:]`` appears once; padding has weight 0 and ``weight = num_batches / (M - 1)``
    elsewhere, so the mean over batches of ``sum(weight * nll)`` is the exact mean over the M - 1 targets.
    """
    ids = np.asarray(ids, np.int32)
    n = len(ids) - 1
    if n < 1:
        raise ValueError(f"eval_windows: expected at least 2 ids, got {len(ids)}")
    windows = -(-n // seq_len)
    nb = -(-windows // batch_size)
    size = nb * batch_size * seq_len
    inputs, targets, weight = np.zeros(size, np.int32), np.zeros(size, np.int32), np.zeros(size, np.float32)
    inputs[:n], targets[:n], weight[:n] = ids[:-1], ids[1:], nb / n
    shape = (nb, batch_size, seq_len)
    inputs, targets, weight = inputs.reshape(shape), targets.reshape(shape), weight.reshape(shape)
    return [{"inputs": inputs[i], "targets": targets[i], "weight": weight[i]} for i in range(nb)]


def window_nll(logits, targets, weight) -> dict:
    """``{"loss": sum(weight * nll) (nats), "bits_per_char": the same in bits}`` for logits ``(B, T, V)`` and
    the targets and weights of :func:`eval_windows` ``(B, T)``."""
    import jax.numpy as jnp
    import optax

    nll = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
    loss = jnp.sum(weight * nll)
    return {"loss": loss, "bits_per_char": loss / math.log(2.0)}


def write_samples(path: str, vocab, generate: Callable, *, length: int, temperatures, seed: int,
                  per_temperature: int = 3, header: str = "") -> str:
    """``samples.txt``: ``per_temperature`` samples of ``length`` characters at each temperature, each begun
    from a newline; ``generate(prompt (B, 1), length, key, temperature) -> ids (B, length)``. Seeded."""
    import jax

    from deepcore.data.text import decode, encode

    start = int(encode(vocab, "\n")[0]) or 1
    prompt = np.full((per_temperature, 1), start, np.int32)
    parts = [header.rstrip("\n") + "\n"] if header else []
    for i, t in enumerate(temperatures):
        ids = np.asarray(generate(prompt, length, jax.random.fold_in(jax.random.PRNGKey(seed), i), t))
        for j in range(per_temperature):
            parts.append(f"=== temperature {t:g}, sample {j + 1} (seed {seed}) ===\n{decode(vocab, ids[j])}\n")
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write("\n".join(parts))
    return path

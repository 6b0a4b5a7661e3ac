"""Word and phrase pairs from a FreeDict bilingual dictionary (the dict format), for character-level translation.

    data = load_dictionary("eng-fra")            # Debian dict-freedict-eng-fra, read offline
    data.train, data.test                        # [(source, first translation), ...], split by headword
    arrays = encode_pairs(data.train, data.vocab, max_len=32)

The dict format: ``NAME.index`` holds one line per headword, ``headword TAB offset TAB length`` with offset and
length in base 64 (``A-Za-z0-9+/``, most significant digit first), pointing into the gzip/dictzip-compressed
``NAME.dict.dz``. An entry reads ``headword /pronunciation/ <part of speech>`` then its senses, one per line
(``1. ...``), each a comma-separated list of translations, then notes, synonyms and cross-references (lines that
begin ``Note:``, ``Synonyms:``, ``see:``, or a quoted example).

:func:`entry_pair` keeps the headword and the first translation of the first sense, lowercased, with bracketed
labels (``[...]``, ``<...>``, ``(...)``) removed and the Unicode hyphen ``U+2010`` as ``-``; pairs longer than
``max_chars`` are dropped and duplicates removed. :func:`split_by_headword` holds out a fixed fraction of the
source headwords (every pair of a held-out headword is in the test split), chosen by a hash of the headword
(:func:`held_out`). :func:`reversed_pairs` reads the opposite dictionary backwards (``fra-eng`` as English ->
French) for extra training pairs, leaving out the sources that ``exclude`` names (the held-out headwords).
"""
from __future__ import annotations

import gzip
import os
import re
import zlib
from typing import NamedTuple, Optional

import numpy as np

from deepcore.data.prepare import DatasetUnavailable

DICT_DIR = "/usr/share/dictd"
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")   # ids 0..3: padding, begin, end, unknown character
PAD, BOS, EOS, UNK = range(4)
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOTE = re.compile(r"^[A-Za-z]+:")
_LABELS = re.compile(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)|\{[^}]*\}")


class TranslationData(NamedTuple):
    pair: str
    vocab: tuple     # characters; id i + len(SPECIALS) is vocab[i]
    train: list      # [(source, target), ...]
    test: list


def b64_number(text: str) -> int:
    """A dict-format base-64 number (``"B"`` = 1, ``"BA"`` = 64)."""
    n = 0
    for c in text:
        n = n * 64 + _B64.index(c)
    return n


def read_entries(dict_path: str, index_path: str) -> list:
    """Every entry's text of a dictionary, in index order (the ``00database...`` metadata entries skipped)."""
    with gzip.open(dict_path, "rb") as f:
        data = f.read()
    entries = []
    with open(index_path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or parts[0].startswith("00database"):
                continue
            start, length = b64_number(parts[1]), b64_number(parts[2])
            entries.append(data[start:start + length].decode("utf-8", "replace"))
    return entries


def _normalise(text: str) -> str:
    text = _LABELS.sub(" ", text.replace("\u2010", "-")).replace('"', " ")
    return " ".join(text.lower().split())


def entry_pair(entry: str) -> Optional[tuple]:
    """``(headword, first translation)`` of one entry's text, normalised, or None if it has no translation."""
    lines = entry.split("\n")
    head = re.split(r" /| <", lines[0], maxsplit=1)[0]
    for line in lines[1:]:
        line = line.strip()
        if not line or line[0] == '"' or _NOTE.match(line):   # examples, "Note:", "Synonyms:", "see:"
            continue
        first = re.split(r"[,;]", _normalise(re.sub(r"^\s*\d+\.\s*", "", line)))[0].strip()
        source = _normalise(head)
        return (source, first) if source and first else None
    return None


def dictionary_files(pair: str, data_dir: Optional[str] = None) -> tuple:
    """``(dict_path, index_path)`` of ``freedict-PAIR`` in ``data_dir`` or the Debian directory; one-line
    :class:`DatasetUnavailable` naming the package when neither has it."""
    dirs = [os.path.expanduser(d) for d in (data_dir, DICT_DIR) if d]
    for d in dirs:
        paths = (os.path.join(d, f"freedict-{pair}.dict.dz"), os.path.join(d, f"freedict-{pair}.index"))
        if all(os.path.isfile(p) for p in paths):
            return paths
    raise DatasetUnavailable(f"freedict-{pair} is not available: no freedict-{pair}.dict.dz and .index in "
                             f"{', '.join(dirs)}. Fix: `apt-get install dict-freedict-{pair}`, or put both "
                             f"files in --data-dir")


def has_dictionary(pair: str, data_dir: Optional[str] = None) -> bool:
    """Whether :func:`dictionary_files` finds ``freedict-PAIR``."""
    try:
        return bool(dictionary_files(pair, data_dir))
    except DatasetUnavailable:
        return False


def dictionary_pairs(pair: str = "eng-fra", data_dir: Optional[str] = None, *, max_chars: int = 30) -> list:
    """The sorted, distinct ``(source, translation)`` pairs of a FreeDict dictionary, both sides at most
    ``max_chars`` characters."""
    pairs = {p for p in map(entry_pair, read_entries(*dictionary_files(pair, data_dir))) if p}
    return sorted(p for p in pairs if len(p[0]) <= max_chars and len(p[1]) <= max_chars)


def held_out(word: str, test_fraction: float = 0.1, seed: int = 0) -> bool:
    """Whether :func:`split_by_headword` puts ``word`` (a source headword) in its held-out split: crc32 of
    ``seed TAB word`` below ``test_fraction * 2**32``."""
    return zlib.crc32(f"{seed}\t{word}".encode()) < int(round(test_fraction * 2 ** 32))


def split_by_headword(pairs, test_fraction: float = 0.1, seed: int = 0) -> tuple:
    """``(train, test)``: the pairs whose source headword hashes (crc32 with ``seed``) into the held-out
    ``test_fraction`` go to test; a headword's pairs never straddle the split."""
    held = [held_out(src, test_fraction, seed) for src, _ in pairs]
    return [p for p, h in zip(pairs, held) if not h], [p for p, h in zip(pairs, held) if h]


def reversed_pairs(pair: str, data_dir: Optional[str] = None, *, max_chars: int = 30, exclude=None,
                   known=()) -> tuple:
    """``(pairs, dropped)``: the distinct pairs of ``freedict-PAIR`` read in reverse, ``(translation, headword)``
    (``fra-eng`` gives English -> French), sorted, less those in ``known``; those whose new source satisfies
    ``exclude(source)`` (another dictionary's held-out headwords, by :func:`held_out`) are counted in ``dropped``."""
    pairs = sorted({(t, s) for s, t in dictionary_pairs(pair, data_dir, max_chars=max_chars)} - set(known))
    kept = [p for p in pairs if exclude is None or not exclude(p[0])]
    return kept, len(pairs) - len(kept)


def vocabulary(pairs) -> tuple:
    """The sorted distinct characters of both sides of ``pairs``."""
    return tuple(sorted({c for s, t in pairs for c in s + t}))


def load_dictionary(pair: str = "eng-fra", data_dir: Optional[str] = None, *, max_chars: int = 30,
                    test_fraction: float = 0.1, seed: int = 0) -> TranslationData:
    """Pairs of ``freedict-PAIR`` split by headword, with the training pairs' character vocabulary."""
    train, test = split_by_headword(dictionary_pairs(pair, data_dir, max_chars=max_chars), test_fraction, seed)
    return TranslationData(pair, vocabulary(train), train, test)


def encode_text(text: str, vocab, max_len: int) -> np.ndarray:
    """Character ids of ``text`` (unknown characters: ``UNK``), then ``EOS``, padded with ``PAD`` to ``max_len``."""
    index = {c: i + len(SPECIALS) for i, c in enumerate(vocab)}
    ids = [index.get(c, UNK) for c in text][:max_len - 1] + [EOS]
    return np.asarray(ids + [PAD] * (max_len - len(ids)), np.int32)


def decode_ids(ids, vocab) -> str:
    """Text of character ids up to the first ``EOS`` (specials dropped)."""
    out = []
    for i in np.asarray(ids).tolist():
        if i == EOS:
            break
        if i >= len(SPECIALS):
            out.append(vocab[i - len(SPECIALS)])
    return "".join(out)


def encode_pairs(pairs, vocab, max_len: int) -> dict:
    """``{"source", "target_in", "target_out": int32 (N, max_len), "source_mask", "target_mask": bool}``:
    ``target_in`` is ``BOS`` + target, ``target_out`` the target + ``EOS`` (teacher forcing)."""
    src = np.stack([encode_text(s, vocab, max_len) for s, _ in pairs])
    out = np.stack([encode_text(t, vocab, max_len) for _, t in pairs])
    tin = np.concatenate([np.full((len(pairs), 1), BOS, np.int32), out[:, :-1]], axis=1)
    return {"source": src, "source_mask": src != PAD, "target_in": tin, "target_out": out,
            "target_mask": out != PAD}


__all__ = ["TranslationData", "SPECIALS", "PAD", "BOS", "EOS", "UNK", "b64_number", "read_entries", "entry_pair",
           "dictionary_files", "has_dictionary", "dictionary_pairs", "held_out", "split_by_headword", "reversed_pairs",
           "vocabulary", "load_dictionary", "encode_text", "decode_ids", "encode_pairs"]

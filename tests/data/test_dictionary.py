"""FreeDict dict-format parsing on a hand-made dictionary, the split by headword, the encoding, the message
when the package is missing, and (when installed) the Debian eng-fra dictionary."""
import gzip
import os

import numpy as np
import pytest

from deepcore.data import DatasetUnavailable
from deepcore.data.dictionary import (BOS, EOS, PAD, UNK, b64_number, decode_ids, dictionary_pairs, encode_pairs,
                                      entry_pair, held_out, load_dictionary, reversed_pairs, split_by_headword,
                                      vocabulary)

ENTRIES = {
    "00databaseinfo": "info about the database\n",
    "aspirin": "aspirin /æsprin/\naspirine\n",
    "ass": "ass /əs/\nâne, baudet\n",
    "surmise": "surmise /səːmaiz/\n1. conjecturer, se douter de\n2. supposer\n",
    "black forest": "Black Forest /blækfɔrist/\nForêt\u2010Noire\n",
    "adopt": "adopt <v>\n   Note: a note first\n [soc.] adopter (qn) <v>\n",
    "empty": "empty /x/\n\n   see: {nothing}\n",
    "aspirin ": "aspirin /æsprin/\naspirine\n",   # a duplicate entry
}


def b64(n):
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = ""
    while True:
        out, n = digits[n % 64] + out, n // 64
        if not n:
            return out


@pytest.fixture
def dict_dir(tmp_path):
    data, index = b"", []
    for head, text in ENTRIES.items():
        raw = text.encode()
        index.append(f"{head.strip()}\t{b64(len(data))}\t{b64(len(raw))}")
        data += raw
    with gzip.open(tmp_path / "freedict-xxx-yyy.dict.dz", "wb") as f:
        f.write(data)
    (tmp_path / "freedict-xxx-yyy.index").write_text("\n".join(index) + "\n", encoding="utf-8")
    return str(tmp_path)


def test_base64_numbers():
    assert [b64_number(s) for s in ("A", "B", "BA", "c/", "LNK")] == [0, 1, 64, 28 * 64 + 63, (11 * 64 + 13) * 64 + 10]
    assert all(b64_number(b64(n)) == n for n in (0, 5, 63, 64, 4095, 123456))


def test_entries_become_cleaned_first_translations(dict_dir):
    assert entry_pair(ENTRIES["surmise"]) == ("surmise", "conjecturer")
    assert entry_pair(ENTRIES["adopt"]) == ("adopt", "adopter")
    assert entry_pair(ENTRIES["empty"]) is None
    assert dictionary_pairs("xxx-yyy", dict_dir) == [("adopt", "adopter"), ("aspirin", "aspirine"), ("ass", "âne"),
                                                      ("black forest", "forêt-noire"), ("surmise", "conjecturer")]
    assert dictionary_pairs("xxx-yyy", dict_dir, max_chars=7) == [("adopt", "adopter"), ("ass", "âne")]


def test_split_by_headword_keeps_a_headword_on_one_side():
    pairs = [(f"w{i // 3}", f"t{i}") for i in range(3000)]
    train, test = split_by_headword(pairs, 0.2, seed=1)
    assert len(train) + len(test) == 3000 and 0.15 < len(test) / 3000 < 0.25
    assert not {s for s, _ in train} & {s for s, _ in test}
    assert split_by_headword(pairs, 0.2, seed=1) == (train, test)
    assert split_by_headword(pairs, 0.2, seed=2) != (train, test)
    assert {s for s, _ in test} == {s for s, _ in pairs if held_out(s, 0.2, 1)}   # the rule, word by word


def test_reversed_pairs_leave_out_excluded_sources_and_known_pairs(dict_dir):
    assert reversed_pairs("xxx-yyy", dict_dir) == ([("adopter", "adopt"), ("aspirine", "aspirin"),
                                                    ("conjecturer", "surmise"), ("forêt-noire", "black forest"),
                                                    ("âne", "ass")], 0)
    kept, dropped = reversed_pairs("xxx-yyy", dict_dir, max_chars=8, exclude=lambda w: w.startswith("a"),
                                   known=[("âne", "ass"), ("xyz", "w")])
    assert (kept, dropped) == ([], 2)   # adopter, aspirine excluded; âne known; the rest longer than 8
    kept, dropped = reversed_pairs("xxx-yyy", dict_dir, exclude=lambda w: held_out(w, 0.5, 3))
    words = ("adopter", "aspirine", "conjecturer", "forêt-noire", "âne")
    assert [held_out(w, 0.5, 3) for w in words] == [False, False, False, True, True]
    assert kept == [("adopter", "adopt"), ("aspirine", "aspirin"), ("conjecturer", "surmise")] and dropped == 2
    assert vocabulary([("ab", "ç"), ("b", "a")]) == ("a", "b", "ç")


def test_encode_pairs_for_teacher_forcing():
    vocab = tuple("abcé")
    arrays = encode_pairs([("ab", "céa"), ("z", "")], vocab, max_len=5)
    np.testing.assert_array_equal(arrays["source"], [[4, 5, EOS, PAD, PAD], [UNK, EOS, PAD, PAD, PAD]])
    np.testing.assert_array_equal(arrays["target_out"], [[6, 7, 4, EOS, PAD], [EOS, PAD, PAD, PAD, PAD]])
    np.testing.assert_array_equal(arrays["target_in"], [[BOS, 6, 7, 4, EOS], [BOS, EOS, PAD, PAD, PAD]])
    np.testing.assert_array_equal(arrays["source_mask"], arrays["source"] != PAD)
    assert decode_ids(arrays["target_out"][0], vocab) == "céa" and decode_ids([BOS, 4, UNK, 5], vocab) == "ab"


def test_missing_dictionary_is_one_line_naming_the_package(tmp_path):
    with pytest.raises(DatasetUnavailable) as e:
        load_dictionary("xxx-zzz", str(tmp_path))
    assert "apt-get install dict-freedict-xxx-zzz" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.skipif(not os.path.isfile("/usr/share/dictd/freedict-eng-fra.index"),
                    reason="apt-get install dict-freedict-eng-fra")
def test_debian_eng_fra():
    data = load_dictionary("eng-fra")
    assert len(data.train) > 5000 and len(data.test) > 500
    assert ("aspirin", "aspirine") in data.train + data.test
    assert not {s for s, _ in data.train} & {s for s, _ in data.test}
    assert len(set(data.train)) == len(data.train) and "é" in data.vocab

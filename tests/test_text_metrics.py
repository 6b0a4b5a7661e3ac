"""chrF and the character error rate against hand computations."""
import pytest

from deepcore.metrics import char_error_rate, chrf, edit_distance, translation_scores


def f2(p, r):
    return 5 * p * r / (4 * p + r)


def test_chrf_one_pair_by_hand():
    # order 1: P = 2/2, R = 2/3; order 2: "ab" vs {"ab", "bc"}: P = 1, R = 1/2
    assert chrf(["ab"], ["abc"], order=2) == pytest.approx(100 * (f2(1, 2 / 3) + f2(1, 1 / 2)) / 2)
    assert chrf(["a b"], ["abc"], order=2) == pytest.approx(chrf(["ab"], ["abc"], order=2))   # spaces removed


def test_chrf_sums_statistics_over_the_corpus_before_scoring():
    # order 1: matches 2 of 3 hypothesis and 4 reference characters; order 2: 1 of 1 and of 2 bigrams
    expected = 100 * (f2(2 / 3, 2 / 4) + f2(1, 1 / 2)) / 2
    assert chrf(["ab", "x"], ["abc", "y"], order=2) == pytest.approx(expected)
    assert chrf(["ab", "x"], ["abc", "y"], order=2) != pytest.approx(
        (chrf(["ab"], ["abc"], order=2) + chrf(["x"], ["y"], order=2)) / 2)


def test_chrf_counts_repeats_clipped_and_skips_orders_without_ngrams():
    # "aaa" vs "a": order 1 matches min(3, 1) = 1: P = 1/3, R = 1; order 2: no reference bigram, skipped
    assert chrf(["aaa"], ["a"], order=2) == pytest.approx(100 * f2(1 / 3, 1))
    assert chrf(["a"], ["a"]) == pytest.approx(100.0)
    assert chrf(["maison"], ["maison"]) == pytest.approx(100.0)
    assert chrf(["xyz"], ["abc"]) == 0.0
    with pytest.raises(ValueError, match="chrf: expected as many hypotheses as references"):
        chrf(["a"], ["a", "b"])


def test_edit_distance_and_character_error_rate_by_hand():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "") == 3 and edit_distance("ab", "ba") == 2
    assert char_error_rate(["kitten", "abc"], ["sitting", "abd"]) == pytest.approx(4 / 10)
    assert char_error_rate(["aviron"], ["avion"]) == pytest.approx(1 / 5)
    with pytest.raises(ValueError, match="char_error_rate"):
        char_error_rate(["a"], [""])


def test_translation_scores_name_each_system():
    refs = ["maison", "chat", "abc"]
    got = translation_scores({"model": ["maison", "chien", "abd"], "copy": ("house", "cat", "abc")}, refs, "test_")
    assert set(got) == {f"test_{m}_{n}" for m in ("chrf", "cer", "exact") for n in ("model", "copy")}
    assert got["test_exact_model"] == pytest.approx(1 / 3) and got["test_exact_copy"] == pytest.approx(1 / 3)
    assert got["test_cer_model"] == pytest.approx((0 + 3 + 1) / 13)   # chien -> chat: 3 edits; abd -> abc: 1
    assert got["test_chrf_copy"] == pytest.approx(chrf(["house", "cat", "abc"], refs))

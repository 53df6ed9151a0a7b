"""The statistics of an evaluation against values computed by hand."""

import math

import pytest

from imagerag_sdk.eval import stats


def test_mean_and_standard_error_use_the_sample_deviation():
    got = stats.mean_se([1.0, 2.0, 3.0, 6.0])
    # mean 3; deviations -2,-1,0,3 → squares 4+1+0+9 = 14; s² = 14/3; se = sqrt(14/3)/2
    assert got["n"] == 4
    assert got["mean"] == pytest.approx(3.0)
    assert got["se"] == pytest.approx(math.sqrt(14 / 3) / 2)


def test_mean_se_of_one_and_of_no_value():
    assert stats.mean_se([0.5]) == {"mean": 0.5, "se": None, "n": 1}
    assert stats.mean_se([]) == {"mean": None, "se": None, "n": 0}


def test_win_rate_counts_ties_half():
    # pairs: win, loss, tie, win → (2 + 0.5) / 4
    assert stats.win_rate([0.1, 0.5, 0.3, 0.2], [0.2, 0.4, 0.3, 0.9]) == pytest.approx(0.625)
    assert stats.win_rate([], []) is None


def test_bootstrap_interval_excludes_zero_for_a_clear_gain_and_covers_the_mean():
    diffs = [0.9, 1.1, 1.0, 0.8, 1.2, 1.0, 0.95, 1.05]
    low, high = stats.bootstrap_interval(diffs)
    assert 0 < low < sum(diffs) / len(diffs) < high
    # the interval lies within the sample's range and is narrower than it
    assert min(diffs) <= low and high <= max(diffs) and high - low < max(diffs) - min(diffs)


def test_bootstrap_interval_covers_zero_for_symmetric_noise():
    low, high = stats.bootstrap_interval([-1.0, 1.0, -0.5, 0.5, -0.2, 0.2, 0.8, -0.8])
    assert low < 0 < high


def test_bootstrap_of_a_constant_is_that_constant_and_one_value_is_its_own_interval():
    assert stats.bootstrap_interval([0.25] * 5) == (pytest.approx(0.25), pytest.approx(0.25))
    assert stats.bootstrap_interval([0.7]) == (pytest.approx(0.7), pytest.approx(0.7))


def test_bootstrap_is_fixed_by_its_seed_and_chunking_does_not_change_it(monkeypatch):
    diffs = [0.3, -0.1, 0.2, 0.05, 0.4, -0.2, 0.1]
    a = stats.bootstrap_interval(diffs, seed=0)
    assert stats.bootstrap_interval(diffs, seed=0) == a
    assert stats.bootstrap_interval(diffs, seed=1) != a
    monkeypatch.setattr(stats, "_CHUNK_CELLS", 10)  # many small chunks: the same draws
    assert stats.bootstrap_interval(diffs, seed=0) == a


def test_bootstrap_of_two_values_matches_the_exact_resampling_distribution():
    # With pairs {0, 1}, a resample mean is k/2 for k ~ Binomial(2, 1/2): 0 (1/4), 0.5 (1/2), 1 (1/4);
    # the 2.5 % and 97.5 % quantiles of that distribution are 0 and 1.
    assert stats.bootstrap_interval([0.0, 1.0], resamples=20000) == (0.0, 1.0)


def test_paired_block_and_summary_follow_the_schema():
    rows = [
        {"system": "a", "status": "done", "critic": {"matched": False, "gave_up": False, "fell_back": True},
         "scores": {"m": {"initial": 0.1, "final": 0.3}}},
        {"system": "a", "status": "done", "critic": {"matched": True, "gave_up": False, "fell_back": False},
         "scores": {"m": {"initial": 0.2, "final": 0.2}}},
        {"system": "a", "status": "done", "critic": {"matched": None, "gave_up": False, "fell_back": False},
         "scores": {}},  # its scorer failed: not a pair
        {"system": "a", "status": "failed", "critic": None, "scores": {}},
    ]
    systems = [{"name": "a", "hash": "h", "profile": "fake", "overrides": ["loop.mode=concepts"]}]
    got = stats.summarize(rows, set_path="s.yaml", items=2, seeds=[0, 1], systems=systems, metrics=["m"])
    assert got["bootstrap"] == {"resamples": 10000, "seed": 0, "level": 0.95}
    block = got["systems"][0]
    assert (block["rows"], block["done"], block["failed"]) == (4, 3, 1)
    assert block["critic"] == {"judged": 2, "matched": 1, "gave_up": 0, "fell_back": 1}
    m = block["metrics"]["m"]
    assert m["initial"]["n"] == m["final"]["n"] == m["diff"]["n"] == 2
    assert m["diff"]["mean"] == pytest.approx(0.1)
    assert m["win_rate"] == pytest.approx(0.75)
    assert m["diff"]["ci_low"] == pytest.approx(0.0) and m["diff"]["ci_high"] == pytest.approx(0.2)

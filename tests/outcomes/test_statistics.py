"""The statistics against figures worked by hand (the arithmetic is in each test's comment)."""

from __future__ import annotations

import pytest

from engage.outcomes.statistics import kaplan_meier, kaplan_meier_median, median, quartiles, wilson


def test_wilson_interval_for_six_of_ten() -> None:
    # p = .6, z² = 3.8415, z²/n = .38415: centre = (.6 + .19207) / 1.38415 = .57225;
    # half = 1.95996 * sqrt(.024 + .0096037) / 1.38415 = .25957 -> [.31267, .83182]
    low, high = wilson(6, 10) or (0, 0)
    assert low == pytest.approx(0.31267, abs=5e-5)
    assert high == pytest.approx(0.83182, abs=5e-5)


def test_wilson_interval_at_the_edges_stays_inside_zero_and_one() -> None:
    # 0 of 5: centre = (0 + .38415) / 1.76830 = .21724 = half, so [0, .43448]
    low, high = wilson(0, 5) or (1, 1)
    assert low == 0.0
    assert high == pytest.approx(0.43448, abs=5e-5)
    assert wilson(5, 5) == pytest.approx((1 - 0.43448, 1.0), abs=5e-5)
    assert wilson(0, 0) is None


def test_wilson_refuses_more_successes_than_trials() -> None:
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_kaplan_meier_counts_censored_patients_at_risk_until_they_leave() -> None:
    # times: 2 (event), 3 (censored), 4 (event), 4 (event), 6 (censored), 8 (event)
    # t=2: 6 at risk, S = 5/6; t=3 one leaves; t=4: 4 at risk, 2 events, S = 5/6 * 2/4 = 5/12;
    # t=6 one leaves; t=8: 1 at risk, S = 0.
    data = [(2, True), (3, False), (4, True), (4, True), (6, False), (8, True)]
    curve = kaplan_meier(data)
    assert [t for t, _ in curve] == [2, 4, 8]
    assert curve[0][1] == pytest.approx(5 / 6)
    assert curve[1][1] == pytest.approx(5 / 12)
    assert curve[2][1] == pytest.approx(0.0)
    assert kaplan_meier_median(data) == 4


def test_kaplan_meier_median_is_none_when_fewer_than_half_improve() -> None:
    # 1 event of 4 at t=1: S = 3/4, never at or below one half.
    assert kaplan_meier_median([(1, True), (2, False), (3, False), (5, False)]) is None
    assert kaplan_meier_median([]) is None


def test_kaplan_meier_median_ignoring_censoring_would_be_wrong() -> None:
    # Events at 10 and 20, two censored at 1: at t=10, 2 at risk, S = 1/2 -> median 10
    # (dropping the censored as failures would give S(10) = 3/4).
    assert kaplan_meier_median([(1, False), (1, False), (10, True), (20, True)]) == 10


def test_median_and_quartiles() -> None:
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 2, 3]) == 2.5
    assert median([]) is None
    # 1..9 type 7: Q1 at position 1 + .25*8 = 3 -> 3; Q3 at 7 -> 7
    assert quartiles([9, 8, 7, 6, 5, 4, 3, 2, 1]) == (3.0, 5.0, 7.0)
    # 1,2,3,4: Q1 at 1 + .25*3 = 1.75; Q3 at 3.25
    assert quartiles([1, 2, 3, 4]) == (1.75, 2.5, 3.25)
    assert quartiles([5]) == (5.0, 5.0, 5.0)

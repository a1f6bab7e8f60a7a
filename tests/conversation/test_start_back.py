"""The Keele STarT Back Tool's scoring (Hill 2008): total 0-9, psychosocial subscale 0-5 (items 5-9), and the
risk groups; each case worked by hand."""

from __future__ import annotations

import pytest

from engage.conversation.start_back import HIGH, LOW, MEDIUM, Result, score
from engage.errors import InvalidInput


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        # Three agreements and a "moderately" bothersome back (item 9 scores only "very much" or "extremely").
        ([1, 1, 1, 0, 0, 0, 0, 0, 2], Result(3, 0, LOW)),
        # Items 1-4 and "very much": total 5, subscale (items 5-9) 1 -> medium.
        ([1, 1, 1, 1, 0, 0, 0, 0, 3], Result(5, 1, MEDIUM)),
        # Seven agreements but only three of them psychosocial, item 9 "not at all": total 7, subscale 3 -> medium.
        ([1, 1, 1, 1, 1, 1, 1, 0, 0], Result(7, 3, MEDIUM)),
        # Items 5, 6, 7 and "extremely": total 4, subscale 4 -> high.
        ([0, 0, 0, 0, 1, 1, 1, 0, 4], Result(4, 4, HIGH)),
        (["1"] * 8 + ["4"], Result(9, 5, HIGH)),
        ([0] * 9, Result(0, 0, LOW)),
    ],
)
def test_scores_and_risk_groups(answers: list[int], expected: Result) -> None:
    assert score(answers) == expected


@pytest.mark.parametrize("answers", [[1] * 8, [1] * 10, [2] + [0] * 8, [0] * 8 + [5], ["x"] + [0] * 8, [0] * 8 + [""]])
def test_incomplete_or_out_of_range_answers_are_refused(answers: list[object]) -> None:
    with pytest.raises(InvalidInput) as refused:
        score(answers)  # type: ignore[arg-type]
    assert refused.value.field == "start_back"

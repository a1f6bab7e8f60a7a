"""Classifying inbound SMS bodies (pure): keywords only as the whole message, scores 0-10, the rest for staff."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engage.conversation.inbound import HELP_WORDS, OPT_IN_WORDS, OPT_OUT_WORDS, Classified, Kind, classify


@pytest.mark.parametrize("word", sorted(OPT_OUT_WORDS))
def test_every_opt_out_keyword_in_any_case_opts_out(word: str) -> None:
    for body in (word, word.lower(), word.title(), f"  {word}  ", f"{word}.", f"{word.lower()}!"):
        assert classify(body) == Classified(Kind.OPT_OUT, keyword=word)


@pytest.mark.parametrize("word", sorted(OPT_IN_WORDS))
def test_every_opt_in_keyword_opts_in(word: str) -> None:
    assert classify(word.lower()) == Classified(Kind.OPT_IN, keyword=word)


@pytest.mark.parametrize("word", sorted(HELP_WORDS))
def test_help_keywords_ask_for_help(word: str) -> None:
    assert classify(f" {word.lower()}?") == Classified(Kind.HELP, keyword=word)


def test_the_opt_out_and_opt_in_lists_are_exactly_the_specified_words() -> None:
    assert sorted(OPT_OUT_WORDS) == ["CANCEL", "END", "OPTOUT", "QUIT", "REVOKE", "STOP", "STOPALL", "UNSUBSCRIBE"]
    assert sorted(OPT_IN_WORDS) == ["START", "UNSTOP", "YES"]


@pytest.mark.parametrize(
    "body",
    ["please stop", "stop texting me", "Can I cancel my appointment?", "yes please", "STOP STOP", "help me", "st op"],
)
def test_keywords_count_only_as_the_whole_message(body: str) -> None:
    assert classify(body).kind is Kind.OTHER


@pytest.mark.parametrize(
    ("body", "score"),
    [("0", 0), ("7", 7), ("10", 10), (" 7 ", 7), ("7.", 7), ("07", 7), ("7/10", 7), ("7 / 10", 7),
     ("7 out of 10", 7), ("pain 7", 7), ("Pain: 7", 7), ("PAIN 7/10", 7), ("pain is 3", 3), ("my pain is 2", 2),
     ("pain=4", 4), ("10/10", 10)],
)
def test_scores_in_the_forms_patients_write(body: str, score: int) -> None:
    assert classify(body) == Classified(Kind.SCORE, score=score)


@pytest.mark.parametrize("body", ["11", "-1", "7.5", "7/5", "seven", "70", "pain", "7 8", "about 7", "", "   "])
def test_anything_else_is_for_staff(body: str) -> None:
    assert classify(body) == Classified(Kind.OTHER)


@given(st.text(max_size=200))
def test_classify_never_raises_and_scores_stay_in_range(body: str) -> None:
    result = classify(body)
    assert isinstance(result.kind, Kind)
    assert (result.score is not None) == (result.kind is Kind.SCORE)
    if result.score is not None:
        assert 0 <= result.score <= 10


@given(st.integers(min_value=0, max_value=10))
def test_every_score_from_0_to_10_is_read_back(score: int) -> None:
    assert classify(str(score)).score == score
    assert classify(f"{score}/10").score == score

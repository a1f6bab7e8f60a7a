"""The reply parser (pure), table-tested with replies as patients write them, in English and Spanish.

The table's counts by kind are printed by ``python -m tests.conversation.test_replies``.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engage.conversation.replies import (
    HELP_WORDS,
    OPT_IN_WORDS,
    OPT_OUT_WORDS,
    Kind,
    Reply,
    normalise,
    parse_reply,
)

OUT, IN, H, C, R, S, A, X = (
    Kind.OPT_OUT,
    Kind.OPT_IN,
    Kind.HELP,
    Kind.CONFIRM,
    Kind.RESCHEDULE,
    Kind.SCORE,
    Kind.AMBIGUOUS,
    Kind.OTHER,
)

#: (body, kind, score or keyword)
TABLE: list[tuple[str, Kind, int | str | None]] = [
    # --- opt-out: Twilio's words, their spellings, and messages that start with one
    ("STOP", OUT, "STOP"),
    ("stop", OUT, "STOP"),
    ("Stop.", OUT, "STOP"),
    ("  stop!! ", OUT, "STOP"),
    ('"STOP"', OUT, "STOP"),
    ("\u201cStop\u201d", OUT, "STOP"),
    ("\uff33\uff34\uff2f\uff30", OUT, "STOP"),
    ("\U0001f6d1 STOP", OUT, "STOP"),
    ("STOP ALL", OUT, "STOPALL"),
    ("stopall", OUT, "STOPALL"),
    ("Unsubscribe", OUT, "UNSUBSCRIBE"),
    ("unsubscribe me please", OUT, "UNSUBSCRIBE"),
    ("CANCEL", OUT, "CANCEL"),
    ("Cancel", OUT, "CANCEL"),
    ("cancel my appointment", OUT, "CANCEL"),
    ("End", OUT, "END"),
    ("QUIT", OUT, "QUIT"),
    ("opt out", OUT, "OPTOUT"),
    ("Opt-out", OUT, "OPTOUT"),
    ("OPTOUT", OUT, "OPTOUT"),
    ("revoke", OUT, "REVOKE"),
    ("stop please", OUT, "STOP"),
    ("Stop texting me", OUT, "STOP"),
    ("STOP sending me these", OUT, "STOP"),
    ("Please stop", OUT, "STOP"),
    ("pls stop texting", OUT, "STOP"),
    ("no more texts please", OUT, "REQUEST"),
    ("Don't text me anymore", OUT, "REQUEST"),
    ("BAJA", OUT, "BAJA"),
    ("baja", OUT, "BAJA"),
    ("Baja por favor", OUT, "BAJA"),
    ("ALTO", OUT, "ALTO"),
    ("Parar", OUT, "PARAR"),
    ("PARE", OUT, "PARE"),
    ("pare de enviarme mensajes", OUT, "PARE"),
    ("Cancelar", OUT, "CANCELAR"),
    ("cancelar cita", OUT, "CANCELAR"),
    ("DETENER", OUT, "DETENER"),
    ("Por favor baja", OUT, "BAJA"),
    ("no me manden mas mensajes", OUT, "REQUEST"),
    ("No me envíen más mensajes por favor", OUT, "REQUEST"),
    ("¡Alto!", OUT, "ALTO"),
    # --- opt-in (YES is not one) and help
    ("START", IN, "START"),
    ("start", IN, "START"),
    ("Unstop", IN, "UNSTOP"),
    ("ALTA", IN, "ALTA"),
    ("Comenzar", IN, "COMENZAR"),
    ("HELP", H, "HELP"),
    ("help?", H, "HELP"),
    ("Info", H, "INFO"),
    ("AYUDA", H, "AYUDA"),
    ("¿Ayuda?", H, "AYUDA"),
    # --- confirmations and reschedule
    ("C", C, "C"),
    ("c", C, "C"),
    ("C.", C, "C"),
    ("YES", C, "YES"),
    ("yes", C, "YES"),
    ("Yes!", C, "YES"),
    ("yes thanks", C, "YES"),
    ("Yes, see you then", C, "YES"),
    ("SI", C, "SI"),
    ("Sí", C, "SI"),
    ("SÍ", C, "SI"),
    ("si gracias", C, "SI"),
    ("Confirm", C, "CONFIRM"),
    ("confirmed", C, "CONFIRMED"),
    ("Confirmo", C, "CONFIRMO"),
    ("R", R, "R"),
    ("r", R, "R"),
    ("Reschedule", R, "RESCHEDULE"),
    ("reprogramar", R, "REPROGRAMAR"),
    # --- scores
    ("0", S, 0),
    ("7", S, 7),
    ("10", S, 10),
    ("7.", S, 7),
    ("07", S, 7),
    ("7/10", S, 7),
    ("7 / 10", S, 7),
    ("10/10", S, 10),
    ("7 out of 10", S, 7),
    ("a 7", S, 7),
    ("A 7.", S, 7),
    ("about 6", S, 6),
    ("About a 6", S, 6),
    ("around 4", S, 4),
    ("maybe a 3", S, 3),
    ("I'm at a 5 today", S, 5),
    ("Pain 7/10", S, 7),
    ("pain: 7", S, 7),
    ("my pain is 2", S, 2),
    ("My pain is a 4 today", S, 4),
    ("seven", S, 7),
    ("Seven.", S, 7),
    ("a seven", S, 7),
    ("zero", S, 0),
    ("ten", S, 10),
    ("7 \U0001f615", S, 7),
    ("\uff17", S, 7),
    ("7, better than last week", S, 7),
    ("4 mejor que ayer", S, 4),
    ("mi dolor es 7", S, 7),
    ("Mi dolor es un 7", S, 7),
    ("siete", S, 7),
    ("Siete", S, 7),
    ("un 5", S, 5),
    ("dolor 3 de 10", S, 3),
    ("como un 6", S, 6),
    ("estoy en 8", S, 8),
    ("hoy un 2", S, 2),
    ("cero", S, 0),
    ("diez", S, 10),
    ("tres", S, 3),
    ("8 sobre 10", S, 8),
    # --- ambiguous: numbers, but not one score
    ("5 or 6", A, None),
    ("5-6", A, None),
    ("5 - 6", A, None),
    ("between 5 and 6", A, None),
    ("6.5", A, None),
    ("6,5", A, None),
    ("11", A, None),
    ("70", A, None),
    ("5/6", A, None),
    ("5 o 6", A, None),
    ("entre 5 y 6", A, None),
    ("seis o siete", A, None),
    ("like a 6 or 7", A, None),
    ("-1", A, None),
    # --- anything else: for a person
    ("Running late, see you at 10", X, None),
    ("Can I come at 10am?", X, None),
    ("see you at 7:30", X, None),
    ("Thank you!", X, None),
    ("ok", X, None),
    ("no", X, None),
    ("", X, None),
    ("   ", X, None),
    ("\U0001f44d", X, None),
    ("Who is this?", X, None),
    ("help me please", X, None),
    ("My leg feels numb, is that normal?", X, None),
    ("yes but I will be 10 minutes late", X, None),
    ("Can I stop the stretches if it hurts?", X, None),
    ("¿Puedo venir mañana?", X, None),
    ("Gracias", X, None),
    ("si puedo ir a las 5?", X, None),
    ("Tengo mucho dolor en la pierna", X, None),
    ("¿Quién es?", X, None),
    ("Llego tarde", X, None),
]


def _expected(kind: Kind, value: int | str | None) -> Reply:
    if kind is Kind.SCORE:
        return Reply(kind, score=int(value or 0))
    if kind in (Kind.AMBIGUOUS, Kind.OTHER):
        return Reply(kind)
    return Reply(kind, keyword=str(value))


@pytest.mark.parametrize(("body", "kind", "value"), TABLE, ids=[repr(b) for b, _, _ in TABLE])
def test_reply_table(body: str, kind: Kind, value: int | str | None) -> None:
    assert parse_reply(body) == _expected(kind, value)


def table_counts() -> Counter[str]:
    return Counter(kind.value for _, kind, _ in TABLE)


def test_the_table_is_large_and_covers_every_kind_in_both_languages() -> None:
    counts = table_counts()
    assert sum(counts.values()) >= 80
    assert set(counts) == {k.value for k in Kind}
    spanish = ("baja", "alto", "cancelar", "ayuda", "sí", "siete", "dolor", "entre", "gracias")
    assert sum(any(w in b.lower() for w in spanish) for b, _, _ in TABLE) >= 20


@pytest.mark.parametrize("word", sorted(OPT_OUT_WORDS))
def test_every_opt_out_word_opts_out_in_any_case_and_as_a_first_word(word: str) -> None:
    for body in (word, word.lower(), word.title(), f"  {word}  ", f"{word}.", f"{word.lower()} please"):
        assert parse_reply(body) == Reply(Kind.OPT_OUT, keyword=word)


@pytest.mark.parametrize(("words", "kind"), [(OPT_IN_WORDS, Kind.OPT_IN), (HELP_WORDS, Kind.HELP)])
def test_opt_in_and_help_words_count_only_as_the_whole_message(words: frozenset[str], kind: Kind) -> None:
    for word in words:
        assert parse_reply(word.lower()) == Reply(kind, keyword=word)
        assert parse_reply(f"{word.lower()} with my appointment").kind is Kind.OTHER


def test_the_keyword_lists_are_exactly_the_specified_words() -> None:
    assert sorted(OPT_OUT_WORDS) == [
        "ALTO",
        "BAJA",
        "CANCEL",
        "CANCELAR",
        "DETENER",
        "END",
        "OPTOUT",
        "PARAR",
        "PARE",
        "QUIT",
        "REVOKE",
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
    ]
    assert sorted(OPT_IN_WORDS) == ["ALTA", "COMENZAR", "START", "UNSTOP"]
    assert "YES" not in OPT_IN_WORDS


def test_normalise_folds_width_case_accents_quotes_and_emoji() -> None:
    assert normalise("  \u201c\uff33\uff54\uff4f\uff50\u201d \U0001f64f ") == "stop"
    assert normalise("SÍ, ¡GRACIAS!") == "si gracias"
    assert normalise("7/10") == "7/10" and normalise("5-6") == "5-6" and normalise("7 / 10") == "7 / 10"


@given(st.text(max_size=200))
def test_parse_never_raises_and_scores_stay_in_range(body: str) -> None:
    result = parse_reply(body)
    assert isinstance(result.kind, Kind)
    assert (result.score is not None) == (result.kind is Kind.SCORE)
    if result.score is not None:
        assert 0 <= result.score <= 10


if __name__ == "__main__":
    counts = table_counts()
    print(f"{sum(counts.values())} replies: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))

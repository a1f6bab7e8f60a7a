"""The reply parser (pure), table-tested with replies as patients write them, in English and Spanish.

The table's counts by kind are printed by ``python -m tests.conversation.test_replies``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

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
    # --- opt-out by any reasonable means (issue 22): phrases, typos, spacing, anywhere in a short message
    ("remove me", OUT, "REQUEST"),
    ("Please remove me from this list", OUT, "REQUEST"),
    ("take me off your list", OUT, "REQUEST"),
    ("opt me out", OUT, "REQUEST"),
    ("I don't want these texts anymore", OUT, "REQUEST"),
    ("Can you stop texting me please", OUT, "REQUEST"),
    ("Ok stop", OUT, "STOP"),
    ("please just STOP", OUT, "STOP"),
    ("I said stop", OUT, "STOP"),
    ("stopp", OUT, "STOP"),
    ("Sotp", OUT, "STOP"),
    ("unsubscibe", OUT, "UNSUBSCRIBE"),
    ("S T O P", OUT, "STOP"),
    ("s.t.o.p", OUT, "STOP"),
    ("STOP\x00", OUT, "STOP"),
    ("ST\x00OP", OUT, "STOP"),
    ("st\u200bop", OUT, "STOP"),
    ("I revoke my consent to texts", OUT, "REVOKE"),
    ("please unsubscribe me from these", OUT, "UNSUBSCRIBE"),
    ("Wrong number", OUT, "REQUEST"),
    ("You have the wrong number", OUT, "REQUEST"),
    ("this is the wrong person", OUT, "REQUEST"),
    ("dejen de enviarme mensajes", OUT, "REQUEST"),
    ("no quiero mensajes", OUT, "REQUEST"),
    ("no quiero recibir más mensajes", OUT, "REQUEST"),
    ("Por favor ya no me escriban", OUT, "REQUEST"),
    ("Quiero darme de baja", OUT, "REQUEST"),
    ("Quítenme de su lista", OUT, "REQUEST"),
    ("Número equivocado", OUT, "REQUEST"),
    ("No es mi número", OUT, "REQUEST"),
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
    ("Sí, confirmo", C, "SI"),
    ("confirmado", C, "CONFIRMADO"),
    ("yes I'll be there", C, "YES"),
    ("see you then", C, "CONFIRM"),
    ("Ok, see you tomorrow!", C, "CONFIRM"),
    ("Nos vemos, gracias", C, "CONFIRM"),
    ("Allí estaré", C, "CONFIRM"),
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
    # --- keywords that are also ordinary words stay messages for a person
    ("el dolor baja", X, None),
    ("mi dolor es alto", X, None),
    ("I need to cancel", X, None),
    ("step 1 done, it helped", X, None),
    ("quite bad today", X, None),
    ("I took the wrong number of pills", X, None),
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


# --- issue 22: the rows above that existed before it mean exactly what they meant ---------------

SNAPSHOT = Path(__file__).parent.parent / "fixtures" / "replies" / "replies_before_issue22.json"


def test_none_of_the_147_rows_from_before_issue_22_changed_meaning() -> None:
    """The parser's answers to the table as it stood, recorded before the parser changed, still hold."""
    rows = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert len(rows) == 147
    for row in rows:
        reply = parse_reply(row["body"])
        was = Reply(Kind(row["kind"]), score=row["score"], keyword=row["keyword"])
        assert reply == was, row["body"]  # also: no text score or red flag where there was none
    assert {row["body"] for row in rows} <= {body for body, _, _ in TABLE}


# --- one test per class of opt-out ---------------------------------------------------------------


@pytest.mark.parametrize("body", ["ok stop", "please just stop", "I said stop", "STOP STOP STOP", "Pls stop!!"])
def test_a_keyword_first_or_last_in_a_short_message_opts_out(body: str) -> None:
    assert parse_reply(body) == Reply(Kind.OPT_OUT, keyword="STOP")


@pytest.mark.parametrize(
    ("body", "keyword"),
    [("stopp", "STOP"), ("sotp", "STOP"), ("stp", "STOP"), ("unsubscibe", "UNSUBSCRIBE"), ("cancle", "CANCEL")],
)
def test_a_keyword_misspelt_by_one_letter_opts_out(body: str, keyword: str) -> None:
    assert parse_reply(body) == Reply(Kind.OPT_OUT, keyword=keyword)


@pytest.mark.parametrize("body", ["step", "shop", "top", "quite", "cancer", "para"])
def test_a_real_word_one_letter_from_a_keyword_is_not_an_opt_out(body: str) -> None:
    assert parse_reply(body).kind is not Kind.OPT_OUT


@pytest.mark.parametrize("body", ["S T O P", "s-t-o-p", "s.t.o.p", "S  T  O  P  please", "u n s u b s c r i b e"])
def test_a_keyword_spaced_out_opts_out(body: str) -> None:
    assert parse_reply(body).kind is Kind.OPT_OUT


@pytest.mark.parametrize(
    "body",
    [
        "Hi, I revoke my consent to receive these",
        "unsubscribe me from everything thanks",
        "I want to opt out of all of this",
    ],
)
def test_an_unambiguous_keyword_anywhere_in_a_short_message_opts_out(body: str) -> None:
    assert parse_reply(body).kind is Kind.OPT_OUT


@pytest.mark.parametrize(
    "body",
    [
        "remove me",
        "take me off your list",
        "opt me out",
        "I don't want these texts anymore",
        "Can you stop texting me please",
        "do not text me again",
        "please delete my number",
        "leave me alone",
        "hi, can you stop sending these messages? thanks",
    ],
)
def test_an_english_request_to_be_removed_or_not_texted_opts_out(body: str) -> None:
    assert parse_reply(body) == Reply(Kind.OPT_OUT, keyword="REQUEST")


@pytest.mark.parametrize(
    "body",
    [
        "dejen de enviarme mensajes",
        "no quiero mensajes",
        "no quiero recibir más mensajes",
        "Por favor ya no me escriban",
        "Quiero darme de baja",
        "sáquenme de su lista por favor",
        "borren mi número",
        "Deje de mandarme textos",
    ],
)
def test_a_spanish_request_to_be_removed_or_not_texted_opts_out(body: str) -> None:
    assert parse_reply(body) == Reply(Kind.OPT_OUT, keyword="REQUEST")


@pytest.mark.parametrize(
    "body",
    ["Wrong number", "Sorry, wrong number", "you have the wrong person", "Número equivocado", "Se equivocó de número"],
)
def test_a_wrong_number_reply_opts_out(body: str) -> None:
    assert parse_reply(body) == Reply(Kind.OPT_OUT, keyword="REQUEST")


@pytest.mark.parametrize(
    "body",
    ["Can I stop the stretches if it hurts?", "el dolor baja", "mi dolor es alto", "the end of my leg hurts"],
)
def test_a_keyword_in_a_sentence_about_something_else_is_for_a_person(body: str) -> None:
    assert parse_reply(body).kind is Kind.OTHER


@given(st.sampled_from(["STOP", "stop", "BAJA", "7", "yes", "help", "remove me"]), st.data())
def test_a_control_or_format_character_anywhere_changes_nothing(body: str, data: st.DataObject) -> None:
    control = data.draw(st.sampled_from(["\x00", "\x07", "\x1b", "\x7f", "\u200b", "\u200d", "\ufeff"]))
    at = data.draw(st.integers(0, len(body)))
    assert parse_reply(body[:at] + control + body[at:]) == parse_reply(body)


# --- scores in a sentence, red flags and confirmations ------------------------------------------

SENTENCE_SCORES = [
    ("9/10 worse after yesterday", 9),
    ("pain 9 since the needling", 9),
    ("nope, still 8", 8),
    ("Still a 6 but walking better", 6),
    ("my pain level is 3 after the stretches", 3),
    ("9/10 peor desde ayer", 9),
    ("dolor 9 desde la punción", 9),
    ("no, sigue en 8", 8),
    ("todavía un 8", 8),
    ("mi dolor es de 4 después de caminar", 4),
]


@pytest.mark.parametrize(("body", "score"), SENTENCE_SCORES)
def test_a_score_written_in_a_sentence_is_read_as_its_text_score(body: str, score: int) -> None:
    reply = parse_reply(body)
    assert (reply.kind, reply.score, reply.text_score) == (Kind.OTHER, None, score)


@pytest.mark.parametrize(
    "body",
    ["I walked 10 minutes", "see you at 10", "yes but I will be 10 minutes late", "pain 5 then 8", "2 questions"],
)
def test_a_number_that_is_not_marked_as_a_score_or_two_scores_give_no_text_score(body: str) -> None:
    assert parse_reply(body).text_score is None


RED_FLAG_REPLIES = [
    ("I can't pee since this morning", "bladder or bowel"),
    ("lost control of my bladder", "bladder or bowel"),
    ("no puedo orinar", "bladder or bowel"),
    ("my groin is numb", "numbness between the legs"),
    ("numb between my legs", "numbness between the legs"),
    ("se me entumeció la entrepierna", "numbness between the legs"),
    ("my leg is getting weaker", "leg getting weaker"),
    ("I can't lift my foot", "leg getting weaker"),
    ("mi pierna está más débil", "leg getting weaker"),
    ("I have a fever", "fever or infected needle site"),
    ("the needle spot is hot and swollen", "fever or infected needle site"),
    ("tengo fiebre y escalofríos", "fever or infected needle site"),
    ("I fainted after I got home", "fainting"),
    ("me desmayé", "fainting"),
]


@pytest.mark.parametrize(("body", "flag"), RED_FLAG_REPLIES)
def test_red_flag_symptoms_are_named_and_urgent(body: str, flag: str) -> None:
    reply = parse_reply(body)
    assert flag in reply.red_flags and reply.urgent


@pytest.mark.parametrize(("body", "urgent"), [("8", True), ("7", False), ("nope, still 8", True), ("pain 7", False)])
def test_a_score_of_eight_or_more_is_urgent(body: str, urgent: bool) -> None:
    assert parse_reply(body).urgent is urgent


@pytest.mark.parametrize("body", ["My leg feels numb, is that normal?", "Tengo mucho dolor en la pierna", "sore today"])
def test_ordinary_complaints_are_not_red_flags(body: str) -> None:
    assert parse_reply(body).red_flags == ()


@pytest.mark.parametrize(
    "body", ["Sí, confirmo", "confirmado", "yes I'll be there", "see you then", "Ahí estaré", "I'll be there, thanks"]
)
def test_confirmations_in_words_confirm(body: str) -> None:
    assert parse_reply(body).kind is Kind.CONFIRM

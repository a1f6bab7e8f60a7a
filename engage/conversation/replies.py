"""What a patient's SMS reply means. Pure: :func:`parse_reply` looks only at the text.

Normalising first (:func:`normalise`): Unicode NFKC (full-width ``ＳＴＯＰ`` is ``STOP``),
case-fold, accents dropped for matching (``SÍ`` is ``si``), and quotes, punctuation,
emoji and extra whitespace removed; only ``/``, ``-``, ``.`` and ``,`` between digits
survive, because they change what a number means (``7/10``, ``5-6``, ``6.5``).

Then, first match wins:

1. **Opt-out** (the FCC's 2024 rule: consent may be revoked by any reasonable means):
   Twilio's words (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT), OPT OUT, REVOKE and
   Spanish BAJA, ALTO, PARAR, PARE, CANCELAR, DETENER, as the whole message or its first
   word (``stop please``, ``stop texting me``, ``please stop``), and a few plain requests
   (``no more texts``, ``no me manden mas mensajes``).
2. **Opt-in** START, UNSTOP, ALTA, COMENZAR; **help** HELP, INFO, AYUDA: whole message only.
   YES is not an opt-in: reminders ask for it as a confirmation.
3. **Confirm** C, YES, SI, CONFIRM (with courtesy words: ``yes thanks``); **reschedule** R.
4. **Score** 0-10 when the message is nothing but a score (``7``, ``7/10``, ``a 7``,
   ``about 6``, ``mi dolor es 7``, ``seven``, ``siete``); **ambiguous** when it is nothing
   but numbers that are not one score (``5 or 6``, ``5-6``, ``6.5``, ``11``): ask again.
5. **Other**: everything else is for a person.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass


class Kind(enum.StrEnum):
    """The values stored in ``InboundMessage.kind``."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    CONFIRM = "confirm"
    RESCHEDULE = "reschedule"
    SCORE = "score"
    AMBIGUOUS = "ambiguous"  # numbers, but not one 0-10 score: ask once again
    OTHER = "other"


@dataclass(frozen=True)
class Reply:
    """The meaning of one SMS body; ``score`` is set only for :attr:`Kind.SCORE` (0-10).

    ``keyword`` is the canonical keyword (upper case, e.g. ``"STOP"``, ``"BAJA"``) for
    keyword kinds, kept as the consent event's detail.
    """

    kind: Kind
    score: int | None = None
    keyword: str | None = None


OPT_OUT_WORDS = frozenset(
    {
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "OPTOUT",
        "REVOKE",
        "BAJA",
        "ALTO",
        "PARAR",
        "PARE",
        "CANCELAR",
        "DETENER",
    }
)
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "ALTA", "COMENZAR"})
HELP_WORDS = frozenset({"HELP", "INFO", "AYUDA"})
CONFIRM_WORDS = frozenset({"C", "YES", "SI", "CONFIRM", "CONFIRMED", "CONFIRMO", "CONFIRMADO", "CONFIRMAR"})
RESCHEDULE_WORDS = frozenset({"R", "RESCHEDULE", "REPROGRAMAR"})
#: Twilio's default keywords: with Advanced Opt-Out on, Twilio itself answers these (whole message only).
TWILIO_KEYWORDS = frozenset(
    {
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "START",
        "YES",
        "UNSTOP",
        "HELP",
        "INFO",
    }
)

# Two-word spellings of one keyword ("opt out", "stop all").
_JOINED = {("opt", "out"): "optout", ("stop", "all"): "stopall", ("un", "subscribe"): "unsubscribe"}
# Said before a keyword without changing it: "please stop", "por favor baja".
_POLITE_LEAD = ("please", "pls", "plz", "por favor", "favor de")
# May follow a confirmation: "yes thanks", "si gracias", "c thank you".
_COURTESY = frozenset(
    {
        "thanks",
        "thank",
        "you",
        "thx",
        "ty",
        "please",
        "ok",
        "okay",
        "great",
        "see",
        "then",
        "there",
        "will",
        "ll",
        "be",
        "i",
        "gracias",
        "por",
        "favor",
        "perfecto",
        "nos",
        "vemos",
        "alli",
        "ahi",
        "estare",
        "claro",
    }
)
_PLAIN_OPT_OUT = re.compile(
    r"^(?:(?:please|por favor) )?(?:"
    r"(?:do not|dont|don t) (?:text|message|contact|send)"
    r"|no more (?:texts?|messages|text messages|sms)"
    r"|(?:no )?(?:me )?(?:envien|manden|escriban) (?:mas )?(?:mensajes|textos)"
    r"|no (?:me )?(?:envien|manden|escriban|mande|envie)"
    r"|no mas (?:mensajes|textos)"
    r")\b"
)

_NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "cero": 0,
    "uno": 1,
    "una": 1,
    "dos": 2,
    "tres": 3,
    "cuatro": 4,
    "cinco": 5,
    "seis": 6,
    "siete": 7,
    "ocho": 8,
    "nueve": 9,
    "diez": 10,
}
# Words around a score that do not change it ("my pain is about a 7 today", "mi dolor es como un 7").
_FILLER = frozenset(
    {
        # English
        "my",
        "pain",
        "is",
        "its",
        "it",
        "s",
        "m",
        "a",
        "an",
        "about",
        "around",
        "approx",
        "approximately",
        "maybe",
        "like",
        "i",
        "im",
        "am",
        "at",
        "level",
        "today",
        "now",
        "currently",
        "right",
        "still",
        "the",
        "would",
        "say",
        "d",
        "id",
        "feeling",
        "feel",
        "score",
        "rating",
        "probably",
        "think",
        "guess",
        "hi",
        "hello",
        "thanks",
        "thank",
        "you",
        "ok",
        "okay",
        "back",
        "this",
        "morning",
        "so",
        "roughly",
        "prob",
        # Spanish
        "mi",
        "dolor",
        "es",
        "esta",
        "estoy",
        "en",
        "un",
        "como",
        "hoy",
        "ahora",
        "mas",
        "o",
        "menos",
        "creo",
        "que",
        "nivel",
        "hola",
        "gracias",
        "el",
        "de",
        "tengo",
        "ya",
        "le",
        "doy",
        "diria",
        "yo",
        "aproximadamente",
        "maso",
        "buenos",
        "dias",
        "buenas",
        "tardes",
        # a comparison does not change the number given ("7, worse than yesterday")
        "better",
        "worse",
        "same",
        "much",
        "little",
        "bit",
        "than",
        "yesterday",
        "last",
        "week",
        "but",
        "mejor",
        "peor",
        "igual",
        "poco",
        "ayer",
        "semana",
        "pasada",
        "bastante",
        "mucho",
        "pero",
    }
)
# A time of day is not a score: "10am", "at 7:30".
_TIME = re.compile(r"\d\s*:\s*\d\d|\d\s*(?:am|pm|a\.m|p\.m|hrs|h)\b")
# Between two numbers, these leave the answer undecided: "5 or 6", "5-6", "entre 5 y 6".
_BETWEEN = frozenset({"or", "to", "and", "between", "o", "y", "a", "entre", "-", "maybe", "u"})
_OUT_OF_TEN = re.compile(r"(\d+)\s*(?:/|out of|de|sobre)\s*10\b")
_TOKEN = re.compile(r"\d+(?:[.,]\d+)?|[a-z]+|-")


def normalise(body: str) -> str:
    """``body`` as compared: NFKC, case-folded, accent-free, with no quotes, punctuation or emoji."""
    text = unicodedata.normalize("NFKC", body).casefold()
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    kept: list[str] = []
    for i, char in enumerate(text):
        if char.isalnum() or char in "/-.," and _between_digits(text, i):
            kept.append(char)
        elif char in "/-" and _before_digit(text, i):  # "7 / 10", "5 - 6"
            kept.append(f" {char} ")
        else:  # punctuation, symbols (emoji), separators, controls: a space, never part of a word
            kept.append(" ")
    return " ".join("".join(kept).split())


def _between_digits(text: str, i: int) -> bool:
    return 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()


def _before_digit(text: str, i: int) -> bool:
    rest = text[i + 1 :].lstrip()
    return bool(rest) and rest[0].isdigit()


def parse_reply(body: str) -> Reply:
    """What ``body`` means. Never raises; an empty or unreadable body is :attr:`Kind.OTHER`."""
    text = normalise(body)
    words = text.split()
    if not words:
        return Reply(Kind.OTHER)
    keyword = _opt_out(text, words)
    if keyword:
        return Reply(Kind.OPT_OUT, keyword=keyword)
    whole = _join_words(words)
    if len(whole) == 1:
        word = whole[0].upper()
        for kind, vocabulary in (
            (Kind.OPT_IN, OPT_IN_WORDS),
            (Kind.HELP, HELP_WORDS),
            (Kind.RESCHEDULE, RESCHEDULE_WORDS),
        ):
            if word in vocabulary:
                return Reply(kind, keyword=word)
    first = whole[0].upper()
    if first in CONFIRM_WORDS and all(w in _COURTESY for w in whole[1:]):
        return Reply(Kind.CONFIRM, keyword=first)
    if _TIME.search(unicodedata.normalize("NFKC", body).casefold()):
        return Reply(Kind.OTHER)
    return _score(text)


def _join_words(words: list[str]) -> list[str]:
    if len(words) >= 2 and (words[0], words[1]) in _JOINED:
        return [_JOINED[(words[0], words[1])], *words[2:]]
    return words


def _opt_out(text: str, words: list[str]) -> str | None:
    for lead in _POLITE_LEAD:
        if text.startswith(lead + " "):
            words = text[len(lead) + 1 :].split()
            break
    words = _join_words(words)
    if words and words[0].upper() in OPT_OUT_WORDS:
        return words[0].upper()
    if _PLAIN_OPT_OUT.match(text):
        return "REQUEST"
    return None


def _score(text: str) -> Reply:
    if text.startswith("- "):  # "-1": a negative number is no score
        return Reply(Kind.AMBIGUOUS)
    text = _OUT_OF_TEN.sub(r"\1", text)
    numbers: list[str] = []
    joiners = 0
    for token in _TOKEN.findall(text):
        if token[0].isdigit():
            numbers.append(token)
        elif token in _NUMBER_WORDS:
            numbers.append(str(_NUMBER_WORDS[token]))
        elif token in _BETWEEN:
            joiners += 1
        elif token not in _FILLER:
            return Reply(Kind.OTHER)  # a word that is not about a score: a message for a person
    # Every token was accounted for, so what is left is only numbers and the words around them.
    if not numbers:
        return Reply(Kind.OTHER)
    if len(numbers) == 1 and numbers[0].isdigit() and int(numbers[0]) <= 10:
        return Reply(Kind.SCORE, score=int(numbers[0]))
    if len(set(numbers)) == 1 and all(n.isdigit() for n in numbers) and int(numbers[0]) <= 10 and not joiners:
        return Reply(Kind.SCORE, score=int(numbers[0]))  # "7... 7"
    return Reply(Kind.AMBIGUOUS)

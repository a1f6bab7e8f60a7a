"""What a patient's SMS reply means. Pure: :func:`parse_reply` looks only at the text.

Normalising first (:func:`normalise`): Unicode NFKC (full-width ``ＳＴＯＰ`` is ``STOP``),
case-fold, accents dropped for matching (``SÍ`` is ``si``), and quotes, punctuation,
emoji and extra whitespace removed; only ``/``, ``-``, ``.`` and ``,`` between digits
survive, because they change what a number means (``7/10``, ``5-6``, ``6.5``).

Then, first match wins:

1. **Opt-out** (the FCC's 2024 rule: consent may be revoked by any reasonable means; see
   :mod:`engage.conversation.opt_outs`): a keyword (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END,
   QUIT, OPT OUT, REVOKE, BAJA, ALTO, PARAR, PARE, CANCELAR, DETENER) first (``stop please``,
   ``ok stop``), last in a short message, misspelt by one letter or spaced out, and phrases
   asking to be removed or not texted or saying it is the wrong number, in English and Spanish.
2. **Opt-in** START, UNSTOP, ALTA, COMENZAR; **help** HELP, INFO, AYUDA: whole message only.
   YES is not an opt-in: reminders ask for it as a confirmation.
3. **Confirm** C, YES, SI, CONFIRM (with courtesy words: ``yes thanks``, ``si, confirmo``) or
   a phrase alone (``see you then``, ``nos vemos``); **reschedule** R.
4. **Score** 0-10 when the message is nothing but a score (``7``, ``7/10``, ``a 7``,
   ``about 6``, ``mi dolor es 7``, ``seven``, ``siete``); **ambiguous** when it is nothing
   but numbers that are not one score (``5 or 6``, ``5-6``, ``6.5``, ``11``): ask again.
5. **Other**: everything else is for a person; a 0-10 score written in it (``9/10 worse after
   yesterday``) is kept as ``text_score``.

A reply (opt-out or other) also carries the red-flag signs the message mentions (``red_flags``, see
:mod:`engage.conversation.symptoms`); :attr:`Reply.urgent` is True for those and for scores of 8+.
Control characters (NUL included) are dropped before reading.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass

from engage.conversation.opt_outs import OPT_OUT_WORDS, join_words, opt_out_keyword
from engage.conversation.symptoms import red_flags, score_in_sentence

__all__ = ["CONFIRM_WORDS", "HELP_WORDS", "OPT_IN_WORDS", "OPT_OUT_WORDS", "Kind", "Reply", "normalise", "parse_reply"]


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


#: A pain score this high always gets the safety answer and an urgent flag.
URGENT_SCORE = 8


@dataclass(frozen=True)
class Reply:
    """The meaning of one SMS body; ``score`` is set only for :attr:`Kind.SCORE` (0-10).

    ``keyword`` is the canonical keyword (upper case, e.g. ``"STOP"``, ``"BAJA"``) for
    keyword kinds, kept as the consent event's detail.
    """

    kind: Kind
    score: int | None = None
    keyword: str | None = None
    #: A 0-10 score written inside a longer message (kind OTHER): the answer to an open prompt, if any.
    text_score: int | None = None
    #: Red-flag signs the message mentions (:data:`engage.conversation.symptoms.RED_FLAGS`): always answered.
    red_flags: tuple[str, ...] = ()

    @property
    def urgent(self) -> bool:
        """True when the reply needs the safety answer and a person soon: a red flag, or a score of 8 or more."""
        score = self.score if self.score is not None else self.text_score
        return bool(self.red_flags) or (score is not None and score >= URGENT_SCORE)


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
# Whole messages that confirm without a yes: "see you then", "I'll be there", "nos vemos", "alli estare".
_CONFIRM_PHRASE = re.compile(
    r"\b(?:see you|be there|nos vemos|estare (?:alli|ahi)|(?:alli|ahi) estare|cuenten conmigo)\b"
)
_CONFIRM_EXTRA = frozenset(
    {"soon", "tomorrow", "manana", "entonces", "sure", "perfect", "estare", "cuenten", "conmigo"}
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
    # A control or format character (NUL, a zero-width space) is dropped, not read: "ST\x00OP" is STOP.
    body = "".join(c for c in body if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf"))
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
    """What ``body`` means. Never raises; an empty or unreadable body is :attr:`Kind.OTHER`.

    Control characters (NUL included) read as spaces, so ``STOP\\x00`` is STOP.
    """
    text = normalise(body)
    words = text.split()
    if not words:
        return Reply(Kind.OTHER)
    flags = red_flags(text)
    keyword = opt_out_keyword(text)
    if keyword:
        return Reply(Kind.OPT_OUT, keyword=keyword, red_flags=flags)
    whole = join_words(words)
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
    if first in CONFIRM_WORDS and all(w in _COURTESY or w.upper() in CONFIRM_WORDS for w in whole[1:]):
        return Reply(Kind.CONFIRM, keyword=first)
    if _CONFIRM_PHRASE.search(text) and all(w in _COURTESY or w in _CONFIRM_EXTRA for w in whole):
        return Reply(Kind.CONFIRM, keyword="CONFIRM")
    if _TIME.search(unicodedata.normalize("NFKC", body).casefold()):
        return Reply(Kind.OTHER, red_flags=flags)
    meaning = _score(text)
    if meaning.kind is Kind.OTHER:
        return Reply(Kind.OTHER, text_score=score_in_sentence(text), red_flags=flags)
    return meaning


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

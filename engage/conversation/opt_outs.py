"""Is a normalised SMS body asking us to stop texting? Pure; used by :mod:`engage.conversation.replies`.

The FCC's 2024 rule lets a patient revoke consent "by any reasonable means", and a number kept
by mistake costs a clinic more than one stopped by mistake, so a message that is *probably* an
opt-out is one. Read as opt-outs (``text`` is already case-, accent- and punctuation-folded):

- a keyword (STOP, UNSUBSCRIBE, BAJA, ...) as the first word (after ``please``, ``ok``, ...),
  as the last word of a short message (``ok stop``), or alone with a few words in a very short one;
- the unambiguous ones (STOPALL, UNSUBSCRIBE, OPTOUT, REVOKE) anywhere in a short message;
- a keyword misspelt by one letter (``stopp``, ``unsubscibe``, ``sotp``), unless the misspelling
  is itself a word (``step``, ``quite``, ``cancer``, ``para``);
- a keyword spaced out (``S T O P``, ``s.t.o.p``);
- a phrase asking to be removed or not texted, or saying it is the wrong number, in English or
  Spanish (``remove me``, ``take me off your list``, ``dejen de enviarme mensajes``, ``numero
  equivocado``), anywhere in a message of up to :data:`PHRASE_WORDS` words.

A keyword in the middle of a longer sentence is not enough on its own: ``Can I stop the
stretches if it hurts?`` and ``el dolor baja`` are for a person, not opt-outs.
"""

from __future__ import annotations

import re

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
#: Keywords that mean nothing else, so they count anywhere in a short message.
UNAMBIGUOUS = frozenset({"STOPALL", "UNSUBSCRIBE", "OPTOUT", "REVOKE"})
#: Keywords worth recognising misspelt: long enough that one slip leaves them recognisable.
_FUZZY = ("STOP", "STOPALL", "UNSUBSCRIBE", "OPTOUT", "REVOKE", "CANCEL", "CANCELAR", "DETENER")
#: Real words one letter away from a keyword: never read as a misspelt keyword.
_NOT_TYPOS = frozenset(
    {
        "step",
        "stoop",
        "stomp",
        "shop",
        "slop",
        "stow",
        "atop",
        "top",
        "sop",
        "stopt",
        "stoa",
        "cancer",
        "cancels",
        "canceled",
        "cancelo",
        "cancele",
        "cancela",
        "cancelan",
        "cancelas",
        "detenes",
    }
)
#: How many words a message may have for a keyword anywhere in it to count.
SHORT_WORDS = 12
#: How many words a message may have for an opt-out phrase anywhere in it to count.
PHRASE_WORDS = 30

# Two-word spellings of one keyword ("opt out", "stop all").
_JOINED = {("opt", "out"): "optout", ("stop", "all"): "stopall", ("un", "subscribe"): "unsubscribe"}
# Said before a keyword without changing it: "please stop", "ok stop", "por favor baja".
_LEAD = frozenset({"please", "pls", "plz", "ok", "okay", "k", "just", "hi", "hey", "hello", "yes"})
#: Keywords that count as the last word of a short message ("ok stop", "I said quit"); not ALTO or BAJA,
#: which also mean "high" and "goes down" ("el dolor baja"), nor CANCEL ("I need to cancel").
_LAST = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "OPTOUT", "REVOKE", "QUIT", "PARAR", "DETENER"})
_LEAD_PHRASES = ("por favor", "favor de")
_TEXTING = r"(?:text|texts|texting|txt|txting|message|messages|messaging|msg|msgs|sms|contact|contacting|send|sending)"
_EN = (
    rf"\b(?:do not|dont|don t|never|no longer) {_TEXTING}(?: me| us| this| to this| anymore| any more| again|$)",
    rf"\bstop (?:all )?(?:the |these |your |those |this )?{_TEXTING}",
    r"\bno more (?:texts?|messages?|text messages|sms|msgs?)\b",
    r"\b(?:don t|dont|do not|no longer) (?:want|wish|need) (?:to (?:get|receive) )?"
    r"(?:these|your|any|the|this|those|more|any more)? ?(?:texts?|messages?|sms|msgs?|reminders)",
    r"\bremove (?:me|my number|this number|my phone)\b",
    r"\btake (?:me|my number|this number) off\b",
    r"\bopt me out\b",
    r"\bunsubscribe me\b",
    r"\b(?:delete|erase) my (?:number|phone)\b",
    r"\bleave me alone\b",
    r"\bwrong (?:number|person|phone)\b(?! of)",
    r"\bnot my (?:number|phone)\b",
    r"\bno one (?:here )?by that name\b",
)
_ES_SEND = r"(?:enviarme|mandarme|escribirme|textearme|enviar|mandar|escribir|textear|contactarme|llamarme)"
_ES = (
    rf"\bdej(?:en|e|a|ar) de {_ES_SEND}",
    r"\bno (?:quiero|deseo|necesito) (?:recibir |que me (?:envien|manden|escriban) )?(?:mas |ningun |ningunos |"
    r"ninguna |estos |sus |los |mensajes? mas )?(?:mensajes?|textos?|sms|recordatorios)",
    r"\bno (?:me )?(?:envien|manden|escriban|mande|envie|escriba|texteen|contacten)\b",
    r"\bya no (?:me )?(?:envien|manden|escriban|mande|envie|escriba|quiero|texteen|contacten)\b",
    r"\b(?:no )?(?:me )?(?:envien|manden|escriban) (?:mas )?(?:mensajes|textos)\b",
    r"\bno mas (?:mensajes|textos|sms)\b",
    r"\b(?:quit|sa(?:qu|c))(?:en|e|ar)me de (?:la|su|esta|sus) lista",
    r"\b(?:borr|elimin)(?:en|e|ar) mi (?:numero|telefono)\b",
    r"\b(?:dar|darme|doy|me doy|den) de baja\b",
    r"\bnumero (?:equivocado|incorrecto|errado)\b",
    r"\b(?:se )?equivoc(?:o|aron|ado) de (?:numero|persona)\b",
    r"\bno es mi (?:numero|telefono)\b",
    r"\bpersona equivocada\b",
)
_PHRASE = re.compile("|".join((*_EN, *_ES)))


def opt_out_keyword(text: str) -> str | None:
    """The opt-out ``text`` asks for: the canonical keyword (``"STOP"``), ``"REQUEST"`` for a
    phrase, or None. ``text`` is normalised (:func:`engage.conversation.replies.normalise`)."""
    words = text.split()
    if not words:
        return None
    words = _joined_anywhere(_spaced_out(words))
    rest = _without_lead(text, words)
    first = _keyword(rest[0]) if rest else None
    if first:
        return first
    if len(words) <= SHORT_WORDS:
        last = _keyword(words[-1])
        if last in _LAST and (len(words) <= 4 or last in UNAMBIGUOUS):
            return last
        for word in words:
            found = _keyword(word, fuzzy=False)
            if found in UNAMBIGUOUS:
                return found
    if len(words) <= PHRASE_WORDS and _PHRASE.search(" ".join(words)):
        return "REQUEST"
    return None


def join_words(words: list[str]) -> list[str]:
    """``words`` with a two-word spelling of one keyword at the start joined (``opt out`` -> ``optout``)."""
    if len(words) >= 2 and (words[0], words[1]) in _JOINED:
        return [_JOINED[(words[0], words[1])], *words[2:]]
    return words


def _joined_anywhere(words: list[str]) -> list[str]:
    out: list[str] = []
    for word in words:
        if out and (out[-1], word) in _JOINED:
            out[-1] = _JOINED[(out[-1], word)]
        else:
            out.append(word)
    return out


def _without_lead(text: str, words: list[str]) -> list[str]:
    for phrase in _LEAD_PHRASES:
        if text.startswith(phrase + " "):
            words = words[len(phrase.split()) :]
            break
    while len(words) > 1 and words[0] in _LEAD:
        words = words[1:]
    return join_words(words)


def _spaced_out(words: list[str]) -> list[str]:
    """Runs of three or more single letters joined into one word: ``s t o p`` -> ``stop``."""
    out: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1 and word.isalpha():
            run.append(word)
            continue
        out.extend(["".join(run)] if len(run) >= 3 else run)
        run = []
        if word:
            out.append(word)
    return out


def _keyword(word: str, *, fuzzy: bool = True) -> str | None:
    upper = word.upper()
    if upper in OPT_OUT_WORDS:
        return upper
    if not fuzzy or word in _NOT_TYPOS or not word.isalpha():
        return None
    for keyword in _FUZZY:
        if _one_slip(upper, keyword):
            return keyword
    return None


def _one_slip(word: str, keyword: str) -> bool:
    """True when ``word`` is ``keyword`` with one letter added, dropped, changed, or two swapped."""
    if word == keyword or abs(len(word) - len(keyword)) > 1:
        return False
    if len(word) == len(keyword):
        diff = [i for i, (a, b) in enumerate(zip(word, keyword, strict=True)) if a != b]
        if len(diff) == 1:
            return True
        i = diff[0]
        return len(diff) == 2 and diff[1] == i + 1 and word[i] == keyword[i + 1] and word[i + 1] == keyword[i]
    short, long = (word, keyword) if len(word) < len(keyword) else (keyword, word)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))

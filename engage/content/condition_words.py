"""The one rule for "this text names a condition or treatment", shared by the template check and the send path.

:mod:`engage.content.checks` applies it to every template rendered with sample
data (``engage templates check``); :mod:`engage.delivery.send_checks` to the real body
just before it goes, with the plan's own condition and modality added; clinic
settings apply it to a clinic's ``sms_name`` when it is saved. The same matcher
everywhere means a template that passes the check is judged the same way at
send time, with the real clinic name and patient data in it.

A lock screen is read by eye, so the rule compares what a person *sees*, not
the code points. Both the text and each word are reduced to a **skeleton**:

1. Unicode NFKC (full-width ``ＳＣＩＡＴＩＣＡ``, ligatures, compatibility forms);
2. NFD, then combining marks dropped (``Ciática`` typed with a combining acute
   accent, and the precomposed one, both become ``ciatica``);
3. every non-ASCII letter that Unicode's confusables table (UTS #39, shipped by
   ``confusable-homoglyphs``) lists as a look-alike of a Latin letter becomes
   that letter (Cyrillic ``сіаtіса`` is ``sciatica``);
4. case-folded, and everything but letters and digits removed, so words run
   together (``StopSciatica``, ``DryNeedling``, ``_sciatica_``, ``Punción-seca``).

A word is found when its **stem** occurs anywhere in the text's skeleton, also
inside a longer word (``iNeedle``, ``NoMoreSciatica``, ``Sciatic Nerve Care``).
The stem drops one common ending (``sciatica`` -> ``sciatic``, ``needling`` ->
``needl``) while at least :data:`MIN_STEM` letters remain. Matching inside words
costs some false alarms on innocent words; a clinic name is short and a
template is checked before it ships, so an alarm is cheap and a leak is not.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

from confusable_homoglyphs.confusables import confusables_data

#: The rule's name in ``engage templates check`` and in a refused row's ``status_reason``.
CONDITION_WORD_RULE = "sms-condition-word"
#: A stem keeps at least this many letters: "dry" or "seca" alone would flag half the dictionary.
MIN_STEM = 4
#: Endings a stem drops (one of them, longest first): plurals, "-ing", the Latin/Spanish "-a", "-e".
_ENDINGS = ("ing", "es", "s", "a", "e", "o")
#: The shortest word that a phrase's words are also matched on by themselves ("puncion" of "punción seca").
_MIN_PART = 5


def _latin_lookalikes() -> dict[int, str]:
    """Non-ASCII characters -> the ASCII Latin letter they are drawn like (UTS #39 confusables)."""
    table: dict[int, str] = {}
    for char, homoglyphs in confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        for glyph in homoglyphs:
            target = glyph.get("c", "")
            if len(target) == 1 and target.isascii() and target.isalpha():
                table[ord(char)] = target.lower()
                break
    return table


_LOOKALIKES = _latin_lookalikes()


_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]+")


def skeleton(text: str) -> str:
    """``text`` as a reader sees it, reduced to lower-case ASCII letters and digits (see the module docstring)."""
    if text.isascii():
        # Most SMS bodies: Unicode normalisation leaves ASCII as it is and it carries no combining marks, so only
        # the look-alike mapping and case folding apply (the same result as below, a character at a time there).
        latin = text.translate(_LOOKALIKES).casefold()
        if latin.isascii():
            return _NOT_ALNUM.sub("", latin)
    return _skeleton_unicode(text)


def _skeleton_unicode(text: str) -> str:
    composed = unicodedata.normalize("NFKC", text)
    bare = "".join(ch for ch in unicodedata.normalize("NFD", composed) if not unicodedata.combining(ch))
    latin = bare.translate(_LOOKALIKES).casefold()
    # NFKC/NFD once more: a look-alike may map to a letter that casefolds into something decomposable.
    latin = "".join(ch for ch in unicodedata.normalize("NFKD", latin) if not unicodedata.combining(ch))
    return "".join(ch for ch in latin if ch.isascii() and ch.isalnum())


def _stem(word: str) -> str:
    for ending in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= MIN_STEM:
            return word[: -len(ending)]
    return word


@lru_cache(maxsize=1024)
def stems(word: str) -> tuple[str, ...]:
    """What finding ``word`` looks for: the stem of the whole (a phrase run together) and of each long part."""
    whole = skeleton(word)
    if not whole:
        return ()
    found = [_stem(whole)]
    parts = [skeleton(part) for part in word.replace("-", " ").replace("_", " ").split()]
    if len(parts) > 1:
        found += [_stem(part) for part in parts if len(part) >= _MIN_PART]
    return tuple(dict.fromkeys(found))


def condition_words_in(text: str, words: Sequence[str]) -> list[str]:
    """The entries of ``words`` (words or phrases) found in ``text``, in ``words``' order; blank entries are ignored.

    Found means: the stem of the entry, or of one of its words of five letters or
    more, occurs in the text's :func:`skeleton`, whatever the letters look like
    and wherever they stand inside a word.
    """
    seen = skeleton(text)
    found: list[str] = []
    for word in words:
        if word.strip() and word not in found and any(stem in seen for stem in stems(word)):
            found.append(word)
    return found


#: A plan's condition or modality this short is not added by itself: "pain" would refuse every pain-score prompt.
_MIN_PLAN_WORD = 5


def plan_words(*fields: str | None) -> list[str]:
    """A plan's own condition and modality (``"plantar fasciitis"``, ``"cupping"``) as extra words to refuse.

    A field shorter than five letters is left out: it names nothing specific enough to hide
    (a condition typed as "pain" would refuse every pain-score prompt)."""
    return [field.strip() for field in fields if field and len(skeleton(field)) >= _MIN_PLAN_WORD]


def with_plan_words(words: Iterable[str], *fields: str | None) -> list[str]:
    """``words`` plus :func:`plan_words` of ``fields``, without repeats."""
    return list(dict.fromkeys([*words, *plan_words(*fields)]))

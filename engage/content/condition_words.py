"""The one rule for "this SMS names a condition or treatment", shared by the template check and the send path.

:mod:`engage.content.checks` applies it to every template rendered with sample
data (``engage templates check``); :mod:`engage.delivery.send_checks` to the real body
just before it goes. The same matcher in both places means a template that
passes the check is judged the same way at send time, with the real clinic
name and patient data in it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

#: The rule's name in ``engage templates check`` and in a refused row's ``status_reason``.
CONDITION_WORD_RULE = "sms-condition-word"


@lru_cache(maxsize=64)
def _word_pattern(word: str) -> re.Pattern[str]:
    # A word must start where a word starts ("needle" is not in "aneedle") but may go on: "needles",
    # "sciaticas", "conditioning" name the condition as plainly on a lock screen. Any run of whitespace
    # inside a phrase counts ("dry\nneedling").
    phrase = r"\s+".join(re.escape(part) for part in word.casefold().split())
    starts_a_word = re.match(r"\w", word.strip()) is not None
    return re.compile((r"(?<!\w)" if starts_a_word else "") + phrase, re.IGNORECASE)


def condition_words_in(text: str, words: Sequence[str]) -> list[str]:
    """The entries of ``words`` (words or phrases) found in ``text``, in ``words``' order; blank entries are ignored.

    An entry is found at the start of a word, in any case (case-folded, so
    "CIÁTICA" is "ciática"), also when the word goes on ("needles" for "needle").
    """
    folded = text.casefold()
    return [word for word in words if word.strip() and _word_pattern(word).search(folded)]

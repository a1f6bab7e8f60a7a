"""What an inbound SMS means: an opt-out or opt-in keyword, a request for help, a 0-10 score, or anything else.

Pure: :func:`classify` looks only at the text. Keywords count only as the whole
message (case-insensitive, surrounding spaces and trailing punctuation ignored), as
carriers and Twilio treat them: "stop" opts out, "please stop the reminders" is a
message for a person. The opt-out and opt-in words are Twilio's default set.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Kind(enum.StrEnum):
    """The values stored in ``InboundMessage.kind``."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    SCORE = "score"
    OTHER = "other"


OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
# INFO is Twilio's second default help keyword; a patient sending it expects the same answer.
HELP_WORDS = frozenset({"HELP", "INFO"})

# "7", "7/10", "7 / 10", "7 out of 10", "pain 7", "Pain: 7/10", "pain is 7", "my pain is 7".
_SCORE = re.compile(
    r"^(?:(?:my\s+)?pain(?:\s+is)?\s*[:=-]?\s*)?(\d{1,2})(?:\s*(?:/|out\s+of)\s*10)?$",
    re.IGNORECASE,
)
_TRAILING = ".!?"


@dataclass(frozen=True)
class Classified:
    """The meaning of one SMS body; ``score`` is set only for :attr:`Kind.SCORE` (0-10)."""

    kind: Kind
    score: int | None = None
    keyword: str | None = None


def classify(body: str) -> Classified:
    """Classify an SMS body. Never raises; an empty or unreadable body is :attr:`Kind.OTHER`."""
    text = " ".join(body.split()).rstrip(_TRAILING).strip()
    word = text.upper()
    if word in OPT_OUT_WORDS:
        return Classified(Kind.OPT_OUT, keyword=word)
    if word in OPT_IN_WORDS:
        return Classified(Kind.OPT_IN, keyword=word)
    if word in HELP_WORDS:
        return Classified(Kind.HELP, keyword=word)
    match = _SCORE.match(text)
    if match:
        score = int(match.group(1))
        if 0 <= score <= 10:
            return Classified(Kind.SCORE, score=score)
    return Classified(Kind.OTHER)

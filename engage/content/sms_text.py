"""SMS text: GSM-7 / UCS-2 segment counting and GSM look-alike replacement.

A single character outside the GSM 03.38 alphabet turns the whole message into
UCS-2, which more than halves what fits in a segment (160 -> 70). Typographic
characters that slip in from word processors (no-break spaces, curly quotes,
en dashes, the ellipsis) are the usual culprits; each has a plain GSM
look-alike. Letters a language genuinely needs (Spanish "á") are left alone:
they cost money, but replacing them would change the words.
"""

from __future__ import annotations

#: GSM 03.38 basic character set (the escape 0x1B itself is not a character).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: GSM 03.38 extension table: each is sent as ESC + code, so costs two septets.
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM_SINGLE, GSM_MULTI = 160, 153  # septets per segment (multipart loses 7 to the UDH)
UCS2_SINGLE, UCS2_MULTI = 70, 67  # UTF-16 code units per segment

GSM7 = "GSM-7"
UCS2 = "UCS-2"

#: Non-GSM characters with a GSM look-alike (close to Twilio's "smart encoding" list).
LOOKALIKES: dict[str, str] = {
    # spaces
    "\t": " ",
    "\u00a0": " ",
    **{chr(c): " " for c in range(0x2000, 0x200B)},
    "\u202f": " ",
    "\u205f": " ",
    "\u3000": " ",
    # invisible characters
    "\u00ad": "",
    "\u200b": "",
    "\u200c": "",
    "\u200d": "",
    "\u2060": "",
    "\ufeff": "",
    # line separators
    "\u2028": "\n",
    "\u2029": "\n",
    # single quotes and primes
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u02bb": "'",
    "\u02bc": "'",
    "\u00b4": "'",
    "`": "'",
    # double quotes
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2039": "<",
    "\u203a": ">",
    # dashes and minus
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2015": "-",
    "\u2212": "-",
    # other punctuation
    "\u2026": "...",
    "\u2022": "*",
    "\u2044": "/",
    "\u02c6": "^",
    "\u02dc": "~",
}

_TRANSLATE = str.maketrans(LOOKALIKES)


def is_gsm(text: str) -> bool:
    """True when every character of ``text`` is in the GSM-7 basic or extension table."""
    return all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text)


def _pack(costs: list[int], single: int, multi: int) -> int:
    """Segments needed for characters of the given costs; a character is never split across segments."""
    total = sum(costs)
    if total <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments += 1
            used = 0
        used += cost
    return segments


def segment_info(text: str) -> tuple[str, int, int]:
    """Return ``(encoding, segments, units)`` for sending ``text`` as one SMS.

    GSM-7 when every character is in the GSM alphabet: units are septets,
    extension characters (``€ [ ] { } ^ ~ | \\`` and form feed) count two,
    160 fit in one segment and 153 in each of several. Otherwise UCS-2: units are
    UTF-16 code units (an emoji counts two), 70 in one segment, 67 in each of
    several. An escape pair or surrogate pair is never split across segments, as
    handsets and carriers require. An empty text is one (empty) segment.
    """
    if is_gsm(text):
        costs = [2 if ch in GSM_EXTENSION else 1 for ch in text]
        return GSM7, _pack(costs, GSM_SINGLE, GSM_MULTI), sum(costs)
    costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return UCS2, _pack(costs, UCS2_SINGLE, UCS2_MULTI), sum(costs)


def non_gsm_replaceable(text: str) -> list[str]:
    """The distinct characters of ``text`` (in order of appearance) that :func:`normalise_sms` would replace."""
    seen: list[str] = []
    for ch in text:
        if ch in LOOKALIKES and ch not in seen:
            seen.append(ch)
    return seen


def normalise_sms(text: str) -> str:
    """Replace non-GSM look-alikes (no-break spaces, curly quotes, dashes, ellipsis, ...) with GSM characters.

    Characters without a look-alike (accented letters a language needs, emoji) are kept.
    """
    return text.translate(_TRANSLATE)

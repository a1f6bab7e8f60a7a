"""SMS segment counting against known vectors, and GSM look-alike replacement."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engage.content.sms_text import (
    GSM_BASIC,
    GSM_EXTENSION,
    LOOKALIKES,
    is_gsm,
    non_gsm_replaceable,
    normalise_sms,
    segment_info,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("GSM-7", 1, 0)),
        ("Hello world", ("GSM-7", 1, 11)),
        ("a" * 160, ("GSM-7", 1, 160)),
        ("a" * 161, ("GSM-7", 2, 161)),
        ("a" * 306, ("GSM-7", 2, 306)),
        ("a" * 307, ("GSM-7", 3, 307)),
        ("a" * 459, ("GSM-7", 3, 459)),
        ("a" * 460, ("GSM-7", 4, 460)),
        # Extension characters cost two septets each.
        ("€" * 80, ("GSM-7", 1, 160)),
        ("€" * 81, ("GSM-7", 2, 162)),
        ("a" * 159 + "[", ("GSM-7", 2, 161)),
        ("{}[]~^|\\€\f", ("GSM-7", 1, 20)),
        # An escape pair is never split: it moves whole to the next segment.
        ("a" * 152 + "€" + "a" * 151, ("GSM-7", 2, 305)),
        ("a" * 152 + "€" + "a" * 152, ("GSM-7", 3, 306)),
        # Accented letters in the GSM alphabet stay GSM-7.
        ("¿Qué tal? Mañana a las 9:00, señor Müller. ¡Animo!", ("GSM-7", 1, 50)),
        # One character outside GSM makes the whole message UCS-2.
        ("á" * 70, ("UCS-2", 1, 70)),
        ("á" * 71, ("UCS-2", 2, 71)),
        ("á" * 134, ("UCS-2", 2, 134)),
        ("á" * 135, ("UCS-2", 3, 135)),
        ("a" * 100 + "á", ("UCS-2", 2, 101)),
        ("a" * 69 + "’", ("UCS-2", 1, 70)),
        # Characters outside the BMP are two UTF-16 code units and are not split either.
        ("😀" * 35, ("UCS-2", 1, 70)),
        ("😀" * 36, ("UCS-2", 2, 72)),
        ("a" * 66 + "😀" + "a" * 65, ("UCS-2", 2, 133)),
        ("a" * 66 + "😀" + "a" * 66, ("UCS-2", 3, 134)),
    ],
)
def test_segment_info_matches_known_vectors(text: str, expected: tuple[str, int, int]) -> None:
    assert segment_info(text) == expected


def test_newline_and_basic_table_are_one_septet_each() -> None:
    basic = "".join(sorted(GSM_BASIC))
    assert segment_info(basic) == ("GSM-7", 1, len(basic))
    assert segment_info("line one\nline two") == ("GSM-7", 1, 17)


def test_normalise_replaces_typographic_lookalikes() -> None:
    text = "It\u2019s \u201cfine\u201d \u2013 really\u2026\xa0ok\u200b \u2014 `quoted`\tend"
    assert normalise_sms(text) == "It's \"fine\" - really... ok - 'quoted' end"
    assert is_gsm(normalise_sms(text))


def test_normalise_keeps_letters_a_language_needs() -> None:
    text = "Responda STOP para no recibir más mensajes. Zoë 😀"
    assert normalise_sms(text) == text
    assert non_gsm_replaceable(text) == []


def test_non_gsm_replaceable_lists_each_character_once_in_order() -> None:
    assert non_gsm_replaceable("a\u2019b\u201cc\u2019\xa0") == ["\u2019", "\u201c", "\xa0"]


def test_lookalike_replacements_are_all_gsm() -> None:
    assert all(is_gsm(replacement) for replacement in LOOKALIKES.values())
    assert not any(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in LOOKALIKES)


@given(st.text(alphabet=st.sampled_from(sorted(GSM_BASIC | GSM_EXTENSION | set(LOOKALIKES)))))
def test_gsm_text_with_lookalikes_normalises_to_gsm_7(text: str) -> None:
    cleaned = normalise_sms(text)
    assert non_gsm_replaceable(cleaned) == []
    assert segment_info(cleaned)[0] == "GSM-7"


@given(st.text())
def test_segments_never_fewer_than_units_allow(text: str) -> None:
    encoding, segments, units = segment_info(text)
    single, multi = (160, 153) if encoding == "GSM-7" else (70, 67)
    assert segments >= 1
    if units <= single:
        assert segments == 1
    else:
        assert segments >= -(-units // multi)

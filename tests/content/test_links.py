"""Signed link tokens: round trip, purpose separation, forgery refused, no expiry."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from engage.config import get_settings
from engage.content.links import (
    InvalidToken,
    make_token,
    read_reassessment_token,
    read_token,
    read_unsubscribe_token,
    reassessment_url,
    unsubscribe_url,
)


def _token_of(url: str, prefix: str) -> str:
    path = urlsplit(url).path
    assert path.startswith(prefix)
    return path[len(prefix) :]


def test_token_round_trips_its_payload() -> None:
    token = make_token("unsubscribe", {"patient_id": 7, "channel": "sms"})
    assert read_token("unsubscribe", token) == {"patient_id": 7, "channel": "sms"}


def test_altered_token_is_refused() -> None:
    token = make_token("unsubscribe", {"patient_id": 7, "channel": "email"})
    payload, signature = token.rsplit(".", 1)
    other = json.dumps({"patient_id": 8, "channel": "email"}).encode()
    forged_payload = base64.urlsafe_b64encode(other).decode().rstrip("=")
    # Change the signature's first character: its bits all count (the last one's low bits are padding).
    altered_signature = ("B" if signature[0] == "A" else "A") + signature[1:]
    for forged in (f"{forged_payload}.{signature}", f"{payload}.{altered_signature}", payload, "garbage", ""):
        with pytest.raises(InvalidToken):
            read_token("unsubscribe", forged)


def test_token_signed_with_another_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGE_SECRET_KEY", "attacker-guess-0123456789")
    get_settings.cache_clear()
    forged = make_token("unsubscribe", {"patient_id": 1, "channel": "email"})
    monkeypatch.setenv("ENGAGE_SECRET_KEY", "test-secret-0123456789")
    get_settings.cache_clear()
    with pytest.raises(InvalidToken):
        read_token("unsubscribe", forged)


def test_token_for_one_purpose_is_refused_for_another() -> None:
    token = make_token("reassessment", {"message_id": 3})
    with pytest.raises(InvalidToken):
        read_token("unsubscribe", token)


def test_tokens_carry_no_timestamp_so_never_expire() -> None:
    # URLSafeSerializer (not the Timed one): the same payload always signs to the same token.
    assert make_token("unsubscribe", {"patient_id": 1, "channel": "sms"}) == make_token(
        "unsubscribe", {"patient_id": 1, "channel": "sms"}
    )


def test_unsubscribe_url_is_under_public_url_and_names_patient_and_channel() -> None:
    url = unsubscribe_url(42, "email")
    assert url.startswith("http://engage.test/u/")
    assert read_unsubscribe_token(_token_of(url, "/u/")) == (42, "email")


def test_reassessment_url_carries_score_outside_the_signature() -> None:
    one_click = reassessment_url(99, 7)
    form = reassessment_url(99, None)
    assert one_click.startswith("http://engage.test/r/")
    assert parse_qs(urlsplit(one_click).query) == {"score": ["7"]}
    assert urlsplit(form).query == ""
    assert read_reassessment_token(_token_of(one_click, "/r/")) == 99
    assert _token_of(one_click, "/r/") == _token_of(form, "/r/")


def test_reassessment_token_is_not_an_unsubscribe_token() -> None:
    with pytest.raises(InvalidToken):
        read_unsubscribe_token(_token_of(reassessment_url(5, None), "/r/"))

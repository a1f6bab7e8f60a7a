"""The sequence editor's pages in-process (FastAPI's TestClient) on both backends: admins edit, others read;
bad input is kept with a sentence beside its field and blocks publishing; the live fragment shows the
sample patient's text, its SMS encoding and segments and the content checks; "Send a test to me" reaches
the fake provider marked TEST and nothing else (no outbox row, no timeline, no caps)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engage.config import get_settings
from engage.db import session_scope
from engage.delivery.providers import reset_providers
from engage.records.models import Message
from engage.schedule.publish import republish
from engage.schedule.versions import get_draft
from tests import seed
from tests.fakes.provider_server import FakeProviders
from tests.web.staff.support import HTML, signed_in

KEY = seed.SEQUENCE
TEMPLATES = Path(__file__).resolve().parents[3] / "templates"
STRETCH = 4  # the stretch step's place in the shipped sequence (0-based)


def _clinic(role: str = "admin") -> int:
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, "me@backinmotion.example", role)
        return clinic.id


def _form(page: str) -> dict[str, list[str]]:
    """The draft form's fields as the browser would send them (name -> values in page order)."""
    form = page[page.index('id="draft-form"') : page.index("</form>", page.index('id="draft-form"'))]
    fields: dict[str, list[str]] = {}
    found = [(m.start(), m.group(1), m.group(2)) for m in re.finditer(r"<input\b([^>]*)>()", form)]
    found += [
        (m.start(), m.group(1), m.group(2))
        for m in re.finditer(r"<(?:select|textarea)\b([^>]*)>(.*?)</(?:select|textarea)>", form, re.S)
    ]
    for _at, attrs, inner in sorted(found):
        name = re.search(r'\bname="([^"]+)"', attrs)
        if name is None or name.group(1) == "csrf_token":
            continue
        value = re.search(r'\bvalue="([^"]*)"', attrs)
        if "<option" in inner:
            chosen = re.search(r'<option value="([^"]*)" selected', inner) or re.search(
                r'<option value="([^"]*)"', inner
            )
            text = chosen.group(1) if chosen else ""
        else:
            text = value.group(1) if value else inner
        fields.setdefault(name.group(1), []).append(_unescape(text))
    return fields


def _unescape(text: str) -> str:
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&#34;", '"'), ("&#39;", "'"), ("&quot;", '"'), ("&amp;", "&")):
        text = text.replace(entity, char)
    return text


def _start(client, csrf: str) -> str:  # type: ignore[no-untyped-def]
    started = client.post(f"/sequences/{KEY}/draft/start", data={"csrf_token": csrf}, headers=HTML)
    assert started.status_code == 200 and "Draft started" in started.text, started.text[:2000]
    return started.text


@pytest.mark.parametrize("role", ["front_desk", "practitioner"])
def test_only_an_admin_edits_others_read_the_sequences_page(db_url: str, role: str) -> None:
    _clinic(role)
    client, csrf = signed_in("me@backinmotion.example")
    page = client.get("/sequences", headers=HTML)
    assert page.status_code == 200 and "Dry needling for sciatica" in page.text
    assert f"/sequences/{KEY}/edit" not in page.text
    pages = ("edit", "versions", "publish", "preview", "versions/1/roll-back")
    for url in (f"/sequences/{KEY}/{page}" for page in pages):
        assert client.get(url, headers=HTML).status_code == 403, url
    changes = (
        "draft/start",
        "draft",
        "draft/discard",
        "draft/text-check",
        "publish",
        "test-send",
        "versions/1/roll-back",
    )
    for url in (f"/sequences/{KEY}/{change}" for change in changes):
        assert client.post(url, data={"csrf_token": csrf}, headers=HTML).status_code == 403, url


def test_bad_input_is_kept_with_a_sentence_beside_each_field_and_cannot_be_published(db_url: str) -> None:
    clinic_id = _clinic()
    client, csrf = signed_in("me@backinmotion.example")
    assert f"/sequences/{KEY}/edit" in client.get("/sequences", headers=HTML).text
    page = _start(client, csrf)
    fields = _form(page)
    assert fields["step_key"][STRETCH] == "stretch" and fields["at"][STRETCH] == "09:00"
    fields["offset"][STRETCH] = "3 dayz"
    fields["at"][STRETCH] = "25:00"
    paths = fields["text_path"]
    stretch_en = paths.index("sms/stretch.txt")
    fields["text_source"][stretch_en] = "Hi {{ patient.nmae }}, stretch today."
    fields["text_source"][paths.index("sms/stretch.es.txt")] = "   "
    saved = client.post(f"/sequences/{KEY}/draft", data={"csrf_token": csrf, **fields}, headers=HTML)
    assert saved.status_code == 200 and "Draft saved with" in saved.text
    text = saved.text
    assert re.search(r'id="f-4-offset"[^>]*value="3 dayz"[^>]*aria-invalid="true"', text)
    assert "“3 dayz” is not a length of time" in text
    assert re.search(r'id="f-4-at"[^>]*value="25:00"', text) and "“25:00” is not a time of day" in text
    assert "nmae" in text  # the unknown variable is named beside the text
    with session_scope() as session:
        draft = get_draft(session, clinic_id, KEY)
        assert draft is not None
        assert draft.texts["sms/stretch.txt"] == "Hi {{ patient.nmae }}, stretch today."
        stretch = draft.definition["steps"][STRETCH]
        assert stretch["at"] == "25:00" and stretch["offset"] == "3 dayz"
        fields_with_problems = {p.field for p in draft.problems}
    assert {"steps.4.at", "texts.sms/stretch.txt", "texts.sms/stretch.es.txt"} <= fields_with_problems
    dialog = client.get(f"/sequences/{KEY}/publish", headers=HTML)
    assert "cannot be published yet" in dialog.text and 'name="apply_to"' not in dialog.text
    refused = client.post(f"/sequences/{KEY}/publish", data={"csrf_token": csrf, "apply_to": "current"}, headers=HTML)
    assert "Not published: the draft cannot be published until its problems are fixed" in refused.text
    gone = client.post(f"/sequences/{KEY}/draft/discard", data={"csrf_token": csrf}, headers=HTML)
    assert "Draft discarded" in gone.text and "Start a draft from Dry needling for sciatica" in gone.text
    with session_scope() as session:
        assert get_draft(session, clinic_id, KEY) is None


def test_the_live_fragment_renders_counts_segments_and_checks(db_url: str) -> None:
    _clinic()
    client, csrf = signed_in("me@backinmotion.example")
    _start(client, csrf)

    def check(source: str, path: str = "sms/stretch.txt", others: tuple[str, ...] = ()) -> str:
        """The fragment for ``source`` at ``path``, the form holding ``others`` as shipped."""
        sources = [source, *((TEMPLATES / other).read_text() for other in others)]
        answer = client.post(
            f"/sequences/{KEY}/draft/text-check",
            data={"check": "0", "text_path": [path, *others], "text_source": sources},
            headers={**HTML, "X-CSRF-Token": csrf, "HX-Request": "true"},
        )
        assert answer.status_code == 200
        assert "<html" not in answer.text  # a fragment, not a page
        return answer.text

    good = check("{{ clinic.name }}: stretch at 18:00 today, {{ patient.first_name }}.")
    assert "Checks pass" in good and "GSM-7, 1 SMS segment" in good and "Alexandra" in good
    long = check("Stretch now. " * 130)
    assert "GSM-7, 12 SMS segments" in long and "at most 2" in long, long
    assert "nmae" in check("Hi {{ patient.nmae }}")
    assert "empty" in check("  ")
    assert "lock screen would show a condition: it mentions &#39;sciatica&#39;" in check("Your sciatica stretch.")
    parts = ("email/aftercare.subject.txt", "email/aftercare.html")
    assert "The unsubscribe link is missing" in check("Hello {{ patient.first_name }}", "email/aftercare.txt", parts)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        reset_providers()
        yield server
    reset_providers()


def test_send_a_test_to_me_reaches_the_fake_provider_marked_test_and_nothing_else(
    db_url: str, fake: FakeProviders
) -> None:
    _clinic()
    client, csrf = signed_in("me@backinmotion.example")
    page = _start(client, csrf)
    fields = _form(page)
    fields["text_source"][fields["text_path"].index("sms/stretch.txt")] = "{{ clinic.name }}: stretch at 18:00."
    client.post(f"/sequences/{KEY}/draft", data={"csrf_token": csrf, **fields}, headers=HTML)
    sent = client.post(
        f"/sequences/{KEY}/test-send",
        data={"csrf_token": csrf, "step": "stretch", "locale": "en", "phone": "+1 415 555 0188"},
        headers=HTML,
    )
    assert "Test SMS of step stretch sent to +14155550188" in sent.text, sent.text[:3000]
    sms = fake.sms_requests()
    assert len(sms) == 1 and sms[0]["to"] == "+14155550188"
    assert sms[0]["body"].startswith("TEST: ") and "stretch at 18:00." in sms[0]["body"]
    mail = client.post(
        f"/sequences/{KEY}/test-send",
        data={"csrf_token": csrf, "step": "what-to-expect", "locale": "es"},
        headers=HTML,
    )
    assert "Test email of step what-to-expect sent to me@backinmotion.example" in mail.text
    emails = fake.email_requests()
    assert len(emails) == 1 and "[TEST]" in str(emails[0])
    refused = client.post(
        f"/sequences/{KEY}/test-send", data={"csrf_token": csrf, "step": "stretch", "phone": ""}, headers=HTML
    )
    assert "No test sent: give your mobile number" in refused.text and len(fake.sms_requests()) == 1
    with session_scope() as session:  # no outbox row: no caps, metrics, analytics or timeline count it
        assert session.scalar(select(func.count()).select_from(Message)) == 0


def test_publish_states_the_dry_run_then_a_stale_publish_shows_the_new_version_and_roll_back_publishes_again(
    db_url: str,
) -> None:
    clinic_id = _clinic()
    client, csrf = signed_in("me@backinmotion.example")
    with session_scope() as session:
        ana = seed.patient(session, clinic_id, email="ana@example.com")
        seed.enrolled(session, ana.id)
    fields = _form(_start(client, csrf))
    fields["at"][STRETCH] = "18:00"
    client.post(f"/sequences/{KEY}/draft", data={"csrf_token": csrf, **fields}, headers=HTML)
    dialog = client.get(f"/sequences/{KEY}/publish", headers=HTML)
    assert re.search(
        r"\d+ pending messages? change time, \d+ (?:is|are) cancelled, \d+ (?:is|are) added; "
        r"already-sent steps are never sent again",
        dialog.text,
    ), dialog.text
    assert 'value="current"' in dialog.text and 'value="new"' in dialog.text
    unsure = client.post(f"/sequences/{KEY}/publish", data={"csrf_token": csrf}, headers=HTML)
    assert "Choose who the new version applies to" in unsure.text
    done = client.post(f"/sequences/{KEY}/publish", data={"csrf_token": csrf, "apply_to": "new"}, headers=HTML)
    assert "Version 1 published: patients enrolled now keep the version they follow" in done.text, done.text[:3000]
    listed = client.get("/sequences", headers=HTML).text  # every role reads what patients now get
    assert "The clinic's version 1." in listed and "SMS at 18:00 local time" in listed, listed[:3000]

    # A second draft; meanwhile another admin rolls back (publishes version 1 again as version 2).
    fields = _form(_start(client, csrf))
    fields["at"][STRETCH] = "19:00"
    client.post(f"/sequences/{KEY}/draft", data={"csrf_token": csrf, **fields}, headers=HTML)
    with session_scope() as session:
        republish(session, clinic_id, KEY, 1, actor="other@backinmotion.example", current_patients=False)
    stale = client.post(f"/sequences/{KEY}/publish", data={"csrf_token": csrf, "apply_to": "current"}, headers=HTML)
    assert "another admin published version 2 while you edited" in stale.text, stale.text[:3000]
    assert stale.url.path == f"/sequences/{KEY}/versions" and "2 (current)" in stale.text
    with session_scope() as session:
        assert get_draft(session, clinic_id, KEY) is not None  # the draft is kept
    assert "Your draft was started from version 1" in stale.text
    kept = client.post(f"/sequences/{KEY}/draft/rebase", data={"csrf_token": csrf}, headers=HTML)
    assert "Your draft now replaces version 2 when published" in kept.text and 'value="current"' in kept.text
    mine = client.post(f"/sequences/{KEY}/publish", data={"csrf_token": csrf, "apply_to": "current"}, headers=HTML)
    assert "Version 3 published" in mine.text, mine.text[:3000]

    # Roll back to version 1 from the list: a dry run first, then the choice.
    rollback = client.get(f"/sequences/{KEY}/versions/1/roll-back", headers=HTML)
    assert "Roll back to version 1?" in rollback.text and "already-sent steps are never sent again" in rollback.text
    again = client.post(
        f"/sequences/{KEY}/versions/1/roll-back", data={"csrf_token": csrf, "apply_to": "current"}, headers=HTML
    )
    assert "Version 1 published again as version 4" in again.text, again.text[:3000]

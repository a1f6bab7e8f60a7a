"""Adding and removing a draft's steps in the browser (issue 23), and the texts a changed channel needs:
through the pages, on SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

import re

from engage.db import session_scope
from engage.schedule.versions import get_draft
from tests.web.staff.support import HTML, signed_in
from tests.web.staff.test_sequence_editor import KEY, STRETCH, _clinic, _form, _start

ADD = f"/sequences/{KEY}/draft/steps"


def _draft(clinic_id: int):  # type: ignore[no-untyped-def]
    with session_scope() as session:
        draft = get_draft(session, clinic_id, KEY)
        assert draft is not None
        return draft


def test_an_added_step_gets_empty_texts_the_checks_name_then_its_words(db_url: str) -> None:
    clinic_id = _clinic()
    client, csrf = signed_in("me@backinmotion.example")
    _start(client, csrf)
    before = len(_draft(clinic_id).definition["steps"])
    new = {
        "new_key": "checkin_day3",
        "new_channel": "sms",
        "new_anchor": "appointment.end",
        "new_direction": "after",
        "new_offset": "3 days",
        "new_at": "18:00",
    }
    added = client.post(ADD, data={"csrf_token": csrf, **new}, headers=HTML)
    assert added.status_code == 200 and "Step checkin_day3 added" in added.text
    page = added.text
    assert 'id="step-checkin_day3"' in page and f"Step {before + 1}: checkin_day3" in page
    assert "(sms/checkin_day3.txt)" in page and "(sms/checkin_day3.es.txt)" in page
    draft = _draft(clinic_id)
    step = draft.definition["steps"][-1]
    assert step == {
        "key": "checkin_day3",
        "channel": "sms",
        "template": "checkin_day3",
        "anchor": "appointment.end",
        "offset": "3d",
        "at": "18:00",
    }
    assert draft.texts["sms/checkin_day3.txt"] == "" and draft.texts["sms/checkin_day3.es.txt"] == ""
    missing = {p.field for p in draft.problems}
    assert {"texts.sms/checkin_day3.txt", "texts.sms/checkin_day3.es.txt"} <= missing
    assert re.search(r'id="e-t\d+" class="field-error">The SMS text is empty', page)

    fields = _form(page)
    assert fields["step_key"][-1] == "checkin_day3" and fields["at"][-1] == "18:00"
    words = {
        "sms/checkin_day3.txt": "Hi {{ patient.first_name }}, how is your back 3 days on? Reply if it is worse.",
        "sms/checkin_day3.es.txt": "Hola {{ patient.first_name }}, que tal su espalda? Responda si empeora.",
    }
    for path, source in words.items():
        fields["text_source"][fields["text_path"].index(path)] = source
    saved = client.post(f"/sequences/{KEY}/draft", data={"csrf_token": csrf, **fields}, headers=HTML)
    assert saved.status_code == 200 and "Draft saved" in saved.text
    draft = _draft(clinic_id)
    assert draft.texts["sms/checkin_day3.txt"] == words["sms/checkin_day3.txt"]
    assert not [p for p in draft.problems if "checkin_day3" in p.field or p.field.startswith(f"steps.{before}")]


def test_a_bad_or_taken_key_gets_a_sentence_beside_the_field_and_the_draft_is_kept(db_url: str) -> None:
    clinic_id = _clinic()
    client, csrf = signed_in("me@backinmotion.example")
    _start(client, csrf)
    kept = _draft(clinic_id)
    cases = {
        "Check In!": "“Check In!” is not a key",
        "stretch": "This sequence already has a step “stretch”",
        "": "Give the step a key",
    }
    for key, sentence in cases.items():
        form = {"csrf_token": csrf, "new_key": key, "new_channel": "email", "new_offset": "2 hours"}
        answer = client.post(ADD, data=form, headers=HTML)
        assert answer.status_code == 400, key
        assert re.search(r'id="n-key"[^>]*aria-invalid="true" aria-describedby="e-n-key"', answer.text), key
        assert re.search(rf'<small id="e-n-key" class="field-error">{re.escape(sentence)}', answer.text), key
        # What was typed comes back in the form.
        assert re.search(r'id="n-offset" name="new_offset" value="2 hours"', answer.text)
        assert re.search(r'<option value="email" selected>Email</option>', answer.text)
    after = _draft(clinic_id)
    assert (after.definition, after.texts, after.updated_at) == (kept.definition, kept.texts, kept.updated_at)


def test_a_changed_channel_gets_its_texts_and_a_removed_step_takes_only_its_own(db_url: str) -> None:
    clinic_id = _clinic()
    client, csrf = signed_in("me@backinmotion.example")
    fields = _form(_start(client, csrf))
    fields["channel"][STRETCH] = "email"
    saved = client.post(f"/sequences/{KEY}/draft", data={"csrf_token": csrf, **fields}, headers=HTML)
    assert saved.status_code == 200 and "Draft saved with" in saved.text
    email = [f"email/stretch.{part}" for part in ("subject.txt", "txt", "html", "es.subject.txt", "es.txt", "es.html")]
    for path in email:
        assert f"({path})" in saved.text, path
    draft = _draft(clinic_id)
    assert draft.definition["steps"][STRETCH]["channel"] == "email"
    assert all(draft.texts[path] == "" for path in email)
    assert {f"texts.{path}" for path in email} & {p.field for p in draft.problems}

    # The reassessment template is shared with final-reassessment: removing one step keeps its texts.
    shared = client.post(f"/sequences/{KEY}/draft/steps/reassessment/remove", data={"csrf_token": csrf}, headers=HTML)
    assert shared.status_code == 200 and "Step reassessment removed" in shared.text
    assert 'id="step-reassessment"' not in shared.text and 'id="step-final-reassessment"' in shared.text
    draft = _draft(clinic_id)
    assert "reassessment" not in [s["key"] for s in draft.definition["steps"]]
    assert "sms/reassessment.txt" in draft.texts
    gone = client.post(f"/sequences/{KEY}/draft/steps/stretch/remove", data={"csrf_token": csrf}, headers=HTML)
    assert "Step stretch removed" in gone.text
    draft = _draft(clinic_id)
    assert "stretch" not in [s["key"] for s in draft.definition["steps"]]
    assert not [path for path in draft.texts if "/stretch." in path]
    unknown = client.post(f"/sequences/{KEY}/draft/steps/nope/remove", data={"csrf_token": csrf}, headers=HTML)
    assert "Step not removed: the draft has no step " in unknown.text and "nope" in unknown.text


def test_only_an_admin_adds_or_removes_a_step(db_url: str) -> None:
    _clinic("practitioner")
    client, csrf = signed_in("me@backinmotion.example")
    for url in (ADD, f"/sequences/{KEY}/draft/steps/stretch/remove"):
        assert client.post(url, data={"csrf_token": csrf, "new_key": "x"}, headers=HTML).status_code == 403, url


def test_an_added_step_takes_which_visits_as_editing_a_step_does(db_url: str) -> None:
    clinic_id = _clinic()
    client, csrf = signed_in("me@backinmotion.example")
    page = _start(client, csrf)
    assert re.search(r'<label for="n-appointments">Which appointments</label>', page)
    assert re.search(r'id="n-appointments" name="new_appointments" value="" form="draft-form"', page)
    cases = {"every_third": ("every:3", "every:3"), "first_two": ("first:2, last", ["first:2", "last"])}
    for key, (typed, stored) in cases.items():
        form = {"csrf_token": csrf, "new_key": key, "new_anchor": "appointment.end", "new_appointments": typed}
        added = client.post(ADD, data=form, headers=HTML)
        assert added.status_code == 200 and f"Step {key} added" in added.text, key
        step = _draft(clinic_id).definition["steps"][-1]
        assert step["key"] == key and step["appointments"] == stored, step
        # The edit form shows it as typed, and the loader reads it: no problem names the step's visits.
        fields = _form(added.text)
        assert fields["appointments"][fields["step_key"].index(key)] == typed
        index = len(_draft(clinic_id).definition["steps"]) - 1
        assert not [p for p in _draft(clinic_id).problems if p.field.startswith(f"steps.{index}.appointments")]
    # A taken key keeps what was typed for the visits in the form that comes back.
    taken = {"csrf_token": csrf, "new_key": "stretch", "new_appointments": "first"}
    answer = client.post(ADD, data=taken, headers=HTML)
    assert answer.status_code == 400
    assert re.search(r'id="n-appointments" name="new_appointments" value="first"', answer.text)


def test_adding_or_removing_a_step_keeps_what_was_typed_in_the_steps_unsaved(db_url: str) -> None:
    clinic_id = _clinic()
    client, csrf = signed_in("me@backinmotion.example")
    page = _start(client, csrf)
    # The add form's fields and button, and each Remove button, send the draft form (what is typed above).
    assert re.search(r'id="n-key" name="new_key" value="" form="draft-form"', page)
    assert f'<button type="submit" form="draft-form" formaction="{ADD}"' in page
    draft_form = page[page.index('id="draft-form"') : page.index("</form>", page.index('id="draft-form"'))]
    assert f'formaction="/sequences/{KEY}/draft/steps/stretch/remove"' in draft_form
    # Enter in a field saves: the form's first submit button is a plain save, not a Remove.
    first = re.search(r"<button\b[^>]*>", draft_form)
    assert first is not None and 'type="submit">' in first.group(0) and "formaction" not in first.group(0)

    fields = _form(page)
    fields["offset"][STRETCH] = "2 days"
    path, words = "sms/stretch.txt", "Stretch time, {{ patient.first_name }}! Reply STOP to end."
    fields["text_source"][fields["text_path"].index(path)] = words
    new = {"new_key": "checkin_day3", "new_anchor": "appointment.end", "new_offset": "3 days"}
    added = client.post(ADD, data={"csrf_token": csrf, **fields, **new}, headers=HTML)
    assert added.status_code == 200 and "Step checkin_day3 added" in added.text
    draft = _draft(clinic_id)
    assert draft.definition["steps"][STRETCH]["offset"].endswith("2d")
    assert draft.texts[path] == words
    assert draft.definition["steps"][-1]["key"] == "checkin_day3"

    # A taken key: the step is not added, but what was typed above is kept (and shown again).
    fields = _form(added.text)
    fields["priority"][STRETCH] = "7"
    refused = client.post(ADD, data={"csrf_token": csrf, **fields, "new_key": "stretch"}, headers=HTML)
    assert refused.status_code == 400 and "already has a step" in refused.text
    assert _draft(clinic_id).definition["steps"][STRETCH]["priority"] == 7
    assert _form(refused.text)["priority"][STRETCH] == "7"

    # Removing a step saves the other steps' typing too.
    fields = _form(refused.text)
    fields["at"][STRETCH] = "18:00"
    removed = client.post(
        f"/sequences/{KEY}/draft/steps/checkin_day3/remove", data={"csrf_token": csrf, **fields}, headers=HTML
    )
    assert removed.status_code == 200 and "Step checkin_day3 removed" in removed.text
    draft = _draft(clinic_id)
    assert "checkin_day3" not in [s["key"] for s in draft.definition["steps"]]
    assert draft.definition["steps"][STRETCH]["at"] == "18:00"
    assert draft.definition["steps"][STRETCH]["priority"] == 7
    assert draft.texts[path] == words

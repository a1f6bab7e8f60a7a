"""The files the README's curl examples send (tests/fixtures/sync/) sync, and the second time change nothing."""

from __future__ import annotations

from pathlib import Path

from tests.sync.test_csv_import import SEQUENCE
from tests.web.api.conftest import World

CSV = {"Content-Type": "text/csv"}


def test_the_readme_example_files_sync_and_the_second_time_change_nothing(world: World) -> None:
    examples = Path(__file__).resolve().parents[2] / "fixtures" / "sync"
    csv_file, bundle = (examples / "appointments.csv").read_bytes(), (examples / "bundle.json").read_bytes()
    fhir = {"Content-Type": "application/fhir+json"}
    with world.client() as api:
        csv_first = api.post("/import/appointments", content=csv_file, headers=CSV)
        csv_again = api.post("/import/appointments", content=csv_file, headers=CSV)
        fhir_first = api.post("/fhir", params={"sequence": SEQUENCE}, content=bundle, headers=fhir)
        fhir_again = api.post("/fhir", params={"sequence": SEQUENCE}, content=bundle, headers=fhir)

    assert csv_first.status_code == 200, csv_first.text
    assert (csv_first.json()["appointments_created"], csv_first.json()["patients_created"]) == (3, 2)
    assert csv_again.json()["appointments_unchanged"] == 3 and csv_again.json()["messages"]["inserted"] == 0
    assert fhir_first.status_code == 200, fhir_first.text
    assert [e["response"]["status"] for e in fhir_first.json()["entry"]] == ["201 Created"] * 2
    assert [e["response"]["status"] for e in fhir_again.json()["entry"]] == ["200 OK"] * 2

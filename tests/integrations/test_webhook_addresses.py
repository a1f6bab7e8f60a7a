"""Server-side request forgery through webhook URLs: only public addresses, checked on the address used.

No test sends traffic beyond this machine: refusals happen when the URL is checked or the name resolved
(a resolver that answers as an attacker's DNS server would stands in for DNS), before any connection.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage.config import get_settings
from engage.db import session_scope
from engage.errors import InvalidInput
from engage.integrations import deliver, endpoints, pinned
from engage.integrations.addresses import AddressRefused, Resolver, permitted_addresses
from engage.records.outgoing_webhooks import WebhookEndpoint
from tests import seed
from tests.fakes.webhook_receiver import WebhookReceiver


@pytest.fixture
def clinic_id(session: Session) -> int:
    clinic = seed.clinic(session)
    session.commit()
    return clinic.id


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://10.0.0.5/hooks", "private"),
        ("https://192.168.1.1/hooks", "private"),
        ("https://127.0.0.1/hooks", "loopback"),
        ("https://[::1]/hooks", "loopback"),
        ("https://[::ffff:127.0.0.1]/hooks", "loopback"),
        ("https://[::ffff:169.254.169.254]/hooks", "link-local"),
        ("https://[fe80::1]/hooks", "link-local"),
        ("https://[fd00::1]/hooks", "private"),
        ("https://0.0.0.0/hooks", "reserved"),
        ("https://100.64.0.1/hooks", "reserved"),
        ("https://240.0.0.1/hooks", "reserved"),
        ("https://224.0.0.1/hooks", "multicast"),
        ("https://2130706433/hooks", "usual form"),
        ("https://0x7f.1/hooks", "usual form"),
        ("https://017700000001/hooks", "usual form"),
        ("https://127.1/hooks", "usual form"),
        ("https://localhost/hooks", "loopback"),
        ("https://api.localhost/hooks", "loopback"),
        ("http://localhost:6379/", "must use https"),
        ("http://127.0.0.1:5432/", "must use https"),
    ],
)
def test_a_webhook_url_to_a_non_public_address_is_refused(clinic_id: int, url: str, said: str) -> None:
    with session_scope() as s, pytest.raises(InvalidInput, match=said) as caught:
        endpoints.create_endpoint(s, clinic_id, url, actor="admin@clinic.example")

    assert caught.value.field == "url"
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


def rebinding(answers: dict[str, list[str]]) -> Resolver:
    """A resolver answering as the attacker's DNS server for their names (and nothing else)."""

    def resolve(host: str, port: int) -> list[str]:
        del port
        if host not in answers:
            raise OSError(f"{host} does not resolve")
        return answers[host]

    return resolve


@pytest.mark.parametrize(
    "addresses",
    [["127.0.0.1"], ["10.0.0.5"], ["93.184.216.34", "169.254.169.254"], ["::ffff:10.1.2.3"], ["fe80::1%eth0"]],
)
def test_a_name_is_refused_when_any_address_it_resolves_to_is_not_public(addresses: list[str]) -> None:
    with pytest.raises(AddressRefused, match="resolves to a"):
        permitted_addresses(
            "hooks.attacker.example", 443, allow_local=False, resolve=rebinding({"hooks.attacker.example": addresses})
        )


def test_a_name_resolving_to_public_addresses_is_permitted() -> None:
    found = permitted_addresses(
        "pms.example.org", 443, allow_local=False, resolve=rebinding({"pms.example.org": ["93.184.216.34"]})
    )
    assert [str(a) for a in found] == ["93.184.216.34"]


def test_the_connection_is_refused_for_a_name_that_now_resolves_to_loopback() -> None:
    # DNS rebinding: the name was public when the endpoint was added; at post time it answers 127.0.0.1,
    # where a receiver is listening. The backend checks the very address it would connect to.
    with WebhookReceiver() as receiver:
        port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
        client = pinned.make_client(allow_local=False, resolve=rebinding({"pms.example.org": ["127.0.0.1"]}))
        with pytest.raises(pinned.AddressNotAllowed, match="loopback"):
            client.post(f"http://pms.example.org:{port}/hooks", content=b"{}")
        assert receiver.posts() == []
        # with the development setting, the same connection goes to the checked address, Host kept
        local = pinned.make_client(allow_local=True, resolve=rebinding({"pms.example.org": ["127.0.0.1"]}))
        assert local.post(f"http://pms.example.org:{port}/hooks", content=b"{}").status_code == 200
        [post] = receiver.posts()
        assert post.headers["host"] == f"pms.example.org:{port}"


@pytest.fixture
def local_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    monkeypatch.setenv("ENGAGE_WEBHOOK_ALLOW_LOCAL", "1")
    monkeypatch.setenv("ENGAGE_WEBHOOK_TIMEOUT_SECONDS", "1")
    get_settings.cache_clear()
    with WebhookReceiver() as receiver:
        yield receiver


def _post(url: str) -> deliver.Post:
    return deliver.Post(1, 1, 1, "evt_1", url, endpoints.new_secret(), "{}")


def test_a_receiver_that_answers_a_byte_at_a_time_is_cut_at_the_total_deadline(
    local_receiver: WebhookReceiver,
) -> None:
    local_receiver.answer([{"drip": 0.3}])  # 36 bytes: 11 s in all, every read well inside the 1 s timeout

    started = time.monotonic()
    answer = deliver.post_event(_post(local_receiver.url))

    assert time.monotonic() - started < 2.5
    assert (answer.status_code, answer.error) == (None, deliver.NO_ANSWER)


def test_delivery_errors_do_not_tell_a_closed_port_from_a_slow_one(local_receiver: WebhookReceiver) -> None:
    with WebhookReceiver() as closed:
        closed_url = closed.url
    local_receiver.answer([{"delay": 3}])

    refused = deliver.post_event(_post(closed_url))
    slow = deliver.post_event(_post(local_receiver.url))

    assert refused.error == slow.error == deliver.NO_ANSWER


def test_a_post_to_an_address_not_allowed_says_so() -> None:
    answer = deliver.post_event(_post("https://127.0.0.1:1/hooks"))

    assert (answer.status_code, answer.error) == (None, deliver.ADDRESS_NOT_ALLOWED)

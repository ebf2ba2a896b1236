"""The deployment files: docker-compose.yml, the Dockerfile and .dockerignore.

No Docker engine is needed: the files are parsed, every `fadewatch` command they run is
parsed by the real click CLI, and the health-check commands are run against a real server.
"""

from __future__ import annotations

import graphlib
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest
import yaml

from fadewatch.cli import main as fadewatch_cli
from fadewatch.server.settings import ServerSettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET", "KEY")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; $$ is a literal $.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
APP_SERVICES = ("migrate", "server", "dashboard")


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _command(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def _parse_cli(argv: list[str]) -> click.Context:
    """Parse argv as `fadewatch` would, down to the leaf command, without running it."""
    assert argv[0] == "fadewatch", argv
    command: click.Command = fadewatch_cli
    ctx = click.Context(command, info_name="fadewatch")
    rest = list(argv[1:])
    while isinstance(command, click.Group):  # the groups take no options of their own here
        name, command, rest = command.resolve_command(ctx, rest)
        if isinstance(command, click.Group):
            ctx = click.Context(command, info_name=name, parent=ctx)
        else:
            ctx = command.make_context(name, rest, parent=ctx)
    return ctx


def _option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def _dockerfile_instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _final_stage(instructions):
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


# --- compose: services, images, dependency order ---------------------------------------

def _compose_errors(document: dict) -> list[str]:
    """Violations of the Compose Specification's JSON schema (as vendored by check-jsonschema)."""
    from importlib.resources import files

    import jsonschema

    schema = json.loads((files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_follows_the_compose_specification():
    assert _compose_errors(COMPOSE) == []
    # The schema is strict enough to catch a misspelt dependency condition.
    broken = {**COMPOSE, "services": {**SERVICES, "server": {
        **SERVICES["server"], "depends_on": {"migrate": {"condition": "service_completed"}}}}}
    assert _compose_errors(broken)


def test_compose_has_the_four_services():
    assert set(SERVICES) == {"postgres", "migrate", "server", "dashboard"}
    assert SERVICES["postgres"]["image"] == "postgres:15"
    images = {SERVICES[s]["image"] for s in APP_SERVICES}
    assert len(images) == 1, f"migrate, server and dashboard must run one image: {images}"
    for service in APP_SERVICES:
        assert SERVICES[service]["build"] == ".", service
    assert "pgdata" in COMPOSE["volumes"]
    assert any(v.startswith("pgdata:") for v in SERVICES["postgres"]["volumes"])


def test_postgres_healthcheck_uses_pg_isready_on_its_own_user_and_database():
    check = SERVICES["postgres"]["healthcheck"]
    test = check["test"]
    assert test[0] in ("CMD", "CMD-SHELL")
    line = " ".join(test[1:])
    assert "pg_isready" in line
    env = SERVICES["postgres"]["environment"]
    assert env["POSTGRES_USER"] in line and env["POSTGRES_DB"] in line
    assert check["retries"] >= 3


def test_dependencies_wait_on_the_right_conditions():
    expected = {
        "migrate": {"postgres": "service_healthy"},
        "server": {"postgres": "service_healthy", "migrate": "service_completed_successfully"},
        "dashboard": {"server": "service_healthy"},
    }
    for service, deps in expected.items():
        got = {name: spec["condition"] for name, spec in SERVICES[service]["depends_on"].items()}
        assert got == deps, service
    assert "depends_on" not in SERVICES["postgres"]


def test_dependency_order_is_postgres_migrate_server_dashboard():
    graph = {name: set(spec.get("depends_on", {})) for name, spec in SERVICES.items()}
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises on a cycle
    assert order == ["postgres", "migrate", "server", "dashboard"]


def test_every_service_that_others_wait_on_healthy_has_a_healthcheck():
    waited_on = {dep for spec in SERVICES.values() for dep, cond in spec.get("depends_on", {}).items()
                 if cond["condition"] == "service_healthy"}
    assert waited_on == {"postgres", "server"}
    for service in (*waited_on, "dashboard"):
        check = SERVICES[service]["healthcheck"]
        assert not check.get("disable"), service
        assert check["test"][0] in ("CMD", "CMD-SHELL"), service
    assert "/readyz" in " ".join(SERVICES["server"]["healthcheck"]["test"])
    # A one-shot job is never "healthy": it must not inherit the image's HEALTHCHECK.
    assert SERVICES["migrate"]["healthcheck"] == {"disable": True}
    assert SERVICES["migrate"]["restart"] == "no"


# --- compose: secrets and settings -------------------------------------------------------

def test_no_secret_has_a_default():
    """Every ${VAR} naming a password, token, secret or key must be ${VAR:?message}."""
    found = []
    for text in _strings(COMPOSE):
        for var, op, _ in INTERPOLATION.findall(text):
            if any(word in var.upper() for word in SECRET_WORDS):
                found.append(var)
                assert op in (":?", "?"), f"${{{var}}} must fail when unset (use ${{{var}:?message}}), got {op!r}"
    assert "POSTGRES_PASSWORD" in found


def test_no_secret_is_written_in_the_file():
    for name, spec in SERVICES.items():
        env = spec.get("environment", {})
        assert isinstance(env, dict), f"{name}: write environment as a mapping"
        for key, value in env.items():
            if any(word in key.upper() for word in SECRET_WORDS):
                assert INTERPOLATION.fullmatch(str(value)), f"{name}.{key} must come from the environment"
            if key.endswith("DATABASE_URL"):
                assert "@" in value and ":" not in value.split("@")[0].split("://")[1], \
                    f"{name}.{key}: no password in the URL (libpq reads PGPASSWORD)"


def test_database_and_its_password_reach_only_the_services_that_use_it():
    postgres = SERVICES["postgres"]["environment"]
    # The dashboard reads the server's API only, never the database.
    assert "environment" not in SERVICES["dashboard"]
    for service in ("migrate", "server"):
        env = SERVICES[service]["environment"]
        url = env["FADEWATCH_DATABASE_URL"]
        assert url == f"postgresql+psycopg://{postgres['POSTGRES_USER']}@postgres:5432/{postgres['POSTGRES_DB']}"
        assert env["PGPASSWORD"] == postgres["POSTGRES_PASSWORD"]


def test_fadewatch_variables_are_real_settings():
    fields = set(ServerSettings.model_fields)
    for service in APP_SERVICES:
        for key in SERVICES[service].get("environment", {}):
            if key.startswith("FADEWATCH_"):
                assert key.removeprefix("FADEWATCH_").lower() in fields, f"{service}: unknown setting {key}"


def test_ports_publish_what_the_commands_listen_on():
    assert "ports" not in SERVICES["postgres"], "the database stays on the compose network"
    assert "ports" not in SERVICES["migrate"]
    for service in ("server", "dashboard"):
        argv = _command(service)
        listen = _option(argv, "--port")
        assert _option(argv, "--host") == "0.0.0.0"
        (mapping,) = SERVICES[service]["ports"]
        container = str(mapping).rsplit(":", 1)[1]
        assert container == listen, service
        assert f"127.0.0.1:{listen}/" in " ".join(SERVICES[service]["healthcheck"]["test"]), service


# --- compose and Dockerfile: the commands exist and take those options ------------------

def test_compose_commands_parse_with_the_real_cli():
    migrate = _parse_cli(_command("migrate"))
    assert migrate.command.name == "upgrade" and migrate.parent.command.name == "db"
    server = _parse_cli(_command("server"))
    assert server.command.name == "server"
    assert (server.params["host"], server.params["port"]) == ("0.0.0.0", 8700)
    dashboard = _parse_cli(_command("dashboard"))
    assert dashboard.command.name == "dashboard"
    assert dashboard.params["api_url"] == "http://server:8700"
    assert dashboard.params["token"] is None, "the dashboard holds no shared token (each browser brings one)"


def test_first_token_command_in_the_compose_comments_parses():
    (line,) = [ln for ln in (ROOT / "docker-compose.yml").read_text().splitlines() if "token create" in ln]
    argv = shlex.split(line.split("docker compose run --rm migrate", 1)[1])
    ctx = _parse_cli(argv)
    assert ctx.command.name == "create" and ctx.params["scope"] == "write"


def test_unknown_option_is_refused_by_the_parser():
    """The check above is not vacuous: a misspelt option fails to parse."""
    with pytest.raises(click.UsageError):
        _parse_cli(["fadewatch", "server", "--hots", "0.0.0.0"])


def test_dockerfile_cmd_parses_with_the_real_cli():
    cmd = [v for k, v in _dockerfile_instructions() if k == "CMD"][-1]
    ctx = _parse_cli(json.loads(cmd))
    assert ctx.command.name == "server" and ctx.params["host"] == "0.0.0.0"


# --- Dockerfile and .dockerignore --------------------------------------------------------

def test_dockerfile_is_multi_stage_on_slim_python_311():
    instructions = _dockerfile_instructions()
    args = dict(v.split("=", 1) for k, v in instructions if k == "ARG" and "=" in v)
    froms = [v for k, v in instructions if k == "FROM"]
    assert len(froms) >= 2
    for line in froms:
        image = line.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", image), image
    assert any(v.startswith("--from=") for k, v in _final_stage(instructions) if k == "COPY")


def test_dockerfile_runs_as_an_unprivileged_user_with_a_healthcheck():
    final = _final_stage(_dockerfile_instructions())
    users = [v for k, v in final if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    (health,) = [v for k, v in final if k == "HEALTHCHECK"]
    assert re.search(r"/(readyz|healthz)", health)
    assert "8700" in [v for k, v in final if k == "EXPOSE"][0]


def test_image_installs_the_server_extra_without_torch():
    instructions = _dockerfile_instructions()
    installs = [v for k, v in instructions if k == "RUN" and "pip install" in v]
    assert installs and all('".[server]"' in v or "'.[server]'" in v for v in installs)
    for line in installs:
        assert "torch" not in line.split("&&")[0] and "[demo" not in line and "[dev" not in line
    server_extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["server"]
    assert not [d for d in server_extra if d.lower().startswith(("torch", "fadewatch[demo"))]


def test_dockerignore_lets_through_exactly_what_the_build_copies():
    ignore = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    assert ignore[0] == "*", "start from nothing, so .venv, databases and spools never enter the context"
    allowed = {ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")}
    copied = set()
    for keyword, value in _dockerfile_instructions():
        if keyword == "COPY" and not value.startswith("--from"):
            copied.update(p.rstrip("/").removeprefix("./") for p in value.split()[:-1])
    assert copied == allowed
    for path in copied:
        assert (ROOT / path).exists(), path
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert set(package_dirs.values()) <= copied, "every package folder must be copied into the image"


# --- the health checks work against a real server ----------------------------------------

def _run_check(test: list[str], port: int, env: dict[str, str] | None = None) -> int:
    if test[0] == "CMD":  # compose writes the Docker form's CMD in the list; a Dockerfile does not
        test = test[1:]
    assert test[:2] == ["python", "-c"], test
    code = test[2].replace("8700", str(port))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=20,
                          env={**os.environ, **(env or {})})
    return proc.returncode


@pytest.fixture
def pg_server(postgres_url, make_settings):
    from fadewatch.server.app import create_app, prepare_database
    from tests.support.servers import ThreadedServer

    settings = make_settings(database_url=postgres_url)
    srv = ThreadedServer(create_app(settings, prepare_database(settings))).start()
    yield srv
    srv.stop()


def test_health_check_commands_pass_on_a_ready_server_and_fail_on_none(pg_server):
    from tests.support.servers import free_port

    compose_check = SERVICES["server"]["healthcheck"]["test"]
    image_check = json.loads([v for k, v in _final_stage(_dockerfile_instructions()) if k == "HEALTHCHECK"][0]
                             .split(" CMD ", 1)[1])
    assert _run_check(compose_check, pg_server.port) == 0
    assert _run_check(image_check, 8700, env={"FADEWATCH_PORT": str(pg_server.port)}) == 0
    nothing = free_port()
    assert _run_check(compose_check, nothing) != 0
    assert _run_check(image_check, 8700, env={"FADEWATCH_PORT": str(nothing)}) != 0

"""The production stack (docker-compose.yml, Dockerfile) and the README's
configuration table agree with what the code reads and consumes.

No Docker engine is needed: the files are parsed and compared with
portal/settings.py (read as source, so that every branch counts) and with the
Celery application's queues.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings

from portal.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_SOURCE = ROOT / "portal" / "settings.py"
PORTAL_PROCESSES = ("web", "worker", "beat")


# --- What portal/settings.py reads ------------------------------------------


def _is_os_environ(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _literal(node: ast.expr | None) -> Any:
    """The value of a literal default, or Ellipsis when it is computed."""
    if node is None:
        return ...
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ...


def settings_reads(source: str) -> dict[str, dict[str, Any]]:
    """Every variable the settings source reads: {name: {"secret": bool, "defaults": [...]}}.

    Reads are calls with the variable's name as a string literal:
    ``env("NAME")``, ``env.<cast>("NAME", default=...)``, ``secret("NAME", default)``
    and ``os.environ.get("NAME", default)``.
    """
    found: dict[str, dict[str, Any]] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        func = node.func
        keywords = {k.arg: k.value for k in node.keywords}
        if isinstance(func, ast.Name) and func.id in ("env", "secret"):
            is_secret = func.id == "secret"
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.value.id != "env":
                continue
            is_secret = False
        elif isinstance(func, ast.Attribute) and func.attr == "get" and _is_os_environ(func.value):
            is_secret = False
        else:
            continue
        default = keywords.get("default", node.args[1] if len(node.args) > 1 else None)
        entry = found.setdefault(first.value, {"secret": False, "defaults": []})
        entry["secret"] = entry["secret"] or is_secret
        entry["defaults"].append(_literal(default))
    return found


@pytest.fixture(scope="module")
def reads() -> dict[str, dict[str, Any]]:
    return settings_reads(SETTINGS_SOURCE.read_text())


def accepted_names(reads: dict[str, dict[str, Any]]) -> set[str]:
    """Names a deployment may set: each one read, and NAME_FILE for secrets."""
    return set(reads) | {f"{name}_FILE" for name, r in reads.items() if r["secret"]}


def test_the_settings_parser_sees_every_kind_of_read() -> None:
    source = (
        "import os\n"
        'A = env.bool("A_BOOL", default=False)\n'
        'B = env("B_PLAIN")\n'
        'C = secret("C_SECRET", "x")\n'
        'D = os.environ.get("D_OS")\n'
        'E = os.environ.get(f"{name}_FILE")\n'
        'F = other.get("NOT_A_READ")\n'
    )
    found = settings_reads(source)
    assert set(found) == {"A_BOOL", "B_PLAIN", "C_SECRET", "D_OS"}
    assert [n for n, r in found.items() if r["secret"]] == ["C_SECRET"]
    assert found["A_BOOL"]["defaults"] == [False]
    assert found["C_SECRET"]["defaults"] == ["x"]
    assert found["B_PLAIN"]["defaults"] == [...]


def test_the_settings_parser_finds_the_known_reads(reads: dict[str, dict[str, Any]]) -> None:
    # A guard for the parser on the real file: these reads are there today.
    assert {"DATABASE_URL", "DJANGO_ALLOWED_HOSTS", "OIDC_RP_CLIENT_ID", "LOG_LEVEL"} <= set(reads)
    secrets = {name for name, r in reads.items() if r["secret"]}
    assert {"DJANGO_SECRET_KEY", "DATABASE_PASSWORD", "CELERY_BROKER_URL"} <= secrets
    assert "DATABASE_URL" not in secrets


# --- docker-compose.yml -----------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def argv(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    assert command, "service has no command"
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def option(args: list[str], *names: str) -> str | None:
    """The value of a command-line option given as ``-Q x``, ``--queues x`` or ``--queues=x``."""
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = [str(item).partition("=") for item in env]
        return {key: value for key, _, value in pairs}
    return {str(k): str(v) for k, v in env.items()}


def one_shot_services(services: dict[str, dict[str, Any]]) -> set[str]:
    """Services that others wait for to finish (``service_completed_successfully``)."""
    waited: set[str] = set()
    for service in services.values():
        depends = service.get("depends_on") or {}
        if isinstance(depends, dict):
            waited |= {
                name
                for name, how in depends.items()
                if (how or {}).get("condition") == "service_completed_successfully"
            }
    return waited


def test_the_stack_has_its_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(services)
    assert services["postgres"]["image"].split(":")[0] == "postgres"
    assert services["redis"]["image"].split(":")[0] == "redis"


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    one_shot = one_shot_services(services)
    for name in one_shot:
        assert services[name].get("restart", "no") == "no", f"{name} runs once; no restart"
    long_running = set(services) - one_shot
    assert {"postgres", "redis", "web", "worker", "beat"} <= long_running
    for name in sorted(long_running):
        check = services[name].get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        test = check.get("test")
        assert test and test not in (["NONE"], "NONE"), f"{name} has an empty healthcheck"


def test_web_runs_gunicorn_on_the_wsgi_application(services: dict[str, dict[str, Any]]) -> None:
    args = argv(services["web"])
    assert Path(args[0]).name == "gunicorn"
    app_module = next(a for a in args[1:] if not a.startswith("-") and "wsgi" in a)
    assert app_module.split(":")[0] == settings.WSGI_APPLICATION.rsplit(".", 1)[0]
    bind = option(args, "--bind", "-b")
    assert bind is not None and bind.startswith("0.0.0.0:"), "gunicorn must listen beyond loopback"
    port = bind.rsplit(":", 1)[1]
    # The healthcheck asks /healthz on the port gunicorn listens on.
    health = " ".join(map(str, services["web"]["healthcheck"]["test"]))
    assert f"127.0.0.1:{port}/healthz" in health
    for mapping in services["web"].get("ports", []):
        assert str(mapping).rsplit(":", 1)[1] == port


def celery_queue_names() -> set[str]:
    return {queue.name for queue in celery_app.conf.task_queues}


def test_the_worker_consumes_every_queue(services: dict[str, dict[str, Any]]) -> None:
    queues = celery_queue_names()
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed | {settings.CELERY_TASK_DEFAULT_QUEUE} <= queues
    assert queues == {"default", "provisioning", "training", "data"}

    args = argv(services["worker"])
    assert Path(args[0]).name == "celery" and "worker" in args
    assert option(args, "-A", "--app") == "portal"
    consumed = option(args, "-Q", "--queues")
    assert consumed is not None, "a worker without -Q consumes only the default queue"
    assert set(consumed.split(",")) == queues

    # Further worker pools (docs/operations.md) consume known queues only.
    for name, service in services.items():
        if service.get("command") and "worker" in argv(service) and "celery" in argv(service)[0]:
            extra = option(argv(service), "-Q", "--queues")
            assert extra and set(extra.split(",")) <= queues, f"{name} consumes {extra!r}"


def test_beat_uses_the_database_scheduler(services: dict[str, dict[str, Any]]) -> None:
    args = argv(services["beat"])
    assert Path(args[0]).name == "celery" and "beat" in args
    assert option(args, "-A", "--app") == "portal"
    scheduler = option(args, "-S", "--scheduler")
    assert scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    assert scheduler == settings.CELERY_BEAT_SCHEDULER
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1, "one beat, never more"


@pytest.mark.parametrize("name", [*PORTAL_PROCESSES, "migrate"])
def test_portal_environment_is_read_by_the_settings(
    services: dict[str, dict[str, Any]], reads: dict[str, dict[str, Any]], name: str
) -> None:
    if name not in services:
        pytest.fail(f"no {name} service")
    unread = set(environment(services[name])) - accepted_names(reads)
    assert not unread, f"{name} sets variables portal/settings.py never reads: {sorted(unread)}"


def test_portal_processes_share_one_configuration(services: dict[str, dict[str, Any]]) -> None:
    # A setting that differs between processes (an encryption key, a storage
    # URL) breaks work handed from web to worker. Every long-running service
    # built from the portal's image counts, extra worker pools included.
    one_shot = one_shot_services(services)
    portal = [n for n, s in services.items() if "build" in s and n not in one_shot]
    assert set(PORTAL_PROCESSES) <= set(portal)
    web = environment(services["web"])
    assert web
    for name in portal:
        assert environment(services[name]) == web, f"{name}'s environment differs from web's"
        assert services[name].get("secrets") == services["web"].get("secrets"), name


@pytest.mark.parametrize("name", PORTAL_PROCESSES)
def test_portal_processes_reach_postgres_and_redis(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = environment(services[name])
    database = urlsplit(env["DATABASE_URL"])
    assert database.scheme in ("postgres", "postgresql", "pgsql")
    assert database.hostname == "postgres" and "postgres" in services
    assert database.path.lstrip("/") == environment(services["postgres"])["POSTGRES_DB"]
    broker = urlsplit(env["CELERY_BROKER_URL"])
    assert broker.scheme == "redis"
    assert broker.hostname == "redis" and "redis" in services
    assert "DJANGO_SECRET_KEY_FILE" in env, "the secret key comes from a Docker secret"
    assert env.get("DJANGO_HTTPS") == "true", "production sits behind a TLS proxy"

    depends = services[name]["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"


def test_the_portal_is_not_the_owner_of_the_audit_table(
    services: dict[str, dict[str, Any]],
) -> None:
    # Migrations run as the owner; the portal connects as the role that
    # AUDIT_APP_DB_ROLE names, so the audit migration's REVOKE applies to it.
    owner = environment(services["postgres"])["POSTGRES_USER"]
    migrate = environment(services["migrate"])
    assert urlsplit(migrate["DATABASE_URL"]).username == owner
    for name in PORTAL_PROCESSES:
        env = environment(services[name])
        role = urlsplit(env["DATABASE_URL"]).username
        assert role and role != owner, f"{name} connects as the tables' owner"
        assert migrate.get("AUDIT_APP_DB_ROLE") == role
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


@pytest.mark.parametrize("name", [*PORTAL_PROCESSES, "migrate", "postgres"])
def test_secret_files_are_mounted_docker_secrets(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    mounted = {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}
    assert mounted <= set(compose.get("secrets", {})), "undeclared secret"
    for variable, value in environment(service).items():
        if variable.endswith("_FILE"):
            match = re.fullmatch(r"/run/secrets/([\w.-]+)", value)
            assert match, f"{name}: {variable} is not a Docker secret path"
            assert match.group(1) in mounted, f"{name}: secret {match.group(1)} is not mounted"


# --- Dockerfile -------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_the_dockerfile_installs_a_requirements_file_that_exists() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    installs = [
        rest for keyword, rest in instructions if keyword == "RUN" and "pip install" in rest
    ]
    files = [m for rest in installs for m in re.findall(r"(?:-r|--requirement)\s+(\S+)", rest)]
    assert files, "the Dockerfile installs no requirements file"
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for name in files:
        assert (ROOT / name).is_file(), f"{name} does not exist"
        assert name not in ignored, f"{name} is excluded from the build context"
        copied = [
            rest.split() for keyword, rest in instructions if keyword == "COPY" and name in rest
        ]
        assert copied, f"{name} is never copied into the image"


def test_the_image_runs_as_a_user_other_than_root() -> None:
    instructions = dockerfile_instructions()
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert "STAGEGATE_VAR_DIR=/var/lib/stagegate" in env
    assert "STAGEGATE_VAR_DIR" in settings_reads(SETTINGS_SOURCE.read_text())


def test_the_build_step_keeps_the_static_files_and_nothing_else(tmp_path: Path) -> None:
    """Run the Dockerfile's collectstatic step as the build would: in an
    environment with nothing but the Dockerfile's ENV and ARG values."""
    instructions = dockerfile_instructions()
    collect = [
        rest for keyword, rest in instructions if keyword == "RUN" and "collectstatic" in rest
    ]
    assert len(collect) == 1
    var_dir, build_dir = tmp_path / "var", tmp_path / "build"
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "STAGEGATE_VAR_DIR": str(var_dir),
        "BUILD_VAR_DIR": str(build_dir),
    }
    declared = " ".join(rest for keyword, rest in instructions if keyword in ("ENV", "ARG"))
    assert "BUILD_VAR_DIR=" in declared and "DJANGO_SETTINGS_MODULE=portal.settings" in declared
    result = subprocess.run(
        ["sh", "-c", collect[0]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in var_dir.iterdir()) == ["static"]
    assert (var_dir / "static" / "staticfiles.json").is_file()
    assert not build_dir.exists()


# --- README configuration table ---------------------------------------------


def readme_configuration() -> dict[str, dict[str, str]]:
    """Rows of the first table under the README's "## Configuration" heading."""
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Configuration\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "README has no '## Configuration' section"
    lines = section.group(1).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header = [h.lower() for h in table[0]]
    assert header[:2] == ["variable", "default"], header
    assert "_file" in header, "the table says which variables accept *_FILE"
    file_column = header.index("_file")
    rows: dict[str, dict[str, str]] = {}
    for cells in table[2:]:
        names = re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0])
        assert len(names) == 1, f"one variable per row: {cells[0]!r}"
        assert names[0] not in rows, f"{names[0]} is listed twice"
        rows[names[0]] = {"default": cells[1], "file": cells[file_column]}
    return rows


def readme_default(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def test_readme_lists_exactly_the_variables_the_settings_read(
    reads: dict[str, dict[str, Any]],
) -> None:
    rows = readme_configuration()
    assert set(rows) - set(reads) == set(), "README lists variables the settings do not read"
    assert set(reads) - set(rows) == set(), "settings read variables the README does not list"
    for name, row in rows.items():
        says_file = row["file"].lower() == "yes"
        assert says_file == reads[name]["secret"], f"{name}: _FILE column is wrong"


def test_readme_defaults_match_the_literal_defaults(reads: dict[str, dict[str, Any]]) -> None:
    rows = readme_configuration()
    checked = 0
    for name, read in reads.items():
        defaults = read["defaults"]
        if name not in rows or ... in defaults or len({repr(d) for d in defaults}) != 1:
            continue  # unlisted (another test says so), computed, absent, or ambiguous
        value, cell = defaults[0], rows[name]["default"]
        if value in ("", []):
            assert cell.lower() == "empty", f"{name}: default is empty, README says {cell!r}"
        else:
            shown = re.findall(r"`([^`]*)`", cell)
            assert shown and shown[0] == readme_default(value), (
                f"{name}: default is {value!r}, README says {cell!r}"
            )
        checked += 1
    assert checked >= 10, "the literal defaults were not found"


# --- the audit trail's keys and checkpoints ---------------------------------


@pytest.mark.parametrize("name", PORTAL_PROCESSES)
def test_the_audit_keys_are_docker_secrets_and_the_checkpoints_have_a_place(
    compose: dict[str, Any],
    services: dict[str, dict[str, Any]],
    reads: dict[str, dict[str, Any]],
    name: str,
) -> None:
    # Without shared keys each container would make its own under its var
    # directory: the others' events would show as forged.
    env = environment(services[name])
    mounted = {s if isinstance(s, str) else s["source"] for s in services[name]["secrets"]}
    for variable in ("AUDIT_MAC_KEY_FILE", "AUDIT_SIGNING_KEY_FILE"):
        assert variable in accepted_names(reads), variable
        match = re.fullmatch(r"/run/secrets/([\w.-]+)", env.get(variable, ""))
        assert match, f"{name}: {variable} is not a Docker secret"
        assert match.group(1) in mounted
        assert compose["secrets"][match.group(1)]["file"].startswith("./secrets/")
    assert "AUDIT_CHECKPOINT_URL" in reads
    url = env.get("AUDIT_CHECKPOINT_URL", "")
    assert url.startswith("${AUDIT_CHECKPOINT_URL:-"), "the URL is set from .env"
    default = urlsplit(url.removeprefix("${AUDIT_CHECKPOINT_URL:-").removesuffix("}"))
    # The default file lies on the volume every portal process shares.
    assert default.scheme == "file"
    volumes = [str(v).split(":") for v in services[name]["volumes"]]
    assert any(default.path.startswith(target + "/") for _, target in volumes)
    assert "AUDIT_CHECKPOINT_CONNECTION_STRING_FILE" in env

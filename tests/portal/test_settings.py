"""Settings read from the environment: run in a fresh process per case."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def django_shell(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "DJANGO_SECRET_KEY"))
    }
    environment["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_single_sign_on_is_off_without_its_settings() -> None:
    result = django_shell(
        "from django.conf import settings; print(settings.OIDC_ENABLED)",
        DJANGO_SECRET_KEY="x" * 50,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_single_sign_on_with_entra_id_settings() -> None:
    result = django_shell(
        "from django.conf import settings; from django.urls import reverse; "
        "print(reverse('oidc_authentication_init')); print(settings.OIDC_OP_TOKEN_ENDPOINT); "
        "print('accounts.oidc.EntraIDBackend' in settings.AUTHENTICATION_BACKENDS)",
        DJANGO_SECRET_KEY="x" * 50,
        OIDC_RP_CLIENT_ID="client-id",
        OIDC_RP_CLIENT_SECRET="client-secret",
        OIDC_TENANT_ID="contoso-tenant",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "/oidc/authenticate/",
        "https://login.microsoftonline.com/contoso-tenant/oauth2/v2.0/token",
        "True",
    ]


def test_secret_key_is_required_unless_debug(tmp_path: Path) -> None:
    result = django_shell("print(1)", DJANGO_DEBUG="false", STAGEGATE_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "Set DJANGO_SECRET_KEY or DJANGO_SECRET_KEY_FILE" in result.stderr


def test_the_key_make_run_keeps_in_the_var_directory_is_used(tmp_path: Path) -> None:
    """`manage.py` in a checkout started by `make run` needs nothing exported."""
    (tmp_path / "secret_key").write_text("kept-by-make-run-" + "k" * 40 + "\n")
    result = django_shell(
        "from django.conf import settings; print(settings.SECRET_KEY)",
        DJANGO_DEBUG="false",
        STAGEGATE_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "kept-by-make-run-" + "k" * 40


def test_an_exported_key_wins_over_the_kept_one(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("kept-" + "k" * 40)
    result = django_shell(
        "from django.conf import settings; print(settings.SECRET_KEY)",
        DJANGO_SECRET_KEY="exported-" + "e" * 40,
        STAGEGATE_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "exported-" + "e" * 40


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-a-file-" + "k" * 40 + "\n")
    result = django_shell(
        "from django.conf import settings; print(settings.SECRET_KEY); print(settings.DEBUG)",
        DJANGO_SECRET_KEY_FILE=str(key_file),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["from-a-file-" + "k" * 40, "False"]


def test_encryption_keys_are_required_outside_the_embedded_setup() -> None:
    environment = {"DJANGO_SECRET_KEY": "x" * 50, "FIELD_ENCRYPTION_KEYS": ""}
    result = django_shell("print(1)", **environment)
    assert result.returncode != 0
    assert "Set FIELD_ENCRYPTION_KEYS or FIELD_ENCRYPTION_KEYS_FILE" in result.stderr


def test_embedded_setup_makes_one_encryption_key_and_keeps_it(tmp_path: Path) -> None:
    code = "from django.conf import settings; print(settings.FIELD_ENCRYPTION_KEYS[0])"
    environment = {
        "DJANGO_SECRET_KEY": "x" * 50,
        "FIELD_ENCRYPTION_KEYS": "",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "STAGEGATE_VAR_DIR": str(tmp_path),
    }
    first = django_shell(code, **environment)
    second = django_shell(code, **environment)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert (tmp_path / "field_encryption_key").stat().st_mode & 0o777 == 0o600

"""Strict configuration (docs/deployment.md, "Configuration"): every variable of .env.example is
read strictly, a misspelt value stops manage.py, gunicorn and the worker with one line, and the two
fallbacks the RFC prescribes stay fallbacks.

settings.py is executed in this process with a controlled environment (it is plain module code), so
every variable is covered in milliseconds; real processes check the one line and the exit status.
"""

from __future__ import annotations

import os
import re
import runpy
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import environ
import pytest

from dpm_async.environment import ConfigurationInvalid

REPO = Path(__file__).resolve().parents[2]
SETTINGS = REPO / "dpm_async" / "settings.py"
BASE = {"DJANGO_ENV_FILE": "", "DJANGO_SECRET_KEY": "configuration-tests-not-a-secret"}


class RecordingEnviron(dict):
    """The environment settings.py sees, remembering every name it asks for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: Any, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: Any) -> bool:
        self.asked.add(key)
        return super().__contains__(key)


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Executes settings.py with BASE plus the given variables (nothing else of the environment)."""

    def run(**variables: str) -> dict[str, Any]:
        recording = RecordingEnviron({**BASE, **variables})
        monkeypatch.setattr(environ.Env, "ENVIRON", recording)
        namespace = runpy.run_path(str(SETTINGS))
        namespace["_asked"] = recording.asked
        return namespace

    yield run


def example_variables() -> set[str]:
    text = (REPO / ".env.example").read_text()
    return set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))


# variable -> (a documented value, the setting it sets, its value there; a misspelt value or None)
COVERAGE: dict[str, tuple[str, str, Any, str | None]] = {
    "DJANGO_SECRET_KEY": ("s3cret-" + "x" * 50, "SECRET_KEY", "s3cret-" + "x" * 50, None),
    "DJANGO_DEBUG": ("true", "DEBUG", True, "ture"),
    "DJANGO_ALLOWED_HOSTS": ("a.example,b.example", "ALLOWED_HOSTS", ["a.example", "b.example"], None),
    "DJANGO_CSRF_TRUSTED_ORIGINS": ("https://a.example", "CSRF_TRUSTED_ORIGINS", ["https://a.example"], None),
    "DJANGO_LOG_LEVEL": ("warning", "LOG_LEVEL", "WARNING", "verbose"),
    "DPM_LOG_FORMAT": ("JSON", "DPM_LOG_FORMAT", "json", "yaml"),
    "DJANGO_SECURE_HTTPS": ("off", "SECURE_SSL_REDIRECT", False, "flase"),
    "DJANGO_SECURE_HSTS_SECONDS": ("600", "SECURE_HSTS_SECONDS", 600, "1y"),
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": ("no", "SECURE_HSTS_INCLUDE_SUBDOMAINS", False, "nope"),
    "DJANGO_SECURE_HSTS_PRELOAD": ("0", "SECURE_HSTS_PRELOAD", False, "2"),
    "DJANGO_SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO,https", "SECURE_PROXY_SSL_HEADER",
                                       ("HTTP_X_FORWARDED_PROTO", "https"), "HTTP_X_FORWARDED_PROTO"),
    "DJANGO_ENV_FILE": ("", "DEBUG", False, "/nonexistent/dpm_async.env"),
    "DPM_API_AUTH_REQUIRED": ("YES", "DPM_API_AUTH_REQUIRED", True, "ture"),
    "DATABASE_URL": ("postgres://u:p@db.example:5433/dpm", "DATABASES", "db.example", "postgress://u:pw@h/db"),
    "DJANGO_CONN_MAX_AGE": ("0", "DATABASES", 0, "forever"),
    "DPM_DB_CONNECT_TIMEOUT_SECONDS": ("2", "DPM_DB_CONNECT_TIMEOUT_SECONDS", 2, "5s"),
    "DPM_DB_STATEMENT_TIMEOUT_SECONDS": ("0", "DPM_DB_STATEMENT_TIMEOUT_SECONDS", 0, "-1"),
    "DPM_DB_WRITE_RETRY_SECONDS": ("5", "DPM_DB_WRITE_RETRY_SECONDS", 5, "soon"),
    "DJANGO_STATIC_ROOT": ("/srv/static", "STATIC_ROOT", "/srv/static", None),
    "DPM_MAX_REQUEST_BYTES": ("1048576", "DPM_MAX_REQUEST_BYTES", 1048576, "16MB"),
    "DPM_MAX_BATCH_CELLS": ("5000", "DPM_MAX_BATCH_CELLS", 5000, "100k"),
    "DPM_THROTTLE_ANALYZE_RATE": (" 10/Minute ", "DPM_THROTTLE_ANALYZE_RATE", "10/minute", "60/mx"),
    "DPM_THROTTLE_SUBMIT_RATE": ("OFF", "DPM_THROTTLE_SUBMIT_RATE", "off", "120"),
    "DPM_AUTH_FAILURE_RATE": ("5/h", "DPM_AUTH_FAILURE_RATE", "5/h", "0/min"),
    "DPM_ASYNC_MAX_UNFINISHED_PER_OWNER": ("0", "DPM_ASYNC_MAX_UNFINISHED_PER_OWNER", 0, "-1"),
    "DPM_TRUSTED_PROXIES": ("10.0.0.0/8, 127.0.0.1,::1", "DPM_TRUSTED_PROXIES", ("10.0.0.0/8", "127.0.0.1/32", "::1/128"),
                            "10.0.0.0/33"),
    "REDIS_URL": ("redis://127.0.0.1:6379/13", "CACHES", "dpm_async.cache.FailOpenRedisCache",
                  "user:pw@cache.internal:6379"),
    "DPM_CACHE_KEY_PREFIX": ("dpm_test", "CACHES", "dpm_test", None),
    "DPM_ASYNC_OPERATIONS_ENABLED": ("false", "DPM_ASYNC_OPERATIONS_ENABLED", False, "disabled"),
    "DPM_ASYNC_OPERATIONS_TTL_SECONDS": ("3600", "DPM_ASYNC_OPERATIONS_TTL_SECONDS", 3600, None),  # falls back
    "DPM_ASYNC_EXECUTION_MODE": (" worker ", "DPM_ASYNC_EXECUTION_MODE", "WORKER", None),  # falls back
    "DPM_ASYNC_MANUAL_EXECUTION_ENABLED": ("FALSE", "DPM_ASYNC_MANUAL_EXECUTION_ENABLED", False, "n"),
    "DPM_ASYNC_EXECUTION_LEASE_SECONDS": ("60", "DPM_ASYNC_EXECUTION_LEASE_SECONDS", 60, "0"),
    "DPM_ASYNC_MAX_ATTEMPTS": ("5", "DPM_ASYNC_MAX_ATTEMPTS", 5, "three"),
    "DPM_ASYNC_RECOVERY_INTERVAL_SECONDS": ("2.5", "DPM_ASYNC_RECOVERY_INTERVAL_SECONDS", 2.5, "-1"),
    "DPM_TASKS_BACKEND": ("django.tasks.backends.immediate.ImmediateBackend", "TASKS",
                          "django.tasks.backends.immediate.ImmediateBackend", None),
    "DPM_TASKS_OPTIONS": ('{"queues": ["default"]}', "TASKS", {"queues": ["default"]}, "{queues}"),
    "DPM_READY_MAX_PENDING_AGE_SECONDS": ("30", "DPM_READY_MAX_PENDING_AGE_SECONDS", 30, "2m"),
    "DPM_WORKER_METRICS_PORT": ("9108", "DPM_WORKER_METRICS_PORT", 9108, "70000"),
    "DPM_WORKER_METRICS_ADDRESS": ("0.0.0.0", "DPM_WORKER_METRICS_ADDRESS", "0.0.0.0", None),  # noqa: S104
}


def _picked(name: str, setting: str, value: Any) -> Any:
    """The part of a composite setting a variable sets."""
    if name == "DATABASE_URL":
        return value["default"]["HOST"]
    if name == "DJANGO_CONN_MAX_AGE":
        return value["default"].get("CONN_MAX_AGE")
    if name == "DPM_TASKS_BACKEND":
        return value["default"]["BACKEND"]
    if name == "DPM_TASKS_OPTIONS":
        return value["default"]["OPTIONS"]
    if name == "REDIS_URL":
        return value["default"]["BACKEND"]
    if name == "DPM_CACHE_KEY_PREFIX":
        return value["default"]["KEY_PREFIX"]
    return value


def test_every_variable_settings_reads_is_in_the_example_and_covered_here(load):
    asked = {name for name in load()["_asked"] if name.startswith(("DJANGO_", "DPM_", "DATABASE_", "REDIS_"))}
    asked.discard("DJANGO_SETTINGS_MODULE")
    # DJANGO_CONN_MAX_AGE is read only for PostgreSQL.
    asked |= {name for name in load(DATABASE_URL="postgres://u@h/d")["_asked"] if name == "DJANGO_CONN_MAX_AGE"}
    assert asked == example_variables()
    assert set(COVERAGE) == example_variables()


@pytest.mark.parametrize("name", sorted(COVERAGE))
def test_each_variable_takes_its_documented_values(load, name):
    value, setting, expected, _ = COVERAGE[name]
    extra = {"DATABASE_URL": "postgres://u@h/d"} if name == "DJANGO_CONN_MAX_AGE" else {}
    loaded = load(**extra, **{name: value})
    assert _picked(name, setting, loaded[setting]) == expected
    assert loaded["DPM_SETTINGS_WARNINGS"] == ()


@pytest.mark.parametrize("name", sorted(name for name, row in COVERAGE.items() if row[3] is not None))
def test_each_misspelt_value_is_refused_with_one_line_naming_variable_value_and_what_is_allowed(load, name):
    bad = COVERAGE[name][3]
    assert bad is not None
    extra = {"DATABASE_URL": "postgres://u@h/d"} if name == "DJANGO_CONN_MAX_AGE" else {}
    with pytest.raises(ConfigurationInvalid) as refused:
        load(**extra, **{name: bad})
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{name}")
    if name == "DATABASE_URL":  # never echoed: it may hold a password
        assert "pw" not in message and "'postgress'" in message
    elif name == "REDIS_URL":  # never echoed either
        assert "pw" not in message and "is not allowed: use " in message
    else:
        assert f"{name}={bad!r} is not allowed: use " in message


@pytest.mark.parametrize("flag", ["DPM_API_AUTH_REQUIRED", "DJANGO_SECURE_HTTPS", "DJANGO_DEBUG"])
@pytest.mark.parametrize("typo", ["ture", "required", "", " ", "enabled", "flase", "2"])
def test_security_flags_fail_closed_on_any_typo(load, flag, typo):
    with pytest.raises(ConfigurationInvalid, match=f"^{flag}="):
        load(**{flag: typo})


@pytest.mark.parametrize(("spelling", "value"), [("true", True), ("TRUE", True), (" yes ", True), ("On", True),
                                                 ("1", True), ("false", False), ("No", False), ("off", False),
                                                 ("0", False)])
def test_flags_take_the_documented_spellings(load, spelling, value):
    assert load(DPM_API_AUTH_REQUIRED=spelling)["DPM_API_AUTH_REQUIRED"] is value


def test_the_two_rfc_fallbacks_warn_instead_of_refusing(load):
    loaded = load(DPM_ASYNC_EXECUTION_MODE="QUEUE", DPM_ASYNC_OPERATIONS_TTL_SECONDS="-5")
    assert loaded["DPM_ASYNC_EXECUTION_MODE"] == "INLINE"
    assert loaded["DPM_ASYNC_OPERATIONS_TTL_SECONDS"] == 86400
    assert loaded["DPM_SETTINGS_WARNINGS"] == (
        "DPM_ASYNC_OPERATIONS_TTL_SECONDS='-5' is not allowed: use a whole number of at least 1; "
        "falling back to the default 86400",
        "DPM_ASYNC_EXECUTION_MODE='QUEUE' is not allowed: use one of INLINE, ACCEPT_ONLY, WORKER (any case); "
        "falling back to INLINE",
    )


def test_the_fair_use_defaults_are_the_documented_ones(load):
    loaded = load()
    assert (loaded["DPM_THROTTLE_ANALYZE_RATE"], loaded["DPM_THROTTLE_SUBMIT_RATE"], loaded["DPM_AUTH_FAILURE_RATE"]) == (
        "600/min", "1200/min", "20/min"
    )
    assert loaded["DPM_ASYNC_MAX_UNFINISHED_PER_OWNER"] == 1000
    assert loaded["DPM_MAX_BATCH_CELLS"] == 100_000
    assert loaded["DPM_TRUSTED_PROXIES"] == ()
    assert loaded["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"


def test_redis_is_asked_with_short_timeouts(load):
    cache = load(REDIS_URL="redis://127.0.0.1:6379/13")["CACHES"]["default"]
    assert cache["OPTIONS"] == {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    assert cache["KEY_PREFIX"] == "dpm_async"


def test_an_empty_env_file_name_reads_no_file_and_a_named_file_is_read(load, tmp_path):
    variables = tmp_path / "dpm.env"
    variables.write_text("DPM_MAX_REQUEST_BYTES=2048\n")
    assert load(DJANGO_ENV_FILE=str(variables))["DPM_MAX_REQUEST_BYTES"] == 2048


# --- real processes: one line, exit status 2, no traceback ------------------------------------

def _environment(**variables: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("DJANGO_", "DPM_", "DATABASE_URL"))}
    environment.update(BASE, **variables)
    return environment


@pytest.mark.parametrize(("variable", "value"), [("DPM_API_AUTH_REQUIRED", "ture"), ("DPM_API_AUTH_REQUIRED", ""),
                                                  ("DJANGO_SECURE_HTTPS", "required"), ("DPM_LOG_FORMAT", "yaml")])
@pytest.mark.parametrize("command", [["check"], ["migrate", "--no-input"], ["db_worker", "--no-reload"],
                                     ["issue_token", "someone"]])
def test_every_management_command_refuses_to_start_with_one_line(command, variable, value):
    completed = subprocess.run([sys.executable, "manage.py", *command], cwd=REPO, capture_output=True, text=True,
                               env=_environment(**{variable: value}), timeout=120)
    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [
        f"manage.py: configuration error: {variable}={value!r} is not allowed: use "
        + ("true or false (also 1/0, yes/no, on/off; any case)" if variable != "DPM_LOG_FORMAT"
           else "one of text, json (any case)")
    ]
    assert completed.stdout == ""


def test_gunicorn_refuses_to_start_with_one_line(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    completed = subprocess.run(
        [gunicorn, "dpm_async.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env=_environment(DPM_API_AUTH_REQUIRED="required", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}"),
    )
    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [
        "gunicorn: configuration error: DPM_API_AUTH_REQUIRED='required' is not allowed: use true or false "
        "(also 1/0, yes/no, on/off; any case)"
    ]

"""Strict reading of the environment (docs/deployment.md, "Configuration").

settings.py reads every variable through one `StrictEnv`. A boolean, integer, number or enum
variable whose value is not one of the documented spellings is refused with `ConfigurationInvalid`,
whose message is one line naming the variable, the value and what is allowed; `manage.py` and the
gunicorn configuration print that line and exit instead of a traceback. So a typo such as
`DPM_API_AUTH_REQUIRED=ture` stops the process rather than silently switching a flag.

An empty value is a value like any other (`DPM_API_AUTH_REQUIRED=` is refused): a variable that is
meant to take its default is left out, or commented out in the variables' file.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import environ
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

TRUE_SPELLINGS = ("true", "1", "yes", "on")
FALSE_SPELLINGS = ("false", "0", "no", "off")
ALLOWED_FLAGS = "true or false (also 1/0, yes/no, on/off; any case)"
# A DRF rate: requests per second, minute, hour or day (DRF reads the period's first letter only,
# so "60/mx" would pass DRF; it is refused here). `off` switches the limit off.
RATE_OFF = "off"
_RATE = re.compile(r"^[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)$")
ALLOWED_RATES = "a number of requests per s, min, hour or day (e.g. 60/min), or off"
# The exit status of a process that refused its configuration.
CONFIGURATION_ERROR_STATUS = 2


class ConfigurationInvalid(ImproperlyConfigured):
    """A variable's value is not allowed; the message is the one line an operator reads."""


def refusal(name: str, value: str, allowed: str) -> ConfigurationInvalid:
    return ConfigurationInvalid(f"{name}={value!r} is not allowed: use {allowed}")


class StrictEnv(environ.Env):
    """django-environ's Env with strict typed readers (the plain `str`, `list`, `db` stay as they are)."""

    def raw(self, name: str) -> str | None:
        """The variable's text as set (None when unset), without any conversion.

        Read from the environment itself: django-environ's readers take an empty value for an unset
        one, which would let `DPM_API_AUTH_REQUIRED=` fall back to a default unnoticed.
        """
        value = self.ENVIRON.get(name)
        return None if value is None else str(value)

    def flag(self, name: str, *, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        word = value.strip().lower()
        if word in TRUE_SPELLINGS:
            return True
        if word in FALSE_SPELLINGS:
            return False
        raise refusal(name, value, ALLOWED_FLAGS)

    def integer(self, name: str, *, default: int | None, minimum: int | None = None,
                maximum: int | None = None) -> int | None:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value.strip(), 10)
        except ValueError:
            number = None
        if number is None or (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            raise refusal(name, value, _range_words("a whole number", minimum, maximum))
        return number

    def whole(self, name: str, *, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
        """`integer` with a default that is itself a number (so the result is never None)."""
        number = self.integer(name, default=default, minimum=minimum, maximum=maximum)
        assert number is not None
        return number

    def seconds(self, name: str, *, default: float, above: float = 0.0) -> float:
        """A positive number of seconds (decimal point allowed)."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value.strip())
        except ValueError:
            number = None
        if number is None or not (number > above) or number == float("inf"):
            raise refusal(name, value, f"a number of seconds greater than {above:g}")
        return number

    def choice(self, name: str, choices: Sequence[str], *, default: str) -> str:
        """One of `choices`, trimmed and case-insensitive; returned as spelled in `choices`."""
        value = self.raw(name)
        if value is None:
            return default
        by_word = {choice.lower(): choice for choice in choices}
        chosen = by_word.get(value.strip().lower())
        if chosen is None:
            raise refusal(name, value, "one of " + ", ".join(choices) + " (any case)")
        return chosen

    def rate(self, name: str, *, default: str) -> str:
        """A DRF throttle rate such as `60/min`, or `off`; returned trimmed and lower-case."""
        value = self.raw(name)
        if value is None:
            return default
        word = value.strip().lower()
        if word != RATE_OFF and not _RATE.match(word):
            raise refusal(name, value, ALLOWED_RATES)
        return word

    def networks(self, name: str) -> tuple[str, ...]:
        """Comma-separated IP addresses or CIDR networks (empty or unset: none), normalised."""
        value = self.raw(name)
        if value is None or not value.strip():
            return ()
        try:
            return tuple(str(ipaddress.ip_network(part.strip(), strict=False)) for part in value.split(","))
        except ValueError:
            raise refusal(name, value, "comma-separated IP addresses or networks, e.g. 10.0.0.0/8,127.0.0.1") from None

    def json_object(self, name: str, *, default: dict[str, Any]) -> dict[str, Any]:
        value = self.raw(name)
        if value is None:
            return default
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise refusal(name, value, 'a JSON object, e.g. {"option": "value"}')
        return parsed

    def pair(self, name: str) -> tuple[str, str] | None:
        """`NAME,value` (e.g. HTTP_X_FORWARDED_PROTO,https), or None when unset or empty."""
        value = self.raw(name)
        if value is None or not value.strip():
            return None
        parts = [part.strip() for part in value.split(",")]
        if len(parts) != 2 or not all(parts):
            raise refusal(name, value, "two comma-separated words, e.g. HTTP_X_FORWARDED_PROTO,https")
        return parts[0], parts[1]

    def database(self, name: str, *, default: str) -> dict[str, Any]:
        """`env.db`, with a refusal that never echoes the URL (it may hold a password)."""
        try:
            # django-environ warns about an unknown scheme with the whole URL, password included.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                config: dict[str, Any] = self.db(name, default=default)
        except (ImproperlyConfigured, ValueError, KeyError) as error:
            raise ConfigurationInvalid(
                f"{name} is not a database URL this service can use ({error}): use e.g. "
                "postgres://user:password@host:5432/name or sqlite:///db.sqlite3"
            ) from None
        if config.get("ENGINE") not in set(self.DB_SCHEMES.values()):
            scheme = (self.raw(name) or default).split(":", 1)[0]
            raise ConfigurationInvalid(f"{name} names the unknown scheme {scheme!r}: use e.g. postgres://… or sqlite:///…")
        return config


def _range_words(what: str, minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{what} from {minimum} to {maximum}"
    if minimum is not None:
        return f"{what} of at least {minimum}"
    if maximum is not None:
        return f"{what} of at most {maximum}"
    return what


def settings_or_exit(program: str) -> Any:
    """The loaded settings; on a refused variable, one line on stderr and exit status 2."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dpm_async.settings")
    try:
        settings.INSTALLED_APPS  # noqa: B018 - loads settings.py, which reads and checks every variable
    except ImproperlyConfigured as error:
        print(f"{program}: configuration error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(CONFIGURATION_ERROR_STATUS) from None
    return settings

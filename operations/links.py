"""The URLs an operation resource links to, built with `reverse()` from the routes' names."""

from __future__ import annotations

import functools

from django.urls import get_script_prefix, reverse

# A stand-in id: each route is reversed once (per script prefix) and the real id put in its place,
# so that a 200-item list page does not cost 400 `reverse()` calls.
_MARKER = "dop_00000000000000000000000000000000"


@functools.cache
def _template(route: str, script_prefix: str) -> str:
    return reverse(route, kwargs={"operation_id": _MARKER})


def operation_status_url(operation_id: str) -> str:
    """`/rebalance/operations/<id>`: where the operation is polled."""
    return _template("operation-detail", get_script_prefix()).replace(_MARKER, operation_id)


def operation_execute_url(operation_id: str) -> str:
    """`/rebalance/operations/<id>/execute`."""
    return _template("operation-execute", get_script_prefix()).replace(_MARKER, operation_id)


def operation_urls(operation_id: str) -> tuple[str, str]:
    """(the status URL, the execute URL): the script prefix (a context-local read) looked up once."""
    prefix = get_script_prefix()
    return (_template("operation-detail", prefix).replace(_MARKER, operation_id),
            _template("operation-execute", prefix).replace(_MARKER, operation_id))

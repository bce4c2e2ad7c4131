"""Log lines: readable text, or one JSON object per line (DPM_LOG_FORMAT; docs/deployment.md, "Logs").

Every record passes `CorrelationIdLogFilter` (dpm_async/correlation.py), which stamps it with the
correlation id of the request or operation being served and, in a worker, the operation id. The
JSON form carries them as fields, so a log shipper indexes them without parsing the message.

What is never logged: request or response bodies, headers (so no token), query strings other than
the request line's in the access log. Messages are built by the code that logs them, and none of it
formats a body or a header into a message.

settings.py builds LOGGING from `logging_config`; gunicorn's own lines use the same formatters
through `dpm_async.server.GunicornLogger`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"

# Fields a record may carry (as `extra=`) that the JSON form writes as they are.
STRUCTURED_FIELDS = ("operation_id", "worker_id", "http")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record, on one line: time, level, logger, message, correlation_id, ...

    A traceback is the `exception` field (its newlines escaped), so a record never spans lines.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": _none_for_dash(getattr(record, "correlation_id", None)),
            "process": record.process,
        }
        for field in STRUCTURED_FIELDS:
            value = getattr(record, field, None)
            if value is not None and value != "-":
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def _none_for_dash(value: Any) -> Any:
    return None if value in (None, "-") else value


def formatter_for(log_format: str) -> logging.Formatter:
    """The formatter of `log_format` ("text" or "json")."""
    return JsonLogFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """Django's LOGGING for `log_format`: one stderr handler, every record stamped with its ids."""
    formatter: dict[str, Any] = (
        {"()": "dpm_async.logs.JsonLogFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "correlation": {"()": "dpm_async.correlation.CorrelationIdLogFilter"},
            "refused_request": {"()": "dpm_async.problems.RefusedRequestLogFilter"},
        },
        "formatters": {"default": formatter},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "filters": ["correlation"], "formatter": "default"},
            # A filter on a handler sees the records of child loggers too (a logger's own filters do not).
            "refused_requests": {"class": "logging.StreamHandler", "filters": ["correlation", "refused_request"],
                                 "formatter": "default"},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {"handlers": ["console"], "level": level, "propagate": False},
            # 4xx answers are logged by our own code with their code; Django's own line would repeat it.
            "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
            # A request Django refuses (bad Host, too many fields, ...): one WARNING line each.
            "django.security": {"handlers": ["refused_requests"], "level": "WARNING", "propagate": False},
        },
    }

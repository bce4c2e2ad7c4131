"""What gunicorn needs beyond the WSGI application: gunicorn.conf.py (beside manage.py) uses these.

- The settings are loaded in gunicorn's master before any worker starts, so a misspelt variable
  stops the service with one line (`settings_or_exit`) instead of workers failing to boot in a loop.
- Prometheus' multiprocess mode (`metrics_directory_prepare`, `worker_metrics_forget`): each worker
  process writes its metrics to files in one directory per service instance, emptied at start;
  /metrics adds them up. The directory must be known before anything imports prometheus_client,
  which is why nothing here imports it at module level.
- Correlation ids at the edge (`request_context_fresh`, `request_correlation_bind`): gunicorn's own
  lines about a request carry its id, and nothing carries over to the next request.
- `GunicornLogger`: gunicorn's error and access lines in DPM_LOG_FORMAT.
"""

from __future__ import annotations

import contextvars
import glob
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from gunicorn.glogging import Logger

from dpm_async.correlation import CorrelationIdLogFilter, correlation_id_bind_at_edge
from dpm_async.environment import settings_or_exit  # noqa: F401 - gunicorn.conf.py calls it from here
from dpm_async.logs import formatter_for

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Which gunicorn master prepared the directory (pid:ours|named), so a reload does not empty it.
PREPARED_ENV = "DPM_ASYNC_METRICS_DIRECTORY_PREPARED_BY"


def metrics_directory_prepare() -> tuple[str, bool]:
    """The multiprocess metrics directory of this service instance, empty; (path, created here).

    PROMETHEUS_MULTIPROC_DIR when the deployment names one (its old files are deleted: they are a
    previous instance's counts), else a fresh temporary directory, removed when gunicorn exits.
    """
    prepared = os.environ.get(PREPARED_ENV, "")
    if prepared.startswith(f"{os.getpid()}:") and os.environ.get(MULTIPROC_ENV):
        # gunicorn reads its configuration again on SIGHUP: the running instance keeps its
        # directory and its counts.
        return os.environ[MULTIPROC_ENV], prepared.endswith(":ours")
    named = os.environ.get(MULTIPROC_ENV)
    if named:
        os.makedirs(named, exist_ok=True)
        for stale in glob.glob(os.path.join(named, "*.db")):
            os.remove(stale)
        os.environ[PREPARED_ENV] = f"{os.getpid()}:named"
        return named, False
    created = tempfile.mkdtemp(prefix="dpm_async-metrics-")
    os.environ[MULTIPROC_ENV] = created
    os.environ[PREPARED_ENV] = f"{os.getpid()}:ours"
    return created, True


def metrics_directory_remove(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def worker_metrics_forget(pid: int) -> None:
    """A worker process ended: its live gauges no longer count (its counters still do)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def request_context_fresh(worker: Any) -> None:
    """Each connection's handling runs in a context of its own (post_worker_init hook).

    The correlation id bound at the edge then lives exactly as long as that handling: gunicorn's
    lines after the application returned (access line, "Error handling request") still carry it,
    and a later request on the same thread (or a parse error before its pre_request) never sees it.
    Both the sync and the threaded worker call `self.handle(...)` per connection, so wrapping that
    one attribute covers both.
    """
    handle: Callable[..., Any] = worker.handle

    def handle_in_fresh_context(*args: Any, **kwargs: Any) -> Any:
        return contextvars.Context().run(handle, *args, **kwargs)

    worker.handle = handle_in_fresh_context


def request_correlation_bind(worker: Any, req: Any) -> None:
    """pre_request hook: resolve the request's correlation id, as the middleware would."""
    value = next((v for name, v in req.headers if name == "X-CORRELATION-ID"), None)
    correlation_id_bind_at_edge(value)


class GunicornLogger(Logger):
    """gunicorn's logger, writing its error lines (and, in json, its access lines) like Django's.

    Error lines get the same formatter and correlation filter as the application's. Access lines
    stay in the access log format of the command line in `text` mode; in `json` mode they are one
    object with the request line's parts, status, size, duration and the correlation id taken from
    the answer's `X-Correlation-Id` header - never any other header (so no token), nor a body.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        from django.conf import settings

        self.log_format = settings.DPM_LOG_FORMAT
        for handler in self.error_log.handlers:
            handler.setFormatter(formatter_for(self.log_format))
            handler.addFilter(CorrelationIdLogFilter())
        if self.log_format == "json":
            for handler in self.access_log.handlers:
                handler.setFormatter(formatter_for("json"))
                handler.addFilter(CorrelationIdLogFilter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if self.log_format != "json":
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        correlation_id = next((value for name, value in resp.headers if name.lower() == "x-correlation-id"), None)
        http = {
            "method": req.method,
            "path": req.path,
            "query": req.query or None,
            "protocol": environ.get("SERVER_PROTOCOL"),
            "status": int(status),
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "remote_addr": environ.get("REMOTE_ADDR"),
        }
        self.access_log.info("%s %s %s", req.method, req.path, status,
                             extra={"http": http, "correlation_id": correlation_id})

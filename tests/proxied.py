"""Debian's nginx with the shipped configuration (deploy/nginx/dpm_async.conf) in front of a
service that tests/served.py started: `proxied(upstream)` yields the port nginx listens on
(127.0.0.1) and stops nginx at the end. Used by tests/api/test_proxy.py and
tests/api/test_fair_use_proxy.py."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.served import REPO, Server, free_port

SHIPPED = REPO / "deploy" / "nginx" / "dpm_async.conf"

needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                                 reason="nginx is not installed (.ci/run installs Debian's nginx-light)")


def _nginx() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


@contextmanager
def proxied(upstream: Server) -> Iterator[int]:
    """nginx, configured as shipped but for its ports, proxying to `upstream`; yields its port."""
    prefix = Path(tempfile.mkdtemp(prefix="dpm_nginx_"))
    port = free_port()
    shipped = SHIPPED.read_text()
    assert "listen 8080;" in shipped and "server 127.0.0.1:8000;" in shipped
    (prefix / "dpm_async.conf").write_text(
        shipped.replace("listen 8080;", f"listen 127.0.0.1:{port};")
        .replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream.port};")
    )
    temp_paths = "\n".join(
        f"    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (prefix / "nginx.conf").write_text(
        f"daemon off;\nworker_processes 1;\nuser root;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} warn;\nevents {{ worker_connections 1024; }}\n"
        f"http {{\n    access_log off;\n{temp_paths}\n    include {prefix / 'dpm_async.conf'};\n}}\n"
    )
    process = subprocess.Popen([_nginx(), "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (prefix / "error.log").read_text()
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(prefix, ignore_errors=True)

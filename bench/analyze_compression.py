#!/usr/bin/env python3
"""The synchronous analysis with and without compression, end to end on loopback.

    .venv/bin/python bench/analyze_compression.py [--runs 7]

Starts gunicorn as bench/run.py does (one worker, one thread, no database needed) and POSTs
`gen_batch.py -p 2000 -t 2000 -s 20 --seed 1` to /rebalance/analyze, alternating a client that
offers nothing with one that offers `zstd, gzip` (and one that offers only `gzip`), and reports the
median of each, each timed from sending the request to having the decoded body in hand (the
client's decompression counts). Target: `zstd, gzip` at most 1.25 x identity.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import zstandard
from benchlib import FAIR_USE_OFF, free_port, load_gen_batch

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.25


def post(port: int, body: bytes, accept: str | None) -> tuple[float, int, int]:
    """(seconds to the decoded body, wire bytes, decoded bytes)."""
    headers = {"Content-Type": "application/json", **({"Accept-Encoding": accept} if accept else {})}
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    connection.request("POST", "/rebalance/analyze", body=body, headers=headers)
    response = connection.getresponse()
    wire = response.read()
    coding = response.getheader("Content-Encoding")
    if coding == "zstd":
        text = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress(wire)
    elif coding == "gzip":
        text = gzip.decompress(wire)
    else:
        text = wire
    elapsed = time.perf_counter() - started
    connection.close()
    assert response.status == 200 and text.endswith(b"]}"), (response.status, text[-100:])
    return elapsed, len(wire), len(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--gen", type=Path, default=ROOT.parent / "shared" / "bench" / "gen_batch.py")
    args = parser.parse_args()
    body = json.dumps(load_gen_batch(args.gen).build_request(positions=2000, targets=2000, scenarios=20, seed=1)).encode()
    port = free_port()
    env = {**os.environ, **FAIR_USE_OFF, "DJANGO_DEBUG": "false", "DPM_API_AUTH_REQUIRED": "false",
           "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-not-a-secret")}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "dpm_async.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", "1", "--timeout", "600"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    offers = {"identity": None, "zstd, gzip": "zstd, gzip", "gzip": "gzip"}
    samples: dict[str, list[float]] = {name: [] for name in offers}
    sizes: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start") from None
                time.sleep(0.2)
        post(port, body, None)  # warm-up: imports, first allocations
        for round_ in range(args.runs):
            for name, accept in offers.items():  # alternating, so drift hits every offer alike
                elapsed, wire, _ = post(port, body, accept)
                samples[name].append(elapsed)
                sizes[name] = wire
            print(f"  round {round_ + 1}: " + ", ".join(f"{n} {samples[n][-1]:.2f} s" for n in offers), flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    median = {name: statistics.median(values) for name, values in samples.items()}
    for name in offers:
        print(f"{name:>10}: median {median[name]:.3f} s, {sizes[name] / 1e6:.1f} MB on the wire, "
              f"{median[name] / median['identity']:.2f} x identity")
    ratio = median["zstd, gzip"] / median["identity"]
    print(f"zstd, gzip / identity = {ratio:.2f} ({'meets' if ratio <= TARGET_RATIO else 'MISSES'} the {TARGET_RATIO} x target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

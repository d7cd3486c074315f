"""Throughput and latency of `numbre serve` for POST /api/predict, measured with locust from another process.

Starts the server (the `serve` command, in its own process, on a free loopback port) unless --url
names one already running, then runs locust headless (benchmarks/web_locustfile.py: canvas-sized
PNGs, no think time) at each client count for --seconds, after a short unmeasured warm-up. Prints a
markdown table of requests/s, p50 and p99 latency and errors, and writes the figures as JSON.
Targets on a 2-core machine: at 8 clients at least 1,000 requests/s with p99 under 50 ms, and
no errors at any client count.

Load generator and server share the machine's cores, so the figures are a floor for the server
alone. Locust reports latencies in whole milliseconds.

Run:  python benchmarks/web_load.py [--clients 1 8 64] [--seconds 20] [--workers 2] [--url URL]
      nice -n 10 python benchmarks/web_load.py --seconds 3 --clients 1 8      # a smoke run
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "web_locustfile.py"
TARGET_RPS, TARGET_P99_MS, TARGET_CLIENTS = 1000.0, 50.0, 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(workers: int, threads: int | None, model: str | None) -> tuple[subprocess.Popen, str]:
    """`numbre serve` in a child process on a free port; returns it and its URL once it answers."""
    port = free_port()
    command = [sys.executable, "-c", "from numbre.cli.serve_cmd import serve; serve()",
               "--port", str(port), "--workers", str(workers), "--no-access-log"]
    if threads:
        command += ["--threads", str(threads)]
    if model:
        command += ["--model", model]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {server.stderr.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=1) as response:
                if response.status == 200:
                    return server, url
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("the server did not answer /api/health within 60 s")


def run_locust(url: str, clients: int, seconds: int, folder: Path) -> dict:
    """One locust run; the aggregated figures from its CSV summary."""
    prefix = folder / f"clients{clients}"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
               "--users", str(clients), "--spawn-rate", str(clients), "--run-time", f"{seconds}s",
               "--host", url, "--csv", str(prefix), "--loglevel", "WARNING", "--stop-timeout", "5"]
    finished = subprocess.run(command, capture_output=True, text=True)
    summary = prefix.parent / f"{prefix.name}_stats.csv"
    rows = list(csv.DictReader(summary.open())) if summary.is_file() else []
    total = next((row for row in rows if row["Name"] == "Aggregated"), None)
    if total is None or finished.returncode not in (0, 1):  # 1: locust saw failed requests
        raise SystemExit(f"locust failed ({finished.returncode}): {finished.stderr[-2000:]}")
    return {"clients": clients, "requests": int(total["Request Count"]),
            "errors": int(total["Failure Count"]), "requests_per_second": number(total["Requests/s"]),
            "p50_ms": number(total["50%"]), "p99_ms": number(total["99%"]),
            "mean_ms": number(total["Average Response Time"])}


def number(text: str) -> float:
    """A figure from locust's CSV; 'N/A' (no request finished) is NaN, which fails every target."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64],
                        help="Concurrent clients, one run each (default: 1 8 64).")
    parser.add_argument("--seconds", type=int, default=20, help="Length of each run (default: 20).")
    parser.add_argument("--warmup", type=int, default=3, help="Unmeasured first run, s (default: 3).")
    parser.add_argument("--workers", type=int, default=2, help="Server processes (default: 2, one per core).")
    parser.add_argument("--threads", type=int, default=None,
                        help="Recognition threads per server process (default: the server's).")
    parser.add_argument("--model", default=None, help="Model for the server (default: the shipped one).")
    parser.add_argument("--url", default=None, help="Benchmark this running server instead of starting one.")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "web_load.json",
                        help="Where to write the figures (default: benchmarks/results/web_load.json).")
    args = parser.parse_args()

    server, url = (None, args.url) if args.url else start_server(args.workers, args.threads, args.model)
    try:
        with tempfile.TemporaryDirectory() as folder:
            if args.warmup > 0:
                run_locust(url, max(args.clients), args.warmup, Path(folder))
            results = [run_locust(url, clients, args.seconds, Path(folder)) for clients in args.clients]
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)

    print(f"POST /api/predict, canvas-sized PNGs, {args.seconds} s per run, server: "
          f"{'at ' + url if args.url else f'{args.workers} worker(s)'}, {os.cpu_count()} cores\n")
    print("| clients | requests | requests/s | p50 ms | p99 ms | errors |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in results:
        print(f"| {row['clients']} | {row['requests']:,} | {row['requests_per_second']:,.0f} | "
              f"{row['p50_ms']:g} | {row['p99_ms']:g} | {row['errors']} |")
    checks = [row["errors"] == 0 and row["requests"] > 0 for row in results]
    at_target = [row for row in results if row["clients"] == TARGET_CLIENTS]
    for row in at_target:
        checks.append(row["requests_per_second"] >= TARGET_RPS and row["p99_ms"] < TARGET_P99_MS)
    verdict = "met" if all(checks) else "NOT met"
    print(f"\ntargets ({TARGET_RPS:,.0f} requests/s and p99 < {TARGET_P99_MS:g} ms at {TARGET_CLIENTS} "
          f"clients, no errors): {verdict}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.platform(), "cores": os.cpu_count(),
                                    "workers": None if args.url else args.workers, "seconds": args.seconds,
                                    "results": results, "targets_met": all(checks)}, indent=2) + "\n")
    if not all(checks):
        sys.exit(1)


if __name__ == "__main__":
    main()

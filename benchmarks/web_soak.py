"""A soak test of `numbre serve`: minutes of POST /api/predict at many clients, watching errors and memory.

Starts the server (`numbre serve`, its own process, on a free loopback port), takes its memory
once it is warm, then runs wrk (benchmarks/web_load.py's script: 64 canvas-sized PNGs in turn, each
answer checked) for --minutes at --clients connections, well above the benchmark's 64, while the
resident memory of the server and its workers is read every few seconds. At the end the server
is stopped with SIGTERM and must exit with status 0.

Reports requests served, errors, p50/p99 latency, and memory at the start, after the first
--settle seconds of load (buffers, thread stacks and allocator pools grow to their working size
then), the most seen, and at the end. Passes when there are no errors, the server exits cleanly,
and memory grows by no more than --max-growth MiB from the settled reading to the end: a leak of
even a kilobyte a request would pass that within a minute here.

Run:  python benchmarks/web_soak.py [--minutes 3] [--clients 128] [--workers 2]
Needs wrk (installed by apt-get when missing and run as root) and psutil (pip install -e '.[bench]').
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from web_load import LoadRunner, ServerMeter, start_server, stop_server, wrk_command, wrk_result

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3, help="Length of the load (default: 3).")
    parser.add_argument("--clients", type=int, default=128, help="Concurrent connections (default: 128).")
    parser.add_argument("--workers", type=int, default=2, help="Server processes (default: 2, one per core).")
    parser.add_argument("--sample", type=float, default=5,
                        help="Seconds between memory readings (default: 5).")
    parser.add_argument("--settle", type=float, default=30,
                        help="Seconds of load before the settled memory reading (default: 30).")
    parser.add_argument("--max-growth", type=float, default=20,
                        help="Most memory growth allowed from the settled reading to the end, MiB "
                             "(default: 20).")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "web_soak.json",
                        help="Where to write the figures (default: benchmarks/results/web_soak.json).")
    args = parser.parse_args()
    seconds = round(args.minutes * 60)

    with tempfile.TemporaryDirectory() as folder:
        server, url = start_server(args.workers, [], Path(folder) / "server.log")
        meter = ServerMeter(server.pid)
        runner = LoadRunner("wrk", url, meter, Path(folder))
        try:
            runner.run(8, 2)  # warm: every worker has read a few drawings before the start reading
            start_rss, cpu_before = meter.rss_mib(), meter.cpu_seconds()
            command = wrk_command(runner.wrk, url, args.clients, seconds, Path(folder))
            began = time.monotonic()
            load = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            samples: list[tuple[float, float]] = []  # (seconds into the load, MiB)
            while load.poll() is None:
                time.sleep(args.sample)
                samples.append((time.monotonic() - began, meter.rss_mib()))
            output, errors_text = load.communicate()
            cpu_seconds = meter.cpu_seconds() - cpu_before
            end_rss = meter.rss_mib()
        finally:
            status = stop_server(server)

    result = wrk_result(load.returncode, output, errors_text)
    errors = result["errors"]
    settled = next((mib for at, mib in samples if at >= args.settle), start_rss)
    peak = max([start_rss, end_rss, *(mib for _, mib in samples)])
    growth = end_rss - settled
    passed = errors == 0 and status == 0 and growth <= args.max_growth

    print(f"POST /api/predict, canvas-sized PNGs, wrk, {args.clients} clients for {seconds} s; server: "
          f"{args.workers} worker process(es); {os.cpu_count()} cores\n")
    print("| requests | requests/s | errors | p50 ms | p99 ms | max ms | server CPU ms/request |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {result['requests']:,} | {result['requests'] / result['seconds']:,.0f} | {errors} | "
          f"{result['p50_ms']:.1f} | {result['p99_ms']:.1f} | {result['max_ms']:.0f} | "
          f"{cpu_seconds * 1000 / max(result['requests'], 1):.2f} |\n")
    print("| server memory (RSS, all processes) | MiB |")
    print("| --- | ---: |")
    print(f"| at the start, warm, before the load | {start_rss:.1f} |")
    print(f"| after {args.settle:g} s of load | {settled:.1f} |")
    print(f"| most seen | {peak:.1f} |")
    print(f"| at the end | {end_rss:.1f} |")
    print(f"\nexit status on SIGTERM: {status}; memory growth after settling: {growth:+.1f} MiB "
          f"(bound {args.max_growth:g}); {'passed' if passed else 'FAILED'}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": platform.platform(), "cores": os.cpu_count(), "workers": args.workers,
        "clients": args.clients, "seconds": seconds, "requests": result["requests"], "errors": errors,
        "requests_per_second": result["requests_per_second"], "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"], "max_ms": result["max_ms"],
        "server_cpu_ms": cpu_seconds * 1000 / max(result["requests"], 1),
        "rss_mib": {"start": start_rss, "settled": settled, "peak": peak, "end": end_rss},
        "rss_samples": samples, "growth_mib": growth, "max_growth_mib": args.max_growth,
        "exit_status": status, "passed": passed}, indent=2) + "\n")
    if not passed:
        sys.exit(1)


if __name__ == "__main__":
    main()

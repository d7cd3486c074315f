"""Throughput and latency of `numbre serve` for POST /api/predict, driven by wrk from another process.

Starts the server (`numbre serve`, in its own process, on a free loopback port) unless --url names
one already running, then runs wrk at each client count for --seconds, after a short unmeasured
warm-up. Every request posts one of 64 canvas-sized (280x280) PNG drawings as the raw body, as the
drawing page does; a request counts as an error unless it answers 200 with a prediction's JSON.
Each count is run --repeat times and the medians are reported. Prints a markdown table of
requests/s, p50 and p99 latency, errors, the CPU time per request of the server and of the load
tool, and the requests/s the cores could give if those two had them alone; and writes the figures
as JSON. Targets on a 2-core machine: at 8 clients at least 1,000 requests/s with p99
under 50 ms, and no errors at any client count.

wrk (C, one thread here) costs the cores far less than a Python load generator; still, it and the
server share the machine, so the figures are a floor for the server alone. The server's CPU time
per request (from /proc, via psutil) is the figure least moved by other work on a shared machine.
`--tool locust` runs benchmarks/web_locustfile.py instead, for machines without wrk.

Overload: `--max-queue N` starts the server with that bound on queued recognitions. Answers of 503
with Retry-After are then counted as shed (not errors), the table adds the slowest request and the
time from the end of each run to the first 200 answer (the recovery once load drops), and the server's own
queue-wait histogram (from /metrics) gives the longest any recognition waited for a thread.
By default wrk sends again at once after a 503 (the harshest overload); `--honour-retry-after` holds a
connection back for each 503's Retry-After, as well-behaved clients and load balancers do. Run at 4
times the saturating client count (2 for one process on 2 cores), with a 1-client run after it:
      python benchmarks/web_load.py --workers 1 --max-queue 2 --honour-retry-after \
          --serve-option=--client-pending=1000 --clients 2 8 1 --seconds 8 --repeat 3

Run:  python benchmarks/web_load.py [--clients 1 8 64] [--seconds 20] [--repeat 3] [--workers 2]
      nice -n 10 python benchmarks/web_load.py --seconds 3 --repeat 1 --clients 1 8     # a smoke run
Needs: wrk (installed with apt-get when missing and run as root) and psutil (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from numbre.data.drawn import drawn_digit, glyph, page_export

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "web_locustfile.py"
TARGET_RPS, TARGET_P99_MS, TARGET_CLIENTS = 1000.0, 50.0, 8
POOL = 64  # drawings in the pool: enough that no cache or branch predictor sees one image only

# wrk's script: posts the pool's PNGs in turn, checks each answer, and prints one JSON line at the end.
# Latencies come from wrk's own histogram, in microseconds.
WRK_SCRIPT = r"""
local folder, count = "%(folder)s", %(count)d
local requests, next_request = {}, 0
bad = 0  -- a global: done() reads it from each thread with thread:get
init = function(args)  -- after wrk.init has set wrk.headers["Host"], which the server checks
  for i = 1, count do
    local file = assert(io.open(folder .. "/" .. (i - 1) .. ".png", "rb"))
    local headers = {["Content-Type"] = "image/png", ["Host"] = wrk.headers["Host"]}
    requests[i] = wrk.format("POST", "/api/predict", headers, file:read("*a"))
    file:close()
  end
end
request = function()
  next_request = next_request %% count + 1
  return requests[next_request]
end
shed = 0
local waits = 0  -- 503s whose Retry-After is still to be waited (--honour-retry-after)
response = function(status, headers, body)
  local retry_after = headers["retry-after"] or headers["Retry-After"]
  if status == 503 and retry_after then
    shed = shed + 1
    if %(honour)s then waits = waits + tonumber(retry_after) * 1000 end
  elseif status ~= 200 or not string.find(body, '"probabilities"', 1, true) then bad = bad + 1 end
end
if %(honour)s then
  -- wrk asks before each request how long to wait; one thread runs every connection, so the wait a
  -- 503 earned is taken by the next connection to send, which may not be the refused one: each 503
  -- still holds one connection back for its Retry-After, as clients that honour it would.
  delay = function()
    if waits > 0 then
      local wait = math.min(waits, 1000)
      waits = waits - wait
      return wait
    end
    return 0
  end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, _)
  local wrong, refused = 0, 0
  for _, thread in ipairs(threads) do
    wrong = wrong + thread:get("bad")
    refused = refused + thread:get("shed")
  end
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "seconds": %%.3f, "p50_ms": %%.3f, "p90_ms": %%.3f, ' ..
    '"p99_ms": %%.3f, "max_ms": %%.3f, "socket_errors": %%d, "bad_answers": %%d, "shed": %%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.timeout, wrong, refused))
end
"""


def canvas_pngs(count: int = POOL, seed: int = 0) -> list[bytes]:
    """`count` 280x280 digit drawings as PNG bytes in the form the drawing page sends (black on white,
    opaque RGBA), digits 0-9 in turn (numbre.data.drawn's built-in stroke font, so no MNIST download is
    needed)."""
    rng = np.random.default_rng(seed)
    pngs = []
    for index in range(count):
        pixels = page_export(drawn_digit(glyph(index % 10, rng), rng, style="canvas"))
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        pngs.append(buffer.getvalue())
    return pngs


def ensure_wrk() -> str:
    """wrk's path; installed from Debian's packages when missing and this runs as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        print("web_load: installing wrk (apt-get install -y wrk)", file=sys.stderr)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        if subprocess.run(["apt-get", "install", "-y", "wrk"], **quiet).returncode != 0:
            subprocess.run(["apt-get", "update"], **quiet)
            subprocess.run(["apt-get", "install", "-y", "wrk"], **quiet)
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit("web_load: wrk is missing; install it (Debian/Ubuntu: apt-get install wrk, macOS: brew "
                     "install wrk) or use --tool locust (pip install -e '.[bench]')")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(workers: int, extra: list[str], log_path: Path) -> tuple[subprocess.Popen, str]:
    """`numbre serve` in a child process on a free loopback port; returns it and its URL once it answers.

    Its output goes to `log_path`, not a pipe: a pipe nobody reads can fill up and stall the server.
    """
    port = free_port()
    command = [sys.executable, "-m", "numbre", "serve", "--port", str(port), "--workers", str(workers),
               "--no-access-log", *extra]
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {log_path.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/ready", timeout=2) as response:
                if response.status == 200:
                    return server, url
        except OSError:
            time.sleep(0.1)
    stop_server(server)
    raise SystemExit("the server did not answer /api/ready within 90 s")


def stop_server(server: subprocess.Popen) -> int:
    """SIGTERM, as a service manager would; returns the exit status."""
    server.terminate()
    try:
        return server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        return server.wait(timeout=10)


class ServerMeter:
    """CPU seconds and memory of a server process and its workers, read from the OS (psutil)."""

    def __init__(self, pid: int | None) -> None:
        try:
            import psutil
        except ImportError:
            raise SystemExit("web_load: psutil is missing: pip install -e '.[bench]'") from None
        self.process = psutil.Process(pid) if pid else None

    def processes(self) -> list:
        if self.process is None:
            return []
        return [self.process, *self.process.children(recursive=True)]

    def cpu_seconds(self) -> float:
        return sum(sum(process.cpu_times()[:2]) for process in self.processes())

    def rss_mib(self) -> float:
        """Resident memory of the server and its workers, MiB."""
        return sum(process.memory_info().rss for process in self.processes()) / 2**20


def wrk_command(wrk: str, url: str, clients: int, seconds: float, folder: Path) -> list[str]:
    """wrk with `clients` connections, each posting the pool's drawings back to back, on one thread."""
    return [wrk, "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "30s", "-s",
            str(folder / "predict.lua"), url]


def wrk_result(returncode: int, stdout: str, stderr: str) -> dict:
    """The figures of a finished wrk run (the script's RESULT line), with `errors` (socket errors and
    wrong answers) and `requests_per_second`; a failed run stops the benchmark with wrk's output."""
    line = next((line for line in stdout.splitlines() if line.startswith("RESULT ")), None)
    if returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({returncode}): {stdout[-1000:]}{stderr[-1000:]}")
    result = json.loads(line.removeprefix("RESULT "))
    result["errors"] = result.pop("socket_errors") + result.pop("bad_answers")
    result["requests_per_second"] = (result["requests"] - result["shed"]) / result["seconds"]  # answered
    return result


def run_wrk(wrk: str, url: str, clients: int, seconds: float, folder: Path) -> dict:
    """One wrk run (`wrk_command`), waited for, and its figures (`wrk_result`)."""
    finished = subprocess.run(wrk_command(wrk, url, clients, seconds, folder), capture_output=True, text=True)
    return wrk_result(finished.returncode, finished.stdout, finished.stderr)


def run_locust(url: str, clients: int, seconds: float, folder: Path) -> dict:
    """One locust run (benchmarks/web_locustfile.py); locust reports latencies in whole milliseconds."""
    prefix = folder / f"clients{clients}"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
               "--users", str(clients), "--spawn-rate", str(clients), "--run-time", f"{math.ceil(seconds)}s",
               "--host", url, "--csv", str(prefix), "--loglevel", "WARNING", "--stop-timeout", "5"]
    finished = subprocess.run(command, capture_output=True, text=True)
    summary = prefix.parent / f"{prefix.name}_stats.csv"
    rows = list(csv.DictReader(summary.open())) if summary.is_file() else []
    total = next((row for row in rows if row["Name"] == "Aggregated"), None)
    if total is None or finished.returncode not in (0, 1):  # 1: locust saw failed requests
        raise SystemExit(f"locust failed ({finished.returncode}): {finished.stderr[-2000:]}")
    return {"requests": int(total["Request Count"]), "errors": int(total["Failure Count"]),
            "requests_per_second": number(total["Requests/s"]), "p50_ms": number(total["50%"]),
            "p99_ms": number(total["99%"]), "seconds": seconds}


def number(text: str) -> float:
    """A figure from locust's CSV; 'N/A' (no request finished) is NaN, which fails every target."""
    try:
        return float(text)
    except ValueError:
        return math.nan


class LoadRunner:
    """Runs the chosen load tool against one server and measures the server's CPU around each run."""

    def __init__(self, tool: str, url: str, meter: ServerMeter, folder: Path, honour: bool = False) -> None:
        self.tool, self.url, self.meter, self.folder = tool, url, meter, folder
        self.wrk = ensure_wrk() if tool == "wrk" else ""
        for index, png in enumerate(canvas_pngs()):
            (folder / f"{index}.png").write_bytes(png)
        (folder / "predict.lua").write_text(WRK_SCRIPT % {"folder": folder.as_posix(), "count": POOL,
                                                          "honour": "true" if honour else "false"})
        self.waits: dict[str, float] = {}  # the server's queue-wait histogram at the last look

    def run(self, clients: int, seconds: float) -> dict:
        cpu, tool_cpu = self.meter.cpu_seconds(), _children_cpu_seconds()
        if self.tool == "wrk":
            result = run_wrk(self.wrk, self.url, clients, seconds, self.folder)
        else:
            result = run_locust(self.url, clients, seconds, self.folder)
        result["recovery_ms"] = first_answer_ms(self.url, self.folder / "0.png")
        result["queue_wait_max_ms"] = longest_queue_wait_ms(self.url, self.waits)
        if result["requests"]:
            result["tool_cpu_ms"] = (_children_cpu_seconds() - tool_cpu) * 1000 / result["requests"]
            if self.meter.process is not None:
                result["server_cpu_ms"] = (self.meter.cpu_seconds() - cpu) * 1000 / result["requests"]
        return {"clients": clients, **result}


def first_answer_ms(url: str, png: Path) -> float:
    """Milliseconds from the end of a run to the first 200 answer: how soon the server serves again once
    the load drops. A 503 (the queue still draining) is asked again after 10 ms, not Retry-After's second."""
    request = urllib.request.Request(f"{url}/api/predict", data=png.read_bytes(),
                                     headers={"Content-Type": "image/png"})
    started = time.perf_counter()
    while True:
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
            return (time.perf_counter() - started) * 1000
        except urllib.error.HTTPError as error:
            if error.code != 503 or time.perf_counter() - started > 60:
                raise
            time.sleep(0.01)


def longest_queue_wait_ms(url: str, last: dict[str, float]) -> float:
    """The smallest bucket edge, in ms, of the server's queue-wait histogram that holds every recognition
    since `last` (then updated): no recognition waited longer. NaN without /metrics (an older server)
    or when none ran; with several workers, only the worker that answered the scrape."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
            text = response.read().decode()
    except OSError:
        return math.nan
    now = {}
    for line in text.splitlines():
        if line.startswith("numbre_recognition_queue_wait_seconds_bucket{"):
            edge = line.split('le="', 1)[1].split('"', 1)[0]
            now[edge] = float(line.rsplit(" ", 1)[1])
    gained = {edge: count - last.get(edge, 0.0) for edge, count in now.items()}  # cumulative per edge
    last.clear()
    last.update(now)
    total = gained.get("+Inf", 0.0)
    if total <= 0:
        return math.nan
    edges = sorted(gained, key=lambda edge: math.inf if edge == "+Inf" else float(edge))
    first = next(edge for edge in edges if gained[edge] >= total)
    return math.inf if first == "+Inf" else float(first) * 1000


def _children_cpu_seconds() -> float:
    """CPU seconds of this process's finished children: the load tool's runs (the server still runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_row(runs: list[dict]) -> dict:
    """The median of each figure over repeated runs; errors and requests are summed."""
    row = {"clients": runs[0]["clients"], "runs": len(runs), "requests": sum(run["requests"] for run in runs),
           "errors": sum(run["errors"] for run in runs), "shed": sum(run.get("shed", 0) for run in runs)}
    for key in ("requests_per_second", "p50_ms", "p99_ms", "server_cpu_ms", "tool_cpu_ms", "recovery_ms"):
        values = [run[key] for run in runs if key in run]
        if values:
            row[key] = statistics.median(values)
    for key in ("max_ms", "queue_wait_max_ms"):  # the worst of all runs, not a median
        values = [run[key] for run in runs if key in run and not math.isnan(run[key])]
        row[key] = max(values) if values else math.nan
    return row


def print_overload_table(rows: list[dict]) -> None:
    """Answered and shed requests, the slowest request, the longest queue wait and the first answer after."""
    print("| clients | runs | answered/s | shed (503 + Retry-After) | errors | p50 ms | p99 ms | max ms "
          "| longest queue wait, ms (server) | first 200 after the run, ms |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        shed = row["shed"] / row["requests"] if row["requests"] else 0.0
        wait = row["queue_wait_max_ms"]
        print(f"| {row['clients']} | {row['runs']} | {row['requests_per_second']:,.0f} | "
              f"{row['shed']:,} ({shed:.0%}) | {row['errors']} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
              f"{row.get('max_ms', math.nan):.1f} | {'-' if math.isnan(wait) else f'<= {wait:g}'} | "
              f"{row.get('recovery_ms', math.nan):.1f} |")


def print_table(rows: list[dict]) -> None:
    """The figures, and the requests/s the cores could give if server and load tool had them alone."""
    print("| clients | runs | requests | requests/s | p50 ms | p99 ms | errors "
          "| CPU ms/request, server + tool | CPU-bound ceiling, requests/s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        cpu = ceiling = "-"
        if "server_cpu_ms" in row:
            cpu = f"{row['server_cpu_ms']:.2f} + {row['tool_cpu_ms']:.2f}"
            ceiling = f"{(os.cpu_count() or 1) * 1000 / (row['server_cpu_ms'] + row['tool_cpu_ms']):,.0f}"
        print(f"| {row['clients']} | {row['runs']} | {row['requests']:,} | "
              f"{row['requests_per_second']:,.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
              f"{row['errors']} | {cpu} | {ceiling} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64],
                        help="Concurrent clients, one run each (default: 1 8 64).")
    parser.add_argument("--seconds", type=float, default=20, help="Length of each run (default: 20).")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per client count; medians are reported "
                                                              "(default: 3).")
    parser.add_argument("--warmup", type=float, default=3, help="Unmeasured first run, s (default: 3).")
    parser.add_argument("--workers", type=int, default=2, help="Server processes (default: 2, one per core).")
    parser.add_argument("--threads", type=int, default=None,
                        help="Recognition threads per server process (default: the server's).")
    parser.add_argument("--model", default=None, help="Model for the server (default: the shipped one).")
    parser.add_argument("--max-queue", type=int, default=None,
                        help="Start the server with this --max-queue and report overload: 503s with "
                             "Retry-After count as shed, not errors (default: the server's, no shedding "
                             "expected).")
    parser.add_argument("--honour-retry-after", action="store_true",
                        help="With wrk: each 503 holds a connection back for its Retry-After before it "
                             "sends again, as well-behaved clients and load balancers do (default: send "
                             "again at once, the harshest overload).")
    parser.add_argument("--tool", choices=["wrk", "locust"], default="wrk",
                        help="Load generator (default: wrk).")
    parser.add_argument("--serve-option", action="append", default=[], metavar="OPTION",
                        help="Pass one more option to numbre serve (repeat), e.g. "
                             "--serve-option=--client-pending=1000: wrk is one client address, as a load "
                             "balancer in front of the server is.")
    parser.add_argument("--url", default=None, help="Benchmark this running server instead of starting one.")
    parser.add_argument("--server-pid", type=int, default=None,
                        help="With --url: the server's process id, to measure its CPU time per request.")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "web_load.json",
                        help="Where to write the figures (default: benchmarks/results/web_load.json).")
    args = parser.parse_args()

    extra = (["--threads", str(args.threads)] if args.threads is not None else []) + \
            (["--model", args.model] if args.model else []) + \
            (["--max-queue", str(args.max_queue)] if args.max_queue is not None else []) + args.serve_option
    with tempfile.TemporaryDirectory() as folder:
        server, url = ((None, args.url) if args.url
                       else start_server(args.workers, extra, Path(folder) / "server.log"))
        try:
            meter = ServerMeter(server.pid if server else args.server_pid)
            runner = LoadRunner(args.tool, url, meter, Path(folder), honour=args.honour_retry_after)
            if args.warmup > 0:
                runner.run(max(args.clients), args.warmup)
            runs: dict[int, list[dict]] = {clients: [] for clients in args.clients}
            for _ in range(args.repeat):  # interleaved, so that a noisy minute spreads over every count
                for clients in args.clients:
                    runs[clients].append(runner.run(clients, args.seconds))
        finally:
            if server is not None:
                stop_server(server)
    rows = [median_row(runs[clients]) for clients in args.clients]

    where = f"at {url}" if args.url else f"{args.workers} worker process(es)"
    print(f"POST /api/predict, canvas-sized PNGs, {args.tool}, {args.seconds:g} s per run, medians of "
          f"{args.repeat}; server: {where}; {os.cpu_count()} cores\n")
    print_table(rows)
    if args.max_queue is not None:
        manners = ("clients wait Retry-After after a 503" if args.honour_retry_after
                   else "clients send again at once after a 503")
        print(f"\noverload, --max-queue {args.max_queue} per process; {manners}:\n")
        print_overload_table(rows)
    checks = [row["errors"] == 0 and row["requests"] > 0 for row in rows]
    if args.max_queue is None:
        checks += [row["shed"] == 0 for row in rows]
    checks += [row["requests_per_second"] >= TARGET_RPS and row["p99_ms"] < TARGET_P99_MS
               for row in rows if row["clients"] == TARGET_CLIENTS]
    verdict = "met" if all(checks) else "NOT met"
    print(f"\ntargets ({TARGET_RPS:,.0f} requests/s and p99 < {TARGET_P99_MS:g} ms at {TARGET_CLIENTS} "
          f"clients, no errors): {verdict}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.platform(), "cores": os.cpu_count(),
                                    "tool": args.tool,
                                    "workers": None if args.url else args.workers, "seconds": args.seconds,
                                    "repeat": args.repeat, "results": rows,
                                    "runs": [run for clients in args.clients for run in runs[clients]],
                                    "targets_met": all(checks)}, indent=2) + "\n")
    if not all(checks):
        sys.exit(1)


if __name__ == "__main__":
    main()

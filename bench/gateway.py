"""Benchmark: ``kretry gateway``. Accepted events/s and accept latency with 8 clients (wrk, keep-alive, each post a
new event), side by side with the least a durable accept can do (bench/apps/bare_accept.py: produce, await the
acknowledgement, 200); RSS; two instances against one; delivery lateness for 1 s delays and events lost.

Lateness is measured from outside, as a receiver sees it: arrival minus (the moment the client sent the post + the
delay); it includes the accept latency, so it overstates the gateway's own lateness a little.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.chaos_kit import kafka_local
from bench.common import BOOTSTRAP, create_topics, delete_topics, unique
from tests.integration.gateways import wait_ready

CLIENTS = 8
SCALE_CLIENTS = 32
SECONDS = 10
RUNS = 2  # of each, interleaved: bare, gateway, bare, gateway
LATENESS_EVENTS = 2_000
LATENESS_RATE = 400  # posts/s

WRK_SCRIPT = """
local n = 0
local id = ""
local threads = 0
function setup(thread)
  -- wrk's generator starts from the same seed in every run: runs on one prefix would post the same events.
  threads = threads + 1
  thread:set("tid", string.format("%d-%d-%d", os.time(), math.floor(os.clock() * 1e6), threads))
end
function init(args)
  id = tid
end
request = function()
  n = n + 1
  local body = '{"identifier":"bench","eventBody":{"t":"' .. id .. '","i":' .. n .. '}}'
  return wrk.format("POST", "/v1/event", {["Content-Type"] = "application/json"}, body)
end
"""


def _env(prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRETRY_")}
    env.update(
        KRETRY_BOOTSTRAP_SERVERS=BOOTSTRAP,
        KRETRY_GATEWAY_PREFIX=prefix,
        KRETRY_DLQ_TOPIC=f"{prefix}.dlq",
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )
    return env


def _gateway(prefix: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = kafka_local.free_port()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kretry.cli", "gateway", "--http-port", str(port), "--log-level", "WARNING"],
            env=_env(prefix),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url


def _bare(topic: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = kafka_local.free_port()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.apps.bare_accept", str(port), topic],
            env=_env("unused"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"{url}/v1/event", content=b"{}", timeout=2)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError("bare accept did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wrk(urls: list[str], seconds: int = SECONDS, clients: int = CLIENTS) -> dict[str, float]:
    """wrk against each URL at once, ``clients`` connections in all; summed rate, worst latencies, errors."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    procs = [
        subprocess.Popen(
            [
                "wrk",
                "-t",
                "1",
                "-c",
                str(clients // len(urls)),
                "-d",
                f"{seconds}s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    outs = [p.communicate(timeout=seconds + 60)[0] for p in procs]
    os.unlink(script.name)
    rps = sum(float(re.search(r"Requests/sec:\s+([\d.]+)", o).group(1)) for o in outs)  # type: ignore[union-attr]
    errors = sum(int(m.group(1)) for o in outs for m in [re.search(r"Non-2xx or 3xx responses: (\d+)", o)] if m)
    return {
        "rps": rps,
        "p50_ms": max(_pct(o, "50%") for o in outs),
        "p99_ms": max(_pct(o, "99%") for o in outs),
        "errors": errors,
    }


def _pct(out: str, which: str) -> float:
    match = re.search(rf"^\s+{re.escape(which)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def _configure(url: str, delays: list[str], target: str) -> None:
    body = {
        "identifier": "bench",
        "maxRetry": len(delays),
        "retryDelays": delays,
        "integrations": [{"type": "HTTP", "config": {"url": target}}],
    }
    answer = httpx.post(f"{url}/v1/config", json=body, timeout=30)
    assert answer.status_code in (200, 400), answer.text


class _Receiver:
    """Where deliveries go (bench/apps/receiver.py, a process of its own): arrival time per event."""

    def __init__(self, work: Path) -> None:
        self.path = work / "arrivals.txt"
        self.path.touch()
        port = kafka_local.free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.apps.receiver", str(port), str(self.path)],
            env=_env("unused"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}/hook"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(self.url, json={"i": -1}, timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError("the bench receiver did not start")

    @property
    def arrived(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for line in self.path.read_text().splitlines():
            i, at = line.split()
            out.setdefault(int(i), float(at))
        return out

    def stop(self) -> None:
        _stop(self.proc)


def _dead(dlq: str) -> set[int]:
    """The events dead-lettered (a delivery the receiver did not take): read back with kcat."""
    out = subprocess.run(
        ["kcat", "-b", BOOTSTRAP, "-C", "-t", dlq, "-e", "-q", "-f", "%s\n"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return {json.loads(line)["i"] for line in out.stdout.decode().splitlines() if line.startswith("{")}


def _lateness(url: str, receiver: _Receiver, dlq: str) -> dict[str, float]:
    sent: dict[int, float] = {}
    accepted: set[int] = set()
    with httpx.Client(timeout=30) as client:
        start = time.monotonic()
        for i in range(LATENESS_EVENTS):
            time.sleep(max(0.0, start + i / LATENESS_RATE - time.monotonic()))
            sent[i] = time.time()
            answer = client.post(f"{url}/v1/event", json={"identifier": "bench", "eventBody": {"i": i}})
            if answer.status_code == 200:
                accepted.add(i)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not accepted <= receiver.arrived.keys() | _dead(dlq):
        time.sleep(1.0)
    dead = _dead(dlq)
    arrived = receiver.arrived
    late = sorted((arrived[i] - sent[i] - 1.0) * 1000 for i in accepted if i in arrived)
    return {
        "gateway_lateness_p50_ms": late[len(late) // 2],
        "gateway_lateness_p99_ms": late[int(len(late) * 0.99)],
        "gateway_lateness_min_ms": late[0],
        "gateway_accepted_events": len(accepted),
        "gateway_dead_lettered_events": len(dead),
        "gateway_lost_events": len(accepted - arrived.keys() - dead),
    }


def run() -> dict[str, Any]:
    out: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    receiver = _Receiver(work)
    bare_runs, gateway_runs = [], []
    prefixes: list[str] = []
    for _ in range(RUNS):
        topic = unique("accept")
        create_topics([topic])
        bare, bare_url = _bare(topic, work / "bare.log")
        try:
            bare_runs.append(wrk([bare_url]))
        finally:
            _stop(bare)
            delete_topics([topic])
        prefix = unique("gw")
        prefixes.append(prefix)
        gateway, url = _gateway(prefix, work / "gateway.log")
        try:
            _configure(url, ["1h"], receiver.url)
            gateway_runs.append(wrk([url]))
            out["gateway_rss_mb"] = _rss_mb(gateway.pid)
        finally:
            _stop(gateway)
    best = max(gateway_runs, key=lambda r: r["rps"])
    bare_best = max(bare_runs, key=lambda r: r["rps"])
    out.update(
        gateway_accept_rps=best["rps"],
        gateway_accept_p50_ms=best["p50_ms"],
        gateway_accept_p99_ms=best["p99_ms"],
        gateway_accept_errors=sum(r["errors"] for r in gateway_runs),
        gateway_bare_accept_rps=bare_best["rps"],
        gateway_bare_accept_p99_ms=bare_best["p99_ms"],
        gateway_accept_ratio=best["rps"] / bare_best["rps"],
    )
    # Two instances against one, on one prefix: the same connections split over both. With 8, each waiting on its
    # own round trips, the clients would be the limit, not the instances: SCALE_CLIENTS.
    prefix = unique("gw")
    prefixes.append(prefix)
    one, url_one = _gateway(prefix, work / "one.log")
    two, url_two = _gateway(prefix, work / "two.log")
    try:
        _configure(url_one, ["1h"], receiver.url)
        time.sleep(1.0)
        single = wrk([url_one], clients=SCALE_CLIENTS)
        double = wrk([url_one, url_two], clients=SCALE_CLIENTS)
        out.update(gateway_two_rps=double["rps"], gateway_one_rps=single["rps"])
        out["gateway_scale_ratio"] = double["rps"] / single["rps"]
    finally:
        _stop(two)
        _stop(one)
    # Lateness and loss: a fresh instance, nothing else due.
    prefix = unique("gw")
    prefixes.append(prefix)
    one, url_one = _gateway(prefix, work / "lateness.log")
    try:
        _configure(url_one, ["1s"], receiver.url)
        out.update(_lateness(url_one, receiver, f"{prefix}.dlq"))
    finally:
        _stop(one)
        receiver.stop()
    for p in prefixes:
        names = [f"{p}.{n}" for n in ("requests", "counts", "replies", "configs", "due", "dlq")]
        delete_topics(names + [f"{p}.wait-{2**k}s" for k in range(18)])
    return out

#!/usr/bin/env python3
"""Probe latency of a clipd HTTP endpoint, unloaded and then with idle and slow-loris clients.

    python3 Benchmarks/http_health.py PORT [--idle 200] [--slow 20] [--probes 50] [--timeout 3]

Prints one JSON line per phase: probe latencies (p50/p99/max, ms), failures (no answer within
--timeout, as a Kubernetes probe with timeoutSeconds would count them) and, under load, how many
slow-loris connections the server closed and after how long.
"""
import argparse, json, socket, threading, time


def probe(port, path, timeout):
    t0 = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(max(0.001, timeout - (time.perf_counter() - t0)))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        ok = data.startswith(b"HTTP/1.1 200")
    except OSError:
        ok = False
    return ok, (time.perf_counter() - t0) * 1000


def probes(port, n, timeout):
    lat, failed = [], 0
    for i in range(n):
        ok, ms = probe(port, "/healthz" if i % 2 == 0 else "/metrics", timeout)
        if ok:
            lat.append(ms)
        else:
            failed += 1
    lat.sort()
    q = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else None
    return {"probes": n, "failed": failed, "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": q(1.0)}


def main():
    a = argparse.ArgumentParser()
    a.add_argument("port", type=int)
    a.add_argument("--idle", type=int, default=200)
    a.add_argument("--slow", type=int, default=20)
    a.add_argument("--probes", type=int, default=50)
    a.add_argument("--timeout", type=float, default=3.0)
    args = a.parse_args()

    print(json.dumps({"phase": "unloaded", **probes(args.port, args.probes, args.timeout)}), flush=True)

    def open_connections(n):
        # A server that accepts one connection at a time leaves the rest in its listen backlog;
        # once that is full, connecting times out (counted, not fatal).
        opened, refused = [], 0
        for _ in range(n):
            try:
                c = socket.create_connection(("127.0.0.1", args.port), timeout=0.5)
                c.settimeout(None)
                opened.append(c)
            except OSError:
                refused += 1
        return opened, refused

    idle, idle_refused = open_connections(args.idle)
    slow, slow_refused = open_connections(args.slow)
    request = b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"s" * 60 + b"\r\n\r\n"
    closed_at, started, stop = {}, time.perf_counter(), threading.Event()

    def drip():
        for i in range(len(request)):
            for k, s in enumerate(slow):
                if k in closed_at:
                    continue
                try:
                    s.send(request[i:i + 1])
                except OSError:
                    closed_at[k] = time.perf_counter() - started
            if len(closed_at) == len(slow) or stop.wait(1.0):
                return

    t = threading.Thread(target=drip, daemon=True)
    t.start()
    time.sleep(1.5)
    loaded = probes(args.port, args.probes, args.timeout)
    deadline = time.perf_counter() + 20
    while len(closed_at) < len(slow) and time.perf_counter() < deadline:
        time.sleep(0.2)
    stop.set()
    closes = sorted(closed_at.values())
    print(json.dumps({"phase": f"{args.idle} idle + {args.slow} slow-loris", **loaded,
                      "connections_not_accepted": idle_refused + slow_refused,
                      "slow_closed_by_server": len(closes),
                      "slow_closed_after_s": [round(closes[0], 1), round(closes[-1], 1)] if closes else None}), flush=True)
    for s in idle + slow:
        s.close()


if __name__ == "__main__":
    main()

"""`shoebox metrics`: each stage's timings, each worker host's utilisation, each lane's
queue and throughput a minute over a window (engine/jobs/metrics.py)."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from engine.cli_models import _emit, _err, _open


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def cmd_metrics(args: argparse.Namespace) -> int:
    from engine.jobs.metrics import prometheus, summary
    from engine.queries import host_background

    if args.window <= 0:
        return _err("metrics: --window is a number of minutes above 0")
    lib = _open(args)
    try:
        conn = lib.catalog.conn
        data: dict[str, Any] = summary(conn, args.window * 60.0)
        data["background"] = host_background(conn)
    finally:
        lib.close()
    if args.prometheus:
        print(prometheus(data), end="")
        return 0
    if args.json:
        _emit(data)
        return 0
    _print(data, args.window)
    return 0


def _print(data: dict[str, Any], window_min: float) -> None:
    print(f"Last {window_min:g} min")
    if not data["stages"]:
        print("  no job finished in this window")
    else:
        print(f"  {'stage':<14}{'done':>8}{'failed':>8}{'p50':>10}{'p95':>10}{'per min':>9}")
        for name, s in data["stages"].items():
            print(f"  {name:<14}{s['done']:>8}{s['failed']:>8}{_seconds(s['p50_s']):>10}"
                  f"{_seconds(s['p95_s']):>10}{s['items_per_s'] * 60:>9.1f}")  # fmt: skip
    for name, h in data["hosts"].items():
        busy = "–" if h["utilisation"] is None else f"{round(100 * h['utilisation'])}%"
        print(f"  host {name}: busy {busy}, {h['done']} jobs")
    for lane, states in data["lanes"].items():
        print(f"  lane {lane}: " + ", ".join(f"{k} {v}" for k, v in states.items()))
    bg = data.get("background")
    if bg:
        state = (
            f"{bg['workers']} of {bg['of']} workers ({bg['why']})"
            if bg.get("throttled")
            else f"all {bg['of']} workers"
        )
        print(f"  background: {bg['mode']}, {state}")
    recent = [p for p in data["throughput"] if p["done"]][-1:]
    if recent:
        at = datetime.fromtimestamp(recent[0]["minute"]).strftime("%H:%M")
        print(f"  last busy minute {at}: {recent[0]['done']} jobs")


def add_parsers(sub: Any, json_flag: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "metrics",
        parents=[json_flag],
        help="stage timings, host utilisation, queues and throughput",
        description="Figures over a rolling window, kept in the catalog by the worker host: "
        "per stage p50/p95 duration, done and failed counts, items per second; per lane the "
        "queue; per worker host its utilisation; jobs done each minute.",
    )
    p.add_argument("--window", type=float, default=60.0, metavar="MINUTES",
                   help="how far back (default: 60; the catalog keeps 24 h)")  # fmt: skip
    p.add_argument("--prometheus", action="store_true",
                   help="print Prometheus text exposition instead")  # fmt: skip
    p.set_defaults(func=cmd_metrics)

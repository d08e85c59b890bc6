"""`make reliability`: the whole suite with every seed, then docs/reliability.md.

    python tests/reliability/run.py                  # run everything, write the report
    python tests/reliability/run.py --records DIR    # only re-render from kept records
    python tests/reliability/run.py -- -k faults     # extra pytest arguments after --

The tests write one JSON record per run into $SHOEBOX_RELIABILITY_OUT (format:
tests/reliability/README.md); this script sets it, runs pytest over the whole suite
(`-m "not slow"`: the fast slice and the `reliability` marker, benchmarks aside), and
groups the records by suite and kind, whatever kinds there are. It exits 1 when
pytest failed or any must-be-zero figure (lost, duplicated, originals changed, hangs,
integrity failures) is not zero.
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
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "docs" / "reliability.md"
# The figures that must be zero, and where in a record each comes from.
MUST_BE_ZERO = (
    "items_lost",
    "items_duplicated",
    "jobs_lost",
    "jobs_duplicated",
    "originals_changed",
    "hangs",
    "integrity_failures",
    "host_crashes",
)
FAULT_COUNTS = ("items_lost", "items_duplicated", "jobs_lost", "jobs_duplicated")


@dataclass
class PytestRun:
    tests: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)
    command: str = ""
    started: str = ""  # when pytest began (junit timestamp, UTC)

    @property
    def passed(self) -> int:
        return self.tests - self.failed - self.errors - self.skipped


def load_records(directory: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"unreadable record {path}: {exc}") from exc
        if isinstance(record, dict) and "suite" in record and "kind" in record:
            records.append(record)
    return records


def read_junit(path: Path, command: str) -> PytestRun:
    run = PytestRun(command=command)
    if not path.exists():
        return run
    root = ET.parse(path).getroot()
    for suite in root.iter("testsuite"):
        run.tests += int(suite.get("tests", 0))
        run.failed += int(suite.get("failures", 0))
        run.errors += int(suite.get("errors", 0))
        run.skipped += int(suite.get("skipped", 0))
        run.seconds += float(suite.get("time", 0.0))
        run.started = run.started or suite.get("timestamp", "")[:16].replace("T", " ")
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        for child in case:
            if child.tag in ("failure", "error"):
                run.failures.append(name)
            elif child.tag == "skipped":
                run.skips.append(f"{name}: {child.get('message', '')[:160]}")
    return run


def _num(record: dict[str, Any], key: str) -> int:
    value = record.get(key, 0)
    if isinstance(value, list):
        return len(value)
    return int(value or 0)


def _integrity_failed(record: dict[str, Any]) -> bool:
    value = record.get("integrity")
    return value is not None and value != "ok"


def totals(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Every must-be-zero figure over all records."""
    out = dict.fromkeys(MUST_BE_ZERO, 0)
    for r in records:
        for key in FAULT_COUNTS:
            out[key] += _num(r, key)
        out["originals_changed"] += _num(r, "originals_changed")
        out["hangs"] += int(bool(r.get("hung"))) + _num(r, "hangs")
        out["integrity_failures"] += int(_integrity_failed(r))
        out["host_crashes"] += _num(r, "host_crashes")
    return out


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(c).replace("|", "\\|").replace("\n", " ") for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _by_kind(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[str(r["kind"])].append(r)
    return dict(sorted(groups.items()))


def faults_section(records: list[dict[str, Any]]) -> list[str]:
    rows = []
    for kind, group in _by_kind(records).items():
        rows.append(
            [
                kind,
                len(group),
                len({r.get("seed", 0) for r in group}),
                sum(_num(r, "faults") for r in group),
                sum(_num(r, "runs") for r in group),
                sum(_num(r, "items") for r in group),
                sum(_num(r, "jobs") for r in group),
                *(sum(_num(r, k) for r in group) for k in FAULT_COUNTS),
                sum(int(_integrity_failed(r)) for r in group),
                sum(_num(r, "originals_changed") for r in group),
                f"{sum(1 for r in group if r.get('ok'))}/{len(group)}",
            ]
        )
    header = ["kind", "runs", "seeds", "faults injected", "host starts", "items", "jobs"]
    header += ["items lost", "items duplicated", "jobs lost", "jobs duplicated"]
    header += ["integrity failures", "originals changed", "ok"]
    lines = ["## Faults", "", *_table(header, rows), ""]
    problems = [r for r in records if isinstance(r.get("problems"), list) and r["problems"]]
    if problems:
        lines += ["Problems the checks found:", ""]
        lines += [f"- {r['kind']} seed {r.get('seed')}: {r['problems']}" for r in problems]
        lines.append("")
    return lines


def bad_files_section(records: list[dict[str, Any]]) -> list[str]:
    rows = []
    for kind, group in _by_kind(records).items():
        outcomes: dict[str, int] = defaultdict(int)
        for r in group:
            outcomes[str(r.get("outcome"))] += 1
        reasons = sorted({str(r["reason"]) for r in group if r.get("reason")}, key=len)
        rows.append(
            [
                kind,
                len(group),
                outcomes.get("done", 0),
                outcomes.get("failed", 0),
                outcomes.get("not catalogued", 0),
                sum(1 for r in group if r.get("hung")),
                sum(_num(r, "host_crashes") for r in group),
                reasons[0] if reasons else "",
            ]
        )
    header = ["kind", "files tried", "done", "failed (with a reason)", "not catalogued"]
    header += ["hung", "host crashes", "shortest reason given"]
    lines = ["## Bad files", "", *_table(header, rows), ""]
    lines += ["Every reason given, by kind:", ""]
    for kind, group in _by_kind(records).items():
        reasons = sorted({str(r["reason"]) for r in group if r.get("reason")})
        if reasons:
            lines.append(f"- **{kind}**: " + "; ".join(f"“{x}”" for x in reasons))
    lines.append("")
    return lines


def metadata_section(records: list[dict[str, Any]]) -> list[str]:
    rows = []
    for kind, group in _by_kind(records).items():
        agree = sum(_num(r, "agree") for r in group)
        compared = sum(_num(r, "compared") for r in group)
        share = f"{100 * agree / compared:.1f}%" if compared else "—"
        examples = [d for r in group for d in r.get("disagreements", [])][:3]
        rows.append([kind, agree, compared, share, "; ".join(map(str, examples))])
    header = ["field", "agree with exiftool", "compared", "agreement", "some disagreements"]
    return ["## Metadata agreement with exiftool", "", *_table(header, rows), ""]


def _figures(group: list[dict[str, Any]]) -> str:
    """A kind's fields over all its records: numbers summed (bools counted), texts listed."""
    sums: dict[str, float] = defaultdict(float)
    texts: dict[str, set[str]] = defaultdict(set)
    for r in group:
        for k, v in r.items():
            if k in ("suite", "kind", "seed", "ok"):
                continue
            if isinstance(v, (bool, int, float)):
                sums[k] += v
            elif isinstance(v, str):
                texts[k].add(v)
    shown = {k: f"{v:g}" for k, v in sums.items()}
    shown.update((k, " / ".join(sorted(v))) for k, v in texts.items() if k not in shown)
    return ", ".join(f"{k} {v}" for k, v in sorted(shown.items()))[:300]


def other_section(suite: str, records: list[dict[str, Any]]) -> list[str]:
    rows = []
    for kind, group in _by_kind(records).items():
        shown = _figures(group)
        rows.append([kind, len(group), sum(1 for r in group if r.get("ok")), shown])
    title = suite.replace("_", " ").capitalize()
    return [f"## {title}", "", *_table(["kind", "runs", "ok", "figures"], rows), ""]


def render(records: list[dict[str, Any]], run: PytestRun | None, commit: str) -> str:
    suites: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        suites[str(r["suite"])].append(r)
    zero = totals(records)
    failed_records = [r for r in records if not r.get("ok")]
    lines = [
        "# Reliability",
        "",
        "Written by `make reliability` (tests/reliability/run.py) from the records the",
        "tests wrote; do not edit by hand. Replay one seeded run with",
        "`SHOEBOX_TEST_SEED=<seed> pytest -m reliability -k <test>`.",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        + (f" (the tests ran from {run.started} UTC)" if run is not None and run.started else ""),
        f"- Commit: {commit}",
        f"- Machine: {platform.platform()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
    ]
    if run is not None:
        lines.append(
            f"- Tests: {run.tests} run, {run.passed} passed, {run.failed + run.errors} failed, "
            f"{run.skipped} skipped, {run.seconds / 60:.1f} min (`{run.command}`)"
        )
    faults = suites.get("faults", [])
    lines += [
        f"- Records: {len(records)}; fault runs {len(faults)}, faults injected "
        f"{sum(_num(r, 'faults') for r in faults)}; bad files tried "
        f"{len(suites.get('bad_files', []))}",
        "",
        "## Verdict",
        "",
        *_table(
            ["must be zero", "value"],
            [[k.replace("_", " "), v] for k, v in zero.items()]
            + [["records not ok", len(failed_records)]]
            + ([["tests failed", run.failed + run.errors]] if run is not None else []),
        ),
        "",
    ]
    if run is not None and run.failures:
        lines += ["Failed tests:", "", *[f"- {name}" for name in run.failures], ""]
    if failed_records:
        lines += ["Records not ok:", ""]
        lines += [
            f"- {r['suite']}/{r['kind']} seed {r.get('seed')}: {r.get('problems') or r}"
            for r in failed_records[:30]
        ]
        lines.append("")
    if faults:
        lines += faults_section(faults)
    if suites.get("bad_files"):
        lines += bad_files_section(suites["bad_files"])
    if suites.get("metadata"):
        lines += metadata_section(suites["metadata"])
    for suite in sorted(set(suites) - {"faults", "bad_files", "metadata"}):
        lines += other_section(suite, suites[suite])
    if run is not None and run.skips:
        lines += ["## Skipped", "", *[f"- {s}" for s in run.skips], ""]
    return "\n".join(lines).rstrip() + "\n"


def verdict_ok(records: list[dict[str, Any]], run: PytestRun | None) -> bool:
    if any(totals(records).values()) or any(not r.get("ok") for r in records):
        return False
    return run is None or (run.failed == 0 and run.errors == 0 and run.tests > 0)


def _commit() -> str:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return proc.stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", ".", f":!{REPORT.relative_to(REPO)}")
    return sha + (" (with uncommitted changes)" if dirty else "")


def run_pytest(out: Path, extra: list[str]) -> PytestRun:
    junit = out / "junit.xml"
    args = ["-m", "not slow", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *extra]
    env = dict(os.environ, SHOEBOX_RELIABILITY_OUT=str(out / "records"))
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.setdefault("QT_API", "pyside6")
    command = "pytest " + " ".join(args[:2]) + (" " + " ".join(extra) if extra else "")
    subprocess.run([sys.executable, "-m", "pytest", *args], cwd=REPO, env=env)
    return read_junit(junit, command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=Path, help="render from these records; run nothing")
    parser.add_argument("--out", type=Path, default=REPORT, help="the report (docs/reliability.md)")
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")
    args = parser.parse_args(argv)
    run: PytestRun | None = None
    commit = _commit()
    if args.records is not None:
        records = load_records(args.records)
        junit = args.records.parent / "junit.xml"
        if junit.exists():
            run = read_junit(junit, "pytest (kept run)")
        kept = args.records.parent / "run.json"
        if kept.exists():  # the commit the records were made at, not today's
            commit = str(json.loads(kept.read_text()).get("commit", commit))
    else:
        keep = Path(tempfile.mkdtemp(prefix="shoebox-reliability-"))
        (keep / "run.json").write_text(json.dumps({"commit": commit}))
        run = run_pytest(keep, args.pytest_args)
        records = load_records(keep / "records")
        print(f"records kept in {keep / 'records'}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(records, run, commit))
    ok = verdict_ok(records, run)
    zero = totals(records)
    print(json.dumps({"ok": ok, "records": len(records), **zero}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""`shoebox models|config|tags|similar`: the model half of the command line.

Weights commands (`models list|download|import`) need no library: the weights
cache is per user. Heavy modules load only inside the command that needs them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.library import Library

MODEL_STAGES = {"embed": "models.embed", "detect": "models.detect"}
LIVE_HOST_S = 30.0


def _emit(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _err(message: str) -> int:
    print(f"shoebox: {message}", file=sys.stderr)
    return 2


def _open(args: argparse.Namespace) -> Library:
    from engine.cli import _open as open_library

    return open_library(args)


# -- models ---------------------------------------------------------------------------


def _weights_info(spec: str) -> dict[str, Any]:
    from models import weights
    from models.spec import ModelSpec, SpecError

    try:
        found = weights.find_local(ModelSpec.parse(spec))
    except SpecError as exc:
        return {"available": False, "reason": str(exc)}
    if found is None:
        return {"available": False, "reason": weights.missing_reason(spec)}
    return {
        "available": True,
        "origin": found.origin,
        "path": str(found.path),
        "digest": found.digest,
    }


def host_resources(lib: Library) -> list[dict[str, Any]]:
    """What live worker hosts have loaded (from their heartbeat)."""
    rows = lib.catalog.conn.execute(
        "SELECT info FROM hosts WHERE stopped_at IS NULL AND heartbeat_at > ?",
        (time.time() - LIVE_HOST_S,),
    ).fetchall()
    out: list[dict[str, Any]] = []
    for row in rows:
        try:
            out += json.loads(row[0]).get("resources", [])
        except (ValueError, AttributeError):
            continue
    return out


def models_status(lib: Library) -> list[dict[str, Any]]:
    """Each configured model: its spec, weights, what a live host has loaded, and how
    many jobs wait for it (with the reason)."""
    from engine.jobs.ledger import waiting_stages

    waiting = waiting_stages(lib.catalog.conn)
    loaded = host_resources(lib)
    out = []
    for stage, key in MODEL_STAGES.items():
        spec = str(lib.settings.get(key))
        entry: dict[str, Any] = {"stage": stage, "setting": key, "spec": spec or None}
        if not spec:
            entry.update(state="off")
            out.append(entry)
            continue
        entry.update(_weights_info(spec))
        here = [r for r in loaded if r.get("model") == spec]
        count, reason = waiting.get(stage, (0, ""))
        entry["waiting_jobs"] = count
        if here and here[0].get("state") == "loaded":
            entry.update(state="loaded", device=here[0].get("device"))
        elif here and here[0].get("state") == "loading":
            entry.update(state="loading", device=here[0].get("device"))
        elif count:
            entry.update(state="waiting", reason=reason)
        else:
            entry.update(state="not loaded")
        out.append(entry)
    return out


def cmd_models(args: argparse.Namespace) -> int:
    from models import weights

    if args.action == "list":
        data: Any = weights.list_cached()
        if args.json:
            _emit(data)
        else:
            if not data:
                print(f"No weights in {weights.models_dir()} yet.")
            for m in data:
                print(f"{m['spec']:<50} {m['digest'][:12]}  {m.get('bytes', 0) / 1e6:,.1f} MB")
        return 0
    if args.action == "status":
        lib = _open(args)
        try:
            data = models_status(lib)
        finally:
            lib.close()
        if args.json:
            _emit(data)
        else:
            for m in data:
                line = f"{m['stage']:<7} {m['spec'] or '(off)'}: {m['state']}"
                if m.get("device"):
                    line += f" on {m['device']}"
                if m.get("waiting_jobs"):
                    line += f", {m['waiting_jobs']:,} jobs waiting"
                print(line)
                if m["state"] == "waiting" or (m.get("available") is False and m["spec"]):
                    print(f"        {m.get('reason') or ''}")
        return 0
    if not args.target:
        return _err(
            f"models {args.action} needs a {'SPEC' if args.action == 'download' else 'FILE'}"
        )
    if args.action == "download":
        from models.errors import ModelUnavailable
        from models.spec import SpecError

        def progress(done: int, total: int | None) -> None:
            of = f" of {total / 1e6:,.0f} MB" if total else " MB"
            print(f"\rdownloading {done / 1e6:,.0f}{of}", end="", file=sys.stderr)

        try:
            found = weights.download(args.target, progress)
        except (ModelUnavailable, SpecError) as exc:
            return _err(str(exc))
        data = {"spec": found.spec, "path": str(found.path), "digest": found.digest}
    else:
        from models.spec import SpecError

        try:
            found = weights.import_weights(Path(args.target), args.as_spec)
        except (OSError, ValueError, SpecError) as exc:
            return _err(str(exc))
        data = {"spec": found.spec, "path": str(found.path), "digest": found.digest}
    if args.json:
        _emit(data)
    else:
        print(
            f"{data['spec']} is ready ({data['digest'][:12]}); jobs waiting for it run "
            "within seconds while the app or `shoebox work` runs."
        )
    return 0


# -- config ---------------------------------------------------------------------------


def cmd_config(args: argparse.Namespace) -> int:
    from engine.config import setting_names
    from engine.errors import SettingsError

    lib = _open(args)
    try:
        if args.action == "list" or not args.key:
            data = {key: lib.settings.get(key) for key in setting_names()}
            if args.json:
                _emit(data)
            else:
                for key, value in data.items():
                    print(f"{key} = {json.dumps(value)}")
            return 0
        try:
            old = lib.settings.get(args.key)
        except KeyError as exc:
            return _err(str(exc.args[0]))
        if args.action == "get":
            if args.json:
                _emit({"key": args.key, "value": old})
            else:
                print(old if not isinstance(old, bool) else str(old).lower())
            return 0
        if args.value is None:
            return _err("config set needs a KEY and a VALUE")
        try:
            lib.settings = lib.settings.with_value(args.key, args.value)
        except SettingsError as exc:
            return _err(exc.problems[0] if exc.problems else str(exc))
        lib.save_settings()
        started = lib.apply_settings()
        new = lib.settings.get(args.key)
        if args.json:
            _emit({"key": args.key, "value": new, "previous": old, "reindex_sessions": started})
        else:
            print(f"{args.key} = {json.dumps(new)}")
            if started:
                print(
                    "Re-indexing every item with the new setting in the batch lane (while the "
                    "app or `shoebox work` runs); results so far keep serving until replaced."
                )
        return 0
    finally:
        lib.close()


# -- tags -----------------------------------------------------------------------------


def cmd_tags(args: argparse.Namespace) -> int:
    lib = _open(args)
    try:
        if args.action == "list":
            rows = lib.catalog.conn.execute(
                "SELECT tag, source, count(*) FROM item_tags GROUP BY 1, 2 ORDER BY 3 DESC, 1"
            ).fetchall()
            data: Any = {
                "words": lib.tag_words(),
                "tags": [{"tag": r[0], "source": r[1], "items": r[2]} for r in rows],
            }
            if args.json:
                _emit(data)
            else:
                if data["words"]:
                    print("Your words: " + ", ".join(data["words"]))
                for t in data["tags"]:
                    print(f"{t['items']:>7}  {t['tag']} ({t['source']})")
            return 0
        words = [w.strip().lower() for w in args.words if w.strip()]
        if not words:
            return _err(f"tags {args.action} needs at least one WORD")
        changed = lib.change_tag_words(words, add=args.action == "add")
        started = lib.apply_settings()
        if args.json:
            _emit({"words": lib.tag_words(), "changed": changed, "reindex_sessions": started})
        else:
            verb = "Added" if args.action == "add" else "Removed"
            print(f"{verb} {changed} words; every item is re-tagged from its stored embedding.")
        return 0
    finally:
        lib.close()


# -- similar --------------------------------------------------------------------------


def cmd_similar(args: argparse.Namespace) -> int:
    from engine.vectors import similar

    lib = _open(args)
    try:
        try:
            found = similar(
                lib.catalog.conn,
                lib.vector_indexes(),
                args.item,
                limit=args.limit,
                preferred_model=lib.settings.models.embed or None,
            )
        except (LookupError, ValueError) as exc:
            return _err(str(exc.args[0]) if exc.args else str(exc))
        if args.json:
            _emit(found)
        else:
            for hit in found:
                first = hit["paths"][0] if hit["paths"] else "(missing)"
                print(f"{hit['score']:.3f} {hit['id']:>7} {first}")
        return 0
    finally:
        lib.close()


def add_parsers(sub: Any, json_flag: argparse.ArgumentParser) -> None:
    p = sub.add_parser("models", parents=[json_flag], help="model weights and their status")
    p.add_argument("action", choices=("list", "status", "download", "import"))
    p.add_argument("target", nargs="?", metavar="SPEC_OR_FILE")
    p.add_argument("--as", dest="as_spec", metavar="SPEC", help="import: which model it is")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("config", parents=[json_flag], help="read or change a setting")
    p.add_argument("action", choices=("get", "set", "list"))
    p.add_argument("key", nargs="?", metavar="KEY")
    p.add_argument("value", nargs="?", metavar="VALUE")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("tags", parents=[json_flag], help="the zero-shot vocabulary and tags")
    p.add_argument("action", choices=("add", "remove", "list"))
    p.add_argument("words", nargs="*", metavar="WORD")
    p.set_defaults(func=cmd_tags)

    p = sub.add_parser("similar", parents=[json_flag], help="items that look like ITEM")
    p.add_argument("item", type=int, metavar="ITEM")
    p.add_argument("--limit", type=int, default=20, help="how many (default: %(default)s)")
    p.set_defaults(func=cmd_similar)

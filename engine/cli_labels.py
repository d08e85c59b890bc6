"""`shoebox label …` and `shoebox review …`: the user's own categories."""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli_models import _emit, _err, _open
from engine.learning.names import LabelError


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def cmd_label(args: argparse.Namespace) -> int:
    lib = _open(args)
    try:
        try:
            return _label(lib, args)
        except LabelError as exc:
            return _err(str(exc))
    finally:
        lib.close()


def _label(lib: Any, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        labels = lib.labels()
        if args.json:
            _emit(labels)
            return 0
        if not labels:
            print("No labels yet. Make one: shoebox label create NAME --example ITEM …")
        for label in labels:
            version = f"v{label['version']}" if label["version"] else "not trained"
            line = (
                f"{label['name']}: {label['examples']} examples, {label['negatives']} not, "
                f"{label['auto']} automatic, {label['in_review']} to review ({version})"
            )
            print(line)
            if label["suggest_only"]:
                print(f"    suggestions only — {label['why_suggest_only'] or 'not trained yet'}")
            else:
                print(
                    f"    estimated precision {_percent(label['estimated_precision'])}; "
                    f"audited {_percent(label['audited_precision'])} of {label['audited']} "
                    f"(at least {_percent(label['audited_precision_lower'])}, 95% sure)"
                )
        return 0
    if action == "create":
        label_id = lib.create_label(args.name, args.example or [])
        return _done(args, {"name": args.name, "id": label_id}, f"Created label {args.name}.")
    if action in ("add", "remove"):
        if not args.items:
            return _err(f"label {action}: name at least one item.")
        if action == "add":
            n = lib.label_items(args.name, args.items, negative=args.negative)
            what = "counter-examples" if args.negative else "examples"
        else:
            n = lib.unlabel_items(args.name, args.items, negative=args.negative)
            what = "counter-examples forgotten" if args.negative else "removed"
        return _done(args, {"name": args.name, "changed": n}, f"{args.name}: {n} {what}.")
    if action == "rename":
        lib.rename_label(args.name, args.new_name)
        return _done(args, {"name": args.new_name}, f"Renamed to {args.new_name}.")
    if action == "merge":
        n = lib.merge_labels(args.name, args.into)
        return _done(args, {"name": args.into, "moved": n}, f"Merged into {args.into} ({n} moved).")
    if action == "delete":
        lib.delete_label(args.name)
        return _done(args, {"deleted": args.name}, f"Deleted label {args.name}.")
    if action == "versions":
        versions = lib.label_versions(args.name)
        if args.json:
            _emit(versions)
            return 0
        for v in versions:
            mark = "*" if v["active"] else " "
            ap = v["metrics"].get("ap")
            ap_text = "" if ap is None else f" held-out AP {ap:.3f}"
            extra = f" — {v['reason']}" if v["reason"] else ""
            print(f"{mark} v{v['version']} {v['status']}{ap_text}{extra}")
        return 0
    if action == "rollback":
        version = lib.rollback_label(args.name, args.version)
        return _done(
            args, {"name": args.name, "version": version}, f"{args.name} is at v{version} again."
        )
    return _err(f"unknown label action {action}")


def _done(args: argparse.Namespace, data: dict[str, Any], text: str) -> int:
    if args.json:
        _emit(data)
    else:
        print(text)
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    lib = _open(args)
    try:
        try:
            if args.action is None:
                if args.limit < 1:
                    return _err(f"--limit must be at least 1, not {args.limit}")
                queue = lib.review(args.label, args.limit)
                if args.json:
                    _emit(
                        [
                            {k: s[k] for k in ("id", "label", "score", "why", "reason")}
                            for s in queue
                        ]
                    )
                    return 0
                if not queue:
                    print("Nothing to review.")
                for s in queue:
                    why = ", ".join(str(i) for i in s["why"])
                    print(
                        f"{s['id']:>7} {s['label']}: {s['score']:.2f} ({s['reason']}; like {why})"
                    )
                return 0
            if args.action == "undo":
                undone = lib.review_undo(args.label)
                text = f"Undid: {undone}." if undone else "Nothing to undo."
                return _done(args, {"undone": undone}, text)
            if not args.label:
                return _err(f"review {args.action}: say which label with --label NAME.")
            if not args.items:
                return _err(f"review {args.action}: name at least one item.")
            n = lib.review_decide(args.label, args.items, accept=args.action == "accept")
            return _done(args, {"changed": n}, f"{args.label}: {n} {args.action}ed.")
        except LabelError as exc:
            return _err(str(exc))
    finally:
        lib.close()


def add_parsers(sub: Any, json_flag: argparse.ArgumentParser) -> None:
    p = sub.add_parser("label", help="your own categories, taught from a few examples")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("list", parents=[json_flag], help="labels, with what they learnt")
    a = actions.add_parser("create", parents=[json_flag], help="a new label from examples")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--example", type=int, nargs="+", metavar="ITEM", help="items that are it")
    for name, text in (
        ("add", "add examples (--negative: counter-examples)"),
        ("remove", "remove the label from items, for good (--negative: forget counter-examples)"),
    ):
        a = actions.add_parser(name, parents=[json_flag], help=text)
        a.add_argument("name", metavar="NAME")
        a.add_argument("items", type=int, nargs="+", metavar="ITEM")
        a.add_argument("--negative", action="store_true")
    a = actions.add_parser("rename", parents=[json_flag], help="rename a label")
    a.add_argument("name", metavar="NAME")
    a.add_argument("new_name", metavar="NEW_NAME")
    a = actions.add_parser("merge", parents=[json_flag], help="merge NAME into INTO")
    a.add_argument("name", metavar="NAME")
    a.add_argument("into", metavar="INTO")
    a = actions.add_parser("delete", parents=[json_flag], help="delete a label and what it learnt")
    a.add_argument("name", metavar="NAME")
    a = actions.add_parser("versions", parents=[json_flag], help="a label's trained versions")
    a.add_argument("name", metavar="NAME")
    a = actions.add_parser("rollback", parents=[json_flag], help="go back to an earlier version")
    a.add_argument("name", metavar="NAME")
    a.add_argument("version", type=int, nargs="?", metavar="VERSION")
    p.set_defaults(func=cmd_label)
    for action in actions.choices.values():
        action.set_defaults(func=cmd_label)

    p = sub.add_parser(
        "review",
        parents=[json_flag],
        help="what the labels ask you about; accept, reject, undo",
        description="With no ACTION: the review queue, most useful first. "
        "accept|reject ITEM… --label NAME: answer. undo: take the last answer back.",
    )
    p.add_argument("action", nargs="?", choices=("accept", "reject", "undo"))
    p.add_argument("items", type=int, nargs="*", metavar="ITEM")
    p.add_argument("--label", metavar="NAME")
    p.add_argument("--limit", type=int, default=20, help="how many (default: %(default)s)")
    p.set_defaults(func=cmd_review)

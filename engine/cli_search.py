"""`shoebox search` and `shoebox text`: the search box and the text it reads."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.cli_models import _emit, _err, _open


def cmd_search(args: argparse.Namespace) -> int:
    from engine.search.query import QueryError, parse_date

    if args.limit < 1:
        return _err(f"--limit must be at least 1, not {args.limit}")
    try:
        after = parse_date(args.after, "--after") if args.after else None
        before = parse_date(args.before, "--before") if args.before else None
    except QueryError as exc:
        return _err(str(exc))
    lib = _open(args)
    try:
        try:
            result = lib.search(
                " ".join(args.query),
                kind=args.kind,
                tags=args.tag or (),
                labels=args.label or (),
                after=after,
                before=before,
                folders=args.folder or (),
                limit=args.limit,
            )
        except QueryError as exc:
            return _err(str(exc))
        for note in result.notes:
            print(f"shoebox: {note}", file=sys.stderr)
        if args.json:
            _emit([hit.to_json() for hit in result.hits])
            return 0
        if not result.hits:
            print("Nothing matches.")
        for hit in result.hits:
            first = hit.paths[0] if hit.paths else "(missing)"
            print(f"{hit.score:.4f} {hit.id:>7} {hit.kind:<8} {first}")
            print(f"{'':>22}{hit.why}")
        return 0
    finally:
        lib.close()


def cmd_text(args: argparse.Namespace) -> int:
    lib = _open(args)
    try:
        rows = lib.catalog.conn.execute(
            """SELECT page, source, rotation, confidence, text FROM ocr_pages
               WHERE item_id = ? ORDER BY page""",
            (args.item,),
        ).fetchall()
        if (
            not rows
            and not lib.catalog.conn.execute(
                "SELECT 1 FROM items WHERE id = ?", (args.item,)
            ).fetchone()
        ):
            return _err(f"There is no item {args.item}.")
        pages: list[dict[str, Any]] = [
            {
                "page": int(r[0]) + 1,
                "source": r[1],
                "rotation": int(r[2]),
                "confidence": r[3],
                "text": r[4],
            }
            for r in rows
        ]
        if args.json:
            _emit(pages)
        else:
            for page in pages:
                turned = f", turned {page['rotation']}°" if page["rotation"] else ""
                print(f"--- page {page['page']} ({page['source']}{turned}) ---")
                print(page["text"])
        return 0
    finally:
        lib.close()


def add_parsers(sub: Any, json_flag: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "search",
        parents=[json_flag],
        help="find photos and documents by words, meaning, tags and dates",
        description='Words match exactly (file names, folders, tags, text); "quoted '
        'phrases" too; the whole query also matches by meaning. Inline filters: kind:photo, '
        "kind:document, tag:T, after:DATE, before:DATE, in:FOLDER.",
    )
    p.add_argument("query", nargs="+", metavar="QUERY")
    p.add_argument("--kind", choices=("photo", "document"))
    p.add_argument("--tag", action="append", metavar="T", help="only items with this tag")
    p.add_argument(
        "--label",
        action="append",
        metavar="NAME",
        help="only items with this label",
    )
    p.add_argument("--after", metavar="DATE", help="taken on or after (2023, 2023-06, 2023-06-15)")
    p.add_argument("--before", metavar="DATE", help="taken before")
    p.add_argument("--folder", action="append", metavar="PATH", help="only items under PATH")
    p.add_argument("--limit", type=int, default=20, help="how many (default: %(default)s)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("text", parents=[json_flag], help="the text read from ITEM, page by page")
    p.add_argument("item", type=int, metavar="ITEM")
    p.set_defaults(func=cmd_text)

"""Docs that cannot drift: every CLI command and option, every settings key, every job
state and every stable JSON key is in README.md or docs/*.md.

What is checked is read from the code (the argparse parser, the settings dataclasses,
the ledger's states, `engine.cli.STABLE_JSON_KEYS`), so adding one without writing it
down fails here; and the stable JSON keys are checked against what the commands
really print.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest

from engine import cli
from engine.config import _TABLES, Settings
from engine.jobs.ledger import STATES
from tests.conftest import REPO
from tests.engine.helpers import jpeg
from tests.engine.test_cli import run

DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _docs() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in DOC_FILES)


def _mentions(text: str, word: str) -> bool:
    """`word` appears as a whole token (`--wait` does not match `--wait-for`)."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


# -- commands and options ---------------------------------------------------------------


def _options(parser: argparse.ArgumentParser) -> list[str]:
    """Each optional argument by its longest name (`--help` aside)."""
    return [
        max(action.option_strings, key=len)
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    ]


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def test_the_parser_is_walked() -> None:
    parser = cli.build_parser()
    commands = _commands(parser)
    assert {"import", "status", "sessions", "work"} <= commands.keys()
    assert "--library" in _options(parser)
    assert {"--wait", "--json"} <= set(_options(commands["import"]))


def test_every_command_is_documented() -> None:
    docs = _docs()
    missing = [name for name in _commands(cli.build_parser()) if f"`shoebox {name}" not in docs]
    assert not missing, f"commands missing from README.md/docs: {missing}"


def test_every_option_is_documented_with_its_command() -> None:
    """An option is named on a line that names its command (the command table's row)."""
    lines = _docs().splitlines()
    missing = []
    for name, sub in _commands(cli.build_parser()).items():
        own = [line for line in lines if _mentions(line, f"shoebox {name}")]
        for option in _options(sub):
            if not any(_mentions(line, option) for line in own):
                missing.append(f"shoebox {name} {option}")
    assert not missing, f"options missing from their command's line in the docs: {missing}"


def test_every_global_option_is_documented() -> None:
    docs = _docs()
    missing = [o for o in _options(cli.build_parser()) if not _mentions(docs, o)]
    assert not missing, f"global options missing from README.md/docs: {missing}"


# -- settings ------------------------------------------------------------------------------


def _toml_key(f: Any) -> str:
    key = f.metadata.get("key") if f.metadata else None
    return str(key or f.name.rstrip("_"))


def _settings_keys() -> list[str]:
    """`[table] key` of every setting: the dataclass fields by their TOML names."""
    keys = []
    for table, cls in _TABLES.items():
        for f in fields(cls):
            if not f.init:
                continue  # not a setting (e.g. what loading warned about)
            if f.default_factory is not MISSING and is_dataclass(f.default_factory()):
                continue  # a table of its own ([workers])
            keys.append(f"[{table}] {_toml_key(f)}")
    return keys


def test_settings_keys_match_the_settings_file() -> None:
    """The walk over the dataclasses finds what `settings.toml` is written with."""
    written = {
        f"[{table}] {key}" for table, values in Settings().to_toml_dict().items() for key in values
    }
    assert set(_settings_keys()) == written


def test_every_settings_key_is_documented() -> None:
    docs = _docs()
    missing = [key for key in _settings_keys() if f"`{key}`" not in docs]
    assert not missing, f"settings keys missing from README.md/docs: {missing}"


# -- job states ----------------------------------------------------------------------------


def test_every_job_state_is_documented() -> None:
    docs = _docs()
    missing = [state for state in STATES if f"`{state}`" not in docs]
    assert not missing, f"job states missing from README.md/docs: {missing}"


# -- stable JSON keys ----------------------------------------------------------------------


def _section(text: str, marker: str) -> str:
    """The docs under the heading that names `marker`, up to the next heading as high."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        heading = re.match(r"(#+)\s", line)
        if heading and marker in line:
            level = len(heading.group(1))
            end = next(
                (
                    j
                    for j in range(i + 1, len(lines))
                    if (m := re.match(r"(#+)\s", lines[j])) and len(m.group(1)) <= level
                ),
                len(lines),
            )
            return "\n".join(lines[i:end])
    return ""


@pytest.mark.parametrize("command", sorted(cli.STABLE_JSON_KEYS))
def test_every_stable_json_key_is_documented(command: str) -> None:
    marker = f"`shoebox {command} --json`"
    section = _section(_docs(), marker)
    assert section, f"no heading naming {marker} in README.md/docs"
    missing = [key for key in cli.STABLE_JSON_KEYS[command] if f"`{key}`" not in section]
    assert not missing, f"{marker}: keys missing from its section of the docs: {missing}"


def _keys(data: dict[str, Any]) -> set[str]:
    """Top-level keys and, one level down, `parent.child` for nested objects."""
    found = set(data)
    for key, value in data.items():
        if isinstance(value, dict):
            found |= {f"{key}.{child}" for child in value}
    return found


def _similar_output(capsys: pytest.CaptureFixture[str], lib: str) -> list[dict[str, Any]]:
    """`similar --json` of item 1, after giving the first items a stored vector."""
    import numpy as np

    from engine.library import Library
    from engine.store.db import next_seq
    from engine.vectors import store_vectors

    with Library(Path(lib)) as library, library.catalog.write() as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM items ORDER BY id LIMIT 2")]
        rng = np.random.default_rng(0)
        rows = [(i, "torchvision:mobilenet_v2", rng.standard_normal(8), "d") for i in ids]
        store_vectors(conn, rows, next_seq(conn))
    found = run(capsys, "--library", lib, "similar", str(ids[0]), "--json")
    assert isinstance(found, list)
    return found


def _label_outputs(capsys: pytest.CaptureFixture[str], lib: str) -> dict[str, list[Any]]:
    """`label list --json` and `review --json` of a label trained on stored vectors."""
    import numpy as np

    from engine.library import Library
    from engine.store.db import next_seq
    from engine.vectors import store_vectors
    from tests.engine.jobstages import run_until_idle

    with Library(Path(lib)) as library:
        library.settings.models.embed = "torchvision:mobilenet_v2"
        library.settings.labels.debounce_s = 0.0
        library.apply_settings()
        with library.catalog.write() as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM items ORDER BY id")]
            rng = np.random.default_rng(1)
            rows = [(i, "torchvision:mobilenet_v2", rng.standard_normal(8), "d") for i in ids]
            store_vectors(conn, rows, next_seq(conn))
        library.create_label("mine", ids[:1])
        run_until_idle(library)
    return {
        "label list": run(capsys, "--library", lib, "label", "list", "--json"),
        "review": run(capsys, "--library", lib, "review", "--json"),
    }


def test_commands_emit_their_stable_json_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lib = str(tmp_path / "lib")
    for i in range(2):
        jpeg(tmp_path / "src" / f"{i}.jpg", i)
    (tmp_path / "src" / "empty.jpg").write_bytes(b"")
    emitted: dict[str, list[dict[str, Any]]] = {
        "import": [run(capsys, "--library", lib, "import", str(tmp_path / "src"), "--json")],
        "status": [run(capsys, "--library", lib, "status", "--json")],
        "sessions": run(capsys, "--library", lib, "sessions", "--json"),
        "items": run(capsys, "--library", lib, "items", "--json"),
        "similar": _similar_output(capsys, lib),
        **_label_outputs(capsys, lib),
        "doctor": [run(capsys, "--library", lib, "doctor", "--json")],
        "metrics": [run(capsys, "--library", lib, "metrics", "--json")],
    }
    assert emitted.keys() == cli.STABLE_JSON_KEYS.keys()
    for command, objects in emitted.items():
        assert objects, command
        stable = set(cli.STABLE_JSON_KEYS[command])
        for data in objects:
            keys = _keys(data)
            assert stable <= keys, f"{command} --json lacks {sorted(stable - keys)}"
            # and nothing at the top level that is not named stable (or a job state's count)
            extra = set(data) - stable - set(STATES)
            assert not extra, f"{command} --json emits keys not in STABLE_JSON_KEYS: {extra}"

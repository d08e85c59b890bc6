"""A date from the file's modification time is a guess: marked so in the JSON and the
app, never shown as "Taken" (issue 16, "Metadata that users trust")."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from engine.browse import GUESSED_DATE_LABEL, grid_rows, item_detail
from engine.library import Library
from engine.queries import items
from tests.corpus import write_jpeg
from tests.engine.helpers import jpeg


def test_a_file_date_is_a_guess_and_a_camera_date_is_taken(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "src" / "camera.jpg", (64, 48), taken_at=datetime(2019, 5, 4, 3, 2, 1))
    jpeg(tmp_path / "src" / "plain.jpg", 1)
    with Library(tmp_path / "lib") as lib:
        lib.import_paths([str(tmp_path / "src")])
        from tests.engine.jobstages import run_until_idle

        run_until_idle(lib)
        conn = lib.catalog.conn
        by_name = {Path(i["paths"][0]).name: i for i in items(conn)}
        camera, plain = by_name["camera.jpg"], by_name["plain.jpg"]
        assert camera["taken_at"].startswith("2019-05-04T03:02:01")
        assert camera["taken_at_source"] == "exif-original" and not camera["taken_at_guess"]
        assert plain["taken_at"] and plain["taken_at_source"] == "file-mtime"
        assert plain["taken_at_guess"] is True

        facts = dict(item_detail(conn, plain["id"]).facts)  # type: ignore[union-attr]
        assert GUESSED_DATE_LABEL in facts and "Taken" not in facts
        assert "Taken" in dict(item_detail(conn, camera["id"]).facts)  # type: ignore[union-attr]
        rows = grid_rows(conn, [plain["id"], camera["id"]])
        assert rows[plain["id"]].taken_guess and not rows[camera["id"]].taken_guess

from __future__ import annotations

from pathlib import Path

from desktop.operations import library as library_ops
from engine.library import Library
from tests.engine.helpers import jpeg


def test_opening_an_item_moves_its_waiting_jobs_to_the_interactive_lane(
    library: Library, tmp_path: Path
) -> None:
    for i in range(3):
        jpeg(tmp_path / "src" / f"{i}.jpg", i)
    library.import_paths([tmp_path / "src"])
    assert library_ops.look_at(library, 3) == 2
    lanes = library.status()["lanes"]
    assert (lanes["interactive"]["queued"], lanes["import"]["queued"]) == (2, 4)

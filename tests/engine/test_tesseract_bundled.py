"""The tesseract inside a bundle: found first, run with its own data and libraries.

A frozen program is simulated (`sys.frozen`, `sys._MEIPASS`) with the layout
packaging/shoebox.spec makes: `tesseract/tesseract`, `tesseract/lib/`,
`tesseract/tessdata/` (English data and the configs `tsv` needs). The program there is
a wrapper that records how it was called and then runs the real tesseract, so the
text read proves the data was found through `--tessdata-dir`.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from engine.ocr import tesseract as tess

SYSTEM_TESSERACT = shutil.which("tesseract")
SYSTEM_TESSDATA = Path("/usr/share/tesseract-ocr/5/tessdata")

pytestmark = pytest.mark.skipif(
    SYSTEM_TESSERACT is None or not (SYSTEM_TESSDATA / "eng.traineddata").exists(),
    reason="needs tesseract with English data (apt install tesseract-ocr)",
)


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    base = tmp_path / "_internal"
    folder = base / "tesseract"
    (folder / "lib").mkdir(parents=True)
    data = folder / "tessdata"
    data.mkdir()
    shutil.copy(SYSTEM_TESSDATA / "eng.traineddata", data)
    shutil.copytree(SYSTEM_TESSDATA / "configs", data / "configs")
    log = tmp_path / "calls.log"
    wrapper = folder / "tesseract"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'echo "ARGS $*" >> "{log}"\n'
        f'echo "LIB $LD_LIBRARY_PATH" >> "{log}"\n'
        # the system's own data must not be what is read
        "unset TESSDATA_PREFIX\n"
        f'exec "{SYSTEM_TESSERACT}" "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(base), raising=False)
    monkeypatch.delenv(tess.TESSERACT_ENV, raising=False)
    tess.clear_caches()
    yield folder
    tess.clear_caches()


def _page(text: str) -> Image.Image:
    img = Image.new("L", (900, 160), 255)
    ImageDraw.Draw(img).text((30, 50), text, fill=0, font=ImageFont.load_default(size=48))
    return img


def test_the_bundled_copy_is_found_before_the_system_one(bundle: Path) -> None:
    assert tess.find_tesseract() == str(bundle / "tesseract")
    assert tess.tesseract_options(str(bundle / "tesseract")) == [
        "--tessdata-dir",
        str(bundle / "tessdata"),
    ]
    assert SYSTEM_TESSERACT is not None
    assert tess.tesseract_options(SYSTEM_TESSERACT) == []


def test_the_bundled_copy_reads_with_its_own_data_and_libraries(bundle: Path) -> None:
    page = tess.read_image(_page("Invoice 4711 paid"), "eng", timeout_s=60)
    assert "4711" in page.text and "Invoice" in page.text
    assert tess.installed_languages() == {"eng"}  # the bundle's data, not the system's
    calls = (bundle.parent.parent / "calls.log").read_text().splitlines()
    args = [line for line in calls if line.startswith("ARGS ")]
    libs = {line for line in calls if line.startswith("LIB ")}
    assert args and all(f"--tessdata-dir {bundle / 'tessdata'}" in line for line in args)
    assert libs == {f"LIB {bundle / 'lib'}"}


def test_an_override_wins_over_the_bundled_copy(
    bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert SYSTEM_TESSERACT is not None
    monkeypatch.setenv(tess.TESSERACT_ENV, SYSTEM_TESSERACT)
    assert tess.find_tesseract() == SYSTEM_TESSERACT


def test_a_system_copy_in_a_bundle_gets_the_systems_libraries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # PyInstaller's bootloader points LD_LIBRARY_PATH at the bundle and keeps the original.
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)  # no bundled copy
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    monkeypatch.setenv("LD_LIBRARY_PATH_ORIG", "/opt/site/lib")
    assert SYSTEM_TESSERACT is not None
    assert tess.bundled_tesseract() is None
    assert tess.child_env(SYSTEM_TESSERACT)["LD_LIBRARY_PATH"] == "/opt/site/lib"
    monkeypatch.delenv("LD_LIBRARY_PATH_ORIG")
    assert "LD_LIBRARY_PATH" not in tess.child_env(SYSTEM_TESSERACT)
    assert os.environ["LD_LIBRARY_PATH"] == str(tmp_path)  # ours is left alone

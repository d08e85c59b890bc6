"""Sources that change or vanish during import (issue 16): a source folder that goes
away (an unplugged drive) and comes back; files deleted, truncated, replaced or still
growing while Shoebox works on them. Each ends with the invariants of
`Harness.check` (nothing lost or doubled, the catalog intact, originals untouched by
Shoebox) and a record (kinds source_unplugged, file_deleted, file_truncated,
file_replaced, file_growing).

Unplugging is simulated by renaming the drive's folder away (the fast slice) and, in
the long variant, by unmounting a real tmpfs where mounting is allowed.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3
from PIL import Image

from engine.errors import OFFLINE_SUFFIX
from engine.jobs.host import CHANGED_REASON
from engine.pipeline.media import GONE_REASON
from tests.engine.helpers import jpeg
from tests.reliability.harness import Check, Harness, seeds

WAIT_S = 90.0


def _usb_tree(h: Harness, folder: Path, n: int) -> list[Path]:
    """`n` distinct JPEGs in two sub-folders of `folder` (the drive's photos)."""
    return [
        jpeg(folder / f"y{i % 2}" / f"u{i:03d}.jpg", h.seed * 7_919 + 50_000 + i) for i in range(n)
    ]


def _jobs(h: Harness, where: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return h.read(
        f"""SELECT j.id, j.item_id, j.stage, j.state, coalesce(j.error, '') FROM jobs j
            WHERE j.item_id IS NOT NULL AND {where} ORDER BY j.id""",
        params,
    )


def _items_under(h: Harness, folder: Path) -> set[int]:
    base = os.fsencode(str(folder))
    return {
        int(r[0])
        for r in h.read(
            "SELECT item_id FROM paths WHERE raw > ? AND raw < ?", (base + b"/", base + b"0")
        )
    }


def _item_of(h: Harness, path: Path) -> int:
    rows = h.read("SELECT item_id FROM paths WHERE raw = ?", (os.fsencode(str(path)),))
    assert rows, f"{path} is not catalogued {h.tag}"
    return int(rows[0][0])


def _work_json(h: Harness, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = h.work(env)
    assert proc.returncode == 0, f"work failed ({proc.returncode}): {proc.stderr[-3000:]} {h.tag}"
    return dict(json.loads(proc.stdout))


def _expect_problem(check: Check, text: str) -> None:
    """A problem the test caused on purpose (a file it deleted) is taken off the list."""
    assert text in check.problems, f"expected {text!r} among {check.problems}"
    check.problems.remove(text)


# -- an unplugged drive ---------------------------------------------------------------


class _RenameDrive:
    """Unplugging simulated: the drive's folder is renamed away and back (the mount
    point, an empty folder, stays, as it does when a drive is unmounted)."""

    kind = "rename"

    def __init__(self, folder: Path, away: Path) -> None:
        self.folder, self.away = folder, away

    def unplug(self) -> None:
        os.rename(self.folder, self.away)

    def plug(self) -> None:
        os.rename(self.away, self.folder)


class _TmpfsDrive:
    """A real mount: a tmpfs at `mount`; unplugging copies its files aside and unmounts
    it (the path becomes an empty mount-point folder), plugging mounts it again and
    puts the same bytes back with their mtimes (a drive comes back unchanged)."""

    kind = "tmpfs"

    def __init__(self, mount: Path, keep: Path) -> None:
        self.mount, self.keep = mount, keep
        mount.mkdir(parents=True, exist_ok=True)
        _mount(mount)

    def unplug(self) -> None:
        shutil.copytree(self.mount, self.keep, copy_function=shutil.copy2)
        subprocess.run(["umount", str(self.mount)], check=True)

    def plug(self) -> None:
        _mount(self.mount)
        shutil.copytree(self.keep, self.mount, copy_function=shutil.copy2, dirs_exist_ok=True)
        shutil.rmtree(self.keep)

    def close(self) -> None:
        subprocess.run(["umount", str(self.mount)], check=False, capture_output=True)


def _mount(path: Path) -> None:
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(
            f"mounting a tmpfs is not permitted here ({proc.stderr.strip() or proc.returncode});"
            " test_unplugged_drive_waits_then_resumes proves the same with a renamed folder"
        )


def _unplugged(tmp_path: Path, seed: int, *, n_internal: int, n_usb: int, tmpfs: bool) -> None:
    h = Harness(tmp_path, seed)
    h.build_source(n_internal, duplicates=0)
    usb = h.source / "usb"  # the mount point; "Photos" is the drive's folder
    drive: _RenameDrive | _TmpfsDrive
    if tmpfs:
        drive = _TmpfsDrive(usb, tmp_path / "kept")
        folder = usb / "Photos"
    else:
        folder = usb / "Photos"
        drive = _RenameDrive(folder, tmp_path / "away")
    try:
        _usb_tree(h, folder, n_usb)
        h._originals = h.checksums()
        distinct = len({d for d, _ in h._originals.values()})
        h.import_source()
        on_usb = _items_under(h, usb)
        assert len(on_usb) == n_usb, h.tag
        jobs_per_item = h.total_jobs() // distinct

        drive.unplug()
        stats = _work_json(h)  # must end: waiting jobs are not work to do
        waiting = _jobs(h, "j.state = 'waiting'")
        assert {int(r[1]) for r in waiting} == on_usb, f"waiting: {waiting[:4]} {h.tag}"
        assert len(waiting) == jobs_per_item * n_usb, h.tag
        reason = f"The folder {folder} {OFFLINE_SUFFIX}"  # the mount point stays
        assert {str(r[4]) for r in waiting} == {reason}, f"{waiting[0]} {h.tag}"
        assert h.count("state IN ('failed', 'dead', 'skipped')") == 0, h.tag
        assert h.count("state = 'done'") == jobs_per_item * n_internal, h.tag
        assert stats["done"] == jobs_per_item * n_internal and stats["failed"] == 0, stats
        missing = h.read("SELECT count(*) FROM paths WHERE missing = 1")[0][0]
        assert missing == 0, f"offline files were marked missing {h.tag}"

        # Still unplugged: another start changes nothing and ends at once; no waiting
        # job is even started (a stage's wake must not run them, nor park the stage).
        started = h.read("SELECT max(started_at) FROM jobs WHERE state = 'waiting'")
        again = _work_json(h)
        assert again["done"] == again["failed"] == again["dead"] == 0, again
        assert h.count("state = 'waiting'") == len(waiting), h.tag
        assert h.read("SELECT max(started_at) FROM jobs WHERE state = 'waiting'") == started

        drive.plug()
        back = _work_json(h)
        assert back["done"] == jobs_per_item * n_usb and back["failed"] == 0, back
        h.next_start_clean()
        check = h.check(distinct)
        h.record(
            "source_unplugged",
            check,
            faults=1,
            drive=drive.kind,
            waited=len(waiting),
            done_while_unplugged=stats["done"],
            failed_while_unplugged=stats["failed"] + stats["dead"],
        )
        h.assert_ok(check)
    finally:
        if isinstance(drive, _TmpfsDrive):
            drive.close()


def test_unplugged_drive_waits_then_resumes(tmp_path: Path) -> None:
    """The drive's folder is gone after import: its items' jobs wait with a reason that
    names the folder, the internal disk's items finish, `work --until-idle` ends; once
    it is back, `work --until-idle` finishes everything, nothing doubled."""
    _unplugged(tmp_path, seeds((21,))[0], n_internal=6, n_usb=5, tmpfs=False)


@pytest.mark.reliability
@pytest.mark.parametrize("seed", seeds(range(300, 303)))
def test_unplugged_drive_full(tmp_path: Path, seed: int) -> None:
    _unplugged(tmp_path, seed, n_internal=24, n_usb=24, tmpfs=False)


@pytest.mark.reliability
def test_unplugged_tmpfs_drive(tmp_path: Path) -> None:
    """The same with a real mount that is unmounted (root, CAP_SYS_ADMIN)."""
    _unplugged(tmp_path, seeds((310,))[0], n_internal=12, n_usb=12, tmpfs=True)


def _unplug_mid_work(tmp_path: Path, seed: int) -> None:
    """Unplugged while a job of the drive is running (it stalls on purpose): that job
    and the rest of the drive's wait; nothing fails; plugged back, all finish."""
    h = Harness(tmp_path, seed)
    h.build_source(8, duplicates=0)
    folder = h.source / "usb" / "Photos"
    files = _usb_tree(h, folder, 8)
    h._originals = h.checksums()
    distinct = len({d for d, _ in h._originals.values()})
    h.import_source()
    drive = _RenameDrive(folder, tmp_path / "away")
    slow = files[0].name
    host = h.start(
        "work", "--until-idle", "--json",
        env=h.env(SHOEBOX_FAULT_SLOW_PATH=slow, SHOEBOX_FAULT_SLOW_S="2"),
    )  # fmt: skip
    item = _item_of(h, files[0])
    deadline = time.monotonic() + WAIT_S
    while not h.count(f"state = 'running' AND item_id = {item}"):
        assert host.poll() is None and time.monotonic() < deadline, f"never ran {h.tag}"
        time.sleep(0.01)
    drive.unplug()
    _, err = host.communicate(timeout=WAIT_S)
    assert host.returncode == 0, err[-3000:]
    assert h.count(f"item_id = {item} AND state = 'waiting'") >= 1, h.tag
    assert h.count("state IN ('failed', 'dead', 'skipped')") == 0, _jobs(h, "1")
    waited = h.count("state = 'waiting'")
    drive.plug()
    h.work_clean()
    h.next_start_clean()
    check = h.check(distinct)
    h.record("source_unplugged", check, faults=1, drive="rename", moment="mid_job", waited=waited)
    h.assert_ok(check)


def test_unplugged_while_a_job_of_the_drive_runs(tmp_path: Path) -> None:
    _unplug_mid_work(tmp_path, seeds((22,))[0])


@pytest.mark.reliability
@pytest.mark.parametrize("seed", seeds(range(320, 325)))
def test_unplugged_while_a_job_of_the_drive_runs_full(tmp_path: Path, seed: int) -> None:
    _unplug_mid_work(tmp_path, seed)


# -- files that change after they were catalogued ------------------------------------


def _start_slow(h: Harness, target: Path) -> subprocess.Popen[str]:
    """`work` with every job of `target` stalling 2 s before its stage reads the file;
    returns once one of them is running (the moment to change the file)."""
    host = h.start(
        "work", "--until-idle", "--json",
        env=h.env(SHOEBOX_FAULT_SLOW_PATH=target.name, SHOEBOX_FAULT_SLOW_S="2"),
    )  # fmt: skip
    item = _item_of(h, target)
    deadline = time.monotonic() + WAIT_S
    while not h.count(f"state = 'running' AND item_id = {item}"):
        assert host.poll() is None and time.monotonic() < deadline, f"never ran {h.tag}"
        time.sleep(0.01)
    return host


def _finish(h: Harness, host: subprocess.Popen[str] | None) -> None:
    if host is not None:
        _, err = host.communicate(timeout=WAIT_S)
        assert host.returncode == 0, err[-3000:]
    else:
        _work_json(h)
    h.work_clean()
    h.next_start_clean()


def _changed(tmp_path: Path, seed: int, how: str, moment: str) -> None:
    h = Harness(tmp_path, seed)
    distinct = h.build_source(8, duplicates=0)
    h.import_source()
    target = h.source / "d1" / "p0001.jpg"
    old_item = _item_of(h, target)
    others = {i for (i,) in h.read("SELECT id FROM items")} - {old_item}
    host = _start_slow(h, target) if moment == "mid_job" else None
    original = target.read_bytes()
    if how == "deleted":
        target.unlink()
    elif how == "truncated":
        with target.open("r+b") as fh:
            fh.truncate(len(original) // 2)
    else:  # replaced: another photo under the same name (a new mtime, as cp gives it)
        fresh = jpeg(h.root / "other.jpg", seed * 31 + 7)
        os.replace(fresh, target)
    _finish(h, host)

    rel = str(target.relative_to(h.source))
    if how == "deleted":
        del h._originals[rel]  # the test's own change: left out of "originals changed"
    else:
        h._originals = h.checksums()
    expected_items = distinct if how == "deleted" else distinct + 1
    check = h.check(expected_items, allow_failed=True)
    if how == "deleted":
        n = len(h._originals)
        _expect_problem(check, f"{n + 1} catalogued paths for {n} source files")
    not_done = _jobs(h, "j.state != 'done'")
    old_jobs = _jobs(h, "j.item_id = ?", (old_item,))
    # Every other item finished; the old item's jobs ended with the plain reason.
    assert all(int(r[1]) not in others for r in not_done), f"{not_done} {h.tag}"
    want = GONE_REASON if how == "deleted" else CHANGED_REASON
    assert {(r[3], r[4]) for r in old_jobs} == {("failed", want)}, f"{old_jobs} {h.tag}"
    # Nothing of the new bytes was stored as the old item's.
    assert not h.read("SELECT 1 FROM thumbnails WHERE item_id = ?", (old_item,)), h.tag
    assert not h.read("SELECT 1 FROM results WHERE item_id = ?", (old_item,)), h.tag
    new_outcome = ""
    if how != "deleted":
        new_hash = blake3(target.read_bytes()).hexdigest()
        [(new_item,)] = h.read("SELECT id FROM items WHERE hash = ?", (new_hash,))
        assert _item_of(h, target) == new_item, h.tag
        new_jobs = _jobs(h, "j.item_id = ?", (new_item,))
        if how == "replaced":  # a good photo: processed as its own item
            assert {r[3] for r in new_jobs} == {"done"}, f"{new_jobs} {h.tag}"
        else:  # half a JPEG: a bad file of its own, with the bad file's reason
            failed = [r for r in new_jobs if r[3] == "failed"]
            assert failed and all("truncated" in str(r[4]) for r in failed), f"{new_jobs}"
        new_outcome = ",".join(f"{r[2]}:{r[3]}" for r in new_jobs)
    h.record(
        f"file_{how}",
        check,
        faults=1,
        moment=moment,
        old_item=",".join(f"{r[2]}:{r[3]}" for r in old_jobs),
        new_item=new_outcome,
    )
    h.assert_ok(check)


@pytest.mark.parametrize(
    ("how", "moment"),
    [("deleted", "after_catalogue"), ("replaced", "after_catalogue"), ("truncated", "mid_job")],
)
def test_file_changed_after_cataloguing(tmp_path: Path, how: str, moment: str) -> None:
    """Deleted: its jobs fail "moved or deleted", nothing else stops. Truncated or
    replaced: the new bytes are catalogued as an item of their own; the old item gets
    no result from them and its jobs say the file was changed."""
    _changed(tmp_path, seeds((23,))[0], how, moment)


@pytest.mark.reliability
@pytest.mark.parametrize("moment", ["after_catalogue", "mid_job"])
@pytest.mark.parametrize("how", ["deleted", "truncated", "replaced"])
@pytest.mark.parametrize("seed", seeds(range(330, 332)))
def test_file_changed_full(tmp_path: Path, how: str, moment: str, seed: int) -> None:
    _changed(tmp_path, seed, how, moment)


# -- a file still being copied -----------------------------------------------------


def _big_jpeg(seed: int) -> bytes:
    """A noisy photo of ~1–2 MB (so a slow copy takes seconds)."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (900, 700), rng.randbytes(900 * 700 * 3))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92)
    return out.getvalue()


def _growing(tmp_path: Path, seed: int, chunk: int) -> None:
    """A copy writes a photo in small chunks, every 50 ms, from before the import
    starts until after it has begun scanning: the half-copied file is never
    catalogued; the whole one is, once, after it settles."""
    h = Harness(tmp_path, seed)
    h.build_source(6, duplicates=0)
    data = _big_jpeg(seed)
    target = h.source / "incoming" / "copying.jpg"
    target.parent.mkdir(parents=True)
    seen_scanning = threading.Event()
    written_when_seen: list[int] = []

    def copy() -> None:
        # Slowly (256 bytes a write) until the import has begun, so however long the
        # child takes to start, the copy is still going, and going on, when it scans;
        # then at full pace.
        with target.open("wb") as fh:
            pos = 0
            while pos < len(data):
                step = chunk if seen_scanning.is_set() else 256
                fh.write(data[pos : pos + step])
                fh.flush()
                pos += step
                if not seen_scanning.is_set() and (h.library / "catalog.db").exists():
                    try:
                        if h.read("SELECT 1 FROM sessions LIMIT 1"):
                            seen_scanning.set()
                            written_when_seen.append(pos)
                    except Exception:  # the catalog is being created: not yet
                        pass
                time.sleep(0.05)

    writer = threading.Thread(target=copy)
    writer.start()
    while not target.exists() or target.stat().st_size == 0:
        time.sleep(0.005)
    summary = h.import_source()
    writer.join()
    assert seen_scanning.is_set() and written_when_seen[0] < len(data), (
        f"the copy ended before the import began: nothing proved {h.tag}"
    )
    h._originals = h.checksums()
    distinct = len({d for d, _ in h._originals.values()})
    full = blake3(data).hexdigest()
    rows = h.read("SELECT hash, size FROM items WHERE id = ?", (_item_of(h, target),))
    assert rows == [(full, len(data))], f"{rows} vs {len(data)} bytes {h.tag}"
    assert summary["changing"] == 0, summary
    h.work_clean()
    h.next_start_clean()
    check = h.check(distinct)
    h.record(
        "file_growing",
        check,
        faults=1,
        bytes=len(data),
        bytes_when_import_began=written_when_seen[0],
        chunk=chunk,
    )
    h.assert_ok(check)


def test_file_still_growing_during_import(tmp_path: Path) -> None:
    _growing(tmp_path, seeds((24,))[0], chunk=16 * 1024)


@pytest.mark.reliability
@pytest.mark.parametrize("seed", seeds(range(340, 343)))
def test_file_still_growing_full(tmp_path: Path, seed: int) -> None:
    _growing(tmp_path, seed, chunk=4 * 1024)


# -- the importer and the watcher when a folder goes away -----------------------------


def _scan_problems(lib: Any, session_id: int) -> list[tuple[str, str]]:
    rows = lib.catalog.read(
        "SELECT display, reason FROM scan_problems WHERE session_id = ? ORDER BY id", (session_id,)
    )
    return [(str(r[0]), str(r[1])) for r in rows]


def test_a_root_that_vanishes_mid_scan_ends_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drive is pulled while its folder is being scanned (after the 5th file is
    found): the import ends normally, says the folder disappeared, keeps what it had
    catalogued, marks nothing missing; imported again once back, it takes the rest."""
    import engine.importing.importer as importer
    from engine.importing.scan import FoundFile
    from engine.library import Library

    src = tmp_path / "usb" / "Photos"
    away = tmp_path / "away"
    for i in range(12):
        jpeg(src / f"f{i // 4}" / f"v{i:02d}.jpg", 90_000 + i)
    real_walk = importer.walk

    def walk_then_unplug(roots: list[str], **kw: Any) -> Any:
        found = 0
        for entry in real_walk(roots, **kw):
            yield entry
            found += isinstance(entry, FoundFile)
            if found == 5 and not away.exists():
                os.rename(src, away)

    monkeypatch.setattr(importer, "walk", walk_then_unplug)
    monkeypatch.setattr(importer, "BATCH_FILES", 2)  # batches commit as the scan goes
    lib = Library(tmp_path / "lib")
    try:
        first = lib.import_paths([str(src)])
        assert away.exists(), "the folder was never unplugged"
        assert 4 <= first.items_new < 12, first
        problems = _scan_problems(lib, first.session_id)
        assert (str(src), importer.VANISHED_REASON) in problems, problems
        assert first.missing == 0
        assert lib.catalog.read("SELECT count(*) FROM paths WHERE missing = 1")[0][0] == 0
        state = lib.catalog.read("SELECT state FROM sessions WHERE id = ?", (first.session_id,))
        assert state[0][0] == "processing", state
        monkeypatch.setattr(importer, "walk", real_walk)
        # Imported again while it is unplugged: the same reason, and its files, known
        # now, are offline, not deleted.
        offline = lib.import_paths([str(src)])
        assert offline.missing == 0 and offline.items_new == 0, offline
        assert _scan_problems(lib, offline.session_id) == [(str(src), importer.VANISHED_REASON)]
        assert lib.catalog.read("SELECT count(*) FROM paths WHERE missing = 1")[0][0] == 0
        os.rename(away, src)
        again = lib.import_paths([str(src)])
        assert (again.items_new, again.unchanged) == (12 - first.items_new, first.items_new)
        assert lib.catalog.read("SELECT count(*) FROM items")[0][0] == 12
        write_source_record(
            "import_root_vanished",
            ok=True,
            catalogued_before=first.items_new,
            problems=len(problems),
            marked_missing=first.missing,
        )
    finally:
        lib.close()


def write_source_record(kind: str, *, ok: bool, **counts: Any) -> None:
    from tests.reliability.harness import write_record

    write_record({"suite": "faults", "kind": kind, "seed": 0, "ok": ok, "faults": 1, **counts})


@pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")
@pytest.mark.parametrize("polling", [False, True], ids=["native", "polling"])
def test_a_watched_folder_that_goes_offline_is_not_marked_missing(
    tmp_path: Path, polling: bool
) -> None:
    """A watched folder unplugged: the watcher says it is unavailable and marks none
    of its files missing; plugged back, nothing is re-imported; a file really deleted
    afterwards is still marked missing."""
    from engine.library import Library
    from engine.watch import FolderWatcher, add_watch

    folder = tmp_path / "usb" / "Photos"
    away = tmp_path / "away"
    files = [jpeg(folder / f"w{i}.jpg", 91_000 + i) for i in range(4)]
    lib = Library(tmp_path / "lib")

    def missing() -> int:
        return int(lib.catalog.read("SELECT count(*) FROM paths WHERE missing = 1")[0][0])

    def wait_for(cond: Any, what: str) -> None:
        deadline = time.monotonic() + 20
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    try:
        add_watch(lib, folder)
        watcher = FolderWatcher(
            lib, debounce_s=0.1, max_batch_delay_s=0.5, refresh_interval_s=0.2,
            poll_interval_s=0.2, force_polling=polling,
        )  # fmt: skip
        with watcher:
            assert watcher.wait_ready(20)
            batches = watcher.stats.batches
            os.rename(folder, away)
            wait_for(lambda: [s.mode for s in watcher.states()] == ["unavailable"], "unavailable")
            time.sleep(1.0)  # events of the unplugging (and a poll or two) arrive
            assert watcher.wait_idle(20)
            assert missing() == 0 and watcher.stats.marked_missing == 0, watcher.stats
            os.rename(away, folder)
            wait_for(lambda: [s.mode for s in watcher.states()] != ["unavailable"], "back")
            assert watcher.wait_idle(20)
            assert watcher.stats.batches == batches, "an unchanged folder was re-imported"
            files[0].unlink()
            wait_for(lambda: missing() == 1, "the deleted file marked missing")
        write_source_record(
            "watched_offline",
            ok=True,
            observer="polling" if polling else "native",
            marked_missing_while_offline=0,
        )
    finally:
        lib.close()

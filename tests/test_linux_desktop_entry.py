"""packaging/linux: the desktop entry is valid and install.sh puts it (and the icons) in
place pointing at the bundle, and takes everything away again."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

LINUX = Path(__file__).resolve().parent.parent / "packaging" / "linux"
ENTRY = LINUX / "shoebox.desktop"


def read_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def test_the_entry_opens_folders_and_pictures_with_shoebox() -> None:
    entry = read_entry(ENTRY)
    assert entry["Type"] == "Application"
    assert entry["Name"] == "Shoebox"
    assert entry["Exec"] == "shoebox %F"  # %F: the dropped folders and files, as paths
    assert entry["Icon"] == "shoebox"
    assert entry["Terminal"] == "false"
    assert entry["StartupWMClass"] == "Shoebox"  # the class Qt gives the window (X11)
    mime = entry["MimeType"].rstrip(";").split(";")
    assert "inode/directory" in mime and "image/jpeg" in mime and "application/pdf" in mime


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils")
def test_desktop_file_validate_accepts_it() -> None:
    done = subprocess.run(["desktop-file-validate", str(ENTRY)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_icons_are_there_at_every_size() -> None:
    from PIL import Image

    assert (LINUX / "icons" / "shoebox.svg").read_text().lstrip().startswith("<?xml")
    for size in (48, 128, 256):
        with Image.open(LINUX / "icons" / f"shoebox-{size}.png") as img:
            assert img.size == (size, size) and img.mode == "RGBA"


def test_install_points_at_the_bundle_and_uninstall_removes_it(tmp_path: Path) -> None:
    bundle = tmp_path / "Shoebox app" / "shoebox"  # a space: Exec must quote it
    bundle.mkdir(parents=True)
    exe = bundle / "shoebox"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    data = tmp_path / "data"
    env = {**os.environ, "XDG_DATA_HOME": str(data)}
    script = str(LINUX / "install.sh")
    subprocess.run([script, str(bundle)], env=env, check=True, capture_output=True)
    entry = read_entry(data / "applications" / "shoebox.desktop")
    assert entry["Exec"] == f'"{exe}" %F'
    assert entry["TryExec"] == str(exe)
    for size in (48, 128, 256):
        assert (data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "shoebox.png").is_file()
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / "shoebox.svg").is_file()

    subprocess.run([script, "--uninstall"], env=env, check=True, capture_output=True)
    left = [p for p in data.rglob("*") if p.is_file()]
    # update-desktop-database's cache may stay, but it no longer names Shoebox
    assert all(p.name == "mimeinfo.cache" for p in left), left
    assert not any("shoebox" in p.read_text() for p in left)


def test_install_refuses_a_folder_without_the_program(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    done = subprocess.run(
        [str(LINUX / "install.sh"), str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1 and "make bundle" in done.stderr
    assert not (tmp_path / "data" / "applications" / "shoebox.desktop").exists()

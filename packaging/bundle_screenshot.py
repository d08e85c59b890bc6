"""A screenshot of the bundle's main window, as the X server shows it.

`packaging/bundle_screenshot.py [OUT.png]` (default docs/screenshots/bundle-main-window.png):
on a private Xvfb, with a new empty HOME and `env -i`, it imports a generated folder of
photos with the bundle's own CLI (`shoebox import --wait`), starts `dist/shoebox/shoebox`
with no arguments, waits for its window (xdotool), and grabs the whole screen.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "packaging"))  # (not `packaging.`: PyPI's package has that name)

from screenshots import display, make_folder  # noqa: E402

GRAB = """
import sys
from PySide6.QtGui import QGuiApplication
app = QGuiApplication(sys.argv[:1])
screen = app.primaryScreen()
ok = screen.grabWindow(0, 0, 0, 1440, 900).save(sys.argv[1])  # the window, moved to 0,0
sys.exit(0 if ok else 1)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "out", nargs="?", type=Path, default=REPO / "docs/screenshots/bundle-main-window.png"
    )
    parser.add_argument("--bundle", type=Path, default=REPO / "dist" / "shoebox")
    parser.add_argument("--photos", type=int, default=48)
    args = parser.parse_args()
    exe = str(args.bundle / "shoebox")
    with tempfile.TemporaryDirectory(prefix="shoebox-bundle-shot-") as tmp, display() as where:
        home = Path(tmp) / "home"
        home.mkdir()
        folder = make_folder(Path(tmp) / "pictures", args.photos)
        env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        subprocess.run([exe, "import", "--wait", str(folder)], env=env, check=True)
        env.update(DISPLAY=os.environ["DISPLAY"], QT_QPA_PLATFORM="xcb")
        app = subprocess.Popen([exe], env=env, start_new_session=True)
        try:
            found = subprocess.run(
                ["xdotool", "search", "--sync", "--onlyvisible", "--name", "Shoebox$"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            window = found.stdout.split()[0]
            subprocess.run(["xdotool", "windowmove", window, "0", "0"], check=True)
            subprocess.run(["xdotool", "windowsize", window, "1440", "900"], check=True)
            time.sleep(4)  # thumbnails decode and paint
            args.out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [sys.executable, "-c", GRAB, str(args.out)],
                env={**os.environ, "QT_QPA_PLATFORM": "xcb"},
                check=True,
            )
        finally:
            app.send_signal(signal.SIGTERM)
            app.wait(timeout=30)
    print(f"{args.out} ({where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Error kinds that decide what the job system does with a failure."""

from __future__ import annotations

from pathlib import Path


class ShoeboxError(Exception):
    """Base class for errors Shoebox raises on purpose."""


class PermanentError(ShoeboxError):
    """The input itself is bad (corrupt, unsupported, empty): retrying cannot help.

    The message is shown to the user as the item's reason, so it must be a plain
    sentence without traceback text.
    """


class TransientError(ShoeboxError):
    """Something outside the input failed (I/O hiccup, busy resource): retry later."""


class LibraryLockedError(ShoeboxError):
    """Another worker host already serves this library."""


class SettingsError(ShoeboxError):
    """`settings.toml` cannot be used: every problem found, one per line.

    Each line names the file, the table and key, what was expected and what was found,
    e.g. `…/settings.toml: [general] queue_depth_per_worker must be a whole number ≥ 1,
    not the text "4"`.
    """

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__("\n".join(f"{path}: {problem}" for problem in self.problems))


class WaitingError(ShoeboxError):
    """The job cannot run yet for a reason outside the input (its model's weights are
    not here): it waits, no attempt counted, with this message as what to do."""


# The end of every "source offline" reason: the ledger tells these waits (per item,
# woken when the folder is back: engine/jobs/offline.py) from a stage's (its model).
OFFLINE_SUFFIX = "is not available (drive unplugged?); work resumes when it is back."


class SourceOfflineError(WaitingError):
    """The item's folder is not there (an unplugged drive, an unmounted share): its
    jobs wait, no attempt counted, and run again by themselves when it is back."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        super().__init__(f"The folder {folder} {OFFLINE_SUFFIX}")


def is_offline_reason(reason: str | None) -> bool:
    return bool(reason) and str(reason).endswith(OFFLINE_SUFFIX)

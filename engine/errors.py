"""Error kinds that decide what the job system does with a failure."""


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

"""Shoebox engine: catalog, import, jobs, pipeline stages and the CLI.

Never imports Qt. Keep this module light: the CLI's start-up time depends on it.
"""

__version__ = "0.1.0"

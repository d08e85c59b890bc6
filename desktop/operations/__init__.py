"""GUI actions: each a small function that calls the engine and returns.

No widget is touched here; long work goes through `desktop.threads`.
"""

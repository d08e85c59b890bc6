"""Shoebox desktop app (PySide6 on a qasync loop). Qt is imported only via `desktop.qt`."""

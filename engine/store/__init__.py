"""The catalog database: connections, schema and migrations."""

from engine.store.db import Catalog, open_catalog

__all__ = ["Catalog", "open_catalog"]

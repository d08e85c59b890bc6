"""Pipeline stages: each turns an item into a result, keyed by (item, stage, version)."""

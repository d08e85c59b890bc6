"""Search: one query box over photos and documents (full text, meaning, filters)."""

"""OCR: reading text from pages and photos."""

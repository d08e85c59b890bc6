"""Finding files, hashing them and cataloguing them."""

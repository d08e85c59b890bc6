"""Shoebox's models, by task: `embed` (images → vectors), `detect` (objects), `tags`.

Plain inputs and outputs (PIL images, numpy arrays, dataclasses). Nothing here
imports `engine` or Qt: the engine's stages adapt these to jobs, and a remote
worker host can use them without a library.
"""

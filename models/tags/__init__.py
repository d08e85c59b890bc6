"""Zero-shot tags: the built-in vocabulary (`vocabulary`) and the scoring (`zero_shot`)."""

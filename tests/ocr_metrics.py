"""OCR quality measures shared by the OCR tests and benchmarks: character error rate."""

from __future__ import annotations

from collections.abc import Sequence


def normalise(text: str) -> str:
    """Runs of whitespace (spaces, newlines, blank lines) as one space, ends trimmed."""
    return " ".join(text.split())


def edit_distance(a: Sequence[object], b: Sequence[object]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of `hypothesis` against `reference`, whitespace-normalised:
    edit distance / reference length (0.0 is perfect; can exceed 1)."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(ref, hyp) / len(ref)

"""Errors a model raises that its caller must tell apart from a bad input."""

from __future__ import annotations


class ModelUnavailable(Exception):
    """The model's weights are not here (and could not be fetched): its work must wait.

    Not the input's fault and not worth an attempt: the job waits, with `action`
    telling the user what to do, until the weights appear."""

    def __init__(self, spec: str, reason: str, action: str) -> None:
        super().__init__(f"{reason}: {action}" if action else reason)
        self.spec = spec
        self.reason = reason
        self.action = action


class WeightsError(Exception):
    """A weights file that is not what it claims (corrupt, wrong format, unsafe)."""

"""Without a network a download is refused at once, not after the hub client's retries."""

from __future__ import annotations

import socket

import pytest

from models import weights
from models.errors import ModelUnavailable
from models.spec import ModelSpec


def test_an_unreachable_hub_refuses_the_download_without_trying_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SHOEBOX_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.shoebox-test.invalid")  # never resolves
    fetched: list[str] = []
    monkeypatch.setattr(weights, "_fetch", lambda spec, progress: fetched.append(spec.text))
    spec = ModelSpec.parse("open_clip:ViT-B-32:laion2b_s34b_b79k")
    assert weights.download_host(spec) == "hub.shoebox-test.invalid"
    with pytest.raises(ModelUnavailable) as caught:
        weights.download(spec)
    assert "hub.shoebox-test.invalid cannot be reached" in str(caught.value)
    assert fetched == []


def test_a_listening_server_is_reachable_and_a_closed_port_is_not() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert weights.reachable("127.0.0.1", port, timeout_s=2.0)
    assert not weights.reachable("127.0.0.1", port, timeout_s=2.0)  # closed now
    assert weights.download_host(ModelSpec.parse("torchvision:mobilenet_v2")) == (
        "download.pytorch.org"
    )

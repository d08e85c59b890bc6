"""Deterministic generator of documents, pages, photos and queries for OCR and search tests.

Used by the OCR tests, the document-search quality benchmark and the photo text gate.  Every
function is seeded: the same arguments give the same pixels, bytes and strings in any process
(``random.Random`` seeded with ints or strings, numpy ``default_rng`` seeded with ints; Pillow's
``effect_noise`` is never used because it draws from the C library's global state).

Public API:

* :data:`FONTS` - DejaVu TrueType fonts by role ("sans", "serif", "mono", "condensed", ...).
* :func:`render_page` - lines of text as a white, mode-"L" page image (300 dpi by default), only
  as tall as its content: compact pages that tesseract reads in about a second.
* :func:`rotate_page` - a page turned 90/180/270 degrees clockwise, as a scanner feeds it sideways.
"""

from __future__ import annotations

import io
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageOps

__all__ = [
    "DOC_KINDS",
    "FONTS",
    "SCENE_NAMES",
    "Doc",
    "Query",
    "doc_pages",
    "make_documents",
    "make_gate_set",
    "make_queries",
    "make_text_free_photos",
    "photograph",
    "render_doc",
    "render_page",
    "rotate_page",
    "write_eval_library",
    "write_scanned_pdf",
    "write_text_pdf",
]

_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")

FONTS: dict[str, Path] = {
    "sans": _FONT_DIR / "DejaVuSans.ttf",
    "serif": _FONT_DIR / "DejaVuSerif.ttf",
    "mono": _FONT_DIR / "DejaVuSansMono.ttf",
    "condensed": _FONT_DIR / "DejaVuSansCondensed.ttf",
    "serif_condensed": _FONT_DIR / "DejaVuSerifCondensed.ttf",
}

# Bold face of each role (used for the first line with ``bold_first``).
_BOLD: dict[str, Path] = {
    "sans": _FONT_DIR / "DejaVuSans-Bold.ttf",
    "serif": _FONT_DIR / "DejaVuSerif-Bold.ttf",
    "mono": _FONT_DIR / "DejaVuSansMono-Bold.ttf",
    "condensed": _FONT_DIR / "DejaVuSansCondensed-Bold.ttf",
    "serif_condensed": _FONT_DIR / "DejaVuSerifCondensed-Bold.ttf",
}


@lru_cache(maxsize=64)
def _font(path: Path, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), px)


def render_page(
    lines: Sequence[str],
    *,
    font: str = "sans",
    size_pt: float = 11.0,
    dpi: int = 300,
    width_in: float = 6.0,
    margin_in: float = 0.4,
    bold_first: bool = False,
) -> Image.Image:
    """Render ``lines`` (one text line each, no wrapping) black on a white mode-"L" page.

    The page is ``width_in`` inches wide at ``dpi``; its height fits the lines plus the margins.
    An empty string is a blank line.  Lines longer than the page are clipped at the right edge
    (choose the lines, font and size so they fit).
    """
    if font not in FONTS:
        raise ValueError(f"unknown font {font!r}; one of {sorted(FONTS)}")
    px = max(6, round(size_pt * dpi / 72))
    regular = _font(FONTS[font], px)
    bold = _font(_BOLD.get(font, FONTS[font]), px)
    line_h = round(px * 1.45)
    margin = round(margin_in * dpi)
    width = round(width_in * dpi)
    height = 2 * margin + max(1, len(lines)) * line_h
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    y = margin
    for i, line in enumerate(lines):
        if line:
            face = bold if (bold_first and i == 0) else regular
            draw.text((margin, y), line, fill=0, font=face)
        y += line_h
    return page


_ROTATIONS: dict[int, Image.Transpose] = {
    # Image.Transpose.ROTATE_* turn counter-clockwise; a clockwise turn by d is ROTATE_(360-d).
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


def rotate_page(img: Image.Image, degrees: int) -> Image.Image:
    """``img`` turned clockwise by 90, 180 or 270 degrees (lossless transpose); 0 is a copy."""
    d = degrees % 360
    if d == 0:
        return img.copy()
    if d not in _ROTATIONS:
        raise ValueError(f"rotation must be a multiple of 90 degrees, not {degrees}")
    return img.transpose(_ROTATIONS[d])


# --------------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Doc:
    """One document of the evaluation library.

    ``facts`` holds what the generator knows about the document as (key, value) pairs: always
    "topic" (what it is about, e.g. "electricity", "bread"), "delivery" (how
    :func:`write_eval_library` stores it: "png", "rot90"/"rot180"/"rot270", "photo", "pdf_text",
    "pdf_scan"), "font", "size_pt", "width_in", "pages"; and where it applies "vendor", "number".
    """

    id: str
    kind: str
    title: str
    lines: tuple[str, ...]
    filename: str
    facts: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def fact(self, key: str, default: str = "") -> str:
        for k, v in self.facts:
            if k == key:
                return v
        return default


DOC_KINDS: tuple[str, ...] = (
    "invoice",
    "receipt",
    "utility_bill",
    "letter",
    "bank_statement",
    "recipe",
    "manual",
    "insurance",
    "medical",
)

_FIRST = (
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elena",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Karin",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pavel",
    "Rosa",
    "Samir",
    "Tara",
    "Victor",
    "Wendy",
    "Yusuf",
    "Zoe",
    "Martin",
    "Sofia",
    "Lukas",
    "Hannah",
    "Oliver",
    "Irene",
    "Tomas",
)
_LAST = (
    "Schmidt",
    "Novak",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Rossi",
    "Tanaka",
    "Kowalski",
    "Fischer",
    "Brennan",
    "Haddad",
    "Jensen",
    "Petrov",
    "Alvarez",
    "Weber",
    "Nakamura",
    "Bauer",
    "Dubois",
    "Varga",
    "Castillo",
    "Hughes",
    "Marsh",
    "Quinn",
    "Sandoval",
)
_STREETS = (
    "Elm Street",
    "Mill Lane",
    "Station Road",
    "Harbour View",
    "Linden Avenue",
    "Church Walk",
    "Bridge Street",
    "Orchard Close",
    "Kingsway",
    "Maple Drive",
    "Canal Side",
    "Hill Crescent",
)
_CITIES = (
    ("Springfield", "SP4 2LW"),
    ("Brookhaven", "BH1 7QD"),
    ("Oakridge", "OK9 3TR"),
    ("Riverton", "RV2 8MN"),
    ("Lakeside", "LK6 1AB"),
    ("Millbrook", "MB3 5XY"),
    ("Ashford", "AF7 2CE"),
    ("Fairview", "FV8 4GH"),
)
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def _address(rng: random.Random) -> tuple[str, str]:
    city, code = rng.choice(_CITIES)
    return f"{rng.randint(1, 199)} {rng.choice(_STREETS)}", f"{code} {city}"


def _date(rng: random.Random, style: int | None = None) -> str:
    y, m, d = rng.randint(2019, 2024), rng.randint(1, 12), rng.randint(1, 28)
    s = rng.randrange(4) if style is None else style
    if s == 0:
        return f"{d} {_MONTHS[m - 1]} {y}"
    if s == 1:
        return f"{y}-{m:02d}-{d:02d}"
    if s == 2:
        return f"{d:02d}.{m:02d}.{y}"
    return f"{_MONTHS[m - 1][:3]} {d}, {y}"


def _money(value: float, cur: str) -> str:
    return f"{cur}{value:,.2f}" if cur in ("$", "£") else f"{value:,.2f} {cur}"


def _ref(rng: random.Random, prefix: str, digits: int = 6) -> str:
    return f"{prefix}-{rng.randint(10 ** (digits - 1), 10**digits - 1)}"


# One generated document body: title, lines, extra facts.
_Body = tuple[str, list[str], dict[str, str]]

# -- invoices ---------------------------------------------------------------------------------

_INVOICE_TOPICS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, float, float], ...]]] = {
    # topic: (vendors, items as (description, low price, high price))
    "plumbing": (
        ("Rapid Flow Plumbing", "Hendricks Pipe & Drain"),
        (
            ("Replace kitchen mixer tap", 60, 140),
            ("Unblock bathroom drain", 45, 90),
            ("Call-out fee", 35, 60),
            ("Copper fittings and washers", 8, 30),
            ("Labour, 2.5 hours", 90, 150),
        ),
    ),
    "car_repair": (
        ("Kessler Auto Service", "Northside Garage"),
        (
            ("Brake pads, front axle", 80, 160),
            ("Engine oil change 5W-30", 50, 95),
            ("Annual vehicle inspection", 40, 75),
            ("Wiper blades (pair)", 15, 35),
            ("Workshop labour, 3 hours", 120, 210),
        ),
    ),
    "web_design": (
        ("Pixelhaus Studio", "Bluefern Digital"),
        (
            ("Website redesign, 5 pages", 900, 2400),
            ("Hosting and domain, 12 months", 80, 200),
            ("Logo revisions", 150, 400),
            ("Search engine optimisation audit", 200, 600),
        ),
    ),
    "roofing": (
        ("Summit Roofing Co.", "Topline Roofers"),
        (
            ("Replace 14 broken roof tiles", 180, 420),
            ("Gutter cleaning and repair", 70, 160),
            ("Scaffolding hire, 1 week", 250, 500),
            ("Chimney flashing resealed", 90, 220),
        ),
    ),
    "gardening": (
        ("Greenleaf Landscaping", "Thornbury Garden Care"),
        (
            ("Hedge trimming", 60, 140),
            ("Lawn mowing, 4 visits", 80, 160),
            ("Green waste removal", 30, 70),
            ("Planting of 12 shrubs", 120, 260),
        ),
    ),
    "translation": (
        ("Lingua Bridge Translations", "Wordsmith Language Services"),
        (
            ("Translation German-English, 3,200 words", 300, 520),
            ("Certified copy and stamp", 25, 60),
            ("Proofreading", 80, 160),
        ),
    ),
    "catering": (
        ("Olive & Thyme Catering", "Silver Spoon Events"),
        (
            ("Buffet for 40 guests", 800, 1500),
            ("Waiting staff, 5 hours", 150, 300),
            ("Hire of glasses and cutlery", 60, 140),
            ("Celebration cake", 70, 160),
        ),
    ),
    "office_supplies": (
        ("Paperline Office Supplies", "Deskworks Wholesale"),
        (
            ("Toner cartridge, black", 45, 110),
            ("Copy paper A4, 5 reams", 20, 40),
            ("Ring binders, box of 10", 12, 25),
            ("Desk organiser", 15, 35),
        ),
    ),
}


def _invoice(rng: random.Random, topic: str, number: int) -> _Body:
    vendors, items = _INVOICE_TOPICS[topic]
    vendor = rng.choice(vendors)
    cur = rng.choice(("EUR", "$", "£"))
    street, city = _address(rng)
    cust = _person(rng)
    cstreet, ccity = _address(rng)
    heading = rng.choice(("INVOICE", "Invoice", "TAX INVOICE", "Invoice / Bill"))
    label = rng.choice(("Invoice No.", "Invoice number:", "Invoice #", "Invoice ref."))
    lines = [
        vendor,
        f"{street}, {city}",
        f"Phone 0{rng.randint(100, 999)} {rng.randint(100000, 999999)}",
        "",
    ]
    lines += [heading, f"{label} {number}", f"Date: {_date(rng)}"]
    lines += [
        f"{rng.choice(('Bill to:', 'Customer:', 'Invoiced to:'))} {cust}",
        f"{cstreet}, {ccity}",
        "",
    ]
    lines.append(
        rng.choice(("Description / Qty / Amount", "Item  Qty  Price", "Services rendered"))
    )
    chosen = rng.sample(items, k=rng.randint(2, len(items)))
    subtotal = 0.0
    for desc, lo, hi in chosen:
        qty = rng.choice((1, 1, 1, 2, 3))
        price = round(rng.uniform(lo, hi), 2)
        subtotal += qty * price
        lines.append(f"{desc}  x{qty}  {_money(qty * price, cur)}")
    rate = rng.choice((0, 7, 19, 20))
    vat = round(subtotal * rate / 100, 2)
    lines += ["", f"Subtotal  {_money(subtotal, cur)}"]
    if rate:
        lines.append(f"{rng.choice(('VAT', 'Sales tax', 'Tax'))} {rate}%  {_money(vat, cur)}")
    total_label = rng.choice(("Total due", "Amount due", "Balance payable", "Grand total"))
    lines.append(f"{total_label}  {_money(subtotal + vat, cur)}")
    lines.append("")
    days = rng.choice((7, 14, 30))
    lines.append(
        rng.choice(
            (
                f"Payment within {days} days of the invoice date.",
                f"Terms: net {days}. Please quote the invoice number.",
                f"Please pay by bank transfer within {days} days.",
            )
        )
    )
    lines.append(
        f"IBAN GB{rng.randint(10, 99)} BANK "
        f"{rng.randint(1000, 9999)} {rng.randint(1000, 9999)} {rng.randint(10, 99)}"
    )
    lines.append(rng.choice(("Thank you for your business.", "We appreciate your custom.", "")))
    title = f"Invoice {number} from {vendor}"
    return title, lines, {"vendor": vendor, "number": str(number)}


# -- receipts ---------------------------------------------------------------------------------

_RECEIPT_TOPICS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, float, float], ...]]] = {
    "groceries": (
        ("FreshMart", "Green Basket Foods"),
        (
            ("Bananas 1.2kg", 1.2, 2.4),
            ("Whole milk 1L", 0.9, 1.6),
            ("Free range eggs x12", 2.5, 4.2),
            ("Cheddar cheese 400g", 3.0, 5.5),
            ("Wholemeal loaf", 1.1, 2.6),
            ("Tomatoes 500g", 1.0, 2.2),
            ("Orange juice 1L", 1.5, 3.0),
            ("Pasta 500g", 0.8, 1.9),
            ("Coffee beans 250g", 4.0, 7.5),
        ),
    ),
    "hardware": (
        ("Bolt & Beam DIY", "Handyman Depot"),
        (
            ("Wood screws 4x40 (200)", 5, 9),
            ("Paint brush set", 6, 14),
            ("Masking tape 50m", 2, 5),
            ("Wall plugs assorted", 3, 6),
            ("Sandpaper P120 x10", 3, 7),
            ("Cordless drill bits", 9, 22),
            ("Interior paint 2.5L white", 18, 35),
        ),
    ),
    "pharmacy": (
        ("Green Cross Pharmacy", "Wellbeing Chemist"),
        (
            ("Ibuprofen 400mg x24", 2, 5),
            ("Plasters assorted", 2, 4),
            ("Sunscreen SPF 50", 7, 14),
            ("Throat lozenges", 3, 6),
            ("Vitamin D 1000 IU", 5, 11),
            ("Nasal spray", 4, 8),
        ),
    ),
    "fuel": (
        ("Highway Fuel Stop", "Crossroads Service Station"),
        (("Car wash basic", 6, 9), ("Windscreen fluid 5L", 4, 8), ("Chocolate bar", 1, 2)),
    ),
    "cafe": (
        ("Bean There Cafe", "The Copper Kettle"),
        (
            ("Flat white", 2.8, 3.6),
            ("Cappuccino", 2.7, 3.5),
            ("Croissant", 1.8, 2.6),
            ("Blueberry muffin", 2.2, 3.1),
            ("Avocado toast", 6.5, 8.9),
            ("Fresh orange juice", 3.0, 4.2),
        ),
    ),
    "electronics": (
        ("VoltCity Electronics", "Circuit Corner"),
        (
            ("Wireless headphones", 49, 129),
            ("USB-C cable 2m", 8, 16),
            ("AA batteries x8", 5, 9),
            ("Phone case", 12, 25),
            ("HDMI adapter", 14, 29),
        ),
    ),
    "books": (
        ("Marlowe Books", "Chapter & Verse Bookshop"),
        (
            ("Paperback: The Silent Harbour", 8, 12),
            ("Paperback: A Winter in Lisbon", 8, 12),
            ("Hardback: Atlas of Lost Rivers", 18, 30),
            ("Greeting card", 2, 4),
            ("Bookmark, brass", 3, 6),
        ),
    ),
    "restaurant": (
        ("Trattoria Da Luca", "Osteria Bella Vista"),
        (
            ("Margherita pizza", 8, 12),
            ("Spaghetti carbonara", 10, 14),
            ("Tiramisu", 5, 7),
            ("House red wine 0.5L", 9, 14),
            ("Sparkling water", 2.5, 4),
            ("Espresso", 1.8, 2.5),
        ),
    ),
}


def _receipt(rng: random.Random, topic: str) -> _Body:
    stores, items = _RECEIPT_TOPICS[topic]
    store = rng.choice(stores)
    cur = rng.choice(("EUR", "$", "£"))
    street, city = _address(rng)
    lines = [
        store,
        street,
        city,
        f"{_date(rng, rng.choice((1, 2)))}  {rng.randint(7, 21):02d}:{rng.randint(0, 59):02d}",
    ]
    lines.append(f"Till {rng.randint(1, 9)}  Receipt {rng.randint(1000, 99999)}")
    lines.append("-" * 30)
    total = 0.0
    if topic == "fuel":
        litres = round(rng.uniform(25, 60), 2)
        price = round(rng.uniform(1.45, 1.95), 3)
        grade = rng.choice(("Unleaded 95", "Super E10", "Diesel"))
        lines.append(f"Pump {rng.randint(1, 12)}  {grade}")
        lines.append(f"{litres} L @ {price}/L")
        total += round(litres * price, 2)
        lines.append(f"  {_money(litres * price, cur)}")
    chosen = rng.sample(items, k=rng.randint(1 if topic == "fuel" else 3, min(len(items), 7)))
    for desc, lo, hi in chosen:
        price = round(rng.uniform(lo, hi), 2)
        total += price
        lines.append(f"{desc[:22]:<22} {price:>7.2f}")
    lines.append("-" * 30)
    lines.append(f"{rng.choice(('TOTAL', 'Total', 'AMOUNT', 'To pay')):<22} {total:>7.2f}")
    pay = rng.choice(("VISA", "MASTERCARD", "DEBIT CARD", "CASH"))
    lines.append(
        f"{pay} {'**** ' + str(rng.randint(1000, 9999)) if pay != 'CASH' else ''}".rstrip()
    )
    lines.append(
        rng.choice(
            ("Thank you for shopping with us!", "Please keep your receipt.", "See you again soon")
        )
    )
    return f"Receipt from {store}", lines, {"vendor": store}


# -- utility bills ----------------------------------------------------------------------------

_UTILITY_VENDORS: dict[str, tuple[str, ...]] = {
    "electricity": ("Brightwave Energy", "Northern Power Supply"),
    "heating_gas": ("Calora Gas", "Hearthstone Gas Ltd"),
    "water": ("Riverside Water Authority", "Clearspring Water"),
    "internet": ("Fibrenet", "Comet Broadband"),
    "mobile": ("Skyline Mobile", "Parrot Telecom"),
}


def _utility(rng: random.Random, topic: str) -> _Body:
    vendor = rng.choice(_UTILITY_VENDORS[topic])
    cur = rng.choice(("EUR", "$", "£"))
    name = _person(rng)
    street, city = _address(rng)
    account = _ref(rng, rng.choice(("ACC", "CUST", "AC")), 8)
    lines = [vendor, rng.choice(("Your bill", "Statement of account", "Billing summary")), ""]
    lines += [name, street, city, ""]
    lines.append(f"Account number {account}")
    lines.append(f"Bill date {_date(rng)}")
    lines.append(f"Billing period {_MONTHS[rng.randrange(12)]} to {_MONTHS[rng.randrange(12)]}")
    lines.append("")
    charges: list[tuple[str, float]] = []
    if topic == "electricity":
        used = rng.randint(180, 900)
        rate = round(rng.uniform(0.22, 0.41), 3)
        lines.append(
            f"Meter reading {rng.randint(10000, 90000):,} kWh "
            f"({rng.choice(('actual', 'estimated'))})"
        )
        lines.append(f"Power consumed this period: {used} kWh")
        charges += [
            (f"Energy {used} kWh at {rate} per kWh", used * rate),
            ("Standing charge", rng.uniform(8, 25)),
        ]
        lines.append(
            rng.choice(("Tariff: Green Fix 24", "Tariff: Standard Variable", "Tariff: Night Saver"))
        )
    elif topic == "heating_gas":
        m3 = rng.randint(40, 260)
        kwh = round(m3 * 10.6)
        lines.append(f"Gas meter: {m3} cubic metres used")
        lines.append(f"Converted to {kwh} kWh (calorific value 39.4)")
        charges += [
            ("Gas supply", kwh * rng.uniform(0.06, 0.12)),
            ("Daily standing charge", rng.uniform(6, 18)),
        ]
        lines.append("Boiler service plan: not included")
    elif topic == "water":
        m3 = rng.randint(12, 70)
        lines.append(f"Fresh water supplied: {m3} m3")
        charges += [
            ("Fresh water", m3 * rng.uniform(1.5, 2.6)),
            ("Wastewater and sewerage", m3 * rng.uniform(1.2, 2.2)),
        ]
        lines.append("Next meter reading in six months")
    elif topic == "internet":
        speed = rng.choice((100, 250, 500, 1000))
        lines.append(f"Fibre broadband {speed} Mbit/s")
        charges += [
            ("Monthly line rental and plan", rng.uniform(25, 60)),
            ("Router rental", rng.uniform(3, 6)),
        ]
        lines.append(f"Static IP address: {rng.choice(('yes', 'no'))}")
    else:
        gb = rng.choice((5, 20, 50, 100))
        lines.append(f"Plan: {gb} GB data, unlimited calls and texts")
        lines.append(f"SIM number 07{rng.randint(100, 999)} {rng.randint(100000, 999999)}")
        charges += [("Monthly plan", rng.uniform(10, 45)), ("Roaming data", rng.uniform(0, 12))]
    total = 0.0
    for desc, amount in charges:
        total += round(amount, 2)
        lines.append(f"{desc}  {_money(amount, cur)}")
    lines.append("")
    lines.append(
        f"{rng.choice(('Amount payable', 'Total to pay', 'Balance due'))}  {_money(total, cur)}"
    )
    lines.append(
        rng.choice(
            (
                f"Will be collected by direct debit on {_date(rng, 0)}.",
                f"Please pay by {_date(rng, 0)}.",
                "Thank you for paying on time.",
            )
        )
    )
    return f"{vendor} bill", lines, {"vendor": vendor, "account": account}


# -- letters ----------------------------------------------------------------------------------


def _letter(rng: random.Random, topic: str) -> _Body:
    sender = _person(rng)
    to = _person(rng)
    street, city = _address(rng)
    greet = rng.choice(("Dear", "Hello", "Dear Mr/Ms"))
    body: list[str]
    org = sender
    if topic == "job_offer":
        org = rng.choice(("Halvorsen Consulting", "Nordlicht Engineering", "Brightpath Logistics"))
        role = rng.choice(
            ("Senior Accountant", "Project Manager", "Data Analyst", "Lab Technician")
        )
        body = [
            "Following your interview last week we are pleased to",
            f"offer you the position of {role}, starting on",
            f"{_date(rng, 0)}. The annual gross salary will be",
            f"{rng.randint(38, 85)},000 with {rng.choice((25, 28, 30))} days of paid leave.",
            "Please sign and return the enclosed contract within",
            "ten working days to confirm your acceptance.",
        ]
        subject = f"Offer of employment - {role}"
    elif topic == "tenancy_termination":
        body = [
            "I hereby give notice to terminate the lease agreement",
            f"for the premises at {rng.randint(1, 99)} {rng.choice(_STREETS)}.",
            f"The tenancy will end on {_date(rng, 0)}, after the",
            "three-month notice period required by the contract.",
            "Please let me know when the keys can be handed over",
            "and when the final inspection will take place.",
        ]
        subject = "Notice of termination of tenancy"
    elif topic == "tax":
        org = rng.choice(("Revenue Office Riverton", "Federal Revenue Service"))
        body = [
            f"Your assessment for the year {rng.randint(2019, 2023)} has been completed.",
            f"Taxable income: {rng.randint(31, 95)},{rng.randint(100, 999)}.00",
            f"Overpaid amount to be refunded: {rng.randint(120, 2400)}.00",
            "The refund will be transferred to your bank account",
            "within the next 14 days. If you disagree with this",
            "assessment you may lodge an objection within one month.",
        ]
        subject = f"Assessment notice, reference {_ref(rng, 'TX')}"
    elif topic == "school":
        org = rng.choice(("St. Mary's Primary School", "Westfield Academy"))
        child = rng.choice(_FIRST)
        body = [
            f"We would like to invite you to the parents' evening for {child}",
            f"on {_date(rng, 0)} at 6 pm in the main hall.",
            "Form tutors and subject staff will be available to discuss",
            "progress, reports and the options for next year.",
            "Please book a slot with the office by Friday.",
        ]
        subject = "Parents' evening"
    elif topic == "complaint":
        order = _ref(rng, "ORD")
        body = [
            f"On {_date(rng, 0)} your drivers delivered the three-seater",
            f"sofa from order {order}. When we unpacked it we found",
            "that one armrest was cracked and the fabric was torn.",
            "I ask you to collect the damaged item and either replace",
            "it or refund the full price of the purchase.",
        ]
        subject = f"Complaint about order {order}"
    elif topic == "thank_you":
        body = [
            "Thank you so much for the beautiful gift and for",
            "celebrating our wedding day with us. The crystal vase",
            "now has a place of honour in our living room.",
            "It meant a lot to have you there.",
        ]
        subject = "With many thanks"
    else:  # rent_increase
        old = rng.randint(700, 1400)
        body = [
            "Following the annual review of the rental agreement for",
            f"your flat at {rng.randint(1, 99)} {rng.choice(_STREETS)}, the monthly rent",
            f"will rise from {old}.00 to {old + rng.randint(25, 120)}.00 from {_date(rng, 0)}.",
            "The service charge and deposit remain unchanged.",
        ]
        subject = "Adjustment of rent"
    lines = [org, _address(rng)[0], _address(rng)[1], "", to, street, city, "", _date(rng, 0), ""]
    lines += [f"Re: {subject}", "", f"{greet} {to.split()[1]},", ""]
    lines += body
    lines += ["", rng.choice(("Yours sincerely,", "Kind regards,", "Best wishes,")), sender]
    return subject, lines, {"vendor": org}


# -- bank statements --------------------------------------------------------------------------

_BANKS = ("First Harbor Bank", "Alpine Savings Bank", "Meridian Credit Union", "Lantern Bank")
_PAYEES = (
    "Salary Halvorsen Consulting",
    "Rent standing order",
    "Card payment corner shop",
    "Cash withdrawal ATM",
    "Streaming subscription",
    "Transfer to savings",
    "Gym membership",
    "Train tickets online",
    "Dentist payment",
    "Cinema tickets",
    "Online marketplace",
    "Refund online marketplace",
    "Charity donation",
    "Parking garage",
)


def _bank(rng: random.Random, topic: str) -> _Body:
    bank = rng.choice(_BANKS)
    cur = rng.choice(("EUR", "$", "£"))
    name = _person(rng)
    street, city = _address(rng)
    account = f"{rng.randint(10, 99)}-{rng.randint(1000, 9999)}-{rng.randint(1000000, 9999999)}"
    kind_name = {
        "current_account": rng.choice(("Current account", "Checking account")),
        "savings": rng.choice(("Instant access savings", "Savings account")),
        "credit_card": rng.choice(("Credit card statement", "Platinum card")),
    }[topic]
    month, year = rng.randint(1, 12), rng.randint(2019, 2024)
    lines = [bank, f"{kind_name} - statement {month}/{year}", ""]
    lines += [name, street, city, ""]
    lines.append(f"Account {account}")
    lines.append(f"Period 01.{month:02d}.{year} - 28.{month:02d}.{year}")
    balance = round(rng.uniform(200, 9000), 2)
    lines.append(f"Opening balance  {_money(balance, cur)}")
    lines.append("")
    payees = list(_PAYEES)
    rng.shuffle(payees)
    for payee in payees[: rng.randint(5, 12)]:
        if topic == "savings" and rng.random() < 0.6:
            continue
        amt = round(rng.uniform(5, 900), 2) * (1 if "Salary" in payee or "Refund" in payee else -1)
        balance += amt
        lines.append(f"{rng.randint(1, 28):02d}.{month:02d}.{year}  {payee}  {amt:+,.2f}")
    if topic == "savings":
        interest = round(balance * rng.uniform(0.001, 0.004), 2)
        balance += interest
        lines.append(
            f"28.{month:02d}.{year}  Interest credited "
            f"{rng.choice(('2.10%', '3.25%', '1.75%'))} AER  +{interest:,.2f}"
        )
    lines.append("")
    lines.append(f"Closing balance  {_money(balance, cur)}")
    if topic == "credit_card":
        lines.append(f"Minimum payment due  {_money(max(25.0, abs(balance) * 0.03), cur)}")
        lines.append(f"Payment due date {_date(rng, 0)}")
        lines.append(f"Credit limit {_money(rng.choice((2000, 5000, 8000)), cur)}")
    lines.append(
        rng.choice(("Please check this statement carefully.", "Questions? Call us 24/7.", ""))
    )
    return f"{bank} {kind_name.lower()}", lines, {"vendor": bank, "account": account}


# -- recipes ----------------------------------------------------------------------------------

_RECIPES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    # topic: (titles, ingredients, steps)
    "bread": (
        ("Rustic Sourdough Loaf", "Country Wheat Loaf"),
        ("500 g strong white flour", "350 ml lukewarm water", "100 g active starter", "10 g salt"),
        (
            "Mix flour and water, rest for 30 minutes.",
            "Add the starter and salt, knead for 10 minutes.",
            "Let the dough rise for 4 hours, folding every hour.",
            "Shape, place in a floured basket, proof overnight.",
            "Bake in a Dutch oven at 240 C for 40 minutes.",
        ),
    ),
    "pancakes": (
        ("Fluffy Buttermilk Pancakes", "Sunday Morning Griddle Cakes"),
        ("200 g plain flour", "2 tsp baking powder", "300 ml buttermilk", "2 eggs", "1 tbsp sugar"),
        (
            "Whisk the dry ingredients in a large bowl.",
            "Beat eggs with buttermilk and melted butter.",
            "Combine gently; small lumps are fine.",
            "Cook ladlefuls on a hot greased pan until bubbles form.",
            "Flip and cook one more minute. Serve with berries.",
        ),
    ),
    "tomato_soup": (
        ("Roasted Tomato Soup", "Creamy Tomato and Basil Soup"),
        (
            "1 kg ripe tomatoes",
            "1 onion",
            "2 garlic cloves",
            "500 ml vegetable stock",
            "Fresh basil",
        ),
        (
            "Roast the halved tomatoes with onion and garlic for 30 min.",
            "Transfer to a pot, add the stock and simmer 10 minutes.",
            "Blend until smooth, season with salt and pepper.",
            "Stir in a splash of cream and torn basil leaves.",
        ),
    ),
    "lasagne": (
        ("Classic Beef Lasagne", "Lasagne al Forno"),
        (
            "12 lasagne sheets",
            "500 g minced beef",
            "700 g passata",
            "500 ml bechamel",
            "100 g parmesan",
        ),
        (
            "Brown the mince with onion, add passata, simmer 45 min.",
            "Layer ragu, pasta sheets and bechamel three times.",
            "Top with grated parmesan.",
            "Bake at 190 C for 35 minutes until golden.",
        ),
    ),
    "apple_crumble": (
        ("Bramley Apple Crumble", "Grandma's Apple Crisp"),
        (
            "6 cooking apples",
            "150 g flour",
            "100 g cold butter",
            "100 g brown sugar",
            "1 tsp cinnamon",
        ),
        (
            "Peel, core and slice the fruit into a baking dish.",
            "Rub flour and butter to crumbs, stir in the sugar.",
            "Scatter the topping over the fruit.",
            "Bake at 180 C for 40 minutes. Serve with custard.",
        ),
    ),
    "chocolate_cake": (
        ("Dark Chocolate Fudge Cake", "Double Chocolate Layer Cake"),
        (
            "200 g dark chocolate",
            "200 g butter",
            "4 eggs",
            "180 g sugar",
            "100 g self-raising flour",
        ),
        (
            "Melt chocolate and butter over a bain-marie.",
            "Whisk eggs and sugar until pale, fold in the chocolate.",
            "Fold in the flour, pour into two lined tins.",
            "Bake 25 minutes at 170 C, cool, sandwich with ganache.",
        ),
    ),
    "chickpea_curry": (
        ("Chickpea and Spinach Curry", "Chana Masala"),
        (
            "2 tins chickpeas",
            "1 tin coconut milk",
            "2 tsp garam masala",
            "1 tsp turmeric",
            "200 g spinach",
        ),
        (
            "Fry onion, ginger and garlic until soft.",
            "Add the spices and cook for one minute.",
            "Add chickpeas and coconut milk, simmer 20 minutes.",
            "Wilt in the spinach, finish with lime and coriander.",
        ),
    ),
    "guacamole": (
        ("Fresh Guacamole", "Chunky Lime Guacamole"),
        ("3 ripe avocados", "1 lime", "1 small red onion", "1 chilli", "Handful of coriander"),
        (
            "Mash the avocado flesh with a fork.",
            "Stir in lime juice, chopped onion and chilli.",
            "Season with salt, fold in the coriander.",
            "Serve at once with tortilla chips.",
        ),
    ),
}


def _recipe(rng: random.Random, topic: str) -> _Body:
    titles, ingredients, steps = _RECIPES[topic]
    title = rng.choice(titles)
    lines = [title, f"Serves {rng.randint(2, 8)}  -  Prep {rng.choice((10, 15, 20, 30))} min", ""]
    lines.append(rng.choice(("Ingredients", "You will need", "Ingredients:")))
    lines += [f"- {x}" for x in ingredients]
    lines += ["", rng.choice(("Method", "Instructions", "Preparation"))]
    lines += [f"{i}. {s}" for i, s in enumerate(steps, 1)]
    if rng.random() < 0.5:
        lines += [
            "",
            rng.choice(("Tip: keeps for two days.", "From the kitchen of " + _person(rng))),
        ]
    return title, lines, {}


# -- manuals ----------------------------------------------------------------------------------

_MANUALS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "washing_machine": (
        ("AquaClean WM-7400 front loader", "Sudsmaster 8 kg washer"),
        (
            "Programmes: Cotton 40/60, Synthetics, Wool, Quick 15.",
            "Put detergent in compartment II of the drawer.",
            "Do not exceed the maximum load for each programme.",
            "Error E21: the pump cannot drain the drum.",
            "Switch off, open the flap at the bottom right,",
            "unscrew the filter slowly and remove lint or coins.",
            "Clean the door seal monthly to prevent odours.",
        ),
    ),
    "espresso": (
        ("Barista Pro 2 espresso machine", "Crema Compact bean-to-cup"),
        (
            "Fill the tank with fresh cold water only.",
            "Grind size: turn the dial clockwise for finer grounds.",
            "When the DESCALE light comes on, empty the drip tray.",
            "Dissolve one sachet of descaler in 0.5 L of water,",
            "hold the steam button for 5 seconds to start the cycle.",
            "Rinse with two full tanks of water afterwards.",
        ),
    ),
    "router": (
        ("NetBox AX3000 wireless router", "HomeLink Mesh Station"),
        (
            "Connect the grey WAN port to your modem.",
            "The network name and key are on the label underneath.",
            "LED green: online. LED red: no connection.",
            "To restore factory settings, press the RESET pinhole",
            "with a paper clip for 10 seconds until the LED flashes.",
            "Admin page: http://192.168.1.1, default password admin.",
        ),
    ),
    "lawn_mower": (
        ("GrassMaster 46 petrol mower", "TurfPro 40V cordless mower"),
        (
            "Check the oil level before every use.",
            "Cutting height: 7 positions from 25 to 75 mm,",
            "set with the lever above the rear wheel.",
            "Never tilt the machine with the engine running.",
            "Empty the grass box when the indicator flap closes.",
            "Have the blade sharpened once a season.",
        ),
    ),
    "smoke_alarm": (
        ("SafeHome SD-10 smoke detector", "Guardian Optical Smoke Sensor"),
        (
            "Mount on the ceiling at least 50 cm from walls.",
            "Press the TEST button weekly: a loud tone sounds.",
            "A short chirp every 40 seconds means the 9V cell is low.",
            "Replace the cell and press TEST again.",
            "Replace the whole unit after ten years.",
        ),
    ),
    "bicycle": (
        ("Trekking bike owner's guide", "City cruiser assembly guide"),
        (
            "Fit the handlebar stem and tighten to 5 Nm.",
            "Check that both brakes grip before the first ride.",
            "Tyre pressure: 3.5 to 5 bar, printed on the sidewall.",
            "Lubricate the chain every 300 km.",
            "Adjust the saddle so the knee is slightly bent.",
        ),
    ),
}


def _manual(rng: random.Random, topic: str) -> _Body:
    names, steps = _MANUALS[topic]
    product = rng.choice(names)
    lines = [product, rng.choice(("Instructions for use", "User manual", "Quick start guide")), ""]
    lines.append(
        rng.choice(
            ("Read all safety notes before first use.", "Keep this guide for future reference.")
        )
    )
    lines.append("")
    lines += [f"{i}. {s}" if rng.random() < 0.5 else s for i, s in enumerate(steps, 1)]
    lines += ["", f"Model no. {_ref(rng, rng.choice(('MD', 'TY', 'SN')), 5)}"]
    lines.append(
        rng.choice(("Customer service: 0800 555 0199", "Warranty: 2 years from purchase."))
    )
    return f"{product} manual", lines, {}


# -- insurance --------------------------------------------------------------------------------

_INSURERS = ("Bulwark Insurance", "Evergreen Mutual", "Corvus Assurance", "Harborline Insure")


def _insurance(rng: random.Random, topic: str) -> _Body:
    insurer = rng.choice(_INSURERS)
    policy = _ref(rng, rng.choice(("POL", "MP", "HX")), 6)
    holder = _person(rng)
    street, city = _address(rng)
    cur = rng.choice(("EUR", "$", "£"))
    premium = rng.uniform(60, 900)
    cover: list[str]
    if topic == "car":
        name = "Motor insurance - comprehensive"
        letters = "".join(rng.choice("ABCDEFGHKLMNPRSTUVWXY") for _ in range(5))
        reg = f"{letters[:2]}{rng.randint(10, 99)} {letters[2:]}"
        cover = [
            f"Vehicle registration {reg}",
            "Fire and theft of the vehicle: covered",
            "Windscreen repair: covered, no excess",
            "Third party injury and property: covered",
            f"Voluntary excess: {_money(rng.choice((250, 500)), cur)}",
        ]
    elif topic == "home_contents":
        name = "Household contents cover"
        cover = [
            f"Sum insured {_money(rng.choice((30000, 50000, 75000)), cur)}",
            "Burglary and forced entry: covered",
            "Escape of water and fire damage: covered",
            "Accidental damage: optional extra, not selected",
            "Valuables over 1,500 must be listed separately.",
        ]
    elif topic == "travel":
        name = "Annual multi-trip travel policy"
        cover = [
            "Emergency medical expenses overseas: up to 5,000,000",
            "Cancellation and curtailment: up to 3,000",
            "Lost or delayed baggage: up to 1,500",
            "Trips of up to 31 days, worldwide excluding USA",
            "Emergency assistance line open 24 hours",
        ]
    elif topic == "pet":
        pet = rng.choice(("Bruno", "Luna", "Max", "Pepper"))
        name = "Pet health plan - lifetime"
        cover = [
            f"Insured animal: {pet}, {rng.choice(('Labrador', 'Beagle', 'Collie'))}, "
            f"{rng.randint(1, 9)} years",
            "Veterinary fees up to 7,000 per year",
            "Routine vaccinations and flea treatment are excluded",
            "Third party liability for your dog: covered",
        ]
    else:  # liability
        name = "Personal liability insurance"
        cover = [
            "Damage you cause to other people's property: covered",
            "Injury to third parties: up to 10,000,000",
            "Lost keys of rented premises: up to 20,000",
            "Cover applies to all members of the household",
        ]
    lines = [
        insurer,
        rng.choice(("Policy schedule", "Certificate of insurance", "Your policy documents")),
        "",
    ]
    lines += [f"Policy number {policy}", f"Policyholder {holder}", street, city, ""]
    lines += [name, f"Period of cover {_date(rng, 2)} to {_date(rng, 2)}", ""]
    lines += cover
    lines += ["", f"Annual premium {_money(premium, cur)}"]
    lines.append(
        rng.choice(
            ("Please read the policy wording carefully.", "To make a claim call 0800 555 0142.")
        )
    )
    return f"{insurer} {name.split(' - ')[0].lower()}", lines, {"vendor": insurer, "policy": policy}


# -- medical ----------------------------------------------------------------------------------


def _medical(rng: random.Random, topic: str) -> _Body:
    patient = _person(rng)
    doctor = f"Dr. {rng.choice(_LAST)}"
    practice = rng.choice(("Parkside Medical Centre", "Riverton Health Clinic", "Elmwood Surgery"))
    dob = _date(rng, 2)
    lines = [
        practice,
        "",
        f"Patient: {patient}",
        f"Date of birth: {dob}",
        f"Date: {_date(rng, 0)}",
        "",
    ]
    if topic == "lab":
        title = "Laboratory report"
        lines += [
            title,
            f"Total cholesterol  {rng.uniform(3.8, 7.2):.1f} mmol/L",
            f"LDL  {rng.uniform(1.8, 4.9):.1f} mmol/L",
            f"HDL  {rng.uniform(0.8, 2.2):.1f} mmol/L",
            f"Triglycerides  {rng.uniform(0.6, 2.8):.1f} mmol/L",
            f"Fasting glucose  {rng.uniform(4.0, 6.8):.1f} mmol/L",
            "Sample: venous, taken fasting",
        ]
    elif topic == "prescription":
        title = "Prescription"
        drug = rng.choice(("Amoxicillin 500 mg capsules", "Clarithromycin 250 mg tablets"))
        lines += [
            title,
            drug,
            "Take one three times a day for 7 days.",
            "Complete the full course even if you feel better.",
            "Avoid alcohol during treatment.",
        ]
    elif topic == "vaccination":
        title = "Immunisation record"
        lines += [
            title,
            f"Tetanus, diphtheria, polio booster  {_date(rng, 2)}",
            f"Influenza (seasonal)  {_date(rng, 2)}",
            f"Hepatitis A, dose 1  {_date(rng, 2)}",
            "Next booster recommended in 10 years.",
        ]
    elif topic == "dental":
        title = "Dental treatment plan"
        cur = rng.choice(("EUR", "$", "£"))
        lines += [
            title,
            f"Composite filling, lower left molar  {_money(rng.uniform(60, 180), cur)}",
            f"Scale and polish with hygienist  {_money(rng.uniform(45, 90), cur)}",
            f"X-ray, two bitewings  {_money(rng.uniform(20, 45), cur)}",
            "Next check-up in six months.",
        ]
    elif topic == "eye":
        title = "Optical prescription"
        lines += [
            title,
            f"Right: SPH {rng.choice(('-1.25', '-0.75', '+1.00'))}  CYL -0.50  "
            f"AXIS {rng.randint(10, 170)}",
            f"Left:  SPH {rng.choice(('-1.50', '-1.00', '+0.75'))}  CYL -0.25  "
            f"AXIS {rng.randint(10, 170)}",
            "Reading addition +1.50",
            "Spectacles recommended for distance vision.",
        ]
    else:  # referral
        title = "Referral letter"
        lines += [
            title,
            "Referred to: Department of Orthopaedics",
            "Reason: persistent pain in the right knee",
            "after a sports injury, swelling on exertion.",
            "MRI requested; please assess for meniscus tear.",
        ]
    lines += ["", doctor]
    return f"{title} for {patient}", lines, {"vendor": practice}


_TOPICS: dict[str, tuple[str, ...]] = {
    "invoice": tuple(_INVOICE_TOPICS),
    "receipt": tuple(_RECEIPT_TOPICS),
    "utility_bill": tuple(_UTILITY_VENDORS),
    "letter": (
        "job_offer",
        "tenancy_termination",
        "tax",
        "school",
        "complaint",
        "thank_you",
        "rent_increase",
    ),
    "bank_statement": ("current_account", "savings", "credit_card"),
    "recipe": tuple(_RECIPES),
    "manual": tuple(_MANUALS),
    "insurance": ("car", "home_contents", "travel", "pet", "liability"),
    "medical": ("lab", "prescription", "vaccination", "dental", "eye", "referral"),
}

# How each kind usually arrives: (delivery, weight).  Receipts get photographed, statements
# downloaded as PDFs, letters scanned.
_DELIVERY_PREF: dict[str, tuple[str, ...]] = {
    "invoice": ("png", "pdf_text", "pdf_scan", "photo", "rot"),
    "receipt": ("photo", "photo", "png", "rot"),
    "utility_bill": ("pdf_text", "png", "pdf_scan", "rot"),
    "letter": ("pdf_scan", "png", "rot", "photo"),
    "bank_statement": ("pdf_text", "pdf_scan", "png"),
    "recipe": ("photo", "png", "pdf_text"),
    "manual": ("pdf_text", "png", "rot", "photo"),
    "insurance": ("pdf_text", "pdf_scan", "png"),
    "medical": ("png", "pdf_scan", "photo", "rot"),
}


def _fit_size(
    lines: Sequence[str], font: str, size_pt: float, width_in: float, margin_in: float
) -> float:
    """The largest size <= size_pt at which every line fits the page width."""
    dpi = 300
    avail = (width_in - 2 * margin_in) * dpi
    px = round(size_pt * dpi / 72)
    widest = max((_font(FONTS[font], px).getlength(s) for s in lines), default=0.0)
    widest_bold = _font(_BOLD[font], px).getlength(lines[0]) if lines else 0.0
    widest = max(widest, widest_bold)
    if widest <= avail:
        return size_pt
    return max(6.0, math.floor(size_pt * avail / widest * 4) / 4)


def make_documents(n: int = 66, seed: int = 14) -> list[Doc]:
    """``n`` varied documents (kinds cycle through :data:`DOC_KINDS`), deterministic in ``seed``.

    The first document is always invoice number 4711.  Every document has 8-40 lines.
    """
    rng = random.Random(f"docs:{seed}")
    topic_cycles: dict[str, list[str]] = {}
    numbers = rng.sample(range(1000, 99999), n + 1)
    numbers = [x for x in numbers if "4711" not in str(x)]
    drafts: list[tuple[str, str, list[str], dict[str, str]]] = []
    kinds_order = list(DOC_KINDS)
    for i in range(n):
        kind = kinds_order[i % len(kinds_order)]
        cycle = topic_cycles.setdefault(kind, [])
        if not cycle:
            cycle.extend(_TOPICS[kind])
            rng.shuffle(cycle)
        topic = cycle.pop()
        if i == 0:
            topic = "plumbing"
        r = random.Random(f"doc:{seed}:{i}")
        if kind == "invoice":
            body = _invoice(r, topic, 4711 if i == 0 else numbers[i])
        elif kind == "receipt":
            body = _receipt(r, topic)
        elif kind == "utility_bill":
            body = _utility(r, topic)
        elif kind == "letter":
            body = _letter(r, topic)
        elif kind == "bank_statement":
            body = _bank(r, topic)
        elif kind == "recipe":
            body = _recipe(r, topic)
        elif kind == "manual":
            body = _manual(r, topic)
        elif kind == "insurance":
            body = _insurance(r, topic)
        else:
            body = _medical(r, topic)
        title, lines, extra = body
        while lines and not lines[-1]:
            lines.pop()
        lines = lines[:40]
        if kind == "receipt":
            font, size, width = r.choice(("mono", "mono", "condensed")), r.choice((9.0, 10.0)), 3.2
        else:
            font = r.choice(("sans", "serif", "mono", "condensed", "serif_condensed"))
            size, width = r.choice((10.0, 11.0, 12.0)), r.choice((6.0, 6.5))
        size = _fit_size(lines, font, size, width, 0.4)
        facts = {"topic": topic, "font": font, "size_pt": f"{size:g}", "width_in": f"{width:g}"}
        facts["bold_first"] = "1" if r.random() < 0.6 else "0"
        facts.update(extra)
        drafts.append((kind, title, lines, facts))
    deliveries = _assign_deliveries([(d[0], len(d[2])) for d in drafts], rng)
    docs: list[Doc] = []
    used_names: set[str] = set()
    for i, ((kind, title, lines, facts), delivery) in enumerate(
        zip(drafts, deliveries, strict=True)
    ):
        r = random.Random(f"name:{seed}:{i}")
        facts["delivery"] = delivery
        facts["pages"] = "2" if delivery.startswith("pdf") and len(lines) >= 22 else "1"
        ext = {"photo": "jpg", "pdf_text": "pdf", "pdf_scan": "pdf"}.get(delivery, "png")
        if delivery == "photo":
            day = f"{r.randint(2019, 2024)}{r.randint(1, 12):02d}{r.randint(1, 28):02d}"
            stem = f"IMG_{day}_{r.randint(70000, 215959)}"
        elif delivery == "pdf_text":
            stem = f"{kind}_{facts['topic']}_{i:02d}"
        else:
            stem = f"scan_{r.randint(1, 9999):04d}"
        while f"{stem}.{ext}" in used_names:
            stem += "_1"
        used_names.add(f"{stem}.{ext}")
        docs.append(
            Doc(
                id=f"{kind}-{i:03d}",
                kind=kind,
                title=title,
                lines=tuple(lines),
                filename=f"{stem}.{ext}",
                facts=tuple(sorted(facts.items())),
            )
        )
    return docs


# Share of the library delivered each way (the rest are upright PNG scans).
_DELIVERY_SHARE = (("pdf_text", 0.13), ("pdf_scan", 0.11), ("photo", 0.12), ("rot", 0.11))


def _assign_deliveries(drafts: Sequence[tuple[str, int]], rng: random.Random) -> list[str]:
    """How each draft (kind, line count) is stored; document 0 (invoice 4711) is a PNG."""
    n = len(drafts)
    out = ["png"] * n
    free = set(range(1, n))
    for delivery, share in _DELIVERY_SHARE:
        k = max(1, round(n * share)) if n > 8 else (1 if len(free) > 1 else 0)

        def rank(i: int, delivery: str = delivery) -> tuple[int, float]:
            prefs = _DELIVERY_PREF[drafts[i][0]]
            pref = prefs.index(delivery) if delivery in prefs else 99
            bonus = 1.0 if delivery.startswith("pdf") and drafts[i][1] >= 18 else 0.0
            return (0, pref + 3 * rng.random() - bonus)

        chosen = sorted(sorted(free), key=rank)[:k]
        for j, i in enumerate(chosen):
            out[i] = f"rot{(90, 180, 270)[j % 3]}" if delivery == "rot" else delivery
            free.discard(i)
    return out


def doc_pages(doc: Doc) -> list[list[str]]:
    """The lines of each page of ``doc`` (two pages when its "pages" fact says so)."""
    lines = list(doc.lines)
    if doc.fact("pages", "1") != "2":
        return [lines]
    mid = len(lines) // 2
    # Break at the blank line nearest the middle, if there is one close by.
    blanks = [i for i, s in enumerate(lines) if not s and abs(i - mid) <= 5]
    cut = min(blanks, key=lambda i: abs(i - mid)) if blanks else mid
    return [lines[:cut], lines[cut:]]


def render_doc(doc: Doc, *, dpi: int = 300) -> list[Image.Image]:
    """Upright mode-"L" page images of ``doc`` with the font, size and width in its facts."""
    return [
        render_page(
            page,
            font=doc.fact("font", "sans"),
            size_pt=float(doc.fact("size_pt", "11")),
            dpi=dpi,
            width_in=float(doc.fact("width_in", "6")),
            bold_first=doc.fact("bold_first") == "1" and n == 0,
        )
        for n, page in enumerate(doc_pages(doc))
    ]


# --------------------------------------------------------------------------------------------
# Photographs of pages, and photos without text
# --------------------------------------------------------------------------------------------

_Array = npt.NDArray[np.float32]


def _np(rng: random.Random) -> np.random.Generator:
    return np.random.default_rng(rng.getrandbits(64))


def _fractal(
    w: int,
    h: int,
    g: np.random.Generator,
    scale: int = 64,
    octaves: int = 4,
    persistence: float = 0.5,
    aspect: float = 1.0,
) -> _Array:
    """Smooth value noise in [0, 1]: random grids upsampled (bicubic) and summed by octave.

    ``aspect`` > 1 stretches the features vertically (bark, rain), < 1 horizontally (water).
    """
    # Coarse to fine: the running sum is upsampled to each finer grid and that octave's random
    # values added, so only the last step is a full-size resize.
    cur: _Array | None = None
    amp, norm = 1.0, 0.0
    cx = cy = 1
    for o in range(octaves):
        cx = max(1, round((scale >> o) * (1 / aspect if aspect < 1 else 1.0)))
        cy = max(1, round((scale >> o) * (aspect if aspect > 1 else 1.0)))
        gw, gh = w // cx + 3, h // cy + 3
        grid = g.random((gh, gw), dtype=np.float32) * np.float32(amp)
        if cur is not None:
            up = Image.fromarray(cur, "F").resize((gw, gh), Image.Resampling.BICUBIC)
            grid += np.asarray(up, np.float32)
        cur = grid
        norm += amp
        amp *= persistence
    assert cur is not None
    big = Image.fromarray(cur, "F").resize(
        (cur.shape[1] * cx, cur.shape[0] * cy), Image.Resampling.BICUBIC
    )
    total = np.asarray(big, np.float32)[cy : cy + h, cx : cx + w].copy()
    total /= norm
    lo, hi = float(total.min()), float(total.max())
    return (total - lo) / max(hi - lo, 1e-6)


def _lerp_rgb(t: _Array, a: Sequence[int], b: Sequence[int]) -> _Array:
    """Colour per pixel between ``a`` (t=0) and ``b`` (t=1): an (h, w, 3) float array."""
    level = Image.fromarray(np.clip(t * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    ca, cb = (int(a[0]), int(a[1]), int(a[2])), (int(b[0]), int(b[1]), int(b[2]))
    return np.asarray(ImageOps.colorize(level, black=ca, white=cb), np.float32)


def _to_img(rgb: _Array) -> Image.Image:
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def _jitter(c: tuple[int, int, int], rng: random.Random, d: int = 18) -> tuple[int, int, int]:
    """``c`` with each channel moved by up to +-d (one draw from ``rng`` for all three)."""
    bits = rng.getrandbits(30)
    span = 2 * d + 1
    return (
        max(0, min(255, c[0] - d + (bits & 1023) * span // 1024)),
        max(0, min(255, c[1] - d + (bits >> 10 & 1023) * span // 1024)),
        max(0, min(255, c[2] - d + (bits >> 20) * span // 1024)),
    )


def _table(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A surface to lay a page on: wood, granite, tablecloth, carpet, desk mat or plain."""
    w, h = size
    g = _np(rng)
    kind = rng.randrange(6)
    if kind == 0:  # wood grain: warped stripes along x plus fine grain
        warp = _fractal(w, h, g, scale=256, octaves=3)
        yy = np.arange(h, dtype=np.float32)[:, None] + 60 * warp
        stripes = 0.5 + 0.5 * np.sin(yy * rng.uniform(0.05, 0.15))
        grain = _fractal(w, h, g, scale=8, octaves=2, aspect=0.1)
        t = 0.65 * stripes + 0.35 * grain
        rgb = _lerp_rgb(t, _jitter((92, 56, 30), rng), _jitter((176, 124, 78), rng))
    elif kind == 1:  # granite / speckled stone
        base = _fractal(w, h, g, scale=32, octaves=4)
        speck = (g.random((h, w), dtype=np.float32) < 0.08).astype(np.float32)
        t = np.clip(0.5 * base + 0.4 * g.random((h, w), dtype=np.float32) - 0.5 * speck, 0, 1)
        rgb = _lerp_rgb(t, _jitter((40, 40, 44), rng), _jitter((170, 165, 160), rng))
    elif kind == 2:  # checked tablecloth
        p = rng.randint(30, 90)
        xx = (np.arange(w) // p % 2).astype(np.float32)[None, :]
        yy = (np.arange(h) // p % 2).astype(np.float32)[:, None]
        t = 0.5 * (xx + yy)
        colour = _jitter(rng.choice(((180, 30, 40), (30, 70, 160), (40, 120, 60))), rng)
        rgb = _lerp_rgb(t.astype(np.float32) * np.ones((h, 1), np.float32), (235, 232, 225), colour)
        rgb *= (0.85 + 0.15 * _fractal(w, h, g, scale=4, octaves=1))[..., None]
    elif kind == 3:  # carpet / felt: fine fibrous noise
        t = 0.6 * _fractal(w, h, g, scale=3, octaves=2) + 0.4 * _fractal(
            w, h, g, scale=64, octaves=2
        )
        rgb = _lerp_rgb(t, _jitter((50, 50, 70), rng), _jitter((120, 110, 130), rng))
    elif kind == 4:  # dark desk mat with a few objects
        t = _fractal(w, h, g, scale=128, octaves=3)
        rgb = _lerp_rgb(t, _jitter((25, 25, 28), rng), _jitter((70, 70, 75), rng))
    else:  # plain painted surface
        t = _fractal(w, h, g, scale=200, octaves=2)
        c = _jitter(rng.choice(((200, 200, 195), (130, 150, 170), (210, 190, 160))), rng, 30)
        rgb = _lerp_rgb(t, tuple(int(v * 0.8) for v in c), c)
    img = _to_img(rgb)
    if kind in (4, 5):  # a pen, a mug seen from above, a phone
        d = ImageDraw.Draw(img)
        for _ in range(rng.randint(1, 3)):
            x, y = rng.randrange(w), rng.randrange(h)
            r = rng.randint(40, 140)
            if rng.random() < 0.5:
                d.ellipse((x - r, y - r, x + r, y + r), fill=_jitter((200, 60, 50), rng, 60))
            else:
                d.line(
                    (x, y, x + rng.randint(-300, 300), y + rng.randint(-300, 300)),
                    fill=_jitter((20, 40, 120), rng, 40),
                    width=rng.randint(6, 14),
                )
    return img


def _perspective_coeffs(
    dst: Sequence[tuple[float, float]], src: Sequence[tuple[float, float]]
) -> tuple[float, ...]:
    """Coefficients for ``Image.transform(PERSPECTIVE)``: output point ``dst`` -> input ``src``."""
    rows: list[list[float]] = []
    rhs: list[float] = []
    for (xd, yd), (xs, ys) in zip(dst, src, strict=True):
        rows.append([xd, yd, 1, 0, 0, 0, -xs * xd, -xs * yd])
        rows.append([0, 0, 0, xd, yd, 1, -ys * xd, -ys * yd])
        rhs += [xs, ys]
    sol = np.linalg.solve(np.array(rows, np.float64), np.array(rhs, np.float64))
    return tuple(float(v) for v in sol)


def _camera(img: Image.Image, rng: random.Random, *, light: bool = True) -> Image.Image:
    """What a phone camera adds: uneven light and shadow, slight blur, sensor noise, JPEG."""
    w, h = img.size
    g = _np(rng)
    out = img.convert("RGB")
    if light:  # computed on a coarse grid (light varies slowly), then upsampled
        gw, gh = max(2, w // 16), max(2, h // 16)
        ang = rng.uniform(0, 2 * math.pi)
        xx = np.linspace(0, 1, gw, dtype=np.float32)[None, :]
        yy = np.linspace(0, 1, gh, dtype=np.float32)[:, None]
        ramp = math.cos(ang) * (xx - 0.5) + math.sin(ang) * (yy - 0.5) + 0.5
        gain = 1.0 - rng.uniform(0.05, 0.35) * ramp
        if rng.random() < 0.5:  # a soft shadow (hand, phone) across part of the frame
            cx, cy = rng.uniform(-0.5, 1.5), rng.uniform(-0.5, 1.5)
            rad = rng.uniform(0.3, 0.9)
            d2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / rad**2
            gain = gain - rng.uniform(0.15, 0.4) * np.exp(-d2 * 2.0)
        gain = np.clip(gain * rng.uniform(0.9, 1.0), 0.3, 1.0) * 255 + 0.5
        small = Image.fromarray(gain.astype(np.uint8), "L").resize(
            (w, h), Image.Resampling.BILINEAR
        )
        out = ImageChops.multiply(out, Image.merge("RGB", (small, small, small)))
    arr = np.asarray(out, np.int16)
    # Optics: a separable 3-tap blur (k, 16 - 2k, k) / 16 of random strength.
    k = rng.randint(1, 5)
    arr = arr.copy()
    arr[:, 1:-1] = (arr[:, 1:-1] * (16 - 2 * k) + (arr[:, :-2] + arr[:, 2:]) * k + 8) >> 4
    arr[1:-1] = (arr[1:-1] * (16 - 2 * k) + (arr[:-2] + arr[2:]) * k + 8) >> 4
    # Sensor: luminance noise (sum of two uniforms, close to gaussian), sigma 2-7.
    n = g.integers(0, 256, (h, w), dtype=np.uint8).astype(np.int16)
    n += g.integers(0, 256, (h, w), dtype=np.uint8)
    n -= 255
    scale = round(rng.uniform(2.0, 7.0) / 104.0 * 256)
    arr += ((n * scale + 128) >> 8)[..., None]
    noisy = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    noisy.save(buf, "JPEG", quality=rng.randint(60, 90))
    buf.seek(0)
    with Image.open(buf) as jpg:
        return jpg.convert("RGB")


def photograph(
    img: Image.Image,
    rng: random.Random,
    *,
    size: tuple[int, int] = (1600, 1200),
    max_tilt: float = 12.0,
    fill: tuple[float, float] = (0.45, 0.9),
) -> Image.Image:
    """A phone photo of the page ``img``: an RGB image of ``size``.

    The page (tinted paper, not-quite-black ink) lies on a textured table, its longer fitting
    side covering ``fill`` (a random share in that range) of the frame, turned by up to
    ``max_tilt`` degrees and seen at an angle (perspective warp), with a drop shadow, uneven
    lighting, noise, slight blur and JPEG compression.
    """
    w, h = size
    paper = _jitter((244, 241, 232), rng, 10)
    ink = _jitter((28, 28, 34), rng, 12)
    page = img.convert("L")
    pw, ph = page.size
    scale = rng.uniform(*fill) * min(w / pw, h / ph)
    qw, qh = pw * scale, ph * scale
    ang = math.radians(rng.uniform(-max_tilt, max_tilt))
    # Half extents of the turned page: keep it inside the frame where it fits.
    bw = abs(qw / 2 * math.cos(ang)) + abs(qh / 2 * math.sin(ang))
    bh = abs(qw / 2 * math.sin(ang)) + abs(qh / 2 * math.cos(ang))
    cx = rng.uniform(bw, w - bw) if bw < w / 2 else w / 2
    cy = rng.uniform(bh, h - bh) if bh < h / 2 else h / 2
    k = 1 - rng.uniform(0.0, 0.12)  # keystone: the far edge looks shorter
    top, bottom = (k, 1.0) if rng.random() < 0.7 else (1.0, k)
    corners = [
        (-qw / 2 * top, -qh / 2),
        (qw / 2 * top, -qh / 2),
        (qw / 2 * bottom, qh / 2),
        (-qw / 2 * bottom, qh / 2),
    ]
    ca, sa = math.cos(ang), math.sin(ang)
    dst = [
        (
            cx + x * ca - y * sa + rng.uniform(-0.02, 0.02) * w,
            cy + x * sa + y * ca + rng.uniform(-0.02, 0.02) * h,
        )
        for x, y in corners
    ]
    small = page.resize(
        (max(1, round(qw)), max(1, round(qh))), Image.Resampling.LANCZOS, reducing_gap=2.0
    )
    small = ImageOps.colorize(small, black=ink, white=paper)
    sw, sh = small.size
    coeffs = _perspective_coeffs(dst, [(0, 0), (sw, 0), (sw, sh), (0, sh)])
    warped = small.transform(size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
    mask = Image.new("L", small.size, 255).transform(
        size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR
    )
    scene = _table(size, rng)
    # Drop shadow: the page's outline, offset and blurred, darkens the table.
    # (Computed at a quarter of the size: it is soft anyway.)
    q = 4
    small_mask = mask.resize((max(1, w // q), max(1, h // q)), Image.Resampling.BOX)
    shadow = Image.new("L", small_mask.size, 0)
    shadow.paste(small_mask, (rng.randint(-3, 3), rng.randint(1, 5)))
    shadow = shadow.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 4)))
    shadow = shadow.resize(size, Image.Resampling.BILINEAR).point(lambda v: v * 45 // 100)
    scene = Image.composite(Image.new("RGB", size, (0, 0, 0)), scene, shadow)
    scene.paste(warped, (0, 0), mask)
    return _camera(scene, rng)


def _sky(w: int, h: int, rng: random.Random, g: np.random.Generator) -> _Array:
    top = _jitter(
        rng.choice(((60, 110, 190), (90, 140, 210), (120, 150, 190), (200, 120, 80))), rng, 20
    )
    bottom = _jitter((215, 225, 235), rng, 15)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None] * np.ones((1, w), np.float32)
    rgb = _lerp_rgb(t, top, bottom)
    if rng.random() < 0.8:  # clouds
        c = _fractal(w, h, g, scale=rng.choice((128, 256)), octaves=5)
        c = np.clip((c - rng.uniform(0.45, 0.65)) * 3, 0, 1)
        rgb = rgb * (1 - c[..., None]) + np.float32(rng.uniform(225, 250)) * c[..., None]
    return rgb


def _ridge(
    w: int, g: np.random.Generator, base: float, amp: float, rough: int
) -> npt.NDArray[np.float64]:
    """A mountain/hill skyline: y (in pixels) for every column."""
    y = np.zeros(w)
    a = amp
    for o in range(rough):
        n = 2 + 3 * 2**o
        pts = g.uniform(-1, 1, n + 1)
        y += a * np.interp(np.linspace(0, n, w), np.arange(n + 1), pts)
        a *= 0.5
    return base + y


def _paint_below(rgb: _Array, ridge: npt.NDArray[np.float64], colour: _Array) -> None:
    mask = np.arange(rgb.shape[0])[:, None] >= ridge[None, :]
    np.copyto(rgb, colour, where=np.repeat(mask[..., None], 3, axis=2))


def _foliage(
    img: Image.Image, box: tuple[int, int, int, int], rng: random.Random, count: int
) -> None:
    """Many small leaf blobs in greens: a high-frequency, isotropic texture."""
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = box
    base = rng.choice(((40, 90, 35), (70, 110, 40), (30, 70, 45), (120, 120, 40), (150, 80, 30)))
    for _ in range(count):
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        r = rng.uniform(2, 9)
        c = _jitter(base, rng, 35)
        d.ellipse((x - r, y - r * rng.uniform(0.5, 1.2), x + r, y + r), fill=c)


def _scene_landscape(w: int, h: int, rng: random.Random) -> Image.Image:
    g = _np(rng)
    rgb = _sky(w, h, rng, g)
    horizon = h * rng.uniform(0.35, 0.6)
    far = _ridge(w, g, horizon - h * 0.1, h * 0.12, 5)
    tex = _fractal(w, h, g, scale=64, octaves=5)
    _paint_below(
        rgb, far, _lerp_rgb(tex, _jitter((70, 80, 110), rng), _jitter((140, 150, 170), rng))
    )
    near = _ridge(w, g, horizon + h * 0.05, h * 0.08, 6)
    ground = _lerp_rgb(
        _fractal(w, h, g, scale=16, octaves=5),
        _jitter((40, 70, 30), rng),
        _jitter((120, 150, 60), rng),
    )
    _paint_below(rgb, near, ground)
    water = rng.random() < 0.4
    if water:  # a lake in the foreground: horizontal ripples and reflections
        top = int(h * rng.uniform(0.72, 0.85))
        ripples = _fractal(w, h - top, g, scale=24, octaves=4, aspect=0.12)
        band = _lerp_rgb(ripples, _jitter((40, 70, 110), rng), _jitter((170, 190, 210), rng))
        rgb[top:] = band
    img = _to_img(rgb)
    # Trees: trunks and crowns of leaves along the near ridge.
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(2, 9)):
        x = rng.randrange(w)
        y = int(near[x]) if x < w else int(horizon)
        th = rng.randint(h // 10, h // 3)
        d.rectangle((x - 4, y - th // 2, x + 4, y + 10), fill=_jitter((70, 50, 30), rng))
        _foliage(img, (x - th // 3, y - th, x + th // 3, y - th // 3), rng, th * 3)
    if not water:
        _foliage(img, (0, int(h * 0.8), w, h), rng, rng.randint(800, 2500))
    return img


def _scene_portrait(w: int, h: int, rng: random.Random) -> Image.Image:
    g = _np(rng)
    bg = _lerp_rgb(
        _fractal(w, h, g, scale=200, octaves=3),
        _jitter((60, 80, 60), rng, 40),
        _jitter((200, 190, 170), rng, 40),
    )
    img = _to_img(bg)
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(5, 25)):  # out-of-focus lights and shapes
        x, y, r = rng.randrange(w), rng.randrange(h), rng.randint(10, 90)
        d.ellipse((x - r, y - r, x + r, y + r), fill=_jitter((220, 200, 150), rng, 35))
    # Out of focus (blurred at a quarter of the size: it is smooth anyway).
    small = img.resize((max(1, w // 4), max(1, h // 4)), Image.Resampling.BOX)
    small = small.filter(ImageFilter.GaussianBlur(rng.uniform(2, 5)))
    img = small.resize((w, h), Image.Resampling.BILINEAR)
    d = ImageDraw.Draw(img)
    cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.5)
    fr = min(w, h) * rng.uniform(0.14, 0.24)
    skin = _jitter(
        rng.choice(((235, 200, 170), (200, 150, 110), (140, 95, 65), (95, 65, 45))), rng, 12
    )
    hair = _jitter(
        rng.choice(((30, 22, 18), (90, 60, 30), (180, 140, 80), (120, 120, 120))), rng, 12
    )
    shirt = _jitter(
        rng.choice(((30, 60, 130), (150, 30, 40), (40, 40, 40), (220, 220, 215), (60, 110, 70))),
        rng,
        30,
    )
    d.polygon(
        [
            (cx - fr * 2.4, h),
            (cx - fr * 1.6, cy + fr * 1.5),
            (cx + fr * 1.6, cy + fr * 1.5),
            (cx + fr * 2.4, h),
        ],
        fill=shirt,
    )
    if rng.random() < 0.4:  # striped shirt
        for k in range(int(cy + fr * 1.5), h, rng.randint(8, 20)):
            d.line((cx - fr * 2.4, k, cx + fr * 2.4, k), fill=_jitter(shirt, rng, 60), width=3)
    d.rectangle((cx - fr * 0.35, cy + fr * 0.8, cx + fr * 0.35, cy + fr * 1.6), fill=skin)
    d.ellipse((cx - fr * 1.1, cy - fr * 1.35, cx + fr * 1.1, cy + fr * 0.6), fill=hair)
    d.ellipse((cx - fr * 0.85, cy - fr * 1.1, cx + fr * 0.85, cy + fr * 1.1), fill=skin)
    for k in range(rng.randint(40, 160)):  # strands of hair
        a = rng.uniform(math.pi * 1.05, math.pi * 1.95)
        r0 = fr * rng.uniform(0.8, 1.1)
        d.line(
            (
                cx + r0 * math.cos(a),
                cy - fr * 0.3 + r0 * math.sin(a),
                cx + r0 * 1.2 * math.cos(a + 0.2),
                cy + r0 * 1.2 * math.sin(a + 0.2),
            ),
            fill=_jitter(hair, rng, 25),
            width=2,
        )
        if k > 300:
            break
    ex = fr * 0.35
    for sx in (-1, 1):
        ecx, ecy = cx + sx * ex, cy - fr * 0.15
        d.ellipse(
            (ecx - fr * 0.17, ecy - fr * 0.08, ecx + fr * 0.17, ecy + fr * 0.08),
            fill=(240, 240, 235),
        )
        d.ellipse(
            (ecx - fr * 0.07, ecy - fr * 0.07, ecx + fr * 0.07, ecy + fr * 0.07),
            fill=_jitter((70, 50, 30), rng, 30),
        )
        d.line(
            (ecx - fr * 0.2, ecy - fr * 0.2, ecx + fr * 0.2, ecy - fr * 0.22),
            fill=hair,
            width=max(2, int(fr * 0.05)),
        )
    d.line((cx, cy, cx - fr * 0.06, cy + fr * 0.3), fill=tuple(int(c * 0.8) for c in skin), width=3)
    d.arc(
        (cx - fr * 0.35, cy + fr * 0.25, cx + fr * 0.35, cy + fr * 0.65),
        20,
        160,
        fill=(150, 60, 60),
        width=max(2, int(fr * 0.05)),
    )
    return img.filter(ImageFilter.GaussianBlur(0.8))


def _scene_city(w: int, h: int, rng: random.Random) -> Image.Image:
    g = _np(rng)
    img = _to_img(_sky(w, h, rng, g))
    d = ImageDraw.Draw(img)
    ground = int(h * rng.uniform(0.75, 0.92))
    x = -rng.randint(0, 80)
    while x < w:
        bw = rng.randint(w // 12, w // 4)
        top = rng.randint(int(h * 0.1), int(h * 0.6))
        facade = _jitter(
            rng.choice(((150, 140, 130), (90, 95, 105), (190, 170, 140), (120, 70, 60))), rng, 25
        )
        d.rectangle((x, top, x + bw, ground), fill=facade)
        wwin, hwin = rng.randint(6, 26), rng.randint(8, 30)
        gx, gy = wwin + rng.randint(4, 20), hwin + rng.randint(6, 24)
        lit = rng.random() < 0.3
        for yy in range(top + gy // 2, ground - hwin, gy):
            for xx in range(x + gx // 3, x + bw - wwin, gx):
                c = (
                    (230, 210, 140)
                    if lit and rng.random() < 0.4
                    else _jitter((50, 60, 75), rng, 20)
                )
                d.rectangle((xx, yy, xx + wwin, yy + hwin), fill=c)
        x += bw + rng.randint(0, 30)
    d.rectangle((0, ground, w, h), fill=_jitter((70, 70, 72), rng))
    for _ in range(rng.randint(0, 5)):  # cars
        cx, cw = rng.randrange(w), rng.randint(80, 200)
        cy = ground + rng.randint(5, max(6, h - ground - 50))
        d.rounded_rectangle(
            (cx, cy, cx + cw, cy + cw // 3), radius=12, fill=_jitter((150, 30, 30), rng, 90)
        )
        for k in (0.2, 0.8):
            d.ellipse(
                (cx + cw * k - 14, cy + cw // 3 - 14, cx + cw * k + 14, cy + cw // 3 + 14),
                fill=(20, 20, 20),
            )
    return img


def _scene_grass(w: int, h: int, rng: random.Random) -> Image.Image:
    g = _np(rng)
    img = _to_img(_lerp_rgb(_fractal(w, h, g, scale=32, octaves=4), (25, 55, 20), (80, 120, 40)))
    d = ImageDraw.Draw(img)
    base = rng.choice(((60, 120, 40), (90, 140, 50), (120, 140, 60)))
    for _ in range(rng.randint(3000, 6000)):
        x, y = rng.uniform(0, w), rng.uniform(0, h + 60)
        ln, lean = rng.uniform(20, 90), rng.uniform(-0.5, 0.5)
        d.line((x, y, x + lean * ln, y - ln), fill=_jitter(base, rng, 45), width=rng.randint(1, 4))
    return img


def _scene_gravel(w: int, h: int, rng: random.Random) -> Image.Image:
    g = _np(rng)
    img = _to_img(_lerp_rgb(_fractal(w, h, g, scale=8, octaves=2), (40, 38, 35), (90, 85, 80)))
    d = ImageDraw.Draw(img)
    base = rng.choice(((160, 155, 145), (190, 170, 140), (130, 130, 135)))
    smax = rng.uniform(6, 30)
    for _ in range(int(w * h / (smax * smax) * 0.9)):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(smax * 0.4, smax), rng.uniform(smax * 0.3, smax * 0.8)
        c = _jitter(base, rng, 50)
        d.ellipse((x - rx, y - ry, x + rx, y + ry), fill=c)
        d.ellipse(
            (x - rx * 0.5, y - ry * 0.6, x + rx * 0.2, y - ry * 0.1), fill=_jitter(c, rng, 15)
        )
    return img


def _scene_fabric(w: int, h: int, rng: random.Random) -> Image.Image:
    g = _np(rng)
    # Thread coordinates, turned by up to 30 degrees (the cloth lies at an angle).
    ang = math.radians(rng.uniform(-30, 30))
    x0 = np.arange(w, dtype=np.float32)[None, :]
    y0 = np.arange(h, dtype=np.float32)[:, None]
    xx = x0 * math.cos(ang) + y0 * math.sin(ang)
    yy = y0 * math.cos(ang) - x0 * math.sin(ang)
    kind = rng.randrange(3)
    if kind == 0:  # woven: fine over-under threads
        p = rng.uniform(3, 9)
        t = (
            0.5
            + 0.25 * np.sin(xx * 2 * math.pi / p) * np.sin(yy * 2 * math.pi / p)
            + 0.25 * np.sin((xx + yy) * math.pi / p)
        )
    elif kind == 1:  # tartan: broad stripes both ways
        p1, p2 = rng.uniform(40, 120), rng.uniform(8, 30)
        t = (
            0.25 * (np.sin(xx / p1 * 6.28) > 0.3)
            + 0.25 * (np.sin(yy / p1 * 6.28) > 0.3)
            + 0.25 * (np.sin(xx / p2 * 6.28) > 0.8)
            + 0.25 * (np.sin(yy / p2 * 6.28) > 0.8)
        )
    else:  # knit: chevrons
        p = rng.uniform(6, 16)
        t = 0.5 + 0.5 * np.sin((yy + np.abs((xx % (2 * p)) - p)) * 2 * math.pi / p)
    shade = 0.8 + 0.4 * _fractal(w, h, g, scale=64, octaves=2)
    cloth = np.clip(t.astype(np.float32) * shade, 0, 1).astype(np.float32)
    a = _jitter(rng.choice(((30, 40, 90), (120, 20, 30), (40, 80, 50), (90, 70, 50))), rng, 30)
    b = _jitter(rng.choice(((200, 190, 160), (220, 200, 80), (150, 160, 190))), rng, 30)
    return _to_img(_lerp_rgb(cloth, a, b))


def _scene_bark(w: int, h: int, rng: random.Random) -> Image.Image:
    g = _np(rng)
    t = 0.6 * _fractal(w, h, g, scale=12, octaves=4, aspect=8.0) + 0.4 * _fractal(
        w, h, g, scale=64, octaves=3
    )
    cracks = np.clip((0.35 - _fractal(w, h, g, scale=16, octaves=3, aspect=6.0)) * 4, 0, 1)
    t = np.clip(t - 0.6 * cracks, 0, 1)
    return _to_img(_lerp_rgb(t, _jitter((30, 22, 15), rng), _jitter((150, 130, 110), rng)))


def _scene_bricks(w: int, h: int, rng: random.Random) -> Image.Image:
    g = _np(rng)
    mortar = _jitter((190, 185, 175), rng, 20)
    img = Image.new("RGB", (w, h), mortar)
    d = ImageDraw.Draw(img)
    bh = rng.randint(20, 60)
    bw = int(bh * rng.uniform(2.0, 3.2))
    gap = max(2, bh // 8)
    base = _jitter(rng.choice(((150, 60, 40), (170, 90, 60), (120, 100, 90))), rng)
    for row, y in enumerate(range(-bh, h + bh, bh + gap)):
        off = (bw // 2) * (row % 2)
        for x in range(-bw - off, w + bw, bw + gap):
            d.rectangle((x, y, x + bw, y + bh), fill=_jitter(base, rng, 25))
    tex = _fractal(w, h, g, scale=6, octaves=3)
    rgb = np.asarray(img, np.float32) * (0.75 + 0.5 * tex)[..., None]
    return _to_img(rgb).rotate(rng.uniform(-8, 8), Image.Resampling.BILINEAR, fillcolor=mortar)


def _scene_indoor(w: int, h: int, rng: random.Random) -> Image.Image:
    g = _np(rng)
    wall = _jitter(
        rng.choice(((225, 220, 205), (200, 210, 215), (235, 225, 200), (170, 180, 160))), rng, 15
    )
    img = _to_img(
        _lerp_rgb(_fractal(w, h, g, scale=256, octaves=2), tuple(int(c * 0.75) for c in wall), wall)
    )
    d = ImageDraw.Draw(img)
    floor = int(h * rng.uniform(0.65, 0.85))
    wood = _lerp_rgb(
        _fractal(w, h - floor, g, scale=10, octaves=2, aspect=0.1), (110, 75, 45), (170, 125, 80)
    )
    img.paste(_to_img(wood), (0, floor))
    for x in range(0, w, rng.randint(60, 140)):  # floorboards
        d.line((x, floor, x + (x - w / 2) * 0.3, h), fill=(80, 55, 35), width=2)
    # Window with venetian blinds.
    wx, wy = rng.randint(0, w // 2), rng.randint(h // 12, h // 4)
    ww, wh = rng.randint(w // 5, w // 3), rng.randint(h // 4, h // 2)
    d.rectangle((wx, wy, wx + ww, wy + wh), fill=(240, 245, 250))
    slat = rng.randint(8, 18)
    for y in range(wy, wy + wh, slat):
        d.rectangle((wx, y, wx + ww, y + slat - 3), fill=_jitter((215, 215, 210), rng, 10))
        d.line((wx, y + slat - 3, wx + ww, y + slat - 3), fill=(150, 150, 150), width=1)
    # Sofa, picture frame, lamp, plant.
    sx = rng.randint(w // 3, w // 2)
    sofa = _jitter(rng.choice(((90, 60, 50), (60, 80, 110), (120, 120, 120))), rng)
    d.rounded_rectangle((sx, floor - h // 5, sx + w // 3, floor + 10), radius=30, fill=sofa)
    d.rounded_rectangle(
        (sx - 20, floor - h // 8, sx + 30, floor + 10),
        radius=15,
        fill=tuple(int(c * 0.8) for c in sofa),
    )
    fx, fy = rng.randint(w // 2, w - w // 5), rng.randint(h // 10, h // 3)
    d.rectangle((fx, fy, fx + w // 7, fy + h // 6), fill=(60, 45, 30))
    d.rectangle(
        (fx + 10, fy + 10, fx + w // 7 - 10, fy + h // 6 - 10),
        fill=_jitter((120, 150, 180), rng, 60),
    )
    px = rng.randint(0, w - 100)
    d.rectangle((px, floor - 80, px + 70, floor), fill=(160, 90, 60))
    _foliage(img, (px - 60, floor - 260, px + 130, floor - 70), rng, 500)
    return img


def _scene_beach(w: int, h: int, rng: random.Random) -> Image.Image:
    g = _np(rng)
    rgb = _sky(w, h, rng, g)
    sea_top, sand_top = int(h * rng.uniform(0.35, 0.5)), int(h * rng.uniform(0.62, 0.8))
    waves = _fractal(w, sand_top - sea_top, g, scale=20, octaves=4, aspect=0.1)
    rgb[sea_top:sand_top] = _lerp_rgb(
        waves, _jitter((20, 70, 110), rng), _jitter((120, 180, 200), rng)
    )
    sand = _fractal(w, h - sand_top, g, scale=4, octaves=3)
    rgb[sand_top:] = _lerp_rgb(sand, _jitter((170, 150, 110), rng), _jitter((235, 220, 185), rng))
    img = _to_img(rgb)
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(0, 4)):  # umbrellas, towels
        x, y = rng.randrange(w), rng.randint(sand_top, h)
        d.pieslice(
            (x - 90, y - 160, x + 90, y - 20), 180, 360, fill=_jitter((220, 60, 60), rng, 40)
        )
        d.line((x, y - 90, x, y + 40), fill=(240, 240, 240), width=5)
    return img


def _scene_forest(w: int, h: int, rng: random.Random) -> Image.Image:
    g = _np(rng)
    img = _to_img(_lerp_rgb(_fractal(w, h, g, scale=64, octaves=4), (20, 40, 20), (110, 150, 80)))
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(6, 20)):
        x, tw = rng.randrange(w), rng.randint(12, 70)
        d.rectangle((x, 0, x + tw, h), fill=_jitter((60, 45, 35), rng, 20))
    _foliage(img, (0, 0, w, int(h * 0.6)), rng, rng.randint(3000, 7000))
    _foliage(img, (0, int(h * 0.75), w, h), rng, rng.randint(1000, 3000))
    return img


def _scene_branches(w: int, h: int, rng: random.Random) -> Image.Image:
    """A bare winter tree and overhead wires against the sky: thin dark strokes on a flat
    background, the classic false alarm of text detectors."""
    g = _np(rng)
    img = _to_img(_sky(w, h, rng, g))
    d = ImageDraw.Draw(img)
    bark = _jitter((45, 38, 32), rng, 12)

    def branch(x: float, y: float, ang: float, length: float, width: float, depth: int) -> None:
        x2, y2 = x + length * math.cos(ang), y - length * math.sin(ang)
        d.line((x, y, x2, y2), fill=bark, width=max(1, round(width)))
        if depth == 0 or length < 6:
            return
        for _ in range(rng.choice((2, 2, 3))):
            branch(
                x2,
                y2,
                ang + rng.uniform(-0.7, 0.7),
                length * rng.uniform(0.6, 0.8),
                width * 0.68,
                depth - 1,
            )

    for _ in range(rng.randint(1, 3)):
        branch(
            rng.uniform(0, w),
            h,
            math.pi / 2 + rng.uniform(-0.2, 0.2),
            h * rng.uniform(0.2, 0.35),
            rng.uniform(10, 26),
            rng.randint(7, 9),
        )
    for _ in range(rng.randint(0, 4)):  # sagging wires
        y0, sag = rng.uniform(0, h * 0.6), rng.uniform(10, 80)
        pts = [(x, y0 + sag * (1 - (2 * x / w - 1) ** 2)) for x in range(0, w + 40, 40)]
        d.line(pts, fill=(30, 30, 30), width=rng.randint(1, 3))
    return img


def _scene_skyline(w: int, h: int, rng: random.Random) -> Image.Image:
    """A distant city: rows of small, identical windows (and lit ones at dusk)."""
    g = _np(rng)
    dusk = rng.random() < 0.4
    rgb = _sky(w, h, rng, g)
    if dusk:
        rgb *= np.float32(0.45)
    img = _to_img(rgb)
    d = ImageDraw.Draw(img)
    ground = int(h * rng.uniform(0.7, 0.9))
    x = -rng.randint(0, 40)
    while x < w:
        bw = rng.randint(w // 20, w // 7)
        top = rng.randint(int(h * 0.25), int(h * 0.65))
        facade = _jitter(rng.choice(((140, 135, 130), (80, 85, 95), (175, 160, 135))), rng, 25)
        if dusk:
            facade = tuple(int(c * 0.4) for c in facade)  # type: ignore[assignment]
        d.rectangle((x, top, x + bw, ground), fill=facade)
        ww, wh = rng.randint(3, 8), rng.randint(4, 10)
        gx, gy = ww + rng.randint(2, 6), wh + rng.randint(3, 8)
        for yy in range(top + 4, ground - wh, gy):
            for xx in range(x + 3, x + bw - ww, gx):
                lit = dusk and rng.random() < 0.5
                c = _jitter((235, 210, 130), rng, 15) if lit else _jitter((40, 48, 60), rng, 12)
                d.rectangle((xx, yy, xx + ww, yy + wh), fill=c)
        x += bw + rng.randint(0, 12)
    d.rectangle((0, ground, w, h), fill=_jitter((60, 62, 58), rng))
    return img


def _scene_fence(w: int, h: int, rng: random.Random) -> Image.Image:
    """A picket fence or railing in front of a garden: many equal bars in a row."""
    img = _scene_grass(w, h, rng) if rng.random() < 0.5 else _to_img(_sky(w, h, rng, _np(rng)))
    d = ImageDraw.Draw(img)
    paint = _jitter(rng.choice(((235, 235, 230), (40, 40, 40), (120, 80, 50))), rng, 10)
    top, bottom = int(h * rng.uniform(0.2, 0.5)), int(h * rng.uniform(0.75, 1.0))
    bar = rng.randint(4, 16)
    pitch = bar + rng.randint(bar // 2 + 2, bar * 3)
    for x in range(-rng.randint(0, pitch), w, pitch):
        d.rectangle((x, top, x + bar, bottom), fill=paint)
        if rng.random() < 0.5:
            d.polygon([(x, top), (x + bar / 2, top - bar), (x + bar, top)], fill=paint)
    for y in (top + (bottom - top) // 5, bottom - (bottom - top) // 5):
        d.rectangle((0, y, w, y + bar // 2 + 2), fill=paint)
    return img


def _scene_plain(w: int, h: int, rng: random.Random) -> Image.Image:
    """Low-detail frames: a white wall, snow, fog, a sunset sky, a blank sheet of paper."""
    g = _np(rng)
    if rng.random() < 0.5:
        c = _jitter(rng.choice(((240, 240, 238), (230, 232, 240), (250, 245, 235))), rng, 8)
        return _to_img(
            _lerp_rgb(_fractal(w, h, g, scale=300, octaves=2), tuple(int(v * 0.85) for v in c), c)
        )
    return _to_img(_sky(w, h, rng, g))


_SCENES = (
    _scene_landscape,
    _scene_portrait,
    _scene_city,
    _scene_grass,
    _scene_gravel,
    _scene_fabric,
    _scene_indoor,
    _scene_bark,
    _scene_beach,
    _scene_bricks,
    _scene_forest,
    _scene_portrait,
    _scene_landscape,
    _scene_plain,
    _scene_branches,
    _scene_skyline,
    _scene_fence,
)
SCENE_NAMES: tuple[str, ...] = tuple(f.__name__.removeprefix("_scene_") for f in _SCENES)


def make_text_free_photos(
    n: int, seed: int = 7, size: tuple[int, int] = (1600, 1200)
) -> list[Image.Image]:
    """``n`` RGB photos with no text in them (scene ``i`` is ``SCENE_NAMES[i % len(SCENE_NAMES)]``).

    Landscapes (sky, clouds, mountains, trees, water), portraits (face, hair, clothes, blurred
    background), cityscapes (window grids, no signs), close-ups of grass, gravel, fabric, bark
    and bricks, indoor rooms (blinds, floorboards), beaches, forests, bare trees and wires
    against the sky, distant skylines (rows of identical windows), fences and near-blank
    frames; all
    through the same camera model as :func:`photograph` (light, noise, blur, JPEG).  Many have
    fine, high-contrast texture on purpose: a naive edge detector takes them for text.
    """
    out: list[Image.Image] = []
    for i in range(n):
        rng = random.Random(f"photo:{seed}:{i}")
        w, h = size if rng.random() < 0.75 else (size[1], size[0])
        img = _SCENES[i % len(_SCENES)](w, h, rng)
        out.append(_camera(img, rng, light=rng.random() < 0.7))
    return out


# --------------------------------------------------------------------------------------------
# PDFs
# --------------------------------------------------------------------------------------------


def _pdf_string(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def pdf_bytes(objects: Sequence[bytes], *, root: int = 1, trailer_extra: bytes = b"") -> bytes:
    """A PDF of these objects (numbered from 1) with a correct xref table; `root` is the
    catalog's number, `trailer_extra` more trailer entries (with a trailing space)."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for num, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root %d 0 R %s>>\n" % (len(objects) + 1, root, trailer_extra)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def write_text_pdf(path: Path, pages: Sequence[Sequence[str]], *, title: str = "") -> None:
    """A PDF whose pages carry ``pages`` as real text (Helvetica, WinAnsi), one line per line.

    Objects are written by hand: catalog, page tree, one shared font, one page and one
    content stream per page, an info dictionary with the title, and a correct xref table.
    Characters outside Windows-1252 become "?".
    """
    objects: list[bytes] = []  # objects[k] is object number k + 1

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below
    tree = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    info = add(b"<< /Title " + _pdf_string(title) + b" /Producer (Shoebox tests) >>")
    kids: list[int] = []
    for lines in pages:
        ops = [b"BT", b"/F1 11 Tf", b"14 TL", b"72 740 Td"]
        for line in lines:
            ops.append(_pdf_string(line) + b" Tj T*")
        ops.append(b"ET")
        stream = b"\n".join(ops) + b"\n"
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream")
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] " % tree
                + b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (font, content)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % tree
    objects[tree - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    out = pdf_bytes(objects, root=catalog, trailer_extra=b"/Info %d 0 R " % info)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out)


def write_scanned_pdf(path: Path, images: Sequence[Image.Image], dpi: int = 300) -> None:
    """An image-only PDF (no text layer): one page per image at ``dpi``."""
    if not images:
        raise ValueError("a PDF needs at least one page")
    path.parent.mkdir(parents=True, exist_ok=True)
    first, *rest = [im if im.mode in ("L", "RGB", "1") else im.convert("RGB") for im in images]
    first.save(path, "PDF", resolution=float(dpi), save_all=True, append_images=rest)


# --------------------------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """A search box query and the ids of the documents that answer it."""

    text: str
    relevant: frozenset[str]
    style: str  # "exact" | "paraphrase"


# Paraphrases by topic: what a user types, sharing few or no words with the documents.
_PARAPHRASES: tuple[tuple[str, str], ...] = (
    ("electricity", "how much do I owe for electricity"),
    ("bread", "how to bake bread"),
    ("plumbing", "cost of fixing the leaky faucet"),
    ("car_repair", "what the mechanic charged for my vehicle"),
    ("fuel", "what did I pay for petrol"),
    ("internet", "monthly cost of my home wifi"),
    ("job_offer", "letter saying I got the job"),
    ("router", "how to restart the wifi box from scratch"),
    ("smoke_alarm", "why does the fire alarm beep"),
    ("travel", "doctor bills on holiday abroad"),
    ("car", "what if someone steals my automobile"),
    ("lab", "results of my blood fat test"),
    ("savings", "how much did my nest egg earn"),
    ("credit_card", "smallest amount I must pay on my card"),
    ("tenancy_termination", "ending the rental of my apartment"),
    ("cafe", "coffee and pastry this morning"),
    ("chickpea_curry", "vegetarian indian stew"),
    ("guacamole", "mexican avocado dip"),
    ("espresso", "remove limescale from the coffee maker"),
    ("washing_machine", "laundry machine won't empty the water"),
    ("web_design", "payment for building our company homepage"),
    ("water", "tap water and sewage costs"),
    ("pharmacy", "medicine bought at the chemist"),
    ("prescription", "which antibiotic did the doctor give me"),
    ("dental", "cost of the tooth treatment"),
    ("pet", "is the vet covered for my dog"),
    ("tax", "money back from the government"),
    ("apple_crumble", "baked fruit dessert with a crunchy topping"),
    ("chocolate_cake", "cocoa birthday cake"),
    ("lawn_mower", "set how short the lawn gets cut"),
    ("heating_gas", "cost of heating the house this winter"),
    ("mobile", "cell phone plan bill"),
    ("school", "meeting with my kid's teachers"),
    ("complaint", "the couch arrived broken"),
    ("thank_you", "thanks for the present at our marriage"),
    ("rent_increase", "landlord raising the monthly payment"),
    ("groceries", "weekly food shopping"),
    ("hardware", "screws and paint from the DIY store"),
    ("electronics", "gadget shop purchase"),
    ("books", "novels I bought"),
    ("restaurant", "dinner out at the italian place"),
    ("roofing", "repairs to the top of the house"),
    ("gardening", "paying the gardener for yard work"),
    ("translation", "converting documents into another language"),
    ("catering", "food for the party guests"),
    ("office_supplies", "stationery order for work"),
    ("pancakes", "breakfast flapjacks recipe"),
    ("tomato_soup", "warm red soup for a cold day"),
    ("lasagne", "layered italian pasta dish"),
    ("bicycle", "how hard to pump up bike tyres"),
    ("home_contents", "are my belongings covered after a break-in"),
    ("liability", "I broke a neighbour's window by accident, who pays"),
    ("vaccination", "when did I last get a jab"),
    ("eye", "numbers for my new glasses"),
    ("referral", "sent to a specialist for my knee"),
    ("current_account", "everyday account transactions"),
)


def _contains(doc: Doc, phrase: str) -> bool:
    text = " ".join(doc.text.split()).lower()
    return re.search(r"(?<!\w)" + re.escape(phrase.lower()) + r"(?!\w)", text) is not None


def make_queries(docs: list[Doc]) -> list[Query]:
    """Half exact-word queries, half paraphrases, each with its relevant document ids.

    Exact queries (invoice numbers, vendor names, policy and account numbers, quoted phrases)
    are relevant to every document containing the phrase (so ``"invoice 4711"`` is relevant
    to the one document containing 4711).  Paraphrases are relevant to the documents of their
    topic.  Only queries with 1-3 relevant documents are kept; both halves have equal size.
    """
    ids = {d.id for d in docs}
    para: list[Query] = []
    for topic, text in _PARAPHRASES:
        rel = frozenset(d.id for d in docs if d.fact("topic") == topic)
        if 1 <= len(rel) <= 3:
            para.append(Query(text, rel, "paraphrase"))
    exact: list[Query] = []
    seen: set[str] = set()

    def add_exact(text: str, phrase: str) -> None:
        if phrase.lower() in seen:
            return
        rel = frozenset(d.id for d in docs if _contains(d, phrase))
        if 1 <= len(rel) <= 3:
            seen.add(phrase.lower())
            exact.append(Query(text, rel, "exact"))

    for d in docs:
        if d.fact("number") == "4711":
            add_exact("invoice 4711", "4711")
    candidates: list[tuple[str, str]] = []
    for d in docs:
        if d.kind == "invoice" and d.fact("number"):
            candidates.append((f"invoice {d.fact('number')}", d.fact("number")))
        for key in ("policy", "account"):
            if d.fact(key):
                candidates.append((d.fact(key), d.fact(key)))
        if d.fact("vendor") and d.kind in ("invoice", "receipt", "utility_bill", "insurance"):
            candidates.append((d.fact("vendor"), d.fact("vendor")))
    for phrase in (
        "pleased to offer you the position",
        "parents' evening",
        "calorific value",
        "meniscus tear",
        "Dutch oven",
        "garam masala",
        "paper clip",
        "interest credited",
    ):
        candidates.append((f'"{phrase}"', phrase))
    # Interleave kinds of candidates so the kept half covers numbers, names and phrases.
    order = random.Random("queries").sample(range(len(candidates)), len(candidates))
    for k in order:
        add_exact(*candidates[k])
    half = min(len(exact), len(para), 25)
    queries = exact[:half] + para[:half]
    assert all(q.relevant <= ids for q in queries)
    return queries


# --------------------------------------------------------------------------------------------
# The evaluation library on disk
# --------------------------------------------------------------------------------------------


def write_eval_library(root: Path, seed: int = 14) -> dict[str, Path]:
    """Write every document of ``make_documents(seed=seed)`` under ``root``; id -> file path.

    Each goes the way its "delivery" fact says: an upright 300-dpi PNG, a PNG turned
    90/180/270 degrees, a photographed JPEG (1600x1200, tilted at most 3 degrees: readable
    without deskewing), a text-layer PDF or a scanned (image-only) PDF; PDFs of long documents
    have two pages.
    """
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for doc in make_documents(seed=seed):
        path = root / doc.filename
        delivery = doc.fact("delivery", "png")
        if delivery == "pdf_text":
            write_text_pdf(path, doc_pages(doc), title=doc.title)
        elif delivery == "pdf_scan":
            write_scanned_pdf(path, render_doc(doc))
        else:
            page = render_doc(doc)[0]
            if delivery == "photo":
                shoot = random.Random(f"shoot:{seed}:{doc.id}")
                photo = photograph(page, shoot, max_tilt=3.0, fill=(0.7, 0.92))
                photo.save(path, "JPEG", quality=90)
            else:
                if delivery.startswith("rot"):
                    page = rotate_page(page, int(delivery[3:]))
                page.save(path, "PNG", dpi=(300, 300))
        out[doc.id] = path
    return out


# --------------------------------------------------------------------------------------------
# Photo text gate evaluation sets
# --------------------------------------------------------------------------------------------


def make_gate_set(
    seed: int, n_docs: int = 30, n_photos: int = 42, size: tuple[int, int] = (1280, 960)
) -> tuple[list[Image.Image], list[Image.Image]]:
    """(photographed documents, text-free photos) at preview size, for the photo text gate.

    Documents come from ``make_documents(seed=seed)`` (receipts and full pages alike), each
    photographed with its own scale (the page covers 30-95% of the frame), tilt (up to 15
    degrees; one in six is lying sideways), perspective, shadow and noise, in landscape or
    portrait frames.  Photos come from ``make_text_free_photos(n_photos, seed=seed)``.
    """
    docs = make_documents(max(n_docs, 9), seed=seed)[:n_docs]
    shots: list[Image.Image] = []
    for i, doc in enumerate(docs):
        rng = random.Random(f"gate:{seed}:{i}")
        page = render_doc(doc)[0]
        if rng.random() < 1 / 6:
            page = rotate_page(page, rng.choice((90, 270)))
        lo = rng.uniform(0.3, 0.6)
        frame = size if rng.random() < 0.7 else (size[1], size[0])
        shots.append(photograph(page, rng, size=frame, max_tilt=15.0, fill=(lo, 0.95)))
    return shots, make_text_free_photos(n_photos, seed=seed, size=size)

"""The PDF report laid out for A4: printed by headless Chromium from a real comparison of two local deployments,
then read back with poppler (Debian's poppler-utils): A4 pages, every table whole on one page, every heading
followed by something on its page, no text hidden under a picture. The pages are rendered to PNG in
artifacts/layout/ to be looked at."""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from backend.data.builtin import load_mnist_test
from backend.inspection.report import render, to_pdf
from backend.services.reports import report_inputs

from .test_browser_e2e import ARTIFACTS

A4_POINTS = (595, 842)


class Tables(HTMLParser):
    """Each table's rows (lists of cell texts) and each h2/h3's text, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.headings: list[str] = []
        self.order: list[str | None] = []  # each heading's text and each picture (None), in document order
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.order.append(None)
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in ("h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag in ("h2", "h3") and self._heading is not None:
            self.headings.append(" ".join("".join(self._heading).split()))
            self.order.append(self.headings[-1])
            self._heading = None

    def handle_data(self, data):
        for part in (self._cell, self._heading):
            if part is not None:
                part.append(data)


def words(*texts: str) -> re.Pattern:
    """Matches the texts' words in order, whatever spacing or line breaks the PDF put between them (a long word,
    a hash say, may be broken over lines)."""
    return re.compile(r"\s+".join(r"\s*".join(map(re.escape, w)) for text in texts for w in text.split()))


def poppler(*args: str) -> str:
    assert shutil.which(args[0]), f"{args[0]} is missing: run scripts/setup.sh (installs Debian's poppler-utils)"
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def testset():
    return load_mnist_test()


def test_the_pdf_report_is_laid_out_for_a4_with_tables_whole_and_headings_with_their_content(
        first_run_deck, testset, tmp_path):
    deck = first_run_deck  # sklearn_mnist:2, the SVC: a comparison with real differences
    a = deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "report-a", timeout=180)
    b = deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 2), "report-b", timeout=180)
    document = render(report_inputs(deck, b, testset, compare_with=a))
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(to_pdf(document))

    assert pdf_layout_problems(document, pdf, tmp_path) == []
    pages = int(re.search(r"Pages:\s+(\d+)", poppler("pdfinfo", str(pdf))).group(1))
    assert 3 <= pages <= 8, f"{pages} pages"

    shots = ARTIFACTS / "layout"
    shots.mkdir(parents=True, exist_ok=True)
    for old in shots.glob("report-page-*.png"):
        old.unlink()
    poppler("pdftoppm", "-r", "60", "-png", str(pdf), str(shots / "report-page"))  # to look at
    assert len(list(shots.glob("report-page-*.png"))) == pages


def pdf_layout_problems(document: str, pdf: Path, tmp_path: Path) -> list[str]:
    """What is wrong with the PDF `pdf` printed from the HTML `document`, as sentences (none: an empty list)."""
    problems = []
    info = poppler("pdfinfo", str(pdf))
    width, height = (float(v) for v in re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info).groups())
    if (round(width), round(height)) != A4_POINTS:
        problems.append(f"pages of {width:g} x {height:g} pt, not A4")
    pages = unicodedata.normalize("NFKC", poppler("pdftotext", "-raw", str(pdf), "-")).split("\f")[:-1]  # ﬀ: ff
    parsed = Tables()
    parsed.feed(document)
    for rows in parsed.tables:  # each table whole on one page: its first and last rows on the same page
        first, last = words(*rows[0]), words(*rows[-1])
        if not {i for i, text in enumerate(pages) if first.search(text)} & {i for i, text in enumerate(pages)
                                                                            if last.search(text)}:
            problems.append(f"the table starting {rows[0]} is split across pages (or missing)")
    # Positions: text lines and pictures per page (poppler's XML), in pixels from the page's top.
    placed = []  # (page, kind, text, left, top, right, bottom)
    for page in ET.fromstring(_xml(pdf, tmp_path)).iter("page"):
        for e in (e for e in page if e.tag in ("text", "image")):
            box = [float(e.get(k)) for k in ("left", "top", "width", "height")]
            text = unicodedata.normalize("NFKC", " ".join("".join(e.itertext()).split()))
            placed.append((int(page.get("number")), e.tag, text, box[0], box[1], box[0] + box[2], box[1] + box[3]))
    texts = [p for p in placed if p[1] == "text" and p[2]]
    pictures = [p for p in placed if p[1] == "image"]
    for heading in parsed.headings:  # each heading has something after it on its page
        found = [t for t in texts if t[2].startswith(" ".join(heading.split()[:4]))]
        if not found:
            problems.append(f"heading {heading!r} not found in the PDF")
        elif not [p for p in placed if p[0] == found[0][0] and p[4] >= found[0][6] - 1 and p is not found[0]]:
            problems.append(f"heading {heading!r} stands alone at the bottom of page {found[0][0]}")
    # A heading and the picture it introduces (the first one after it, before the next heading) on one page: the
    # calibration heading must never stand at a page's bottom with its reliability diagram on the next.
    in_pdf = sorted(pictures, key=lambda p: (p[0], p[4]))  # by page, then from the top
    in_document = sum(item is None for item in parsed.order)
    if len(in_pdf) != in_document:
        problems.append(f"{in_document} pictures in the document, {len(in_pdf)} in the PDF")
    else:
        shown = iter(in_pdf)
        pages_of = {item: None for item in parsed.order}  # heading -> the page of its picture
        heading = None
        for item in parsed.order:
            if item is not None:
                heading = item
            else:
                page = next(shown)[0]
                if heading is not None:
                    pages_of[heading], heading = page, None
        for heading, page in pages_of.items():
            found = [t for t in texts if t[2].startswith(" ".join(heading.split()[:4]))] if heading else []
            if page is not None and found and found[0][0] != page:
                problems.append(f"heading {heading!r} on page {found[0][0]}, its picture on page {page}")
    for text in texts:  # no text under a picture (the per-class table beside the heatmap, say)
        for picture in pictures:
            if text[0] == picture[0] and min(text[5], picture[5]) - max(text[3], picture[3]) > 1 \
                    and min(text[6], picture[6]) - max(text[4], picture[4]) > 1:
                problems.append(f"{text[2]!r} on page {text[0]} lies under a picture")
    return problems


def _xml(pdf: Path, tmp_path: Path) -> str:
    """poppler's XML of the PDF: every text line and picture with its page and box."""
    out = tmp_path / "layout"
    poppler("pdftohtml", "-xml", "-q", str(pdf), str(out))
    return out.with_suffix(".xml").read_text(encoding="utf-8")

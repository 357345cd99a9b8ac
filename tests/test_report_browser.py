"""report.html rendered by a real browser: Debian's chromium, headless (installed by tests/browser/setup.sh).

The report of the end-to-end summary of test_summarize (every figure: maps, S/N, σ, spectra, truth
comparison, calibration, samples against the truth, pixel histograms) is copied next to its PNGs with a
small script appended that, on window load, records for every <img> whether it loaded
(``complete && naturalWidth > 0``) and writes the result into the DOM. chromium dumps the DOM after the
page settles; the test parses it. A copy with one PNG renamed and one overwritten by text must report
exactly those two as broken, so the check can fail. Skips with the reason in .chromium-unavailable, or when
chromium is not on PATH.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from test_summarize import full_case  # noqa: F401  (the end-to-end summary: a real report with every figure)

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120  # chromium start-up and rendering of a local page on 2 busy cores: a few seconds normally
N_FIGURES = 8  # the figures of a summary with KS, Wiener, posterior samples, MAP, a truth and positions

PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (im) {
    return {src: im.getAttribute("src"), loaded: im.complete && im.naturalWidth > 0, width: im.naturalWidth};
  });
  var out = document.createElement("pre");
  out.id = "image-check";
  out.textContent = JSON.stringify({done: true, images: images});
  document.body.appendChild(out);
});
</script>
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    """The chromium executable, or a skip with the reason (module scope, first in the arguments: it runs
    before the summary fixture, so a skip costs nothing)."""
    reason = ROOT / ".chromium-unavailable"
    if reason.exists():
        pytest.skip(reason.read_text().strip())
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not on PATH (run: sudo bash tests/browser/setup.sh)")
    return exe


class _ProbeText(HTMLParser):
    """The text of <pre id="image-check"> in a dumped DOM (entities decoded)."""

    def __init__(self):
        super().__init__()
        self.inside, self.text = False, []

    def handle_starttag(self, tag, attrs):
        if tag == "pre" and dict(attrs).get("id") == "image-check":
            self.inside = True

    def handle_endtag(self, tag):
        if tag == "pre":
            self.inside = False

    def handle_data(self, data):
        if self.inside:
            self.text.append(data)


def _render(exe: str, summary: Path, folder: Path) -> list[dict]:
    """Copy the summary into ``folder`` with the probe before </body>; chromium's verdict per <img>."""
    shutil.copytree(summary, folder)
    page = folder / "report.html"
    html = page.read_text(encoding="utf-8")
    assert html.count("</body>") == 1
    page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
           "--virtual-time-budget=10000", f"--user-data-dir={folder.parent / (folder.name + '.profile')}",
           "--dump-dom", page.resolve().as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert res.returncode == 0, f"chromium exited {res.returncode}: {res.stderr[-2000:]}"
    parser = _ProbeText()
    parser.feed(res.stdout)
    parser.close()
    text = "".join(parser.text)
    assert text, f"the probe did not run (no #image-check in the dumped DOM): {res.stdout[:500]!r}"
    result = json.loads(text)
    assert result["done"] is True
    return result["images"]


def test_every_figure_of_the_report_loads_in_chromium(chromium, full_case, tmp_path):  # noqa: F811
    assert full_case["res"].exit_code == 0, full_case["res"].output
    images = _render(chromium, full_case["out"], tmp_path / "ok")
    srcs = [im["src"] for im in images]
    # every figure is in the page (a report without images, or with one figure missing, fails here) ...
    pngs = sorted(p.name for p in full_case["out"].glob("*.png"))
    assert len(images) >= N_FIGURES and sorted(srcs) == pngs, (srcs, pngs)
    assert srcs[0] == "maps.png"  # maps first
    # ... and every one was decoded by the browser (naturalWidth: the PNG's width in pixels, > 100 at 90 dpi)
    broken = [im for im in images if not im["loaded"]]
    assert not broken, broken
    assert all(im["width"] > 100 for im in images), images


def test_chromium_check_detects_broken_figures(chromium, full_case, tmp_path):  # noqa: F811
    folder = tmp_path / "broken"
    summary = tmp_path / "summary"
    shutil.copytree(full_case["out"], summary)
    (summary / "sample_statistics.png").rename(summary / "sample_statistics.png.bak")  # a missing file
    # a file that is not an image: it exists but does not decode. (A PNG truncated after its header still
    # "loads" by this criterion, with the header's width: chromium draws what it has.)
    (summary / "spectra.png").write_bytes(b"this is not a PNG\n" * 20)
    images = _render(chromium, summary, folder)
    verdict = {im["src"]: im["loaded"] for im in images}
    assert len(verdict) >= N_FIGURES
    assert verdict.pop("sample_statistics.png") is False and verdict.pop("spectra.png") is False
    assert all(verdict.values()), verdict  # and only those two

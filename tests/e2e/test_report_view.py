"""A person's view of a run: `testbed run` in a real terminal (tmux), and the
report it leaves opened in a real browser (headless chromium).

One smoke run in a tmux pane serves both: the pane must end with the status line
at the last interval (N/N) and the run's result; its report.html, copied alone
into an empty folder, must show every figure (inline data, decoded by the
browser), no literal backticks and no absolute path of the bundle."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from tests.conftest import REPO, require_tool
from tests.e2e.test_cli_run import SMOKE

TESTBED = REPO / ".venv" / "bin" / "testbed"
EXIT_MARK = "TESTBED-EXIT="
RUN_DEADLINE_SECONDS = 600  # a busy 2-core machine; the smoke run takes ~40 s idle
C0 = np.array([0x1F, 0x77, 0xB4]) / 255  # matplotlib's first colour: the figures' bars


@dataclass(frozen=True)
class Pane:
    text: str  # the whole pane at the end, wrapped lines joined
    bundle: Path
    exit_code: int


def tmux(socket: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def pane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pane]:
    """`testbed run topologies/smoke.yaml` in a 160x40 tmux pane (its own server,
    stopped at the end); the pane once the command has exited."""
    require_tool("tmux")
    require_tool("anvil")
    out = tmp_path_factory.mktemp("view") / "results"
    socket = f"testbed-view-{os.getpid()}"
    state = out.parent / "state"
    command = (
        f"cd {REPO} && TESTBED_STATE_DIR={state} {TESTBED} run {SMOKE} --out {out}; "
        f"echo {EXIT_MARK}$?; sleep {RUN_DEADLINE_SECONDS}"
    )
    started = tmux(socket, "new-session", "-d", "-s", "run", "-x", "160", "-y", "40", command)
    assert started.returncode == 0, started.stderr
    try:
        text = ""
        deadline = time.monotonic() + RUN_DEADLINE_SECONDS
        while EXIT_MARK not in text and time.monotonic() < deadline:
            time.sleep(0.5)
            text = tmux(socket, "capture-pane", "-p", "-J", "-t", "run").stdout
        assert EXIT_MARK in text, f"the run did not end in time:\n{text}"
        [code] = re.findall(rf"{EXIT_MARK}(\d+)", text)
        bundles = [p for p in out.glob("smoke/*") if p.is_dir()]
        assert len(bundles) == 1, (bundles, text)
        yield Pane(text, bundles[0], int(code))
    finally:
        tmux(socket, "kill-server")


def test_the_terminal_ends_with_every_interval_and_the_result(pane: Pane) -> None:
    assert pane.exit_code == 0, pane.text
    lines = [line.rstrip() for line in pane.text.splitlines() if line.strip()]
    status = [line for line in lines if line.startswith("interval ")]
    # the status line is redrawn in place: one line on screen, at the last interval
    assert len(status) == 1, lines
    assert status[0].startswith("interval 56/56  offers 55  trades "), status
    result = lines.index(status[0]) + 1
    assert re.fullmatch(rf"{pane.bundle.name}: ok \(last interval finalized\)", lines[result])
    assert re.match(r"  [\d.]+ kWh traded in intervals 49\.\.56; 55 offers;", lines[result + 1])
    assert f"  bundle: {pane.bundle}" in lines


# -- the report in a browser ---------------------------------------------------

PROBE = """<script>
window.addEventListener('load', () => {
  for (const img of document.images) {
    img.setAttribute('data-decoded', img.complete && img.naturalWidth > 0
      ? img.naturalWidth + 'x' + img.naturalHeight : 'no');
  }
});
</script>"""


class Page(HTMLParser):
    """The images (their attributes) and the visible text of a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.text: list[str] = []
        self.codes = 0
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append({k: v or "" for k, v in attrs})
        self.codes += tag == "code"
        self._hidden += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless chromium on a file (root needs --no-sandbox; a profile of its own so
    tests running at the same time do not share one)."""
    require_tool("chromium")
    argv = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    argv += [f"--user-data-dir={profile}", "--virtual-time-budget=10000", *args]
    return subprocess.run(
        [*argv, page.as_uri()], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def alone(pane: Pane, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle's report.html alone in an empty folder (no figures/ beside it),
    with a probe that records whether the browser decoded each image."""
    page = tmp_path_factory.mktemp("alone") / "report.html"
    page.write_text((pane.bundle / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    return page


def test_the_report_shows_its_figures_standing_alone(
    pane: Pane, alone: Path, tmp_path: Path
) -> None:
    dumped = chromium(alone, tmp_path / "profile", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    page = Page()
    page.feed(dumped.stdout)
    figures = sorted(p.name for p in (pane.bundle / "figures").glob("*.png"))
    assert len(page.images) == len(figures) == 4, figures
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,"), img["src"][:80]
        width, height = map(int, img["data-decoded"].split("x"))  # "no": not decoded
        assert width >= 600 and height >= 400, img["data-decoded"]
    text = "".join(page.text)
    assert "Key numbers" in text and "Energy traded" in text
    assert "`" not in text  # markdown rendered, not shown
    assert page.codes >= 2  # what report.md marks as code is code on the page
    for where in (str(pane.bundle), str(pane.bundle.parent), str(REPO)):
        assert where not in dumped.stdout
        assert where not in (pane.bundle / "report.md").read_text()


def test_the_screenshot_is_a_page_with_figures(alone: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    done = chromium(alone, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,3000")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = image.imread(str(shot))[:, :, :3]
    assert pixels.shape[:2] == (3000, 1200)
    ink = np.any(pixels < 0.9, axis=2).mean()  # anything not white
    assert 0.05 < ink < 0.9, ink
    bars = np.all(np.abs(pixels - C0) < 0.08, axis=2).mean()  # the figures' blue
    assert bars > 0.01, bars
    shutil.copy(shot, alone.parent / "report.png")  # kept beside the page for a look

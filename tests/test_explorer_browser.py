"""`chromatic explore` in a real browser: Debian's headless Chromium, driven over the DevTools pipe.

The page is served by the CLI itself (a subprocess on 127.0.0.1, port 0) over a
synthetic store; the test clicks a map point with real mouse events. Screenshots
land in $CHROMATIC_TEST_ARTIFACTS (default tests/artifacts/explorer), printed
in the test output. Without Chromium the test fails: CI installs it (.ci/run).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from cdp import Browser, find_chromium
from tinydata import TINY_COLORS

ROOT = Path(__file__).resolve().parent.parent
TABLE = "audio.fake.v1"
ARTIFACTS = Path(os.environ.get("CHROMATIC_TEST_ARTIFACTS", ROOT / "tests" / "artifacts")) / "explorer"

# The most isolated point with audio and MIDI, so a click at its centre can only mean it.
PICK_POINT = """(() => {
  const pts = explorerState.map.points, order = explorerState.mapColors;
  const nodes = document.querySelectorAll('#map .scatterlayer .trace');
  let best = null;
  for (const p of pts.filter((q) => q.has_audio && q.has_midi)) {
    const gap = Math.min(...pts.filter((q) => q !== p).map((q) => Math.hypot(q.x - p.x, q.y - p.y)));
    if (!best || gap > best.gap) best = {p, gap};
  }
  const trace = order.indexOf(best.p.color);
  const index = pts.filter((q) => q.color === best.p.color).indexOf(best.p);
  const box = nodes[trace].querySelectorAll('.point')[index].getBoundingClientRect();
  return {segment: best.p.segment_id, x: box.x + box.width / 2, y: box.y + box.height / 2};
})()"""


@contextmanager
def explore_cli(store_uri: str):
    """`chromatic explore --port 0` as a subprocess; yields the URL it prints, stops it on exit."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "cli", "--store", store_uri, "explore", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert found, f"explore printed {line!r}"
        yield found.group(0)
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    executable = find_chromium()
    if executable is None:
        pytest.fail("chromium is not installed: `apt-get install chromium` (.ci/run does this)")
    opened = Browser(executable, tmp_path_factory.mktemp("chromium-profile"))
    yield opened
    opened.close()


def api(url: str, path: str, **params):
    with urllib.request.urlopen(f"{url}{path}?{urllib.parse.urlencode(params, doseq=True)}", timeout=60) as response:
        return json.load(response)


def test_map_click_neighbours_and_audio_in_chromium(explorer_store, browser):
    store, _ = explorer_store
    print(f"\nexplorer screenshots: {ARTIFACTS}")
    with explore_cli(store.uri) as url:
        browser.navigate(url)
        browser.wait_for("window.explorerState && explorerState.mapColors.length > 0", what="the map")
        drawn = browser.evaluate("""(() => {
          const points = [...document.querySelectorAll('#map .scatterlayer .point')];
          return {points: points.length, fills: [...new Set(points.map((p) => getComputedStyle(p).fill))],
                  shown: explorerState.map.shown, legend: explorerState.mapColors};
        })()""")
        assert drawn["points"] == drawn["shown"] == api(url, "/api/map", table=TABLE)["shown"]
        assert sorted(drawn["legend"]) == sorted(TINY_COLORS) and len(drawn["fills"]) == 8
        browser.screenshot(ARTIFACTS / "1-map.png")

        target = browser.evaluate(PICK_POINT)
        browser.click(target["x"], target["y"])
        browser.wait_for(f"explorerState.selected === {json.dumps(target['segment'])} && "
                         "document.querySelectorAll('#neighbors li[data-segment]').length > 0", what="the neighbours")
        listed = browser.evaluate("[...document.querySelectorAll('#neighbors li')].map((li) => li.dataset.segment)")
        expected = api(url, "/api/neighbors", table=TABLE, segment=target["segment"])["neighbors"]
        assert listed == [n["segment_id"] for n in expected] and len(listed) == 10
        audio = browser.wait_for("explorerState.audio", what="the audio element to load its WAV")
        segment = api(url, f"/api/segments/{target['segment']}")
        assert audio["segment"] == target["segment"] and audio["readyState"] >= 1
        assert audio["duration"] == pytest.approx(segment["end_s"] - segment["start_s"], abs=0.01)
        assert browser.evaluate("document.querySelector('#player').error") is None
        browser.wait_for("document.querySelector('#roll .main-svg') !== null", what="the piano roll")
        browser.screenshot(ARTIFACTS / "2-clicked.png")

        browser.evaluate("document.getElementById('tab-runs').click()")
        browser.wait_for("document.querySelectorAll('#runs tr').length === 3", what="the runs list")
        browser.evaluate("document.querySelector('#runs td:nth-child(2) .link').click()")
        browser.wait_for("document.querySelector('#fig-color_confusion .main-svg') !== null", what="a run's figures")
        browser.screenshot(ARTIFACTS / "3-run.png")
        browser.evaluate("document.querySelector('#runs td:nth-child(5) .link').click()")  # the run's config group
        side = browser.wait_for("explorerState.compared && explorerState.compared.map((r) => r.run_id)",
                                what="the side-by-side view")
        assert side == [r["run_id"] for r in api(url, "/api/runs")]
        drawn_plots = "document.querySelectorAll('.js-plotly-plot[id^=compare-fig-]').length === 2"
        browser.wait_for(f"{drawn_plots} && document.querySelector('#compare-fig-1 .main-svg') !== null",
                         what="the side-by-side confusion matrices")
        browser.screenshot(ARTIFACTS / "4-side-by-side.png")
    assert browser.evaluate("explorerState.errors") == []


def test_html_report_renders_from_a_file_with_no_server(explorer_store, browser, tmp_path):
    from explorer.report_html import write_run_html

    store, runs = explorer_store
    path = write_run_html(store, runs[0], tmp_path / "report.html")
    browser.navigate(path.as_uri())
    rendered = browser.wait_for("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 5 && "
                                "document.querySelectorAll('.js-plotly-plot').length", what="the report's figures")
    assert rendered == 5  # curves + three mode confusions + colour
    browser.screenshot(ARTIFACTS / "5-report.png")

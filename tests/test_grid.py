"""The page's layer x unit grid, drawn by audiation/browser/static/page.js itself (in Node, with a stub document):
a wide layer wraps into lines instead of scrolling sideways, and one outlier neither sets the colours of
the rest nor goes unmarked."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from audiation.browser.page import STATIC
from audiation.outputs import record_schema

NODE = shutil.which("node")
HERE = Path(__file__).parent


def _grid(tmp_path: Path, cards: list[dict], key: str = "final_activation") -> str:
    files = {"data": cards, "sources": ["job"], "fields": record_schema.for_page()}
    for name, value in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(value))
    return subprocess.run([NODE, str(HERE / "page_in_node.js"), str(STATIC / "page.js"),
                           *(str(tmp_path / f"{name}.json") for name in files), key],
                          capture_output=True, text=True, check=True, timeout=60).stdout


def _cards(values: list[float], layer: str = "L6") -> list[dict]:
    return [{"source": 0, "name": f"{layer}-U{u}-channel", "layer": layer, "objective": "channel", "text": "",
             "keys": {"layer": 0, "unit": u, "final_activation": v}} for u, v in enumerate(values)]


def _colours(html: str) -> dict[str, tuple[int, ...]]:
    return {name: tuple(map(int, rgb.split(","))) for rgb, name in
            re.findall(r'style="background:rgb\(([^)]+)\)" data-name="([^"]+)"', html)}


@pytest.mark.skipif(NODE is None, reason="needs Node.js to run the page's script")
def test_a_wide_layer_wraps_and_an_outlier_is_marked_not_the_scale(tmp_path):
    values = [u / 10 for u in range(130)]
    values[7] = 100.0  # one unit far above the rest
    html = _grid(tmp_path, _cards(values))
    assert re.findall(r"<tr><th>([^<]*)</th>", html)[1:] == ["L6 0–63", "L6 64–127", "L6 128–129"]
    assert re.findall(r'class="cell outlier"[^>]*data-name="([^"]+)"', html) == ["L6-U7-channel"]
    colours = _colours(html)
    assert colours["L6-U7-channel"] == (253, 231, 37)  # still the bright end, and outlined
    # U64 (6.4) sits mid-range among the others: teal, not the dark end it was when 100 set the scale
    assert colours["L6-U64-channel"][1] > 100, colours["L6-U64-channel"]
    assert "1 far outlier(s)" in html


@pytest.mark.skipif(NODE is None, reason="needs Node.js to run the page's script")
def test_a_narrow_grid_is_one_line_per_layer_coloured_from_min_to_max(tmp_path):
    html = _grid(tmp_path, _cards([0.0, 1.0, 5.0]) + [{**c, "keys": {**c["keys"], "layer": 1}}
                                                         for c in _cards([2.0, 3.0, 4.0], "L7")])
    assert re.findall(r"<tr><th>([^<]*)</th>", html) == ["layer \\ unit", "L6", "L7"]
    colours = _colours(html)
    assert colours["L6-U0-channel"] == (68, 1, 84) and colours["L6-U2-channel"] == (253, 231, 37)
    assert "outlier" not in html.split('id="legend"', 1)[1].split("</p>", 1)[1]

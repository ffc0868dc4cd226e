"""The page's layer x unit grid, drawn by audiation/browser/static/page.js itself (in Node, with a stub document):
a wide layer wraps into lines instead of scrolling sideways, and one outlier neither sets the colours of
the rest nor goes unmarked; the address's fragment keeps what is shown, so Back returns from a card to the grid."""

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


def _page(tmp_path: Path, cards: list[dict], key: str = "final_activation", fragment: str = "",
          drive: str = "") -> dict:
    """What page.js drew ({cards, hash, entries}: see page_in_node.js), opened in the grid view at `#fragment`."""
    files = {"data": cards, "sources": ["job"], "fields": record_schema.for_page()}
    for name, value in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(value))
    return json.loads(subprocess.run([NODE, str(HERE / "page_in_node.js"), str(STATIC / "page.js"),
                                      *(str(tmp_path / f"{name}.json") for name in files), key, fragment, drive],
                                     capture_output=True, text=True, check=True, timeout=60).stdout)


def _grid(tmp_path: Path, cards: list[dict], key: str = "final_activation") -> str:
    return _page(tmp_path, cards, key)["cards"]


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


@pytest.mark.skipif(NODE is None, reason="needs Node.js to run the page's script")
def test_a_cell_opens_its_card_as_a_history_entry_and_back_returns_to_the_grid(tmp_path):
    cards = [{**c, "rows": [], "meta": "", "text": c["name"].lower()} for c in _cards([0.0, 1.0, 5.0])]
    click = "fire('cards', 'click', {target: {classList: {contains: c => c === 'cell'}, dataset: {name: 'L6-U2-channel'}}});"
    # the stub opens the grid sorted by layer (the page's defaults here): only what differs is in the address
    opened = _page(tmp_path, cards, "layer", fragment="#view=grid&sort=final_activation", drive=click)
    assert opened["entries"] == ["sort=final_activation", "view=cards&sort=final_activation&filter=l6-u2-channel"]
    assert re.findall(r'<article class="card" data-name="([^"]+)"', opened["cards"]) == ["L6-U2-channel"]
    back = _page(tmp_path, cards, "layer", fragment="#sort=final_activation", drive=click + "history.back();")
    assert back["hash"] == "#sort=final_activation" and 'class="cell"' in back["cards"]

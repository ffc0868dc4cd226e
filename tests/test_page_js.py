"""The page's script on its own (tests/js/page.test.js, Node's test runner): what each card and the grid draw, the
escaping of every text, sorting, filtering, paging and the address. `make mutants-js` counts what these catch."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE = shutil.which("node")
TESTS = Path(__file__).parent / "js" / "page.test.js"


# Skipped without Node on a workstation; in CI (CI=true, which installs nodejs) a missing Node fails instead.
@pytest.mark.skipif(NODE is None and not os.environ.get("CI"), reason="needs Node.js to run the page's script")
def test_the_page_script_passes_its_node_tests():
    assert NODE, "CI needs Node.js (Makefile's APT_PACKAGES)"
    done = subprocess.run([NODE, "--test", str(TESTS)], capture_output=True, text=True, timeout=120)
    failed = [line for line in done.stdout.splitlines() if line.startswith("not ok")]
    assert done.returncode == 0, "\n".join(failed) or done.stdout[-3000:] + done.stderr[-3000:]

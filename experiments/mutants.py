"""Mutation testing of every module of the package, one module per shard (`make mutants`).

mutmut (pyproject's `[tool.mutmut]`, its settings shared by every shard) plants one bug at a time in one
module and runs, against each, the tests that reach the changed function. A shard is one module, mutated in
a folder of its own (`build/mutants/<module>/`, the checkout linked into it), and tested by the test files
that exercise it: those that import it, and those named in `EXTRA_TESTS` for a module reached only through
others or a command line. Each shard runs in its time box; run again, it goes on where it stopped (mutmut
keeps every verdict in the shard's folder), so a whole-package run can be spread over sittings. At the end,
the score of every shard run so far, and with `--survivors` each surviving mutant's name (`mutmut show
<name>` in the shard's folder shows its diff).

    python experiments/mutants.py                         # every module, 20 min each at most
    python experiments/mutants.py hearing/judges.py outputs/folder.py --minutes 30
    python experiments/mutants.py --scores --survivors    # what every shard found so far, running nothing
    python experiments/mutants.py jobs/folder.py --fresh      # again from the start, after its tests changed
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE, TESTS, SHARDS = ROOT / "audiation", ROOT / "tests", ROOT / "build" / "mutants"

# Modules that no test file imports by name, or whose importers do not reach most of it: tests run through
# the package's commands, its jobs or its model families.
EXTRA_TESTS = {
    "audiation/console.py": ["test_cli.py", "test_time.py"],
    "audiation/core/runtime.py": ["test_trainer.py", "test_model.py"],
    "audiation/run.py": ["test_cli.py", "test_sweeps.py"],
    "audiation/examples.py": ["test_examples.py", "test_cli.py"],
    "audiation/features.py": ["test_features.py"],
    "audiation/directions.py": ["test_trial.py"],
    "audiation/gallery.py": ["test_gallery.py"],
    "audiation/report.py": ["test_verdicts.py"],
    "audiation/jobs/sweep_report.py": ["test_sweeps.py", "test_time.py"],
    "audiation/jobs/subscribers.py": ["test_wandb.py", "test_audiation.py"],
    "audiation/outputs/tracking.py": ["test_wandb.py"],
    "audiation/models/families/base.py": ["test_model.py"],
    "audiation/models/families/wav2vec2.py": ["test_model.py", "test_tiny_model.py"],
    "audiation/models/layers.py": ["test_model.py"],
}

# Functions called only while their module loads (to build a table), before mutmut switches a mutant on in
# its worker: their mutants "survive" whatever the tests do, so they are counted apart. Each was planted by hand
# instead (RESULTS says which test fails).
IMPORT_TIME = {"audiation.outputs.record_schema.x__measure"}

# Tests of the source text itself (module length, imports), which a mutated copy (its trampolines) fails.
SOURCE_TESTS = {"test_structure.py"}

# mutmut's verdicts (its exit codes) as this report counts them: a mutant no test reaches is a survivor.
VERDICTS = {1: "killed", 3: "killed", 37: "killed", 36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout",
            255: "timeout", -11: "killed", -9: "killed", 0: "survived", 5: "no tests", 33: "no tests", None: "not run"}


def modules() -> list[str]:
    """Every module of the package with code in it, as paths from the checkout."""
    return sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                  if p.name != "__init__.py" or len(p.read_text().splitlines()) > 4)


def tests_for(module: str) -> list[str]:
    """The test files that import `module` (by its dotted name or as a name from its package), and its extras."""
    dotted = module.removesuffix(".py").replace("/", ".")
    parent, name = dotted.rsplit(".", 1)
    imports = re.compile(rf"^\s*(from {re.escape(dotted)} import|import {re.escape(dotted)}\b|"
                         rf"from {re.escape(parent)} import .*\b{name}\b)", re.M)
    found = {p.name for p in TESTS.glob("test_*.py") if imports.search(p.read_text())} - SOURCE_TESTS
    return [f"tests/{name}" for name in sorted(found | set(EXTRA_TESTS.get(module, [])))]


def shard_folder(module: str) -> Path:
    return SHARDS / module.removeprefix("audiation/").removesuffix(".py").replace("/", ".")


def prepare(module: str) -> Path:
    """The shard's folder: the checkout linked in, and pyproject.toml with `[tool.mutmut]` narrowed to the
    module and its tests (every other setting, and every other table, as the checkout has them)."""
    folder = shard_folder(module)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("audiation", "tests", "conf"):
        link = folder / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name)
    text = (ROOT / "pyproject.toml").read_text()
    table = tomllib.loads(text)["tool"]["mutmut"]
    table.update(only_mutate=[module], pytest_add_cli_args_test_selection=tests_for(module))
    narrowed = "[tool.mutmut]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items())
    start = text.index("[tool.mutmut]")
    end = re.compile(r"^\[", re.M).search(text, start + 1)
    (folder / "pyproject.toml").write_text(text[:start] + narrowed + "\n" + (text[end.start():] if end else ""))
    return folder


def run(module: str, minutes: float, workers: int) -> int:
    """One shard, in its time box; mutmut's own output goes to the shard's run.log."""
    folder = prepare(module)
    # No PYTHONPATH: mutmut puts the shard's mutants/ first itself, and with it set no test reached a mutant.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    with open(folder / "run.log", "a") as log:
        done = subprocess.run(["timeout", f"{int(minutes * 60)}", sys.executable, "-m", "mutmut", "run",
                               "--max-children", str(workers)], cwd=folder, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    return done.returncode


def verdicts(module: str) -> dict[str, str]:
    """Each mutant of the module that mutmut made, and its verdict so far."""
    meta = shard_folder(module) / "mutants" / (module + ".meta")
    if not meta.exists():
        return {}
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    return {name: "import time" if name.rsplit("__mutmut_", 1)[0] in IMPORT_TIME else VERDICTS.get(code, "suspicious")
            for name, code in codes.items()}


def score_line(module: str, found: dict[str, str]) -> str:
    counts = Counter(found.values())
    checked = sum(n for verdict, n in counts.items() if verdict not in ("not run", "import time"))
    killed = counts["killed"] + counts["timeout"]
    share = f"{100 * killed / checked:5.1f}%" if checked else "    -"
    rest = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()) if verdict not in ("killed", "timeout"))
    return f"{module:42s} {len(found):5d} mutants, {killed:5d} killed of {checked:5d} run ({share}){'; ' + rest if rest else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="paths under audiation/ (hearing/judges.py); default: every module")
    parser.add_argument("--minutes", type=float, default=20, help="each shard's time box")
    parser.add_argument("--workers", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--fresh", action="store_true", help="forget the shards' verdicts first (after tests change)")
    parser.add_argument("--scores", action="store_true", help="only report what the shards found so far")
    parser.add_argument("--survivors", action="store_true", help="list every surviving mutant")
    args = parser.parse_args()
    every = modules()
    chosen = [m if m.startswith("audiation/") else f"audiation/{m}" for m in args.modules] or every
    unknown = sorted(set(chosen) - set(every))
    if unknown:
        sys.exit(f"mutants: not a module of the package: {', '.join(unknown)} (e.g. hearing/judges.py)")
    if not args.scores:
        for number, module in enumerate(chosen, 1):
            if args.fresh:
                shutil.rmtree(shard_folder(module), ignore_errors=True)
            start = time.perf_counter()
            print(f"[{number}/{len(chosen)}] {module}: {len(tests_for(module))} test files, at most "
                  f"{args.minutes:g} min ...", end="", flush=True)
            code = run(module, args.minutes, args.workers)
            stopped = " (its time box ended: run again to go on)" if code == 124 else f" (mutmut exited {code})" if code else ""
            print(f" {time.perf_counter() - start:.0f} s{stopped}")
    print("\nscores (killed includes timeouts; a mutant no test reaches counts as a survivor):")
    for module in chosen:
        found = verdicts(module)
        if found:
            print(score_line(module, found))
            if args.survivors:
                for name, verdict in sorted(found.items()):
                    if verdict in ("survived", "no tests", "suspicious"):
                        print(f"    {verdict:9s} {name}")


if __name__ == "__main__":
    main()

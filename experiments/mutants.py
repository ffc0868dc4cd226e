"""Mutation testing of every module of the package, module by module (`make mutants`).

mutmut (pyproject's `[tool.mutmut]`) plants one bug at a time and runs, against each, only the tests that reach
the changed function. The whole package is mutated once, in `build/mutants/package/` (the checkout linked into
it), and the whole default suite is run once under mutmut's tracer to map each function to its tests: that map
(half an hour or more on 2 cores) is what every module shares, so it is built once, not once per module. Then
the chosen modules' mutants are tested in one mutmut run (each run first lists and runs their tests clean: 3-30 min),
in a time box of `--minutes` per module: every one not yet tested, or with `--sample N` a random N of each module,
whose share killed estimates the module's score (its 95% interval printed beside it). mutmut keeps every verdict
in the folder, and each run copies them into the checkout's `experiments/mutant-verdicts.tsv` (with the hash of the
function each mutant changed): a fresh machine starts from them, so the ~40 hours the package's mutants take can be
spread over sittings and sessions; mutmut itself tests again every mutant of a function whose source changed.
The map of tests is kept there too (`experiments/mutant-map.json.gz`), so a fresh clone maps only tests added since.

    python experiments/mutants.py                            # every module, 20 min a module at most
    python experiments/mutants.py hearing/judges.py jobs/folder.py --minutes 30
    python experiments/mutants.py --sample 12 --minutes 4    # an estimate for every module
    python experiments/mutants.py --scores --survivors       # what was found so far, running nothing
    python experiments/mutants.py jobs/folder.py --fresh     # that module's verdicts forgotten, after its tests changed
    python experiments/mutants.py --retry-survivors          # only the survivors again, after tests were added for them
    python experiments/mutants.py --remap                    # the map of tests built again from scratch
"""

from __future__ import annotations

import argparse
import functools
import gzip
import importlib.util
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE, TESTS = ROOT / "audiation", ROOT / "tests"
FOLDER = ROOT / "build" / "mutants" / "package"
RECORD = ROOT / "experiments" / "mutant-verdicts.tsv"
MAP = ROOT / "experiments" / "mutant-map.json.gz"
RECORD_HEADER = "module\tmutant\tfunction_hash\texit_code"

# Functions called only while their module loads (to build a table), before mutmut switches a mutant on in
# its worker: their mutants "survive" whatever the tests do, so they are counted apart. Each was planted by hand
# instead (RESULTS says which test fails).
IMPORT_TIME = {"audiation.outputs.record_schema.x__measure"}

# Tests of the checkout rather than the package, which a mutated copy fails: the source text itself (module
# length, imports: the trampolines change it), this driver (its folder is the checkout's) and the wheel built
# from the checkout (mutmut's copy is no project to build).
SOURCE_TESTS = {"test_structure.py", "test_mutants.py", "test_package.py"}

# mutmut's verdicts (its exit codes) as this report counts them: a mutant no test reaches is a survivor.
VERDICTS = {1: "killed", 3: "killed", 37: "killed", 36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout",
            255: "timeout", -11: "killed", -9: "killed", 0: "survived", 5: "no tests", 33: "no tests", None: "not run"}
SURVIVING = ("survived", "no tests", "suspicious")  # what a score and a list of survivors count as survived


def modules() -> list[str]:
    """Every module of the package with code in it, as paths from the checkout."""
    return sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                  if p.name != "__init__.py" or len(p.read_text().splitlines()) > 4)


def prepare() -> None:
    """The folder: the checkout linked in, and pyproject.toml with `[tool.mutmut]` given the suite's test files
    (every other setting, and every other table, as the checkout has them)."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    for name in ("audiation", "tests", "conf", "experiments"):  # experiments/: scripts some tests run
        link = FOLDER / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name)
    text = (ROOT / "pyproject.toml").read_text()
    table = tomllib.loads(text)["tool"]["mutmut"]
    # The folder with the source-text tests left out, not a list of files: mutmut maps the whole suite again
    # (~26 min here) whenever this setting changes, and a list of files changes with every test file added.
    table.update(pytest_add_cli_args_test_selection=["tests/", *(f"--ignore=tests/{name}" for name in sorted(SOURCE_TESTS))])
    narrowed = "[tool.mutmut]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items())
    start = text.index("[tool.mutmut]")
    end = re.compile(r"^\[", re.M).search(text, start + 1)
    (FOLDER / "pyproject.toml").write_text(text[:start] + narrowed + "\n" + (text[end.start():] if end else ""))


def mutmut(names: list[str], minutes: float, workers: int, watch=None) -> int:
    """`mutmut run` on these mutants in a time box; its own output goes to the folder's run.log, and
    `watch()`, if given, is called every `PACE_SECONDS` while it runs."""
    # No PYTHONPATH: mutmut puts the folder's mutants/ first itself, and with it set no test reached a mutant.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    with open(FOLDER / "run.log", "a") as log:
        child = subprocess.Popen(["timeout", f"{int(minutes * 60)}", sys.executable, "-m", "mutmut", "run",
                                  "--max-children", str(workers), *names], cwd=FOLDER, env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
        while True:
            try:
                return child.wait(timeout=PACE_SECONDS)
            except subprocess.TimeoutExpired:
                if watch:
                    watch()


PACE_SECONDS = 300  # a line every 5 minutes: a run takes hours, and mutmut's own output is in run.log


def minutes_of(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class Progress:
    """A run's progress from the verdicts mutmut writes to the folder as it goes: the asked mutants tested so
    far, the survivors among them, and when the run ends at its pace since the first verdict (mutmut's clean
    run of their tests comes first, and its length is estimated from the map's timings of those tests)."""

    def __init__(self, names: list[str], chosen: list[str], box_minutes: float, clock=time.monotonic):
        self.names, self.chosen, self.clock = set(names), chosen, clock
        self.start, self.box = clock(), box_minutes * 60
        self.first: tuple[float, int] | None = None  # (when, how many) at the first verdict seen

    def clean_run_seconds(self) -> float:
        """The map's timings of every test that reaches one of the asked mutants (each test once)."""
        try:
            stats = json.loads((FOLDER / "mutants" / "mutmut-stats.json").read_text())
        except (OSError, ValueError):
            return 0.0
        reaching = stats.get("tests_by_mangled_function_name", {})
        tests = set().union(*(reaching.get(name.partition("__mutmut_")[0], ()) for name in self.names))
        return sum(stats.get("duration_by_test", {}).get(test, 0.0) for test in tests)

    def line(self) -> str:
        found: dict[str, str] = {}
        for module in self.chosen:
            found.update(verdicts(module))
        done = [verdict for name, verdict in found.items() if name in self.names and verdict != "not run"]
        now = self.clock()
        box_left = f"the box ends in {minutes_of(max(0.0, self.start + self.box - now))}"
        if not done:
            return (f"{minutes_of(now - self.start)} in: mutmut's clean run of the mutants' tests (~"
                    f"{minutes_of(self.clean_run_seconds())} by the map's timings); {box_left}")
        if self.first is None:
            self.first = (now, len(done))
        survivors = sum(verdict in SURVIVING for verdict in done)
        line = f"{len(done)} of {len(self.names)} tested, {survivors} survived"
        since, count = now - self.first[0], len(done) - self.first[1]
        if count > 0 and since > 0:
            left = (len(self.names) - len(done)) * since / count
            line += (f"; at {count / since * 60:.1f} a minute, ~{minutes_of(left)} more (mutmut tests the quickest "
                     "first, so later ones go slower)")
        return f"{line}; {box_left}"


def meta_path(module: str) -> Path:
    return FOLDER / "mutants" / (module + ".meta")


def map_tests(minutes: float) -> None:
    """Mutants made and the suite's map of tests built, testing no mutant: mutmut has no command for that
    alone, and a run asked for a mutant that does not exist does exactly that, then stops. The map comes from
    the checkout's `experiments/mutant-map.json.gz` when the folder has none: mutmut then maps only the tests
    added since (a test file added or mutmut's settings changed: it maps all of them again)."""
    stats = FOLDER / "mutants" / "mutmut-stats.json"
    if stats.exists() and (FOLDER / "mutants" / "audiation" / "__init__.py").exists():
        return
    if not stats.exists() and MAP.exists():
        stats.parent.mkdir(parents=True, exist_ok=True)
        stats.write_bytes(gzip.decompress(MAP.read_bytes()))
        print(f"mutating the package, the map of tests from {shown(MAP)} ...", end="", flush=True)
    else:
        print(f"mutating the package and mapping the suite's tests (once; at most {minutes:g} min) ...", end="",
              flush=True)
    start = time.perf_counter()
    (FOLDER / "mutants" / LAST_FAILED).unlink(missing_ok=True)  # pytest keeps old failures of tests not run again
    code = mutmut(["audiation.no_such_mutant"], minutes, 1)
    if not stats.exists():
        failed = failed_in_map()
        sys.exit(f"\nmutants: mutmut could not map the tests (exit {code}): " +
                 (f"{len(failed)} failed in the mutated copy, {', '.join(failed[:5])} (fix them, or leave their file "
                  "out as SOURCE_TESTS does)" if failed else f"its output is in {FOLDER / 'run.log'}"))
    print(f" {time.perf_counter() - start:.0f} s")


def shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def canonical_map(text: str | bytes) -> bytes:
    """mutmut's map with its lists sorted: it writes sets as lists, in an order that changes from run to run."""
    data = json.loads(text)
    for key in ("tests_by_mangled_function_name", "function_dependencies"):
        data[key] = {name: sorted(values) for name, values in data.get(key, {}).items()}
    return json.dumps(data, sort_keys=True, indent=0).encode()


def keep_map() -> None:
    """The folder's map of tests copied to the checkout (compressed; only when it changed), for the next clone."""
    stats = FOLDER / "mutants" / "mutmut-stats.json"
    if not stats.exists():
        return
    now = canonical_map(stats.read_bytes())
    if not MAP.exists() or gzip.decompress(MAP.read_bytes()) != now:
        MAP.write_bytes(gzip.compress(now, mtime=0))


LAST_FAILED = Path(".pytest_cache", "v", "cache", "lastfailed")


def failed_in_map() -> list[str]:
    """The tests that failed while mutmut mapped the suite: mutmut keeps its child's output to itself, but
    pytest records them in the mutated copy's cache."""
    try:
        return sorted(json.loads((FOLDER / "mutants" / LAST_FAILED).read_text()))
    except (OSError, ValueError):
        return []


def verdicts(module: str) -> dict[str, str]:
    """Each mutant of the module that mutmut made, and its verdict so far."""
    if not meta_path(module).exists():
        return {}
    codes = json.loads(meta_path(module).read_text())["exit_code_by_key"]
    return {name: "import time" if name.rsplit("__mutmut_", 1)[0] in IMPORT_TIME else VERDICTS.get(code, "suspicious")
            for name, code in codes.items()}


def read_record() -> dict[str, tuple[str, str, int]]:
    """The checkout's record: each mutant's module, its function's hash when it was tested, and its verdict."""
    if not RECORD.exists():
        return {}
    rows = (line.split("\t") for line in RECORD.read_text().splitlines()[1:])
    return {name: (module, digest, int(code)) for module, name, digest, code in rows}


def write_record(rows: dict[str, tuple[str, str, int]]) -> None:
    lines = sorted("\t".join((module, name, digest, str(code))) for name, (module, digest, code) in rows.items())
    RECORD.write_text("\n".join([RECORD_HEADER, *lines]) + "\n")


def function_of(name: str) -> str:
    """The function a mutant changed, as mutmut's meta file names it: `x_f` or `xǁClassǁmethod`."""
    return name.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[1]


def restore() -> None:
    """The record's verdicts put back in the folder. Where a module has no meta file yet (a fresh machine),
    one is written for mutmut, which, making the mutants, keeps a verdict only where its function still
    hashes the same. Where mutmut has no verdict for a mutant whose function hashes as recorded, the record's
    is filled in: mutmut forgets every verdict when its settings change (a test file added changes them)."""
    by_module: dict[str, dict[str, tuple[str, int]]] = {}
    for name, (module, digest, code) in read_record().items():
        by_module.setdefault(module, {})[name] = (digest, code)
    for module, rows in by_module.items():
        if meta_path(module).exists():
            meta = json.loads(meta_path(module).read_text())
            codes, hashes = meta["exit_code_by_key"], meta.get("hash_by_function_name", {})
            for name, (digest, code) in rows.items():
                if codes.get(name, 0) is None and hashes.get(function_of(name)) == digest:
                    codes[name] = code
        else:
            meta = {"exit_code_by_key": {name: code for name, (_, code) in rows.items()},
                    "hash_by_function_name": {function_of(name): digest for name, (digest, _) in rows.items()},
                    "durations_by_key": {}, "estimated_durations_by_key": {}}
            meta_path(module).parent.mkdir(parents=True, exist_ok=True)
        meta_path(module).write_text(json.dumps(meta))


def record() -> int:
    """Every verdict in the folder written to the checkout's record with its function's hash; a recorded
    verdict is dropped when its function changed or its mutant is no longer made. Returns the verdicts kept."""
    rows = read_record()
    for module in modules():
        if not meta_path(module).exists():
            continue
        meta = json.loads(meta_path(module).read_text())
        codes, hashes = meta["exit_code_by_key"], meta.get("hash_by_function_name", {})
        for name in [name for name, row in rows.items() if row[0] == module and name not in codes]:
            del rows[name]
        for name, code in codes.items():
            digest = hashes.get(function_of(name))
            if code is not None and digest is not None:
                rows[name] = (module, digest, code)
            elif name in rows and rows[name][1] != digest:
                del rows[name]
    write_record(rows)
    return len(rows)


def set_untested(module: str, which) -> None:
    """The module's mutants for which `which(exit code)` holds set to be tested again, in the folder and in
    the record (which would otherwise put their verdicts back)."""
    if not meta_path(module).exists():
        return
    meta = json.loads(meta_path(module).read_text())
    again = {name for name, code in meta["exit_code_by_key"].items() if which(code)}
    meta["exit_code_by_key"] = {name: None if name in again else code for name, code in meta["exit_code_by_key"].items()}
    meta_path(module).write_text(json.dumps(meta))
    rows = read_record()
    if again & rows.keys():
        write_record({name: row for name, row in rows.items() if name not in again})


def forget(module: str) -> None:
    """The module's verdicts forgotten (its mutants and the map of tests kept)."""
    set_untested(module, lambda code: True)


def retry_survivors(module: str) -> None:
    """The module's survivors (and those no test reached) set to be tested again, the killed ones kept."""
    set_untested(module, lambda code: VERDICTS.get(code) in ("survived", "no tests"))


def to_test(module: str, sample: int | None) -> list[str]:
    """The module's mutants not yet tested (import-time ones aside): all of them, or a random `sample`
    (seeded by the module's name, so that a rerun tests the same ones)."""
    waiting = sorted(name for name, verdict in verdicts(module).items() if verdict == "not run")
    if sample is None:
        return waiting
    done = sum(verdict not in ("not run", "import time") for verdict in verdicts(module).values())
    return random.Random(module).sample(waiting, min(len(waiting), max(0, sample - done)))


def interval(killed: int, checked: int) -> tuple[float, float]:
    """Wilson's 95% interval for the share killed, when `checked` mutants were drawn at random."""
    z, share = 1.96, killed / checked
    middle = (share + z * z / (2 * checked)) / (1 + z * z / checked)
    half = z * math.sqrt(share * (1 - share) / checked + z * z / (4 * checked * checked)) / (1 + z * z / checked)
    return max(0.0, middle - half), min(1.0, middle + half)


@functools.cache
def mapped_functions() -> frozenset[str] | None:
    """The functions some test reaches, from mutmut's map of tests (None before the map is built)."""
    try:
        tests = json.loads((FOLDER / "mutants" / "mutmut-stats.json").read_text())["tests_by_mangled_function_name"]
    except (OSError, ValueError, KeyError):
        return None
    return frozenset(name for name, reached_by in tests.items() if reached_by)


def unreached(found: dict[str, str]) -> int | None:
    """How many of these mutants change a function that no test reaches: survivors whatever the sample, known
    from the map for every mutant without testing one."""
    mapped = mapped_functions()
    if mapped is None:
        return None
    return sum(verdict != "import time" and name.partition("__mutmut_")[0] not in mapped
               for name, verdict in found.items())


def score_line(module: str, found: dict[str, str]) -> str:
    counts = Counter(found.values())
    checked = sum(n for verdict, n in counts.items() if verdict not in ("not run", "import time"))
    killed = counts["killed"] + counts["timeout"]
    share = f"{100 * killed / checked:5.1f}%" if checked else "    -"
    if checked and counts["not run"]:
        low, high = interval(killed, checked)
        share += f" [{100 * low:.0f}-{100 * high:.0f}%]"
    rest = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()) if verdict not in ("killed", "timeout"))
    line = f"{module:42s} {len(found):5d} mutants, {killed:5d} killed of {checked:5d} tested ({share})" + \
        (f"; {rest}" if rest else "")
    alone = unreached(found)
    return line + (f"; {alone} in functions no test reaches" if alone else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="paths under audiation/ (hearing/judges.py); default: every module")
    parser.add_argument("--minutes", type=float, default=20, help="the run's time box, per module chosen")
    parser.add_argument("--map-minutes", type=float, default=120, help="the time box of the one-off map of tests")
    parser.add_argument("--sample", type=int, help="test a random N of each module's mutants (an estimate)")
    parser.add_argument("--workers", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--fresh", action="store_true", help="forget the modules' verdicts first (after tests change)")
    parser.add_argument("--remap", action="store_true", help="map the suite's tests again, from scratch")
    parser.add_argument("--retry-survivors", action="store_true", help="test the modules' survivors again")
    parser.add_argument("--scores", action="store_true", help="only report what was found so far")
    parser.add_argument("--survivors", action="store_true", help="list every surviving mutant (runs nothing)")
    args = parser.parse_args()
    every = modules()
    chosen = [m if m.startswith("audiation/") else f"audiation/{m}" for m in args.modules] or every
    unknown = sorted(set(chosen) - set(every))
    if unknown:
        sys.exit(f"mutants: not a module of the package: {', '.join(unknown)} (e.g. hearing/judges.py)")
    if not (args.scores or args.survivors):  # a list asked for alone started a run of every module
        if importlib.util.find_spec("mutmut") is None:  # else every step "runs" in no time and tests nothing
            sys.exit(f"mutants: mutmut is not installed in {sys.executable} (pip install mutmut==3.8.1; "
                     "`make mutants` installs it)")
        prepare()
        restore()  # before the map: a fresh folder's mutants are made keeping what was recorded
        if args.remap:
            (FOLDER / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
            MAP.unlink(missing_ok=True)
        map_tests(args.map_minutes)
        keep_map()
        restore()  # after it: what a change of mutmut's settings made it forget
        # One mutmut run for every chosen module: each run first lists the suite and runs the chosen mutants'
        # tests clean (3 min for a few modules, ~20 min for a sample of all 50 here), which a run per module
        # would pay fifty times.
        names = []
        for module in chosen:
            if args.fresh:
                forget(module)
            elif args.retry_survivors:
                retry_survivors(module)
            names += to_test(module, args.sample)
        box = args.minutes * len(chosen)
        print(f"{len(names)} mutants of {len(chosen)} module(s) to test, at most {box:g} min; a line every "
              f"{PACE_SECONDS // 60} min (mutmut's own output: {shown(FOLDER / 'run.log')})", flush=True)
        start = time.perf_counter()
        progress = Progress(names, chosen, box)
        code = mutmut(names, box, args.workers, watch=lambda: print(f"  {progress.line()}", flush=True)) if names else 0
        stopped = " (its time box ended: run again to go on)" if code == 124 else f" (mutmut exited {code})" if code else ""
        print(f"  done in {minutes_of(time.perf_counter() - start)}{stopped}")
        keep_map()
        print(f"{record()} verdicts kept in {shown(RECORD)}, the map in {shown(MAP)} (commit "
              "them: a later clone goes on from there)")
    print("\nscores (killed includes timeouts; a mutant no test reaches counts as a survivor; [the 95% interval] "
          "where only some were tested, at random with --sample):")
    for module in chosen:
        found = verdicts(module)
        if found:
            print(score_line(module, found))
            if args.survivors:
                for name, verdict in sorted(found.items()):
                    if verdict in SURVIVING:
                        print(f"    {verdict:9s} {name}")


if __name__ == "__main__":
    main()

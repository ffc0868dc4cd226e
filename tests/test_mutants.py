"""The mutation-testing driver (experiments/mutants.py): which mutants a run tests, how a score counts them and
the interval it rests on, and the suite mutmut is given. mutmut itself is not run here (`make mutants` does)."""

from __future__ import annotations

import importlib.util
import json

import pytest
import tomllib
from conftest import ROOT


def _driver(folder):
    spec = importlib.util.spec_from_file_location("mutants", ROOT / "experiments" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.FOLDER, module.RECORD, module.MAP = folder, folder / "mutant-verdicts.tsv", folder / "mutant-map.json.gz"
    return module


MODULE = "audiation/outputs/record_schema.py"


def _meta(driver, codes: dict[str, int | None]) -> None:
    path = driver.meta_path(MODULE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"exit_code_by_key": codes, "other": "kept"}))


CODES = {"audiation.outputs.record_schema.x_describe__mutmut_1": 1,  # killed
         "audiation.outputs.record_schema.x_describe__mutmut_2": 0,  # survived
         "audiation.outputs.record_schema.x_describe__mutmut_3": 33,  # no test reaches it
         **{f"audiation.outputs.record_schema.x_for_page__mutmut_{n}": None for n in range(1, 6)},
         "audiation.outputs.record_schema.x__measure__mutmut_1": None}  # runs only at import


def test_a_run_tests_every_waiting_mutant_or_a_seeded_sample_topped_up_to_its_size(tmp_path):
    driver = _driver(tmp_path)
    _meta(driver, CODES)
    waiting = [f"audiation.outputs.record_schema.x_for_page__mutmut_{n}" for n in range(1, 6)]
    assert driver.to_test(MODULE, None) == waiting  # the import-time mutant is never asked for
    drawn = driver.to_test(MODULE, 5)
    assert len(drawn) == 2 and set(drawn) <= set(waiting)  # three of the five already tested
    assert driver.to_test(MODULE, 5) == drawn and driver.to_test(MODULE, 3) == []
    assert sorted(driver.to_test(MODULE, 100)) == waiting  # a sample larger than what waits: all of it


def test_a_score_counts_an_unreached_mutant_as_a_survivor_and_sets_the_import_time_ones_apart(tmp_path):
    driver = _driver(tmp_path)
    _meta(driver, CODES)
    line = driver.score_line(MODULE, driver.verdicts(MODULE))
    assert "9 mutants,     1 killed of     3 tested ( 33.3% [6-79%])" in line
    assert line.endswith("; 1 import time, 1 no tests, 5 not run, 1 survived")
    _meta(driver, {name: 1 for name in CODES})
    assert "9 mutants,     8 killed of     8 tested (100.0%); 1 import time" in driver.score_line(MODULE, driver.verdicts(MODULE))


def test_a_score_says_how_many_mutants_change_a_function_no_test_reaches(tmp_path):
    driver = _driver(tmp_path)
    _meta(driver, CODES)
    assert "reaches" not in driver.score_line(MODULE, driver.verdicts(MODULE))  # no map yet: nothing said
    driver.mapped_functions.cache_clear()
    (tmp_path / "mutants" / "mutmut-stats.json").write_text(json.dumps({"tests_by_mangled_function_name": {
        "audiation.outputs.record_schema.x_describe": ["tests/test_a.py::test_a"],
        "audiation.outputs.record_schema.x_for_page": []}}))  # mapped, but no test reaches it
    line = driver.score_line(MODULE, driver.verdicts(MODULE))
    assert line.endswith("; 5 in functions no test reaches")  # x_for_page's five; the import-time one apart


def test_forgetting_a_module_keeps_its_mutants_and_drops_only_their_verdicts(tmp_path):
    driver = _driver(tmp_path)
    _meta(driver, CODES)
    driver.forget(MODULE)
    meta = json.loads(driver.meta_path(MODULE).read_text())
    assert meta == {"exit_code_by_key": dict.fromkeys(CODES), "other": "kept"}


def _hashed_meta(driver, codes: dict[str, int | None], hashes: dict[str, str]) -> None:
    path = driver.meta_path(MODULE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"exit_code_by_key": codes, "hash_by_function_name": hashes,
                                "durations_by_key": {}, "estimated_durations_by_key": {}}))


HASHES = {"x_describe": "e32c6b95cc3f", "x_for_page": "9bbcdbf21c83", "x__measure": "0123456789ab"}


def test_a_fresh_folder_starts_from_the_recorded_verdicts_each_with_its_functions_hash(tmp_path):
    first = _driver(tmp_path / "first")
    first.RECORD = tmp_path / "mutant-verdicts.tsv"
    first.RECORD.write_text(first.RECORD_HEADER + "\naudiation/jobs/folder.py\taudiation.jobs.folder.x_f__mutmut_1"
                            "\tabcdefabcdef\t1\n")  # a module this folder never made: kept
    _hashed_meta(first, CODES, HASHES)
    assert first.record() == 4
    rows = first.RECORD.read_text().splitlines()
    assert rows[0] == "module\tmutant\tfunction_hash\texit_code"
    assert f"{MODULE}\taudiation.outputs.record_schema.x_describe__mutmut_2\te32c6b95cc3f\t0" in rows
    assert not any("x_for_page" in row for row in rows)  # not tested yet: nothing to keep

    second = _driver(tmp_path / "second")
    second.RECORD = first.RECORD
    second.restore()
    meta = json.loads(second.meta_path(MODULE).read_text())
    assert meta["hash_by_function_name"] == {"x_describe": "e32c6b95cc3f"}
    assert second.verdicts(MODULE) == {name: verdict for name, verdict in first.verdicts(MODULE).items()
                                       if verdict not in ("not run", "import time")}
    assert json.loads(second.meta_path("audiation/jobs/folder.py").read_text())["exit_code_by_key"] == {
        "audiation.jobs.folder.x_f__mutmut_1": 1}


def test_verdicts_mutmut_forgot_come_back_unless_their_function_changed_or_is_gone(tmp_path):
    driver = _driver(tmp_path)
    _hashed_meta(driver, CODES, HASHES)
    assert driver.record() == 3
    # mutmut forgot every verdict (its settings changed) and x_describe's source changed since
    changed = {**HASHES, "x_describe": "ffffffffffff"}
    forgot = dict.fromkeys(CODES) | {"audiation.outputs.record_schema.x_describe__mutmut_2": None}
    _hashed_meta(driver, forgot, HASHES)
    driver.restore()
    assert json.loads(driver.meta_path(MODULE).read_text())["exit_code_by_key"] == CODES
    _hashed_meta(driver, forgot, changed)
    driver.restore()
    assert json.loads(driver.meta_path(MODULE).read_text())["exit_code_by_key"] == forgot
    assert driver.record() == 0  # tested before the change: not kept
    _hashed_meta(driver, CODES, HASHES)
    assert driver.record() == 3
    gone = {name: code for name, code in CODES.items() if not name.endswith("x_describe__mutmut_3")}
    _hashed_meta(driver, gone, HASHES)
    assert driver.record() == 2  # a mutant no longer made leaves the record
    newer = {**gone, "audiation.outputs.record_schema.x_describe__mutmut_2": 1}  # killed since, not yet recorded
    _hashed_meta(driver, newer, HASHES)
    driver.restore()
    assert json.loads(driver.meta_path(MODULE).read_text())["exit_code_by_key"] == newer


def test_a_forgotten_verdict_leaves_the_record_and_a_retry_asks_again_for_survivors_only(tmp_path):
    driver = _driver(tmp_path)
    _hashed_meta(driver, CODES, HASHES)
    assert driver.record() == 3
    driver.retry_survivors(MODULE)
    codes = json.loads(driver.meta_path(MODULE).read_text())["exit_code_by_key"]
    assert codes == {**CODES, "audiation.outputs.record_schema.x_describe__mutmut_2": None,
                     "audiation.outputs.record_schema.x_describe__mutmut_3": None}
    driver.restore()  # the record no longer holds them
    assert json.loads(driver.meta_path(MODULE).read_text())["exit_code_by_key"] == codes
    assert driver.record() == 1
    driver.forget(MODULE)
    driver.restore()
    assert json.loads(driver.meta_path(MODULE).read_text())["exit_code_by_key"] == dict.fromkeys(CODES)
    assert driver.record() == 0 and driver.RECORD.read_text() == driver.RECORD_HEADER + "\n"


def test_the_map_of_tests_is_kept_for_the_next_clone_and_rewritten_only_when_it_changed(tmp_path, monkeypatch):
    import gzip
    import os

    driver = _driver(tmp_path / "package")
    stats = tmp_path / "package" / "mutants" / "mutmut-stats.json"
    stats.parent.mkdir(parents=True)
    built = {"tests_by_mangled_function_name": {"audiation.errors.x_shown": ["tests/b.py::t", "tests/a.py::t"]},
             "function_dependencies": {}, "stats_time": 1.5}
    stats.write_text(json.dumps(built))
    driver.keep_map()
    kept = driver.MAP.read_bytes()
    assert json.loads(gzip.decompress(kept))["tests_by_mangled_function_name"] == {
        "audiation.errors.x_shown": ["tests/a.py::t", "tests/b.py::t"]}
    built["tests_by_mangled_function_name"]["audiation.errors.x_shown"].reverse()  # mutmut's order of the day
    stats.write_text(json.dumps(built))
    os.utime(driver.MAP, (0, 0))
    driver.keep_map()
    assert driver.MAP.read_bytes() == kept and driver.MAP.stat().st_mtime == 0  # the same map: the file untouched
    built["tests_by_mangled_function_name"]["audiation.errors.x__stop"] = ["tests/c.py::t"]
    stats.write_text(json.dumps(built))
    driver.keep_map()
    assert "audiation.errors.x__stop" in json.loads(gzip.decompress(driver.MAP.read_bytes()))[
        "tests_by_mangled_function_name"]

    calls = []

    def mutmut(names, minutes, workers):  # mutmut makes the mutants, with the map it found in place
        calls.append(json.loads(stats.read_text()))
        (tmp_path / "package" / "mutants" / "audiation").mkdir(exist_ok=True)
        (tmp_path / "package" / "mutants" / "audiation" / "__init__.py").write_text("")
        return 0

    monkeypatch.setattr(driver, "mutmut", mutmut)
    stats.unlink()  # a fresh clone: no folder, the checkout's map
    driver.map_tests(1)
    assert len(calls) == 1 and "audiation.errors.x__stop" in calls[0]["tests_by_mangled_function_name"]
    driver.map_tests(1)
    assert len(calls) == 1  # mutants made and mapped: nothing to do
    (tmp_path / "package" / "mutants" / "audiation" / "__init__.py").unlink()  # mapped, but stopped before mutating
    driver.map_tests(1)
    assert len(calls) == 2


@pytest.mark.parametrize(("killed", "checked", "low", "high"), [(9, 10, 0.596, 0.982), (0, 12, 0.0, 0.243),
                                                                 (12, 12, 0.757, 1.0), (50, 100, 0.404, 0.596)])
def test_the_interval_is_wilsons(tmp_path, killed, checked, low, high):
    interval = _driver(tmp_path).interval
    assert interval(killed, checked) == (pytest.approx(low, abs=1e-3), pytest.approx(high, abs=1e-3))


def test_mutmut_is_given_the_whole_suite_but_the_source_text_tests_and_the_checkout_as_it_is(tmp_path):
    driver = _driver(tmp_path / "package")
    driver.prepare()
    driver.prepare()  # again: the links are kept
    written = tomllib.loads((tmp_path / "package" / "pyproject.toml").read_text())
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())
    selection = written["tool"]["mutmut"].pop("pytest_add_cli_args_test_selection")
    assert selection == ["tests/", "--ignore=tests/test_mutants.py", "--ignore=tests/test_package.py",
                         "--ignore=tests/test_structure.py"]
    assert written == ours
    assert all((tmp_path / "package" / name).resolve() == ROOT / name
               for name in ("audiation", "tests", "conf", "experiments"))


def test_a_map_that_fails_names_the_tests_that_failed_in_the_mutated_copy(tmp_path, monkeypatch):
    driver = _driver(tmp_path / "package")
    cache = tmp_path / "package" / "mutants" / ".pytest_cache" / "v" / "cache"
    cache.mkdir(parents=True)

    def failing_map(names, minutes, workers):  # pytest adds this run's failures to what the file held
        held = json.loads((cache / "lastfailed").read_text()) if (cache / "lastfailed").exists() else {}
        (cache / "lastfailed").write_text(json.dumps({**held, "tests/test_faults.py::test_a[file]": True}))
        return 1

    (cache / "lastfailed").write_text(json.dumps({"tests/test_old.py::test_fixed_since": True}))
    monkeypatch.setattr(driver, "mutmut", failing_map)
    with pytest.raises(SystemExit) as stopped:
        driver.map_tests(1)
    assert "1 failed in the mutated copy, tests/test_faults.py::test_a[file]" in str(stopped.value)


def test_without_mutmut_the_driver_says_so_in_one_line_and_makes_nothing(tmp_path, monkeypatch):
    driver = _driver(tmp_path / "package")
    monkeypatch.setattr(driver.importlib.util, "find_spec", lambda name: None if name == "mutmut" else True)
    monkeypatch.setattr("sys.argv", ["mutants.py", "config/checks.py"])
    with pytest.raises(SystemExit) as stopped:
        driver.main()
    assert str(stopped.value).startswith("mutants: mutmut is not installed in ")
    assert not (tmp_path / "package").exists()


def test_asking_for_the_survivors_lists_them_and_runs_nothing(tmp_path, monkeypatch, capsys):
    driver = _driver(tmp_path)
    _meta(driver, CODES)
    monkeypatch.setattr(driver, "prepare", lambda: pytest.fail("a list of survivors started a run"))
    monkeypatch.setattr("sys.argv", ["mutants.py", "--survivors", "outputs/record_schema.py"])
    driver.main()
    listed = capsys.readouterr().out
    assert "survived  audiation.outputs.record_schema.x_describe__mutmut_2" in listed
    assert "no tests  audiation.outputs.record_schema.x_describe__mutmut_3" in listed
    assert "x_describe__mutmut_1" not in listed  # killed


def test_a_child_run_under_mutmut_imports_the_mutated_copy_and_reports_its_functions_to_the_map(tmp_path,
                                                                                                 monkeypatch):
    import os
    import subprocess
    import sys

    from conftest import child_env

    monkeypatch.delenv("MUTANT_UNDER_TEST", raising=False)
    assert child_env().get("PYTHONPATH") == os.environ.get("PYTHONPATH")  # outside mutmut: as it was
    monkeypatch.setenv("MUTANT_UNDER_TEST", "audiation.errors.x_shown__mutmut_1")
    assert child_env()["PYTHONPATH"] == str(ROOT) and "AUDIATION_MUTMUT_HITS" not in child_env()
    monkeypatch.setenv("MUTANT_UNDER_TEST", "stats")
    env = child_env()
    assert env["PYTHONPATH"].split(os.pathsep) == [str(ROOT), str(ROOT / "tests" / "mutmut_child")]
    # a module run with -m records hits as mutmut's trampoline does: its own functions named `__main__.`;
    # each is written at once (a judge's worker is killed, not closed)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "mutmut" / "mutation").mkdir(parents=True)  # mutmut's tracer as the hook sees it (CI has no mutmut)
    (tmp_path / "mutmut" / "__init__.py").write_text("")
    (tmp_path / "mutmut" / "mutation" / "__init__.py").write_text("")
    (tmp_path / "mutmut" / "mutation" / "trampoline.py").write_text("def record_trampoline_hit(name, caller=None):\n"
                                                                    "    raise AssertionError('not replaced')\n")
    (tmp_path / "pkg" / "tool.py").write_text(
        "from mutmut.mutation import trampoline\n"
        "trampoline.record_trampoline_hit('__main__.x_main', caller=None)\n"
        "trampoline.record_trampoline_hit('pkg.other.x_helper')\n"
        "trampoline.record_trampoline_hit('__main__.x_main')\n")
    hits = tmp_path / "hits"
    env.update(AUDIATION_MUTMUT_HITS=str(hits),
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT / "tests" / "mutmut_child")]))
    subprocess.run([sys.executable, "-m", "pkg.tool"], cwd=tmp_path, env=env, check=True, timeout=60)
    assert hits.read_text().split() == ["pkg.tool.x_main", "pkg.other.x_helper"]  # each once, as they came


def test_a_run_shows_its_progress_and_when_it_ends_at_the_pace_since_the_clean_run(tmp_path):
    driver = _driver(tmp_path)
    waiting = {f"audiation.outputs.record_schema.x_for_page__mutmut_{n}": None for n in range(1, 7)}
    _meta(driver, {"audiation.outputs.record_schema.x_describe__mutmut_1": 1, **waiting})  # one tested before
    (tmp_path / "mutants" / "mutmut-stats.json").write_text(json.dumps({
        "tests_by_mangled_function_name": {"audiation.outputs.record_schema.x_for_page": ["t::a", "t::b"],
                                           "audiation.outputs.record_schema.x_describe": ["t::c"]},
        "duration_by_test": {"t::a": 600.0, "t::b": 120.0, "t::c": 9999.0}}))
    now = [0.0]
    progress = driver.Progress(list(waiting), [MODULE], 60, clock=lambda: now[0])
    now[0] = 300
    assert progress.line() == ("5 min in: mutmut's clean run of the mutants' tests (~12 min by the map's timings); "
                               "the box ends in 55 min")  # t::c reaches only a mutant not asked for
    names = list(waiting)
    _meta(driver, {**waiting, names[0]: 1})
    now[0] = 900
    assert progress.line() == "1 of 6 tested, 0 survived; the box ends in 45 min"  # no pace from one moment
    _meta(driver, {**waiting, names[0]: 1, names[1]: 0, names[2]: 33})
    now[0] = 1500
    assert progress.line() == ("3 of 6 tested, 2 survived; at 0.2 a minute, ~15 min more (mutmut tests the "
                               "quickest first, so later ones go slower); the box ends in 35 min")
    now[0] = 4000
    assert progress.line().endswith("the box ends in 0 s")


def test_a_mutants_tests_run_fastest_first_with_each_files_tests_together(tmp_path):
    """mutmut's fork server passes a mutant's tests in a set's order; run at the first failure's stop, the order
    sets what a killed mutant costs. The conftest sorts them from mutmut's timings, only for a mutant's run."""
    import subprocess
    import sys

    from conftest import child_env, fastest_first

    seconds = {"a.py::slow": 9.0, "a.py::quick": 0.05, "b.py::quick": 0.1, "c.py::middle": 1.0}
    assert fastest_first(["a.py::slow", "c.py::middle", "b.py::quick", "a.py::quick", "d.py::new"], seconds) == [
        "d.py::new", "a.py::quick", "a.py::slow", "b.py::quick", "c.py::middle"]  # an untimed test counts as 0 s

    for name in ("a", "b"):
        (tmp_path / f"test_{name}.py").write_text("".join(
            f"def test_{test}():\n    open('ran', 'a').write('{name}.{test} ')\n\n\n" for test in ("one", "two")))
    (tmp_path / "mutmut-stats.json").write_text(json.dumps({"duration_by_test": {
        "test_a.py::test_one": 3.0, "test_a.py::test_two": 2.0, "test_b.py::test_one": 0.5, "test_b.py::test_two": 1.0}}))
    runs = {}
    for mutant in ("audiation.x_f__mutmut_1", None):
        (tmp_path / "ran").unlink(missing_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest", "test_a.py", "test_b.py"],
            cwd=tmp_path, env={**child_env(MUTANT_UNDER_TEST=mutant), "PYTHONPATH": str(ROOT / "tests")},
            capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        runs[mutant] = (tmp_path / "ran").read_text().split()
    assert runs == {"audiation.x_f__mutmut_1": ["b.one", "b.two", "a.two", "a.one"],
                    None: ["a.one", "a.two", "b.one", "b.two"]}


def test_under_mutmut_a_process_of_the_suite_cannot_take_more_than_its_share_of_memory(tmp_path):
    """Without the limit `numpy.empty` reserves 9 GiB and touches none of it; under mutmut it is refused."""
    import subprocess
    import sys

    from conftest import MUTANT_DATA_BYTES, child_env

    ask = ("import conftest, numpy\ntry:\n    numpy.empty(9 * 2**30, dtype=numpy.uint8)\n    print('given')\n"
           "except MemoryError:\n    print('refused')\n")
    said = {}
    for mutant in ("audiation.x_f__mutmut_1", None):
        done = subprocess.run([sys.executable, "-c", ask], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env={**child_env(MUTANT_UNDER_TEST=mutant), "PYTHONPATH": str(ROOT / "tests")})
        said[mutant] = done.stdout.strip() or done.stderr
    assert said == {"audiation.x_f__mutmut_1": "refused", None: "given"}
    assert 9 * 2**30 > MUTANT_DATA_BYTES

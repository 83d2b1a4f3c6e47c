"""`make mutation`: put small bugs into the modules whose bugs cost users most; see which survive.

Why: a test suite earns trust by failing when the behaviour breaks. mutmut
(2.x: it mutates files in place, so the `python -m supervisor` processes the
integration tests start run the mutant too) changes one thing at a time
(`<` to `<=`, a constant, a dropped call) and runs the tests that exercise
that module; a mutant no test notices is a gap, or an equivalent change,
explained in tests/MUTANTS.md.

Each module runs in its own copy of the tree under build/mutation/ (never in
the checkout: a mutated file must not be left behind, and two modules run at
once, one per core), with its own mutmut cache, so a re-run with --resume
only tests again what survived.

    .venv/bin/python tests/mutation/run.py                   # every module, fresh
    .venv/bin/python tests/mutation/run.py --modules process,framing --resume
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "build" / "mutation"
EXPLANATIONS = ROOT / "tests" / "MUTANTS.md"
COPIED = ("supervisor", "tests", "examples", "pyproject.toml")


@dataclass(frozen=True)
class Module:
    path: str
    tests: tuple[str, ...]  # unit tests first: with -x they kill most mutants in a fraction of a second
    target: float  # share of mutants to kill
    deselect: str = ""  # a pytest -k expression of slow tests that do not exercise this module


INTEGRATION_TRAIN = "tests/integration/test_train.py"
FRONT = "tests/integration/test_front.py"
MODULES = {
    "process": Module("supervisor/core/process.py",
                      ("tests/unit/test_spawn_errors.py", "tests/integration/test_core_loops.py", "tests/integration/test_process.py",
                       "tests/integration/test_terminal.py", "tests/integration/test_errors.py"),
                      0.85,
                      deselect="nobody_reads or thousand_orphans or not_utf8 or hides_secrets"),
    "tree": Module("supervisor/core/tree.py",
                   ("tests/unit/test_tree.py", "tests/integration/test_core_loops.py",
                    "tests/integration/test_process.py"), 0.85,
                   deselect="nobody_reads or thousand_orphans or not_utf8 or hides_secrets"),
    "sourcedir": Module("supervisor/train/sourcedir.py",
                        ("tests/unit/test_sourcedir.py", INTEGRATION_TRAIN), 0.85),
    "failure": Module("supervisor/train/failure.py", ("tests/unit/test_failure.py",), 0.75),
    "framing": Module("supervisor/logs/framing.py",
                      ("tests/unit/test_logstream.py", "tests/unit/test_failure.py"), 0.75),
    "relay": Module("supervisor/logs/relay.py",
                    ("tests/unit/test_relay.py", "tests/integration/test_logs.py"), 0.75),
    "writer": Module("supervisor/logs/writer.py",
                     ("tests/unit/test_writer.py", "tests/unit/test_relay.py",
                      "tests/integration/test_logs.py"), 0.75),
    "environment": Module("supervisor/train/environment.py",
                          ("tests/unit/test_environment.py", "tests/unit/test_toolkit_parity.py"), 0.75),
    "ranktags": Module("supervisor/logs/ranktags.py",
                       ("tests/unit/test_ranktags.py", "tests/unit/test_failure.py",
                        "tests/integration/test_launch.py"), 0.75),
    "mpi": Module("supervisor/launch/mpi.py", ("tests/unit/test_mpi.py",
                                              "tests/integration/test_launch.py"), 0.75),
    # The serve front: its unit tests first, then the front in this process against a real
    # recording backend (tests/integration/test_front.py, about a minute whole).
    "request": Module("supervisor/serve/request.py",
                      ("tests/unit/test_serve_request.py", FRONT), 0.85),
    "states": Module("supervisor/serve/states.py",
                     ("tests/unit/test_serve_states.py", FRONT), 0.85),
    "http": Module("supervisor/serve/http.py", ("tests/unit/test_serve_http.py", FRONT), 0.85),
    "exchange": Module("supervisor/serve/exchange.py", ("tests/unit/test_serve_states.py", FRONT),
                       0.85),
    "front": Module("supervisor/serve/front.py", ("tests/unit/test_serve_states.py", FRONT), 0.85),
    "upstream": Module("supervisor/serve/upstream.py", ("tests/unit/test_serve_states.py", FRONT),
                       0.85),
    "accesslog": Module("supervisor/serve/accesslog.py", ("tests/unit/test_accesslog.py",), 0.85),
    "tunnel": Module("supervisor/serve/tunnel.py",
                     ("tests/unit/test_tunnel.py", "tests/integration/test_serve_websocket.py"),
                     0.85),
    "hyperparameters": Module("supervisor/train/hyperparameters.py",
                              ("tests/unit/test_hyperparameters.py", "tests/unit/test_environment.py",
                               "tests/unit/test_toolkit_parity.py"), 0.75),
}
KILLED = ("ok_killed", "ok_suspicious", "bad_timeout")  # a timeout is noticed too: the tests hung


def prepare(name: str, resume: bool) -> Path:
    """A private copy of the tree for one module (its cache kept with --resume)."""
    tree = WORK / name
    cache = tree / ".mutmut-cache"
    kept = cache.read_bytes() if resume and cache.exists() else None
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    for item in COPIED:
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, tree / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tree / item)
    if kept is not None:
        cache.write_bytes(kept)
        # Kills stand; every other result is tested again (mutmut itself retests a survivor
        # only when it sees the tests change, which it does not always notice).
        db = sqlite3.connect(cache)
        db.execute("UPDATE Mutant SET status = 'untested' WHERE status NOT IN "
                   "('ok_killed', 'bad_timeout')")
        db.commit()
        db.close()
    return tree


def run_module(name: str, module: Module, resume: bool) -> tuple[str, float, int]:
    tree = prepare(name, resume)
    python = sys.executable
    wrapper = tree / "tests" / "mutation" / "run_tests.py"
    tests = " ".join(module.tests)
    runner = (f"{shlex.quote(python)} {wrapper} {shlex.quote(python)} -m pytest -x -q "
              f"-p no:cacheprovider -m 'not binary' {tests}")
    if module.deselect:
        runner += f" -k {shlex.quote(f'not ({module.deselect})')}"
    # Two modules run at once (and maybe `make test` beside them): another run's entries in
    # the shared /tmp must not count as this mutant's leak (a false kill).
    # Each mutant's temporary files go under this lane's directory: mutmut kills the wrapper
    # of a run that hangs before it can clean up, so the lane removes what is left.
    scratch = Path(tempfile.mkdtemp(prefix=f"sm-entry-mutation-{name}-"))
    env = {**os.environ, "PYTHONPATH": str(tree / "tests" / "mutation"), "PYTHONDONTWRITEBYTECODE": "1",
           "TMPDIR": str(scratch)}
    started = time.monotonic()
    try:
        with open(tree / "mutmut.log", "w") as log:
            proc = subprocess.run(
                [str(Path(python).with_name("mutmut")), "run", "--paths-to-mutate", module.path,
                 "--runner", runner, "--simple-output", "--no-progress",
                 # A mutant's run is cut short only when it hangs, not because the other
                 # lane slowed it down: a timeout counts as killed.
                 "--test-time-base", "20", "--test-time-multiplier", "3"],
                cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # mutmut's exit code is a bit field: 1 is a fatal error (the unmutated tests failed).
    return name, time.monotonic() - started, proc.returncode & 1


@dataclass
class Survivor:
    line: int
    original: str
    mutated: str
    status: str


def results(name: str, module: Module) -> tuple[dict[str, int], list[Survivor]]:
    tree = WORK / name
    from mutmut import Context, RelativeMutationID, list_mutations
    from mutmut.cache import _get_unified_diff

    db = sqlite3.connect(tree / ".mutmut-cache")
    rows = db.execute(
        'SELECT l.line_number, l.line, m."index", m.status FROM Mutant m '
        "JOIN Line l ON m.line = l.id JOIN SourceFile f ON l.sourcefile = f.id "
        "WHERE f.filename = ? ORDER BY m.id", (module.path,)).fetchall()
    db.close()
    # The cache also keeps mutants of lines an earlier version of the file had: only the
    # mutants of the file as it is now count, each with its latest result.
    current = {(m.line, m.index, m.line_number)
               for m in list_mutations(Context(filename=str(tree / module.path)))}
    latest = {(line, index, number): (number, line, index, status)
              for number, line, index, status in rows if (line, index, number) in current}
    rows = sorted(latest.values(), key=lambda row: (row[0], row[2]))
    counts: dict[str, int] = {}
    survivors = []
    source = (tree / module.path).read_text()
    for line_number, line, index, status in rows:
        counts[status] = counts.get(status, 0) + 1
        if status != "bad_survived":
            continue
        diff = _get_unified_diff(source, module.path, RelativeMutationID(line, index, line_number),
                                 dict_synonyms=[], update_cache=False)
        changed = [d for d in diff.splitlines() if d[:1] in "-+" and d[:3] not in ("---", "+++")]
        original = "\n".join(d[1:] for d in changed if d.startswith("-"))
        mutated = "\n".join(d[1:] for d in changed if d.startswith("+"))
        survivors.append(Survivor(line_number + 1, original, mutated, status))
    return counts, survivors


def explanations() -> list[tuple[str, str]]:
    """(original, mutated) pairs that tests/MUTANTS.md explains: "`orig` → `mutated`: why"."""
    if not EXPLANATIONS.exists():
        return []
    return re.findall(r"`([^`]+)` → `([^`]*)`", EXPLANATIONS.read_text())


def explained(survivor: Survivor, known: list[tuple[str, str]]) -> bool:
    original, mutated = survivor.original.strip(), survivor.mutated.strip()
    return any(o.strip() == original and m.strip() == mutated for o, m in known)


def report(names: list[str]) -> int:
    known = explanations()
    unexplained_total = 0
    summary = []
    for name in names:
        module = MODULES[name]
        counts, survivors = results(name, module)
        killed = sum(counts.get(s, 0) for s in KILLED)
        tested = killed + counts.get("bad_survived", 0)
        score = killed / tested if tested else 0.0
        unexplained = [s for s in survivors if not explained(s, known)]
        unexplained_total += len(unexplained)
        verdict = "MET" if score >= module.target else "NOT MET"
        summary.append(f"  {name:<16} {module.path:<38} {killed:>4}/{tested:<4} killed {score:6.1%}  "
                       f"target {module.target:.0%}: {verdict}  "
                       f"(survivors {len(survivors)}, explained in MUTANTS.md "
                       f"{len(survivors) - len(unexplained)}; timeouts {counts.get('bad_timeout', 0)}, "
                       f"skipped {counts.get('skipped', 0)}, untested {counts.get('untested', 0)})")
        if unexplained:
            print(f"\n{module.path}: survivors not explained in tests/MUTANTS.md")
            for s in unexplained:
                print(f"  line {s.line}: `{s.original.strip()}` → `{s.mutated.strip()}`")
    print("\nmutation scores (killed / tested; a timeout counts as killed)")
    print("\n".join(summary))
    return unexplained_total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--modules", default=",".join(MODULES),
                        help=f"comma-separated, of: {', '.join(MODULES)}")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="modules at once")
    parser.add_argument("--resume", action="store_true",
                        help="keep each module's cache: test again only what survived")
    parser.add_argument("--report-only", action="store_true", help="print the last results")
    args = parser.parse_args()
    names = [n.strip() for n in args.modules.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown modules: {', '.join(unknown)} (known: {', '.join(MODULES)})")
    failed = []
    if not args.report_only:
        # Longest first, so the lanes end together.
        order = sorted(names, key=lambda n: -len((ROOT / MODULES[n].path).read_text()))
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            jobs = [pool.submit(run_module, n, MODULES[n], args.resume) for n in order]
            for job in concurrent.futures.as_completed(jobs):
                name, seconds, fatal = job.result()
                print(f"mutation: {name} done in {seconds:.0f} s"
                      + (" - FAILED: the unmutated tests fail, see its mutmut.log" if fatal else ""),
                      flush=True)
                if fatal:
                    failed.append(name)
    report([n for n in names if n not in failed])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

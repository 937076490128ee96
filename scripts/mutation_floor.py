#!/usr/bin/env python3
"""Mutation scores of the last `mutmut run`, per module, against the floors in
mutation-floors.toml.

    scripts/mutation_floor.py             print each module's score and its survivors
    scripts/mutation_floor.py --gate      ... counting only the functions in [gate]
    scripts/mutation_floor.py --check     ... and exit 1 when a module is below its floor
    scripts/mutation_floor.py --globs     print the [gate] functions, for `mutmut run`
    scripts/mutation_floor.py --timeouts  print the mutants whose tests ran out of time

The score of a module is the share of its mutants that some test kills.
Survivors and mutants that no selected test reaches count against it. A
mutant whose tests run out of time is run again on its own
(scripts/mutation.sh does that with --timeouts), since a busy machine makes
slow tests time out; one that times out again makes its tests hang and counts
as killed, and the report shows how many did. Raise a floor when tests
improve; never lower one.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# mutmut's exit codes (mutmut/stats.py): a test failed, pytest's internal
# error, caught by the type check; and the ways a run ends out of time (CPU
# limit, wall-clock limit, killed after it) or crashes.
FAILED = {1, 3, 37}
TIMED_OUT = {36, -24, 24, 152, 255, -9, -11}
KILLED = FAILED | TIMED_OUT
STATUS = {0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", None: "not checked"}


def load_results(mutants: Path) -> dict[str, dict[str, int | None]]:
    results = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        module = meta.relative_to(mutants).as_posix().removesuffix(".meta")
        results[module] = json.loads(meta.read_text())["exit_code_by_key"]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail below a floor")
    parser.add_argument("--gate", action="store_true", help="only the functions in [gate]")
    parser.add_argument("--globs", action="store_true", help="print the [gate] functions")
    parser.add_argument("--timeouts", action="store_true", help="print the timed-out mutants")
    parser.add_argument("--floors", type=Path, default=ROOT / "mutation-floors.toml")
    parser.add_argument("--mutants", type=Path, default=ROOT / "mutants")
    args = parser.parse_args()

    config = tomllib.loads(args.floors.read_text())
    floors: dict[str, float] = config["floors"]
    gate: list[str] = config["gate"]["functions"]
    if args.globs:
        print("\n".join(gate))
        return 0
    results = load_results(args.mutants)
    if args.gate:
        results = {
            module: {
                name: code
                for name, code in codes.items()
                if any(fnmatch.fnmatchcase(name, pattern) for pattern in gate)
            }
            for module, codes in results.items()
        }
    if args.timeouts:
        for codes in results.values():
            print("\n".join(name for name, code in sorted(codes.items()) if code in TIMED_OUT))
        return 0
    failures = []
    print(
        f"{'module':32} {'killed':>7} {'of them timed out':>18} {'total':>6} {'score':>7} {'floor':>6}"
    )
    for module in sorted(set(floors) | set(results)):
        codes = results.get(module, {})
        killed = sum(1 for code in codes.values() if code in KILLED)
        timed_out = sum(1 for code in codes.values() if code in TIMED_OUT)
        score = 100.0 * killed / len(codes) if codes else 0.0
        floor = floors.get(module)
        mark = ""
        if floor is None:
            mark = "  (no floor in mutation-floors.toml)"
        elif not codes:
            mark = "  NOT RUN"
            failures.append(f"{module}: no mutation results")
        elif score < floor:
            mark = "  BELOW FLOOR"
            failures.append(f"{module}: {score:.1f}% < floor {floor}%")
        shown = f"{floor:6.1f}" if floor is not None else "     -"
        print(f"{module:32} {killed:7} {timed_out:18} {len(codes):6} {score:6.1f}% {shown}{mark}")
    print()
    for _module, codes in sorted(results.items()):
        for name, code in sorted(codes.items()):
            if code not in KILLED:
                print(f"{STATUS.get(code, 'suspicious'):12} {name}")
    if failures:
        print("\nMutation score below its floor:\n  " + "\n  ".join(failures), file=sys.stderr)
        print("Show a survivor with: .venv/bin/mutmut show <name>", file=sys.stderr)
        return 1 if args.check else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make mutation`: mutmut over the core modules, one module at a time, and a per-module score table.

mutmut (3.x, the `mutation` extra) copies shared/ and tests/ into ./mutants and, for each mutant, runs
only the tests that reached the mutated function during its stats run ([tool.mutmut] in pyproject.toml:
the core areas' tests). Running a module at a time keeps a run interruptible and its figures apart.

A surviving mutant is either a gap in the tests (write the test) or equivalent: no test could tell it
from the original. Equivalent ones are listed in EQUIVALENT below by function and mutated line, each with
why; the score is killed / (mutants - equivalent), timeouts counted as killed (the bug was noticed).

    python scripts/mutation.py                              # every core module, smallest first
    python scripts/mutation.py shared/alerts/policy.py      # one module
    python scripts/mutation.py --report-only                # the table from the last runs, no mutmut run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).with_name("mutmut")

# The core modules of issue 11, in the order a full run takes them (smallest first).
CORE_MODULES = (
    "shared/credentials/refs.py",
    "shared/verdict/decide.py",
    "shared/verdict/diagnose.py",
    "shared/verdict/result.py",
    "shared/config/reader.py",
    "shared/verdict/overload.py",
    "shared/logs.py",
    "shared/state/store.py",
    "shared/credentials/provider.py",
    "shared/alerts/outbox.py",
    "shared/verdict/codes.py",
    "shared/state/file.py",
    "shared/config/load.py",
    "shared/alerts/channels/dingtalk.py",
    "shared/alerts/channels/email.py",
    "shared/probe/dns.py",
    "shared/config/urls.py",
    "shared/alerts/policy.py",
    "shared/probe/transport.py",
)

# mutmut's exit codes of a checked mutant (mutmut.stats.status_by_exit_code).
KILLED = {1, 3}
SURVIVED = {0}
NO_TESTS = {5, 33}
TIMEOUT = {36, -24, 24, 152, 255}


@dataclass(frozen=True)
class Equivalent:
    """A survivor no test can tell from the original: `function` (mutmut's mangled name without the
    mutant number) and the mutated line as mutmut prints it after `+`, stripped."""

    function: str
    line: str
    why: str


_NO_HOST_IN_REMEDY = "the remedy of this code has no {host} placeholder: the context it drops is never read"
_FIRST_OF_MOST_COMMON = (
    "Counter.most_common(n)[0] is the same element for every n >= 1 and for None (ties keep insertion order)"
)

EQUIVALENT: tuple[Equivalent, ...] = (
    Equivalent(
        "shared.verdict.decide.x_target_verdict",
        "top = Counter(a.error_code for a in bad if a.error_code).most_common(None)[0][0]",
        _FIRST_OF_MOST_COMMON,
    ),
    Equivalent(
        "shared.verdict.decide.x_target_verdict",
        "top = Counter(a.error_code for a in bad if a.error_code).most_common(2)[0][0]",
        _FIRST_OF_MOST_COMMON,
    ),
    Equivalent(
        "shared.verdict.decide.x_address_verdict",
        'return Status.DEGRADED, diagnose(Code.SLOW, f"{total_ms:.0f} ms > {latency_slo_ms:.0f} ms", )',
        _NO_HOST_IN_REMEDY,
    ),
    Equivalent(
        "shared.verdict.decide.x_target_verdict",
        'return Status.DEGRADED, diagnose(Code.ZONES_DOWN, f"{len(bad)} of {len(addresses)} down ({detail})", '
        "host=None)",
        _NO_HOST_IN_REMEDY,
    ),
    Equivalent(
        "shared.verdict.decide.x_target_verdict",
        'return Status.DEGRADED, diagnose(Code.ZONES_DOWN, f"{len(bad)} of {len(addresses)} down ({detail})", )',
        _NO_HOST_IN_REMEDY,
    ),
    Equivalent(
        "shared.verdict.decide.x_target_verdict",
        "return Status.DEGRADED, diagnose(Code.DNS_PUBLIC_ADDRESS, f\"{host} -> {', '.join(public)}\", host=None)",
        _NO_HOST_IN_REMEDY,
    ),
    Equivalent(
        "shared.verdict.decide.x_target_verdict",
        "return Status.DEGRADED, diagnose(Code.DNS_PUBLIC_ADDRESS, f\"{host} -> {', '.join(public)}\", )",
        _NO_HOST_IN_REMEDY,
    ),
)


@dataclass
class ModuleScore:
    module: str
    killed: int = 0
    survived: list[str] = field(default_factory=list)
    no_tests: list[str] = field(default_factory=list)
    timeout: int = 0
    unchecked: int = 0
    equivalent: list[tuple[str, str]] = field(default_factory=list)  # (mutant, why)
    diffs: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.killed + len(self.survived) + len(self.no_tests) + self.timeout + len(self.equivalent)

    @property
    def score(self) -> float | None:
        """Killed (timeouts included) over the non-equivalent mutants checked."""
        checked = self.total - len(self.equivalent)
        return None if checked == 0 else (self.killed + self.timeout) / checked


def mutant_prefix(module: str) -> str:
    """shared/alerts/policy.py -> shared.alerts.policy. (mutmut names mutants module.function__mutmut_N)."""
    return module.removesuffix(".py").replace("/", ".") + "."


def run_module(module: str, max_children: int, log: Path) -> int:
    """One `mutmut run` over the module's mutants; its (long, spinner-filled) output goes to `log`."""
    with log.open("wb") as out:
        proc = subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(max_children), mutant_prefix(module) + "*"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    return proc.returncode


def mutant_diff(name: str) -> str:
    """The mutated lines (`-`/`+`) of one mutant, from `mutmut show`."""
    shown = subprocess.run([str(MUTMUT), "show", name], cwd=ROOT, capture_output=True, text=True).stdout
    return "\n".join(line for line in shown.splitlines() if line[:1] in "-+" and line[:3] not in ("---", "+++"))


def equivalent_reason(name: str, diff: str) -> str | None:
    function = name.rsplit("__mutmut_", 1)[0]
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+")]
    for known in EQUIVALENT:
        if known.function == function and known.line in added:
            return known.why
    return None


def score_module(module: str) -> ModuleScore:
    meta = ROOT / "mutants" / (module + ".meta")
    result = ModuleScore(module)
    if not meta.exists():
        return result
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    for name, code in sorted(codes.items()):
        if code is None:
            result.unchecked += 1
        elif code in KILLED:
            result.killed += 1
        elif code in TIMEOUT:
            result.timeout += 1
        else:
            diff = mutant_diff(name)
            why = equivalent_reason(name, diff)
            if why is not None:
                result.equivalent.append((name, why))
                continue
            result.diffs[name] = diff
            (result.no_tests if code in NO_TESTS else result.survived).append(name)
    return result


def table(scores: list[ModuleScore]) -> str:
    rows = [
        "| module | mutants | killed | survived | no tests | equivalent | timeout | score |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scores:
        score = "not run" if s.score is None else f"{s.score:.0%}"
        if s.unchecked:
            score += f" ({s.unchecked} unchecked)"
        rows.append(
            f"| {s.module} | {s.total} | {s.killed} | {len(s.survived)} | {len(s.no_tests)} | "
            f"{len(s.equivalent)} | {s.timeout} | {score} |"
        )
    return "\n".join(rows)


def survivors(scores: list[ModuleScore]) -> str:
    lines: list[str] = []
    for s in scores:
        for name in s.survived + s.no_tests:
            kind = "survived" if name in s.survived else "no test reaches it"
            lines.append(f"- `{name}` ({kind})\n" + "".join(f"    {d}\n" for d in s.diffs[name].splitlines()))
        for name, why in s.equivalent:
            lines.append(f"- `{name}`: equivalent: {why}\n")
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="source files (default: the core modules)")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--report-only", action="store_true", help="score the last runs without running mutmut")
    parser.add_argument("--report", type=Path, help="also write the table and survivors to this markdown file")
    args = parser.parse_args(argv)
    modules = args.modules or list(CORE_MODULES)
    unknown = [m for m in modules if not (ROOT / m).is_file()]
    if unknown:
        parser.error(f"not a source file: {', '.join(unknown)}")
    if not MUTMUT.exists():
        parser.error(f"{MUTMUT} not found: pip install -e '.[mutation]'")
    scores: list[ModuleScore] = []
    failed: list[str] = []
    for module in modules:
        if not args.report_only:
            print(f"== {module}", flush=True)
            log = ROOT / "mutants" / (module.replace("/", "_") + ".log")
            log.parent.mkdir(exist_ok=True)
            if run_module(module, args.max_children, log) != 0:
                # e.g. the unmutated tests fail ("Failed to run clean test"): the other modules still run
                print(f"mutmut failed on {module}: see {log.relative_to(ROOT)}", file=sys.stderr)
                failed.append(module)
                continue
        scores.append(score_module(module))
        print(table(scores[-1:]).splitlines()[-1], flush=True)
    report = f"{table(scores)}\n\nSurvivors:\n\n{survivors(scores) or 'none'}\n"
    if failed:
        report += f"\nNot scored (mutmut failed): {', '.join(failed)}\n"
    print("\n" + report)
    if args.report:
        args.report.write_text(report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

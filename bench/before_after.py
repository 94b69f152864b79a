"""The same workloads against two versions of prefork, in one run: did a change cost speed?

    python bench/before_after.py --before REV [--after REV] [--rounds 3] [--duration 10] [--quick] [--no-doc]

REV (a commit, tag or branch) is checked out in a temporary git worktree and run with
PYTHONPATH pointing at it; "after" is this checkout, or --after's revision checked out so too. Each workload of bench/core.py and
bench/peers.py that prefork runs alone -- the built-in site's /plaintext with every head new
and with one head repeated, the WSGI hello app inline (both loadings) and on 8 threads -- is
measured for both versions in interleaved rounds, server on core 0 and wrk on core 1. Writes the
"before-after" section of docs/benchmarks.md: requests/s and CPU per request, after / before.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core  # noqa: E402
import harness  # noqa: E402

APPS = harness.REPO / "bench" / "apps"
SLOWER = 0.03  # a workload more than 3% slower (or 3% more CPU per request) is flagged


def workloads(prefork: str) -> list[tuple[str, list[str], str, Path, str]]:
    """(name, argv, path, cwd, wrk script) of each workload."""
    bind = ["-b", "127.0.0.1:{port}"]
    wsgi = [prefork, "hello:app", "-w", "1", *bind]
    return [
        ("site /plaintext, every head new", [prefork, "-w", "1", *bind], "/plaintext", harness.REPO, core.UNIQUE_FIELDS),
        ("site /plaintext, one head repeated", [prefork, "-w", "1", *bind], "/plaintext", harness.REPO, ""),
        ("WSGI inline, every head new", [*wsgi, "--dispatch", "inline"], "/hello", APPS, core.UNIQUE_FIELDS),
        ("WSGI inline, one head repeated", [*wsgi, "--dispatch", "inline"], "/hello", APPS, ""),
        ("WSGI threads, one head repeated", [*wsgi, "--dispatch", "threads", "--threads", "8"], "/hello", APPS, ""),
    ]


def specs(before_tree: Path, label: str, after_tree: Path) -> list[harness.ServerSpec]:
    prefork = shutil.which("prefork") or sys.exit("the prefork command is not installed: pip install -e .")
    found = []
    for name, argv, path, cwd, script in workloads(prefork):
        for version, tree in ((label, before_tree), ("after", after_tree)):
            found.append(harness.ServerSpec(f"{name} [{version}]", argv, path=path, cwd=cwd, script=script,
                                            env={"PYTHONPATH": str(tree)}))
    return found


def report(results: dict, info: dict, args, label: str, after_label: str) -> str:
    med = {name: harness.medians(runs) for name, runs in results.items()}
    lines = [
        f"## {args.title}",
        "",
        "Command:",
        "",
        f"    python bench/before_after.py --before {args.before}" + (f" --after {args.after}" if args.after else "")
        + f" --rounds {args.rounds} --duration {args.duration:g} --section {args.section} --title '{args.title}'",
        "",
        *harness.machine_lines(info),
        f"- before: `{label}`; after: `{after_label}`; {args.rounds} interleaved rounds x {args.duration:g} s, "
        "`wrk -t1 -c64` on core 1, one worker on core 0; medians over rounds",
        "",
        "| workload | requests/s before | after | after/before | CPU per request before | after | after/before |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    flagged = []
    prefork = shutil.which("prefork") or "prefork"
    for name, *_ in workloads(prefork):
        old, new = med.get(f"{name} [{label}]"), med.get(f"{name} [after]")
        if not (old and new):
            lines.append(f"| {name} | failed | | | | | |")
            continue
        rps, cpu = new["rps"] / old["rps"], new["cpu_us_per_request"] / old["cpu_us_per_request"]
        if rps < 1 - SLOWER or cpu > 1 + SLOWER:
            flagged.append(name)
        lines.append(f"| {name} | {old['rps']:,.0f} | {new['rps']:,.0f} | {rps:.3f}x | "
                     f"{old['cpu_us_per_request']:.1f} us | {new['cpu_us_per_request']:.1f} us | {cpu:.3f}x |")
    lines += ["", (f"More than {100 * SLOWER:.0f}% slower: " + ", ".join(flagged)) if flagged
              else f"No workload is more than {100 * SLOWER:.0f}% slower (requests/s or CPU per request).", ""]
    lines += harness.round_table(results, args.rounds)
    return "\n".join(lines)


def describe_revision(revision: str) -> str:
    return subprocess.run(["git", "-C", str(harness.REPO), "log", "-1", "--format=%h %s", revision],
                          capture_output=True, text=True, check=True).stdout.strip()[:72]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the git revision to compare with")
    parser.add_argument("--after", help="the git revision measured as 'after' (default: this checkout)")
    parser.add_argument("--section", default="before-after", choices=[n for n in harness.SECTIONS if "before" in n],
                        help="the section of docs/benchmarks.md to write (one per comparison kept there)")
    parser.add_argument("--title", default="Before and after a change", help="the section's title")
    harness.common_arguments(parser, rounds=3, duration=10.0)
    args = parser.parse_args()
    harness.apply_quick(args)
    harness.check_tools()
    harness.stop_on_term()
    label = describe_revision(args.before)
    after_label = describe_revision(args.after) if args.after else "this checkout"
    info = harness.machine()
    harness.OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prefork-before-") as workdir:
        trees = {"before": args.before, **({"after": args.after} if args.after else {})}
        for name, revision in trees.items():
            subprocess.run(["git", "-C", str(harness.REPO), "worktree", "add", "--detach", str(Path(workdir) / name),
                            revision], check=True, capture_output=True)
        try:
            after_tree = Path(workdir) / "after" if args.after else harness.REPO
            all_specs = specs(Path(workdir) / "before", label, after_tree)
            harness.progress(f"before/after: {args.rounds} rounds x {len(all_specs)} servers x {args.duration:g} s")
            results = harness.run_rounds(all_specs, args.rounds, args.duration, args.warmup, Path(workdir),
                                         **harness.rounds_options(args))
        finally:
            for name in trees:
                subprocess.run(["git", "-C", str(harness.REPO), "worktree", "remove", "--force", str(Path(workdir) / name)],
                               capture_output=True)
    info["load_after"] = harness.loadavg()
    harness.save_and_publish(args.section, info, results, report(results, info, args, label, after_label), not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Markdown tables from compare.py result files (stdlib only).

    scripts/field/summarize.py /work/field/out/*/result.json > tables.md

One table row per suite and mode: wall time (and its ratio to serial), exit
code (serial's in brackets), tests, same, differ, missing, extra/dup, HANG;
then, per suite, the most common (serial -> mode, message) differences.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", help="result.json files")
    ap.add_argument("--top", type=int, default=6, help="difference kinds listed per suite and mode (0: tables only)")
    opts = ap.parse_args(argv)
    rows = ["| suite | mode | wall s | × serial | rc (serial) | tests | same | differ | missing | extra/dup | HANG |",
            "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    details = []
    for path in opts.results:
        r = json.loads(Path(path).read_text())
        s = r["serial"]
        flaky = f" ({len(r['flaky_serial'])} flaky serially)" if r.get("flaky_serial") else ""
        rows.append(f"| {r['name']} | serial{flaky} | {s['wall']:.1f} | 1.00 | {s['rc']} | {len(s['tests'])} | | | | | "
                    f"{'HANG' if s['hang'] else ''} |")
        for m in r["modes"]:
            run, c = m["run"], m["compare"]
            ratio = run["wall"] / s["wall"] if s["wall"] else 0
            rows.append(
                f"| {r['name']} | `{run['label']}` | {run['wall']:.1f} | {ratio:.2f} | {run['rc']} ({s['rc']}) | "
                f"{len(run['tests'])} | {c['same']} | {len(c['differ'])} | {len(c['missing'])} | "
                f"{len(c['extra'])}/{len(c['duplicated'])} | {'HANG' if run['hang'] else ''} |")
            kinds: collections.Counter = collections.Counter()
            example = {}
            for tid in c["differ"]:
                rec = run["tests"][tid]
                key = (s["tests"][tid]["outcome"], rec["outcome"], rec.get("message", "")[:100])
                kinds[key] += 1
                example.setdefault(key, tid)
            if kinds and opts.top > 0:
                details.append(f"\n**{r['name']} `{run['label']}`** ({len(c['differ'])} differ, {len(c['missing'])} missing)\n")
                for key, n in kinds.most_common(opts.top):
                    details.append(f"- {n}× {key[0]} → {key[1]}: `{key[2]}` (e.g. `{example[key]}`)")
    print("\n".join(rows))
    if details:
        print("\n".join(details))
    return 0


if __name__ == "__main__":
    sys.exit(main())

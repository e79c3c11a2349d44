"""Two models on the same faces: how many each gets right that the other gets wrong, and McNemar's exact test.

    fer-edge evaluate A --data DIR --predictions a.csv; fer-edge evaluate B --data DIR --predictions b.csv
    python -m fer_edge.benchmarks.paired a.csv b.csv

The inputs are ``fer-edge evaluate --predictions`` files (path, label, pred, ...) of the same split.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs (binomial, p = 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)


def _read(path: str) -> dict[str, tuple[str, str]]:
    with open(path, newline="") as f:
        return {r["path"]: (r["label"], r["pred"]) for r in csv.DictReader(f)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", help="predictions CSV of model A")
    p.add_argument("b", help="predictions CSV of model B")
    args = p.parse_args(argv)
    try:
        a, b = _read(args.a), _read(args.b)
    except (OSError, KeyError, csv.Error) as e:
        print(f"fer-edge: error: cannot read the predictions CSVs ({e})", file=sys.stderr)
        return 2
    if set(a) != set(b) or any(a[k][0] != b[k][0] for k in a):
        print("fer-edge: error: the two CSVs do not hold the same faces with the same labels", file=sys.stderr)
        return 2
    only_a = sum(1 for k in a if a[k][1] == a[k][0] and b[k][1] != b[k][0])
    only_b = sum(1 for k in a if a[k][1] != a[k][0] and b[k][1] == b[k][0])
    acc = [sum(m[k][1] == m[k][0] for k in a) / len(a) for m in (a, b)]
    print(f"{len(a)} faces: A {acc[0]:.4f}, B {acc[1]:.4f}; right only in A {only_a}, only in B {only_b}; "
          f"McNemar exact p = {mcnemar_exact(only_a, only_b):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

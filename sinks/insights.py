"""Cohort tables for the insights role: students per band per group, small numbers suppressed.

Pure: the API counts (``tally``), this module decides what may be shown (``suppress``).

Primary suppression hides every count smaller than the threshold (default 10), totals
included, zeros too (a zero says "nobody here", which is a fact about the others).
Complementary suppression then hides more, so that nothing hidden can be worked out from what
is shown: seen as one table whose last column holds the row totals and whose last row holds the
column totals (and the grand total in the corner), every line of it is a sum, and a hidden
entry can be recovered exactly when it is the only unknown of a line, or, more generally, when
it lies on no cycle of hidden entries (rows and columns as the two sides of a graph, hidden
entries as edges: a bridge). While some hidden entry is a bridge, the cheapest rectangle
through it is hidden too (the three other corners, the fewest students in the newly hidden
ones): the entry then lies on a cycle. An entry on a cycle stays on one as more are hidden, so
each round leaves one bridge fewer, and the loop ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

THRESHOLD: Final = 10
TOTAL: Final = "total"

Entry = tuple[int, int]
"""(row, column) of the extended table: row ``len(rows)`` holds the column totals, column
``len(columns)`` the row totals."""


@dataclass(frozen=True)
class Table:
    """What may be shown: a count, or None where it is suppressed."""

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    cells: tuple[tuple[int | None, ...], ...]
    row_totals: tuple[int | None, ...]
    column_totals: tuple[int | None, ...]
    total: int | None
    threshold: int

    @property
    def suppressed(self) -> int:
        """How many entries (cells and totals) are hidden."""
        entries = [*(c for row in self.cells for c in row), *self.row_totals, *self.column_totals]
        return sum(1 for value in [*entries, self.total] if value is None)


def tally(pairs: Iterable[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """Students per (group, band) from one (group, band) pair per student."""
    return Counter(pairs)


def extended(
    counts: Mapping[tuple[str, str], int], rows: Sequence[str], columns: Sequence[str]
) -> list[list[int]]:
    """The table with its row totals as a last column and column totals as a last row."""
    grid = [[int(counts.get((r, c), 0)) for c in columns] for r in rows]
    for line in grid:
        line.append(sum(line))
    grid.append([sum(line[j] for line in grid) for j in range(len(columns) + 1)])
    return grid


def bridges(hidden: set[Entry]) -> set[Entry]:
    """Hidden entries that lie on no cycle of hidden entries (recoverable from the sums)."""
    adjacent: dict[tuple[str, int], set[tuple[str, int]]] = {}
    for i, j in hidden:
        adjacent.setdefault(("r", i), set()).add(("c", j))
        adjacent.setdefault(("c", j), set()).add(("r", i))
    found = set()
    for i, j in hidden:
        start, goal = ("r", i), ("c", j)
        seen, todo = {start}, [start]
        while todo:  # is the column reachable from the row without this entry?
            node = todo.pop()
            for nxt in adjacent[node]:
                if {node, nxt} == {start, goal} or nxt in seen:
                    continue
                seen.add(nxt)
                todo.append(nxt)
        if goal not in seen:
            found.add((i, j))
    return found


def hide(grid: Sequence[Sequence[int]], threshold: int) -> set[Entry]:
    """The entries of an extended table to hide: small ones, then enough others."""
    height, width = len(grid), len(grid[0])
    hidden = {(i, j) for i in range(height) for j in range(width) if grid[i][j] < threshold}
    while True:
        open_bridges = sorted(bridges(hidden))
        if not open_bridges:
            return hidden
        i, j = open_bridges[0]
        # Hide the cheapest rectangle through it: the other three corners, those already
        # hidden costing nothing. The entry then lies on a cycle, and stays on one.
        best: tuple[int, int, int, int] | None = None
        for k in range(height):
            for m in range(width):
                if k == i or m == j:
                    continue
                corners = [(i, m), (k, j), (k, m)]
                new = [e for e in corners if e not in hidden]
                cost = (sum(grid[a][b] for a, b in new), len(new), k, m)
                best = cost if best is None or cost < best else best
        if best is None:  # a table of one line: nothing can protect it, so nothing is shown
            return {(a, b) for a in range(height) for b in range(width)}
        k, m = best[2], best[3]
        hidden |= {(i, m), (k, j), (k, m)}


def suppress(
    counts: Mapping[tuple[str, str], int],
    rows: Sequence[str],
    columns: Sequence[str],
    threshold: int = THRESHOLD,
) -> Table:
    """The table of ``counts`` with every small count hidden and nothing hidden recoverable."""
    grid = extended(counts, rows, columns)
    hidden = hide(grid, threshold)
    n, m = len(rows), len(columns)

    def value(i: int, j: int) -> int | None:
        return None if (i, j) in hidden else grid[i][j]

    return Table(
        rows=tuple(rows),
        columns=tuple(columns),
        cells=tuple(tuple(value(i, j) for j in range(m)) for i in range(n)),
        row_totals=tuple(value(i, m) for i in range(n)),
        column_totals=tuple(value(n, j) for j in range(m)),
        total=value(n, m),
        threshold=threshold,
    )

"""Cohort tables: small counts hidden, and nothing hidden recoverable from the sums shown."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.insights import Table, suppress, tally

BANDS = ["very low", "low", "moderate", "good", "high"]


def _rank(matrix: list[list[Fraction]]) -> int:
    """Rank by exact Gaussian elimination."""
    rows = [row[:] for row in matrix]
    rank, width = 0, len(rows[0]) if rows else 0
    for col in range(width):
        pivot = next((r for r in range(rank, len(rows)) if rows[r][col] != 0), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        for r in range(len(rows)):
            if r != rank and rows[r][col] != 0:
                factor = rows[r][col] / rows[rank][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[rank], strict=True)]
        rank += 1
    return rank


def _entries(table: Table) -> dict[tuple[int, int], int | None]:
    """The extended table as shown: row totals in the last column, column totals last row."""
    n, m = len(table.rows), len(table.columns)
    out: dict[tuple[int, int], int | None] = {}
    for i in range(n):
        for j in range(m):
            out[i, j] = table.cells[i][j]
        out[i, m] = table.row_totals[i]
    for j in range(m):
        out[n, j] = table.column_totals[j]
    out[n, m] = table.total
    return out


def recoverable(table: Table) -> list[tuple[int, int]]:
    """Hidden entries whose value follows from the shown ones and the row and column sums."""
    n, m = len(table.rows), len(table.columns)
    shown = _entries(table)
    unknown = sorted(e for e, v in shown.items() if v is None)
    index = {e: k for k, e in enumerate(unknown)}
    equations: list[list[Fraction]] = []
    lines = [[(i, j) for j in range(m + 1)] for i in range(n + 1)]
    lines += [[(i, j) for i in range(n + 1)] for j in range(m + 1)]
    for line in lines:  # the line's parts sum to its total (its last entry)
        row = [Fraction(0)] * len(unknown)
        for k, entry in enumerate(line):
            if entry in index:
                row[index[entry]] += -1 if k == len(line) - 1 else 1
        if any(row):
            equations.append(row)
    if not unknown:
        return []
    base = _rank(equations) if equations else 0
    found = []
    for entry, k in index.items():
        probe = [Fraction(int(i == k)) for i in range(len(unknown))]
        if _rank([*equations, probe]) == base:  # the entry is a combination of the sums
            found.append(entry)
    return found


tables = st.integers(1, 5).flatmap(
    lambda n: st.integers(2, 5).flatmap(
        lambda m: st.lists(
            st.lists(st.one_of(st.integers(0, 12), st.integers(0, 60)), min_size=m, max_size=m),
            min_size=n,
            max_size=n,
        )
    )
)


def _table(grid: list[list[int]], threshold: int = 10) -> tuple[Table, dict[tuple[str, str], int]]:
    rows = [f"G{i}" for i in range(len(grid))]
    columns = BANDS[: len(grid[0])]
    counts = {(r, c): grid[i][j] for i, r in enumerate(rows) for j, c in enumerate(columns)}
    return suppress(counts, rows, columns, threshold), counts


@settings(max_examples=300, deadline=None)
@given(tables, st.integers(2, 15))
def test_no_hidden_count_can_be_recovered_from_the_sums(grid: list[list[int]], th: int) -> None:
    table, _ = _table(grid, th)
    assert recoverable(table) == []


@settings(max_examples=300, deadline=None)
@given(tables, st.integers(2, 15))
def test_every_small_count_is_hidden_and_every_shown_one_is_true(
    grid: list[list[int]], th: int
) -> None:
    table, _ = _table(grid, th)
    m = len(grid[0])
    for i, line in enumerate(grid):
        for j, true in enumerate(line):
            shown = table.cells[i][j]
            assert shown is None or shown == true
            if true < th:
                assert shown is None
        shown_total = table.row_totals[i]
        assert shown_total is None or shown_total == sum(line)
        assert sum(line) >= th or shown_total is None
    for j in range(m):
        column = sum(line[j] for line in grid)
        assert table.column_totals[j] in (None, column)
        assert column >= th or table.column_totals[j] is None
    everything = sum(map(sum, grid))
    assert table.total in (None, everything)


def test_one_small_cell_in_a_row_takes_the_next_smallest_with_it() -> None:
    table, _ = _table([[3, 40, 25, 60], [30, 50, 45, 70]])
    # 3 alone in its row and column would be the row total less the others: a second cell in
    # its row and one in its column go too, and the fourth corner closes the cycle.
    assert table.cells[0] == (None, 40, None, 60)
    assert table.cells[1] == (None, 50, None, 70)
    assert table.row_totals == (128, 195) and table.total == 323
    assert recoverable(table) == []


def test_a_table_with_nothing_small_shows_everything() -> None:
    table, _ = _table([[12, 40], [30, 50]])
    assert table.suppressed == 0
    assert table.cells == ((12, 40), (30, 50)) and table.total == 132


def test_a_recovered_cell_is_seen_by_the_check() -> None:
    # Primary suppression alone: 3 is the row total less the rest. The check must say so,
    # else the property above would prove nothing.
    naive = Table(
        rows=("G0", "G1"),
        columns=("low", "high"),
        cells=((None, 40), (30, 50)),
        row_totals=(43, 80),
        column_totals=(33, 90),
        total=123,
        threshold=10,
    )
    assert recoverable(naive) == [(0, 0)]


def test_tally_counts_students_per_group_and_band() -> None:
    pairs = [("CS", "low"), ("CS", "low"), ("Maths", "high")]
    assert tally(pairs) == {("CS", "low"): 2, ("Maths", "high"): 1}

"""The compliance reports: SLC attendance confirmation and UKVI attendance (docs/reports.md).

``slc`` and ``ukvi`` compute rows from plain values (pure); ``reader`` reads those values from
Redis; ``csvfile`` writes rows as CSV.
"""

from sinks.reports.csvfile import to_csv
from sinks.reports.reader import ReportReader
from sinks.reports.slc import CensusError, SlcRow, SlcStudent, period_of, slc_rows
from sinks.reports.ukvi import UkviRow, UkviStudent, periods, student_rows, ukvi_rows

__all__ = [
    "CensusError",
    "ReportReader",
    "SlcRow",
    "SlcStudent",
    "UkviRow",
    "UkviStudent",
    "period_of",
    "periods",
    "slc_rows",
    "student_rows",
    "to_csv",
    "ukvi_rows",
]

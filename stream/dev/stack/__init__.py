"""The embedded local stack: a Tansu Kafka broker and a Redis server as child processes.

Tests and the demo need a real Kafka-protocol broker and a real Redis without Docker. This
package starts both on free loopback ports, waits until each answers a real request, records
where they are, and stops them cleanly: ``children`` manages the processes, ``services``
knows the two binaries, ``local`` is the in-process :class:`LocalStack`, and ``detached``
is ``engagement stack up|down|status``. The readiness probes and the reading of the state
file are production-safe and live in :mod:`stream.probes` and :mod:`stream.endpoints`.
"""

from stream.dev.stack.children import StackError
from stream.dev.stack.detached import down, load_endpoints, status, up
from stream.dev.stack.local import LocalStack
from stream.endpoints import STATE_FILE, Endpoints

__all__ = [
    "STATE_FILE",
    "Endpoints",
    "LocalStack",
    "StackError",
    "down",
    "load_endpoints",
    "status",
    "up",
]

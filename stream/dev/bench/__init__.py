"""``engagement bench``: throughput, publish→nudge latency percentiles and worker memory.

Throughput is measured on a backlog: the events are published first, then one worker is
started and timed from its first consumed event to its last signal applied to state (read
from its own metrics). Latency is measured live: events are published at a steady rate, with
event time running fast enough that days close during the run, while a consumer reads the
nudges; each nudge carries the publish time of the newest event in the batch that closed its
day, so publish → nudge-on-the-topic is the delay between the event that makes a decision
possible and the decision. The notifier's run (``notifier``) delivers prompts through the
signed webhook. ``command`` runs the parts and prints the figures.
"""

from stream.dev.bench.command import run_bench

__all__ = ["run_bench"]

"""Adapters: the formats other systems emit, turned into the product's events.

One pure module per format (xAPI, IMS Caliper, Canvas Live Events, Moodle's standard log),
each with ``adapt(payload, ctx) -> list[Unit]``: one outcome per unit of the payload (see
:mod:`agents.adapters.units`). The identity step (:mod:`agents.adapters.identity`) then turns
each accepted unit's actor into a student id. The mapping choices are in docs/formats.md.
"""

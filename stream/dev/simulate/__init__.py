"""A deterministic cohort simulator: realistic swipes, attendance and VLE clicks with ground truth.

The output drives demos, load tests and end-to-end checks: every number a detector should find
(who disengaged, from when, how many valid events per source) is known in advance. ``cohort``
plans the students, ``behaviour`` generates their days, ``defects`` breaks a few events on
purpose, ``simulation`` puts it together with the ground truth and writes it to files, and
``feed`` publishes it.
"""

from stream.dev.simulate.cohort import DISENGAGING, Persona, SimConfig
from stream.dev.simulate.feed import publish_simulation
from stream.dev.simulate.simulation import GroundTruth, Simulation, StudentTruth, simulate

__all__ = [
    "DISENGAGING",
    "GroundTruth",
    "Persona",
    "SimConfig",
    "Simulation",
    "StudentTruth",
    "publish_simulation",
    "simulate",
]

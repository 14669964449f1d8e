"""A faithful, deterministic simulator of the ServiceTitan Scheduling Pro API (v2).

Shares no code with the client in `st_scheduling.servicetitan`: both are written from the spec.
"""

from st_scheduling.simulator.app import ManualClock, Simulator
from st_scheduling.simulator.auth import Credentials
from st_scheduling.simulator.faults import FaultRates
from st_scheduling.simulator.model import SimulatorSettings

__all__ = ["Credentials", "FaultRates", "ManualClock", "Simulator", "SimulatorSettings"]

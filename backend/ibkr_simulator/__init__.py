"""A simulated IB Gateway speaking the TWS API wire protocol, for tests and offline runs."""

from .faults import FAULT_KINDS
from .gateway import SimulatedGateway
from .instruments import Instrument, load_instruments

__all__ = ["FAULT_KINDS", "Instrument", "SimulatedGateway", "load_instruments"]

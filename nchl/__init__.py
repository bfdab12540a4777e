"""Neuron-centric Hebbian controllers: evolve them, generate fixed-memory C, verify it.

The public surface: :class:`Topology`, :class:`Spec` (rule + topology + episode
settings), :func:`make_controller` (the Python reference of each rule) and
:class:`Genome` (genome files).
"""

__version__ = "0.1.0"

from .core.controllers import HL, WNcHL, Controller, NcHL, Static, make_controller
from .core.errors import (GenomeError, GenomeFileError, NchlError, NonFiniteObservation,
                     SpecError, TopologyError)
from .core.genome import Genome
from .core.spec import RULES, Spec
from .core.topology import Topology

__all__ = [
    "Controller", "Genome", "GenomeError", "GenomeFileError", "HL", "NcHL", "NchlError",
    "NonFiniteObservation", "RULES", "Spec", "SpecError", "Static", "Topology", "TopologyError", "WNcHL",
    "make_controller", "__version__",
]

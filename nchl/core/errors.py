"""Errors a user can cause and fix; the CLI prints them without a traceback."""


class NchlError(ValueError):
    """Base of every error caused by bad input to nchl."""


class TopologyError(NchlError):
    """A list of layer sizes that does not describe a network."""


class SpecError(NchlError):
    """Settings that do not describe a controller (unknown rule, bad window, ...)."""


class GenomeError(NchlError):
    """A genome that does not fit its spec (length, shape, non-finite values)."""


class GenomeFileError(NchlError):
    """A genome file that cannot be used; the message names the file and the problem."""


class NonFiniteObservation(NchlError):
    """An observation with NaN or inf; the controller state is left untouched."""

"""What a controller is, apart from its genome: rule, topology and episode settings.

A :class:`Spec` is everything the Python reference, the C generator and the
ONNX exporter must agree on; the genome file stores it as JSON metadata.

Genome layouts (all blocks concatenated in the order listed):

* ``hl``: ``A | B | C | D | eta``, each block ``W`` values: the synapses of
  layer 0, then layer 1, ..., each layer's ``(pre, post)`` matrix row-major.
* ``nchl`` and ``wnchl``: ``eta | A | B | C | D`` per neuron, neurons in layer
  order. Input neurons are never post-synaptic, so ``B`` skips them; output
  neurons are never pre-synaptic, so ``A`` skips them: ``eta[N] A[N - n_L]
  B[N - n_0] C[N] D[N]``, in all ``5N - n_0 - n_L`` values.
* ``static``: the weights themselves, ``W[W]`` in the order of ``hl``'s blocks: the
  same network without plasticity, weights evolved directly (the non-plastic
  baseline of the Hebbian literature).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .errors import SpecError
from .topology import Topology

RULES = ("hl", "nchl", "wnchl", "static")


@dataclass(frozen=True)
class Spec:
    """Rule, topology and episode settings of a Hebbian controller.

    ``window`` is the number of past steps weightless NcHL keeps (``m >= 1``;
    only for ``wnchl``). ``init_range`` is ``r`` of the initial weights,
    uniform in ``[-r, r)`` (``0`` = zeros, the default). ``clip`` bounds every
    weight to ``[-clip, clip]`` after each update (``None`` = no clip).
    ``freeze_after`` k switches plasticity off after k steps of an episode: the
    weights (WNcHL: the window, hence the weights it stands for) stay as they are
    then (``None`` = plastic throughout). It is a deployment choice, never evolved,
    and costs a step counter in the state.
    """

    rule: str
    topology: Topology
    window: int | None = None
    init_range: float = 0.0
    clip: float | None = None
    freeze_after: int | None = None
    blocks: tuple[tuple[str, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "topology", Topology.of(self.topology))
        if self.rule not in RULES:
            raise SpecError(f"unknown rule {self.rule!r}; choose one of {', '.join(RULES)}")
        if self.rule == "wnchl":
            w = self.window
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise SpecError(
                    f"weightless NcHL needs a window m >= 1 (an integer), got {w!r}"
                )
            if self.init_range != 0.0:
                raise SpecError(
                    "weightless NcHL stores no weights, so it cannot start from random "
                    "ones: init_range must be 0"
                )
            if self.clip is not None:
                raise SpecError("weightless NcHL stores no weights, so there is nothing to clip")
        elif self.window is not None:
            raise SpecError(f"a window only applies to rule 'wnchl', not {self.rule!r}")
        if self.rule == "static":
            if self.init_range != 0.0 or self.clip is not None:
                raise SpecError("a static controller's weights are its genome: init_range and clip do not apply")
            if self.freeze_after is not None:
                raise SpecError("a static controller has no plasticity to freeze")
        r = self.init_range
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or r < 0:
            raise SpecError(f"init_range must be a finite number >= 0, got {r!r}")
        object.__setattr__(self, "init_range", float(r))
        c = self.clip
        if c is not None:
            if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c <= 0:
                raise SpecError(f"clip must be a finite number > 0 or None, got {c!r}")
            object.__setattr__(self, "clip", float(c))
        k = self.freeze_after
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < 2**31):
            raise SpecError(f"freeze_after must be a step count >= 0 or None, got {k!r}")
        object.__setattr__(self, "blocks", _blocks(self.rule, self.topology))

    def frozen_after(self, steps: int | None) -> "Spec":
        """The same controller with plasticity switched off after ``steps`` steps (None: plastic)."""
        return dataclasses.replace(self, freeze_after=steps)

    def redeployed(self, rule: str | None = None, window: int | None = None) -> "Spec":
        """The same genome run under another rule: NcHL and WNcHL share one genome layout, so an NcHL
        genome can be deployed weightless (``window`` m) and back; HL genomes only run as HL."""
        rule = rule or self.rule
        if {rule, self.rule} - {"nchl", "wnchl"}:
            raise SpecError(f"a {self.rule} genome can only run as {self.rule}"
                            + (" or as nchl/wnchl" if self.rule in ("nchl", "wnchl") else ""))
        if rule == "wnchl":
            return Spec("wnchl", self.topology, window=window, freeze_after=self.freeze_after)
        if window is not None:
            raise SpecError(f"a window only applies to rule 'wnchl', not {rule!r}")
        return Spec(rule, self.topology, init_range=self.init_range, clip=self.clip, freeze_after=self.freeze_after)

    @property
    def genome_length(self) -> int:
        return sum(n for _, n in self.blocks)

    def describe_layout(self) -> str:
        """Human-readable genome layout, for error messages and ``nchl params``."""
        t = self.topology
        blocks = " ".join(f"{name}[{n}]" for name, n in self.blocks)
        if self.rule == "hl":
            formula = f"5W = 5*{t.synapses}"
        elif self.rule == "static":
            formula = f"W = {t.synapses}"
        else:
            formula = f"5N - n_0 - n_L = 5*{t.neurons} - {t.n_in} - {t.n_out}"
        return f"rule {self.rule!r} on layers [{t}]: {formula} = {self.genome_length} values, {blocks}"


def _blocks(rule: str, t: Topology) -> tuple[tuple[str, int], ...]:
    if rule == "hl":
        return tuple((name, t.synapses) for name in ("A", "B", "C", "D", "eta"))
    if rule == "static":
        return (("W", t.synapses),)
    n = t.neurons
    return (("eta", n), ("A", n - t.n_out), ("B", n - t.n_in), ("C", n), ("D", n))

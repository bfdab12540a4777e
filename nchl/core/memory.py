"""Analytical parameter and memory counts of the three rules.

The same numbers are what the generated C must reach, so ``nchl params`` and
``nchl codegen --report`` print them side by side with the compiled sizes.

* params (flash): the genome, ``5W`` floats for HL, ``5N - n_0 - n_L`` for NcHL/WNcHL;
* state (RAM kept between steps): the weights, ``W`` floats, for HL/NcHL; for
  WNcHL the activation ring buffer, ``m N`` floats, plus two uint32 counters;
* work (RAM needed only during a step, e.g. on the stack): the input and the
  output activations of the layer being computed, ``2 max(n_1..n_L)`` floats
  (layer ``l`` is updated as soon as its output is known, so no rule needs the
  activations of all layers at once).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .spec import RULES, Spec
from .topology import Topology

COUNTER_BYTES = 4


@dataclass(frozen=True)
class Footprint:
    rule: str
    window: int | None
    genome_length: int
    params_bytes: int
    state_bytes: int
    work_bytes: int
    state_formula: str

    def as_dict(self) -> dict:
        return asdict(self)


def footprint(spec: Spec, float_bytes: int = 4) -> Footprint:
    t = spec.topology
    if spec.rule == "wnchl":
        m = spec.window
        state = float_bytes * m * t.neurons + 2 * COUNTER_BYTES
        formula = f"{float_bytes}*m*N + 2*{COUNTER_BYTES} = {float_bytes}*{m}*{t.neurons} + {2 * COUNTER_BYTES}"
    elif spec.rule == "static":
        state, formula = 0, "0: the weights are the genome, in flash"
    else:
        state = float_bytes * t.synapses
        formula = f"{float_bytes}*W = {float_bytes}*{t.synapses}"
    if spec.freeze_after is not None:  # the step counter that switches plasticity off
        state += COUNTER_BYTES
        formula += f" + {COUNTER_BYTES} (step counter)"
    return Footprint(
        rule=spec.rule, window=spec.window, genome_length=spec.genome_length,
        params_bytes=float_bytes * spec.genome_length, state_bytes=state,
        work_bytes=float_bytes * 2 * t.max_width, state_formula=formula,
    )


def compare(topology: Topology, window: int) -> list[Footprint]:
    """HL, NcHL, WNcHL (window ``m``) and static on the same topology."""
    return [footprint(Spec(r, topology, window=window if r == "wnchl" else None)) for r in RULES]


def fig1(path: str, n_in: int, n_out: int, widths=(16, 32, 64, 128, 256), max_hidden: int = 5) -> None:
    """The paper's Fig. 1: parameters vs hidden layers and width, HL vs NcHL, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = list(range(1, max_hidden + 1))
    fig, ax = plt.subplots(figsize=(8.4, 4.4))
    colors = plt.cm.viridis([i / max(1, len(widths) - 1) for i in range(len(widths))])
    for width, color in zip(widths, colors):
        for rule, style in (("hl", "-"), ("nchl", "--")):
            counts = [Spec(rule, Topology((n_in, *([width] * d), n_out))).genome_length for d in depths]
            ax.plot(depths, counts, style, marker="o", ms=3, color=color,
                    label=f"{'HL' if rule == 'hl' else 'NcHL'}, {width} neurons/layer")
    ax.set_yscale("log")
    ax.set_xticks(depths)
    ax.set_xlabel("hidden layers")
    ax.set_ylabel("parameters (genome length)")
    ax.set_title(f"HL (solid) vs NcHL (dashed), {n_in} inputs, {n_out} outputs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1.0), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def macs_per_step(spec: Spec) -> int:
    """Arithmetic floor of one control step in multiply-adds, shared terms hoisted.

    Forward ``W``; HL update ``5 W`` (``A x + B y + C x y + D``, times ``eta``); NcHL
    update ``4 W`` (per-neuron terms precomputed: ``a_i + b_j + c_i c_j + d_i d_j``, times
    ``eta_ij``); WNcHL ``4 m n + 2 m p`` per layer (the low-rank forward, no update); static
    ``W`` (the forward alone).
    """
    t = spec.topology
    if spec.rule == "hl":
        return 6 * t.synapses
    if spec.rule == "nchl":
        return 5 * t.synapses
    if spec.rule == "static":
        return t.synapses
    m = spec.window
    return sum(4 * m * n + 2 * m * p for n, p in t.shapes)

"""C generation: a Jinja2 template per generated file, fixed-memory C99 for HL, NcHL and WNcHL.

``generate(spec, genome, prefix)`` returns ``{"<prefix>.h": ..., "<prefix>.c": ...}``;
``numeric="fixed"`` gives the integer-only controller of :mod:`nchl.core.fixed` instead of float32.
Output is a pure function of its inputs (no dates, no paths): identical inputs
give byte-identical files. Float literals are printed with 9 significant
digits, which round-trips every float32.
"""

from __future__ import annotations

import keyword
import re
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np

from nchl import __version__
from nchl.core import fixed
from nchl.core.activation import TANH_CLAMP, TANH_P, TANH_Q
from nchl.core.controllers import check_genome
from nchl.core.errors import NchlError
from nchl.core.genome import genome_sha256
from nchl.core.memory import footprint
from nchl.core.spec import Spec

C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern",
    "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed",
    "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while",
}


def c_float(v: float) -> str:
    """A C float literal that reads back as exactly the float32 value ``v``."""
    f = np.float32(v)
    if not np.isfinite(f):
        raise NchlError(f"cannot write non-finite value {v!r} as a C literal")
    s = f"{float(f):.9g}"
    if not any(ch in s for ch in ".en"):
        s += ".0"
    return s + "f"


def check_prefix(prefix: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix or "") or prefix in C_KEYWORDS or keyword.iskeyword(prefix):
        raise NchlError(f"prefix {prefix!r} is not a valid C identifier (letters, digits, _; not a keyword)")
    return prefix


def _environment() -> jinja2.Environment:
    folder = resources.files("nchl_firmware_templates")
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def context(spec: Spec, values: np.ndarray, prefix: str, runtime_params: bool = False) -> dict:
    """Everything the templates need, computed once in Python, for a genome ``check_genome`` passed.

    ``runtime_params`` makes a host build for evaluation: the genome is an argument of
    ``<prefix>_step`` instead of a flash constant, so one build serves every genome
    of a spec (evolution) with the same float operations."""
    t = spec.topology
    fp = footprint(spec)
    off, offsets = 0, []
    for name, n in spec.blocks:
        offsets.append((name, off))
        off += n
    neuron_off, layer_info, woff = t.offsets, [], 0
    for l, (n, p) in enumerate(zip(t.layers[:-1], t.layers[1:])):
        layer_info.append({"n": n, "p": p, "pre": neuron_off[l], "post": neuron_off[l + 1],
                           "post_b": neuron_off[l + 1] - t.n_in, "woff": woff})
        woff += n * p
    return {
        "prefix": check_prefix(prefix), "P": prefix.upper(), "version": __version__, "rule": spec.rule,
        "window": spec.window, "layers": list(t.layers), "neurons": t.neurons, "synapses": t.synapses,
        "max_width": t.max_width, "genome_length": spec.genome_length, "params_bytes": fp.params_bytes,
        # C has no empty struct: a static controller's state is one unused byte
        "state_bytes": max(fp.state_bytes, 1), "work_bytes": fp.work_bytes, "sha256": genome_sha256(values),
        "blocks": list(spec.blocks), "block_offsets": offsets, "params": [c_float(v) for v in values],
        "layer_info": layer_info, "init_range": spec.init_range, "init_range_literal": c_float(spec.init_range),
        "clip": spec.clip, "clip_literal": None if spec.clip is None else c_float(spec.clip),
        "tanh_clamp": c_float(TANH_CLAMP), "tanh_p": [c_float(c) for c in TANH_P],
        "tanh_q": [c_float(c) for c in TANH_Q], "runtime_params": runtime_params,
        "freeze_after": spec.freeze_after,
    }


def fixed_context(spec: Spec, values: np.ndarray, prefix: str, obs_range: float) -> dict:
    """What the fixed-point templates need, for a genome ``check_genome`` passed: the plan of
    :func:`nchl.core.fixed.plan` and the sizes."""
    p = fixed.plan_checked(spec, values.astype(np.float32).astype(np.float64), obs_range)
    t = spec.topology
    layer_plans = []
    w_at = np.cumsum([0] + [n * q for n, q in t.shapes])
    for L, pre_at, post_at, at in zip(p.layers, t.offsets[:-2], t.offsets[1:-1], w_at):
        layer_plans.append({**L.as_context(), "pre_at": pre_at, "post_at": post_at, "w_at": int(at)})
    ctx = {
        "prefix": check_prefix(prefix), "P": prefix.upper(), "version": __version__, "rule": spec.rule,
        "window": spec.window, "layers": list(t.layers), "neurons": t.neurons, "max_width": t.max_width,
        "synapses": t.synapses,
        "freeze_after": spec.freeze_after, "sha256": genome_sha256(values),
        "formats": p.describe(), "q_act": fixed.Q_ACT, "one": fixed.ONE, "obs_max": p.obs_max,
        "obs_range": f"{p.obs_max / fixed.ONE:g} in real units", "params_bytes": p.params_bytes,
        "state_bytes": p.state_bytes, "work_bytes": p.work_bytes, "layer_plans": layer_plans,
        "tanh_packed": list(fixed.TANH_PACKED), "tanh_max": fixed.TANH_TABLE[-1], "tanh_range": fixed.TANH_RANGE,
        "tanh_steps": fixed.TANH_STEPS_PER_UNIT, "frac_bits": fixed.FRAC_BITS,
        "z_q_min": fixed.Z_Q_MIN, "z_q_max": fixed.Z_Q_MAX,
    }
    if isinstance(p, fixed.NcHLPlan):
        ctx.update(w_q=p.w_q, w_min_q=p.w_min_q, w_max_q=p.w_max_q, t_stop=p.t_stop,
                   w_range=f"+-{-p.w_min_q / 2 ** p.w_q:g} in real units", ssat=p.w_min_q == -(1 << 30))
    return ctx


NUMERICS = ("float", "fixed")


def check_numeric(numeric: str) -> str:
    if numeric not in NUMERICS:
        raise NchlError(f"unknown numeric mode {numeric!r}; choose one of {', '.join(NUMERICS)}")
    return numeric


def generate(spec: Spec, genome: np.ndarray, prefix: str, runtime_params: bool = False, numeric: str = "float",
             obs_range: float = fixed.DEFAULT_OBS_RANGE) -> dict[str, str]:
    """The generated files, by name (``numeric="fixed"``: integer-only, observations within ``obs_range``)."""
    return generate_checked(spec, check_genome(spec, genome, np.dtype(np.float64)), prefix, runtime_params, numeric,
                            obs_range)


def generate_checked(spec: Spec, values: np.ndarray, prefix: str, runtime_params: bool = False,
                     numeric: str = "float", obs_range: float = fixed.DEFAULT_OBS_RANGE) -> dict[str, str]:
    """:func:`generate` for a genome ``check_genome`` passed (a controller's own): one validation per call."""
    env = _environment()
    if check_numeric(numeric) == "fixed":
        if runtime_params:
            raise NchlError("the fixed-point controller compiles its constants in: no runtime parameters")
        ctx = fixed_context(spec, values, prefix, obs_range)
        source = "controller_fixed_nchl.c.j2" if spec.rule == "nchl" else "controller_fixed.c.j2"
        return {f"{prefix}.h": env.get_template("controller_fixed.h.j2").render(ctx),
                f"{prefix}.c": env.get_template(source).render(ctx)}
    ctx = context(spec, values, prefix, runtime_params)
    return {f"{prefix}.h": env.get_template("controller.h.j2").render(ctx),
            f"{prefix}.c": env.get_template("controller.c.j2").render(ctx)}


def cdef(spec: Spec, prefix: str, runtime_params: bool = False, numeric: str = "float") -> str:
    """Declarations for cffi (plain numbers: cffi does not evaluate the header's macros)."""
    t = spec.topology
    return _environment().get_template("cffi_cdef.j2").render(
        prefix=check_prefix(prefix), rule=spec.rule, window=spec.window, neurons=t.neurons,
        synapses=t.synapses, layers=list(t.layers), runtime_params=runtime_params, freeze_after=spec.freeze_after,
        fixed=check_numeric(numeric) == "fixed")


def write(files: dict[str, str], out: str | Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in files.items():
        (out / name).write_text(text)
        paths.append(out / name)
    return paths

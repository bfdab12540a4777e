"""Fixed-point (integer-only) weightless NcHL and NcHL: the Python reference of ``nchl codegen --numeric fixed``.

Most microcontrollers have no FPU. This module defines an integer version of the
weightless NcHL step and computes it with numpy integers; the generated C
(``firmware_templates/controller_fixed.c.j2``) performs the same integer
operations, so the two agree exactly (0 difference in every action and in the
state). How far the integer controller is from the float32 one is a separate,
reported number (``nchl verify --numeric fixed`` prints both).

Formats (``Qf``: an integer ``v`` stands for ``v / 2**f``):

* observations, activations, actions and the window: int16 Q12 (:data:`Q_ACT`),
  range ``[-8, 8)``, resolution 2.4e-4; tanh outputs lie in ``[-1, 1]``
  (``[-4096, 4096]``). Observations must lie within ``+-obs_max`` (the task's
  observation bound, else 8): the step rejects others, as the float step rejects
  NaN, and the formats below are proven for that range.
* rule parameters and the products of two of them (``eta A``, ``eta C``,
  ``eta D``, ``C eta``): int16, each vector with the finest Q its largest
  value allows.
* everything in between: the formats a worst-case bound allows. The
  planner (:func:`plan`) propagates, with Python integers, the largest possible
  magnitude of every quantity from the parameter values and the input ranges,
  and picks each right shift so that no int32 sum can overflow and every value
  stored as int16 fits. Nothing saturates at run time: the bound proves it
  never has to (the input check on observations is what makes this true).

Arithmetic: int32 only, products of two values that the plan keeps within int32
(one ``MULS`` on a Cortex-M0, which has no 64-bit multiply). A right shift by
``s`` rounds toward minus infinity: ``v >> s``, an arithmetic shift (what GCC and
Clang do for signed values on every target); rounding to nearest would cost a
constant that Thumb-1 builds in two or three instructions, at every shift.
Integer sums are exact, so their order does not matter.

The layer is the low-rank form of :class:`nchl.core.controllers.WNcHL` regrouped for
integers: with ``x`` the input, ``x(k), y(k)`` the window rows and ``K`` the
filled rows,

    2 z_j = sum_k alpha_k + eta_j sum_k beta_k + B_j (s_eta + eta_j s_1) Y_j
            + C_j sum_k y_j(k) gamma_k + (C_j eta_j) sum_k y_j(k) delta_k
            + K D_j (d_eta + eta_j d_1),          Y_j = sum_k y_j(k)

(``alpha_k .. delta_k = x(k) . (eta A x, A x, eta C x, C x)``), so the inner
loops are plain multiply-adds of int16 values. Only ``gamma_k`` and ``delta_k``
are needed per past step: ``sum_k alpha_k = sum_i X_i (eta A x)_i`` with ``X_i``
the window's column sum (likewise beta), the same integer, so the window loop does
two multiply-adds per input and past step instead of four. The column sums
``X_i`` (and ``Y_j``) are kept in the state, updated as rows are overwritten. tanh is a 257-entry table of
``tanh`` on ``[0, 8]`` in Q15 with linear interpolation (error below 1e-4,
under the Q12 output's resolution).

NcHL (:class:`FixedNcHL`) stores its weights, which grow to 10^3-10^4 within an
Ant episode, so they need a stated range: int32 in the finest format that holds
the spec's ``clip`` (default :data:`DEFAULT_WEIGHT_RANGE`), saturated there as
``clip`` does. The update of every synapse is the float rule's four-term sum in
int16/int32 formats planned like the window's; the forward pass multiplies
``w >> k`` by the input, where ``k`` keeps the largest weight that ``t`` updates
can have reached within the layer's int32 sum (block floating point whose
exponent is known in advance: exact and cheap, and fine while weights are small).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .controllers import Controller, check_genome, nchl_layers, split_blocks
from .errors import NchlError, NonFiniteObservation
from .prng import check_seed
from .spec import Spec

Q_ACT = 12                      # activations, observations, actions: int16 Q12
ONE = 1 << Q_ACT                # 1.0
INT16_MAX = 32767
INT32_MAX = 2 ** 31 - 1
TANH_STEPS_PER_UNIT = 32        # table resolution: 1/32
TANH_RANGE = 8                  # tanh(8) = 1 - 2.3e-7: the table's end is the saturated value
TANH_TABLE = tuple(int(round(math.tanh(i / TANH_STEPS_PER_UNIT) * 32768))
                   for i in range(TANH_RANGE * TANH_STEPS_PER_UNIT + 1))
# the C's table: per interval one uint32, its first value (low half) and its rise to the next (high half),
# so a lookup is one load; the interpolation is the same integers as tanh_q's
TANH_PACKED = tuple(lo | (hi - lo) << 16 for lo, hi in zip(TANH_TABLE, TANH_TABLE[1:]))
TANH_TABLE_BYTES = 4 * len(TANH_PACKED)
FRAC_BITS = 11                 # interpolation weight resolution
Z_Q_MIN, Z_Q_MAX = 5, 27        # tanh input formats the table lookup supports
SUPPORTED = ("nchl", "wnchl")
DEFAULT_OBS_RANGE = 8.0        # the whole int16 Q12 range, when the task sets no bound


class ObservationOutOfRange(NonFiniteObservation):
    """An integer observation beyond the range the formats were planned for; the state is untouched."""


def rshift(v, s: int):
    """``floor(v / 2**s)`` (``s > 0``, an arithmetic shift), or ``v * 2**-s`` (``s <= 0``)."""
    if s > 0:
        return v >> s
    return v << -s if s < 0 else v


def _shifted_bound(bound: int, s: int) -> int:
    """The largest magnitude of ``rshift(v, s)`` over ``|v| <= bound`` (floor: negative values round away)."""
    return -((-bound) >> s) if s > 0 else bound << -s


def _fit(bound: int, limit: int = INT16_MAX) -> int:
    """The smallest right shift after which a value of magnitude ``bound`` fits ``limit``."""
    s = 0
    while _shifted_bound(bound, s) > limit:
        s += 1
    return s


def quantize_vector(v: np.ndarray, limit: int = INT16_MAX) -> tuple[np.ndarray, int]:
    """Integers within ``limit`` (int16 by default) and the finest format ``Q <= 15`` in which the
    largest of ``v`` fits."""
    top = float(np.max(np.abs(v))) if v.size else 0.0
    q = 15
    while q > -16 and round(top * 2.0 ** q) > limit:
        q -= 1
    return np.rint(np.asarray(v, dtype=np.float64) * 2.0 ** q).astype(np.int64), q


def quantize_observation(obs: np.ndarray, obs_max: int) -> np.ndarray:
    """Float observations as int16 Q12: ``x * 4096`` rounded half away from zero (in float64, exact
    for every float32 input), saturated to ``+-obs_max``; the C helper ``<prefix>_obs_from_float``."""
    v = np.asarray(obs, dtype=np.float32).astype(np.float64) * ONE
    q = np.trunc(v + np.copysign(0.5, v))
    return np.clip(q, -obs_max, obs_max).astype(np.int64)


def tanh_q(z: np.ndarray, q: int) -> np.ndarray:
    """tanh of ``z / 2**q`` as Q12, from :data:`TANH_TABLE` with linear interpolation."""
    table = np.array(TANH_TABLE, dtype=np.int64)
    a = np.abs(z)
    sat = a >= (TANH_RANGE << q)
    a = np.where(sat, 0, a)
    step = q - 5                                  # log2 of one table interval in z's units
    idx = a >> step
    frac = a - (idx << step)
    frac = frac >> (step - FRAC_BITS) if step >= FRAC_BITS else frac << (FRAC_BITS - step)
    y = table[idx] + (((table[idx + 1] - table[idx]) * frac) >> FRAC_BITS)
    y = np.where(sat, table[-1], y)
    y = y >> 3                                    # Q15 -> Q12
    return np.where(z < 0, -y, y)


# -- the plan: formats from worst-case bounds -----------------------------------------------------
_PRE = ("EA", "A", "EC", "C")   # the four input terms of the window dot products, in this order


@dataclass(frozen=True)
class LayerPlan:
    """One layer's int16 constants and the shifts and formats of its integer step."""

    n: int
    p: int
    pre: dict           # name -> int16 values of the layer's input neurons: EA A EC C E ED D
    post: dict          # name -> int16 values of its output neurons: E B C CE D
    shifts: dict        # name -> right shift (negative: left), see _plan_layer
    z_q: int            # format of the tanh input

    def as_context(self) -> dict:
        return {"n": self.n, "p": self.p, "s": self.shifts, "z_q": self.z_q,
                "pre": {k: [int(v) for v in a] for k, a in self.pre.items()},
                "post": {k: [int(v) for v in a] for k, a in self.post.items()}}


@dataclass(frozen=True)
class Plan:
    spec: Spec
    obs_max: int        # largest |observation| accepted, Q12
    formats: dict       # parameter vector name -> Q
    layers: tuple[LayerPlan, ...]

    @property
    def params_bytes(self) -> int:
        """Flash of the constants: 8 int32 per input neuron (7 and a pad), 5 per output (int32: a Cortex-M0
        loads an int16 only from a register offset, one instruction more per load), the packed tanh table."""
        return 4 * sum(8 * L.n + 5 * L.p for L in self.layers) + TANH_TABLE_BYTES

    @property
    def state_bytes(self) -> int:
        """RAM kept between steps: two uint32 counters (three when frozen), the int32 column sums
        and the int16 window, 4-aligned."""
        t = self.spec.topology
        counters = 4 * (2 + (self.spec.freeze_after is not None))
        return counters + 4 * t.neurons + 4 * math.ceil(2 * self.spec.window * t.neurons / 4)

    @property
    def work_bytes(self) -> int:
        """Stack for the activations of the layer being computed: two int32 buffers."""
        return 2 * 4 * self.spec.topology.max_width

    def describe(self) -> list[str]:
        """The formats, one line each, for the generated header."""
        lines = [f"observations/activations/actions/window: int16 Q{Q_ACT}; |observation| <= {self.obs_max} "
                 f"({self.obs_max / ONE:g})",
                 "parameters (int16): " + ", ".join(f"{k} Q{q}" for k, q in self.formats.items())]
        for l, L in enumerate(self.layers):
            lines.append(f"layer {l}: tanh input Q{L.z_q}; shifts " + " ".join(f"{k}={v}" for k, v in L.shifts.items()))
        return lines


def _parameter_vectors(spec: Spec, genome: np.ndarray) -> dict[str, np.ndarray]:
    b = split_blocks(genome, spec)
    t = spec.topology
    n0 = t.n_in
    beta = np.concatenate([np.zeros(n0), b["B"]])           # B per neuron, zero on inputs
    alpha = np.concatenate([b["A"], np.zeros(t.n_out)])      # A per neuron, zero on outputs
    return {"E": b["eta"], "A": alpha, "B": beta, "C": b["C"], "D": b["D"],
            "EA": b["eta"] * alpha, "EC": b["eta"] * b["C"], "ED": b["eta"] * b["D"], "CE": b["C"] * b["eta"]}


def check_supported(spec: Spec) -> None:
    if spec.rule not in SUPPORTED:
        raise NchlError(f"--numeric fixed supports rules {', '.join(SUPPORTED)}, not {spec.rule!r}")


def plan(spec: Spec, genome: object, obs_range: float = DEFAULT_OBS_RANGE) -> "Plan | NcHLPlan":
    """Formats and shifts of the integer controller for this genome, observations within ``+-obs_range``."""
    return plan_checked(spec, check_genome(spec, genome, np.dtype(np.float32)).astype(np.float64), obs_range)


def plan_checked(spec: Spec, genome: np.ndarray, obs_range: float = DEFAULT_OBS_RANGE) -> "Plan | NcHLPlan":
    """:func:`plan` of a genome :func:`~nchl.core.controllers.check_genome` has passed, as float32
    values (the controller's own): callers that hold one validate it once, not once per stage."""
    check_supported(spec)
    if not (isinstance(obs_range, (int, float)) and 0 < obs_range):
        raise NchlError(f"observation range must be a number > 0, got {obs_range!r}")
    obs_max = min(INT16_MAX, int(round(obs_range * ONE)))
    if spec.rule == "nchl":
        return _plan_nchl(spec, np.asarray(genome, dtype=np.float64), obs_max)
    vectors = _parameter_vectors(spec, np.asarray(genome, dtype=np.float64))
    ints, formats = {}, {}
    for name, v in vectors.items():
        ints[name], formats[name] = quantize_vector(v)
    off = spec.topology.offsets
    layers = []
    for l, (n, p) in enumerate(spec.topology.shapes):
        pre, post = slice(off[l], off[l + 1]), slice(off[l + 1], off[l + 2])
        layers.append(_plan_layer({k: ints[k][pre] for k in ("EA", "A", "EC", "C", "E", "ED", "D")},
                                  {k: ints[k][post] for k in ("E", "B", "C", "CE", "D")},
                                  formats, obs_max if l == 0 else ONE, spec.window))
    return Plan(spec, obs_max, formats, tuple(layers))


@dataclass(frozen=True)
class _V:
    """A planned integer quantity: its format ``q`` and the largest magnitude ``b`` it can take."""

    q: int
    b: int

    def __mul__(self, other: "_V") -> "_V":
        return _V(self.q + other.q, self.b * other.b)

    def __add__(self, other: "_V") -> "_V":
        assert self.q == other.q
        return _V(self.q, self.b + other.b)

    def shr(self, s: int) -> "_V":
        return _V(self.q - s, _shifted_bound(self.b, s))

    def to(self, q: int) -> "_V":
        return self.shr(self.q - q)


def _narrow(v: _V, limit: int = INT16_MAX) -> tuple[int, _V]:
    s = _fit(v.b, limit)
    return s, v.shr(s)


def _plus_scaled(total: _V, part: _V, e: _V) -> tuple[int, int, _V]:
    """``total + e_j part``, as the smallest shift ``k`` of ``part`` (into int16, so the product is an
    int32), the shift that aligns ``total`` to the product's format, and the sum (within int32)."""
    k = 0
    while True:
        narrowed = part.shr(k)
        v = total.to(e.q + narrowed.q) + e * narrowed
        if narrowed.b <= INT16_MAX and v.b <= INT32_MAX and total.to(v.q).b <= INT32_MAX:
            return k, total.q - v.q, v
        k += 1


def _plan_layer(pre: dict, post: dict, fmt: dict, bx: int, m: int) -> LayerPlan:
    """Shifts of one layer, from worst-case magnitudes (Python integers, exact): every int32 sum and
    product stays within int32, every int16 within int16.

    ``bx`` bounds the input and the window's input rows, ``ONE`` the window's output rows (tanh)."""
    n, p = len(pre["E"]), len(post["E"])
    mag = {k: [abs(int(v)) for v in a] for k, a in pre.items()}
    top = {k: _V(fmt[k], max((abs(int(v)) for v in a), default=0)) for k, a in post.items()}
    s = {}

    def summed(name: str, factor: int) -> tuple[int, _V]:
        """sum_i (K_i x_i) >> k, each x_i within bx, times ``factor`` (more terms summed later),
        with the smallest k that keeps it within int32."""
        k = 0
        while factor * sum(_shifted_bound(v * bx, k) for v in mag[name]) > INT32_MAX:
            k += 1
        return k, _V(fmt[name] + Q_ACT - k, sum(_shifted_bound(v * bx, k) for v in mag[name]))

    # x_i times the input terms (int32). gamma_k, delta_k: int32 sums over i of x(k)_i T_i
    t = {}
    for name in ("EC", "C"):
        s["T" + name], total = summed(name, bx)
        t[name] = _V(total.q, max(_shifted_bound(v * bx, s["T" + name]) for v in mag[name]))
    # sum_k alpha_k = sum_i (X_i T_i) >> A, X_i = sum_k x(k)_i within m bx; T_i X_i within int32
    col = _V(Q_ACT, m * bx)
    for name, key in (("EA", "A"), ("A", "B")):
        k = 0
        while m * bx * max(_shifted_bound(v * bx, k) for v in mag[name]) > INT32_MAX:
            k += 1
        s["T" + name] = k
        terms = [_V(fmt[name] + Q_ACT - k, _shifted_bound(v * bx, k)) * col for v in mag[name]]
        j = 0
        while sum(tt.shr(j).b for tt in terms) > INT32_MAX:
            j += 1
        s["S" + key], t["S" + key] = j, _V(terms[0].q - j, sum(tt.shr(j).b for tt in terms))
    # gamma_k, delta_k narrowed to int16 for the per-output window sums (m ONE |G| within int32)
    one, y = _V(Q_ACT, ONE), _V(Q_ACT, m * ONE)
    narrowed = {}
    for name, key in (("EC", "G"), ("C", "DL")):
        total = _V(Q_ACT + t[name].q, bx * sum(_shifted_bound(v * bx, s["T" + name]) for v in mag[name]))
        k = _fit(total.b)
        while m * ONE * total.shr(k).b > INT32_MAX:
            k += 1
        s[key], narrowed[key] = k, total.shr(k)
    # per output: Y_j, sum_k y_j(k) G_k, sum_k y_j(k) DL_k (int32), each narrowed to int16
    s["Y"], y16 = _narrow(y)
    s["YG"], yg16 = _narrow(one * narrowed["G"] * _V(0, m))
    s["YD"], yd16 = _narrow(one * narrowed["DL"] * _V(0, m))
    # per-layer sums (int32): s_eta, d_eta, d_1 with a shift per product when needed; s_1 exact
    s["SE"], se = summed("E", 1)
    s["SD"], de = summed("ED", 1)
    s["S1"], d1 = summed("D", 1)
    s1 = _V(Q_ACT, n * bx)
    assert s1.b <= INT32_MAX
    e = top["E"]
    terms = {"a": t["SA"]}
    s["FB"], fb16 = _narrow(t["SB"])
    terms["b"] = e * fb16
    # B_j (s_eta + eta_j s_1)
    s["U1"], s["UE"], u = _plus_scaled(se, s1, e)
    s["U"], u16 = _narrow(u)
    s["BS"], bs16 = _narrow(top["B"] * u16)
    terms["y"] = bs16 * y16
    terms["g"] = top["C"] * yg16
    terms["d"] = top["CE"] * yd16
    # K D_j (d_eta + eta_j d_1)
    s["D1"], s["DE"], dd = _plus_scaled(de, d1, e)
    s["DD"], dd16 = _narrow(dd)
    s["KD"], kd16 = _narrow(_V(0, m) * top["D"])
    terms["k"] = kd16 * dd16
    # z: every term to one int32 format, the finest in which their sum fits
    z_q = Z_Q_MAX - 1
    while sum(v.to(z_q).b for v in terms.values()) > INT32_MAX:
        z_q -= 1
    if z_q + 1 < Z_Q_MIN:
        raise NchlError(f"fixed point: a layer's pre-activation needs format Q{z_q + 1}, coarser than "
                        f"Q{Z_Q_MIN}; the parameters are too large for int16/int32 arithmetic")
    for name, v in terms.items():
        s["Z" + name] = v.q - z_q
    # every shifted value is an int32, so a floor shift by 31 or more leaves only its sign (0 or -1),
    # as a shift by 31 does; C leaves shifting an int32 by 32 or more undefined
    s = {k: min(v, 31) for k, v in s.items()}
    return LayerPlan(n, p, pre, post, s, z_q + 1)  # + 1: the rule's factor 1/2


# -- the reference controllers ---------------------------------------------------------------------
class FixedController(Controller):
    """The integer controller of a plan: :meth:`step_q` takes and returns int16 Q12 values;
    :meth:`step` is the float face used in rollouts (observations quantized by
    :func:`quantize_observation`, actions divided by 4096)."""

    def __init__(self, spec: Spec, genome: object, obs_range: float = DEFAULT_OBS_RANGE) -> None:
        check_supported(spec)
        self._obs_range = obs_range
        super().__init__(spec, genome, np.float32)   # checks the genome, then _unpack

    def _unpack(self, blocks: dict[str, np.ndarray]) -> None:
        self.plan = plan_checked(self.spec, self.genome.astype(np.float64), self._obs_range)  # the integer constants

    def step(self, obs: object) -> np.ndarray:
        x = self._observe(obs)
        return (self.step_q(quantize_observation(x, self.plan.obs_max)) / ONE).astype(np.float32)

    def _checked(self, obs_q: object) -> np.ndarray:
        """An int16 Q12 observation as int64, or a clear error (the state is not touched)."""
        x = np.asarray(obs_q)
        if x.shape != (self.topology.n_in,) or x.dtype.kind not in "iu":
            raise NchlError(f"integer observation must have shape ({self.topology.n_in},), got {x.shape} {x.dtype}")
        x = x.astype(np.int64)
        bad = np.flatnonzero(np.abs(x) > self.plan.obs_max)
        if bad.size:
            raise ObservationOutOfRange(f"integer observation {int(x[bad[0]])} at index {int(bad[0])} is beyond "
                                        f"+-{self.plan.obs_max} (Q12); the controller state is unchanged")
        return x

    def step_q(self, obs_q: object) -> np.ndarray:
        """One step on int16 Q12 observations; returns int16 Q12 actions."""
        raise NotImplementedError


class FixedWNcHL(FixedController):
    """Weightless NcHL in integer arithmetic; the generated fixed-point C computes the same integers.

    State: ``acts``, the int16 ring buffer of :class:`~nchl.core.controllers.WNcHL`, with ``pos`` and
    ``count``, and ``colsum``, every neuron's activations summed over the window (int32, updated when
    a row is written), which the step would otherwise sum again for every layer."""

    rule = "wnchl"

    @property
    def window(self) -> int:
        return int(self.spec.window)  # type: ignore[arg-type]

    def reset(self, seed: int = 0) -> None:
        check_seed(seed)
        self.acts = np.zeros((self.window, self.topology.neurons), dtype=np.int16)
        self.colsum = np.zeros(self.topology.neurons, dtype=np.int32)
        self.pos, self.count, self.t = 0, 0, 0

    def step_q(self, obs_q: object) -> np.ndarray:
        x = self._checked(obs_q)
        off = self.topology.offsets
        past = self.acts[:self.count].astype(np.int64)
        col = self.colsum.astype(np.int64)
        acts = [x]
        for l, L in enumerate(self.plan.layers):
            x = _layer(L, x, past[:, off[l]:off[l + 1]], past[:, off[l + 1]:off[l + 2]],
                       col[off[l]:off[l + 1]], col[off[l + 1]:off[l + 2]])
            acts.append(x)
        if self._plastic():
            row = np.concatenate(acts)
            self.colsum += (row - self.acts[self.pos]).astype(np.int32)
            self.acts[self.pos] = row
            self.pos = (self.pos + 1) % self.window
            self.count = min(self.count + 1, self.window)
        return x.astype(np.int16)

    def state(self) -> dict[str, np.ndarray]:
        return self._with_counter({"acts": self.acts.copy(), "colsum": self.colsum.copy(),
                                   "pos": np.uint32(self.pos), "count": np.uint32(self.count)})

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.acts = state["acts"].astype(np.int16)
        self.colsum = state["colsum"].astype(np.int32)
        self.pos, self.count, self.t = int(state["pos"]), int(state["count"]), int(state.get("t", 0))


def _layer(L: LayerPlan, x: np.ndarray, xp: np.ndarray, yp: np.ndarray, col: np.ndarray,
           y_sum: np.ndarray) -> np.ndarray:
    """One layer of the integer step (int64 numpy arrays holding the C's int16/int32 values): input
    ``x``, the window's input and output rows and their column sums."""
    s, pre, post = L.shifts, L.pre, L.post
    t = {name: rshift(pre[name] * x, s["T" + name]) for name in _PRE}
    se = int(rshift(pre["E"] * x, s["SE"]).sum())
    de = int(rshift(pre["ED"] * x, s["SD"]).sum())
    d1 = int(rshift(pre["D"] * x, s["S1"]).sum())
    s1 = int(x.sum())
    sum_a = int(rshift(col * t["EA"], s["SA"]).sum())
    sum_b = int(rshift(col * t["A"], s["SB"]).sum())
    g, dl = rshift(xp @ t["EC"], s["G"]), rshift(xp @ t["C"], s["DL"])
    yg, yd = g @ yp, dl @ yp
    e, k = post["E"], len(xp)
    tb = e * rshift(sum_b, s["FB"])
    u = rshift(rshift(se, s["UE"]) + e * rshift(s1, s["U1"]), s["U"])
    bs = rshift(post["B"] * u, s["BS"])
    ty = bs * rshift(y_sum, s["Y"])
    tg = post["C"] * rshift(yg, s["YG"])
    td = post["CE"] * rshift(yd, s["YD"])
    dd = rshift(rshift(de, s["DE"]) + e * rshift(d1, s["D1"]), s["DD"])
    tk = rshift(k * post["D"], s["KD"]) * dd
    z = (rshift(sum_a, s["Za"]) + rshift(tb, s["Zb"]) + rshift(ty, s["Zy"]) + rshift(tg, s["Zg"])
         + rshift(td, s["Zd"]) + rshift(tk, s["Zk"]))
    return tanh_q(z, L.z_q)


# -- NcHL: stored int32 weights with a stated range ---------------------------------------------------
DEFAULT_WEIGHT_RANGE = 32768.0  # |w| saturates here when the spec sets no clip (zoo:ant-nchl peaks near 4.4e3)
W_Q_MAX = 24


@dataclass(frozen=True)
class NcHLLayerPlan:
    """One NcHL layer: int16 constants, the shifts of the update and the forward pass's weight bound.

    Update of synapse ``i -> j`` (``Q_t``: the format of the four-term sum ``t``)::

        t  = a_i + b_j + ((cx_i cy_j + D_i D'_j) >> PD)     a = A x, b = B y in Q_t; cx, cy int16
        w  = clamp(w + ((t (E_i + E_j)) >> DW), +-W_MAX)     the rule's 1/2 is in DW

    Forward: ``z_j = sum_i (w_ij >> k) x_i`` with ``k`` the smallest shift that keeps ``|w >> k|``
    within ``lim`` for the largest ``|w|`` the step count allows (``min(W_MAX, t dmax)``): block
    floating point with a deterministic exponent, fine while the weights are small."""

    n: int
    p: int
    pre: dict           # A, C, D, E: int16 per input neuron
    post: dict          # B, C, D (coarser, so D_i D'_j shares cx cy's format), E
    shifts: dict        # XA XC YB YC PD DW: see the class docstring
    dmax: int           # largest |update| of one step, Q_W
    lim: int            # largest |w >> k| the forward pass allows
    k_min: int          # keeps the tanh input format within the table's
    t_sat: int          # from this step count on, the bound is W_MAX
    d_post_q: int       # format of the output neurons' D

    def forward_shift(self, t: int, w_abs: int) -> int:
        bound = w_abs if t >= self.t_sat else t * self.dmax
        return max(self.k_min, _fit(bound, self.lim))

    def as_context(self) -> dict:
        return {"n": self.n, "p": self.p, "s": self.shifts, "dmax": self.dmax, "lim": self.lim,
                "k_min": self.k_min, "t_sat": self.t_sat, "d_post_q": self.d_post_q,
                "pre": {k: [int(v) for v in a] for k, a in self.pre.items()},
                "post": {k: [int(v) for v in a] for k, a in self.post.items()}}


@dataclass(frozen=True)
class NcHLPlan:
    spec: Spec
    obs_max: int
    formats: dict       # parameter vector name -> Q
    w_q: int            # weight format
    w_min_q: int        # w_min_q <= w <= w_max_q, Q w_q: -2**30 .. 2**30 - 1, or symmetric
    w_max_q: int
    layers: tuple[NcHLLayerPlan, ...]

    @property
    def t_stop(self) -> int:
        """The step counter stops here: at ``freeze_after``, or when no layer's bound grows any more."""
        if self.spec.freeze_after is not None:
            return int(self.spec.freeze_after)
        return max(L.t_sat for L in self.layers)

    @property
    def params_bytes(self) -> int:
        """Flash: 4 int16 per input neuron and per output neuron of each layer, the packed tanh table."""
        return 2 * sum(4 * L.n + 4 * L.p for L in self.layers) + TANH_TABLE_BYTES

    @property
    def state_bytes(self) -> int:
        """RAM: the step counter and the int32 weights."""
        return 4 + 4 * self.spec.topology.synapses

    @property
    def work_bytes(self) -> int:
        """Stack: every neuron's activation (int16) and four int32 terms per output neuron of a layer."""
        t = self.spec.topology
        return 2 * t.neurons + 16 * t.max_width

    def describe(self) -> list[str]:
        lines = [f"observations/activations/actions: int16 Q{Q_ACT}; |observation| <= {self.obs_max} "
                 f"({self.obs_max / ONE:g})",
                 f"weights: int32 Q{self.w_q}, saturated to [{self.w_min_q}, {self.w_max_q}] "
                 f"(+-{-self.w_min_q / 2 ** self.w_q:g})",
                 "parameters (int16): " + ", ".join(f"{k} Q{q}" for k, q in self.formats.items())]
        for l, L in enumerate(self.layers):
            lines.append(f"layer {l}: update bound {L.dmax}/step, forward |w >> k| <= {L.lim}, k >= {L.k_min}; "
                         "shifts " + " ".join(f"{k}={v}" for k, v in L.shifts.items()))
        return lines


def _plan_nchl(spec: Spec, genome: np.ndarray, obs_max: int) -> NcHLPlan:
    if spec.init_range > 0:
        raise NchlError(f"fixed-point NcHL starts from zero weights; this spec draws them in +-{spec.init_range}")
    w_range = DEFAULT_WEIGHT_RANGE if spec.clip is None else float(spec.clip)
    b = split_blocks(genome, spec)
    ints, formats = {}, {}
    for name in ("A", "B", "C", "D"):
        ints[name], formats[name] = quantize_vector(b[name])
    ints["E"], formats["E"] = quantize_vector(b["eta"], INT16_MAX // 2)  # eta_i + eta_j stays within int16
    t, n0, off = spec.topology, spec.topology.n_in, spec.topology.offsets
    # the finest weight format (at most Q24, resolution 6e-8) in which |w| <= 2**30 and w plus the
    # largest update of a step stays within int32
    for w_q in range(min(30 - math.ceil(math.log2(w_range)), W_Q_MAX), -16, -1):
        w_max_q = int(round(w_range * 2.0 ** w_q))
        # a range of exactly 2**30 saturates to [-2**30, 2**30 - 1], as one SSAT #31 does (Cortex-M3/M4)
        w_min_q = -w_max_q
        if w_max_q == 1 << 30:
            w_max_q -= 1
            w_min_q = -(1 << 30)
        layers = []
        for l, (n, p) in enumerate(t.shapes):
            pre, post = slice(off[l], off[l + 1]), slice(off[l + 1], off[l + 2])
            layers.append(_plan_nchl_layer(
                {"A": ints["A"][pre], "C": ints["C"][pre], "D": ints["D"][pre], "E": ints["E"][pre]},
                {"B": ints["B"][post.start - n0:post.stop - n0], "C": ints["C"][post], "D": ints["D"][post],
                 "E": ints["E"][post]}, formats, obs_max if l == 0 else ONE, w_q, -w_min_q))
        if all(L is not None for L in layers):
            return NcHLPlan(spec, obs_max, formats, w_q, w_min_q, w_max_q, tuple(layers))
    raise NchlError("fixed point: the rule's updates are too large for any weight format; "
                    "the parameters are too large for int16/int32 arithmetic")


def _plan_nchl_layer(pre: dict, post: dict, fmt: dict, bx: int, w_q: int,
                     w_abs: int) -> NcHLLayerPlan | None:
    """``w_abs``: the largest ``|w|`` (Q ``w_q``)."""
    top = lambda a: max((abs(int(v)) for v in a), default=0)  # noqa: E731
    n, p = len(pre["A"]), len(post["B"])
    s = {}
    a = _V(fmt["A"] + Q_ACT, top(pre["A"]) * bx)
    bb = _V(fmt["B"] + Q_ACT, top(post["B"]) * ONE)
    s["XC"], cx = _narrow(_V(fmt["C"] + Q_ACT, top(pre["C"]) * bx))
    s["YC"], cy = _narrow(_V(fmt["C"] + Q_ACT, top(post["C"]) * ONE))
    # D_i D'_j in cx cy's format: D' coarser (post D requantized), or cx coarser
    q_dd = 2 * fmt["D"]
    if q_dd > cx.q + cy.q:
        post = {**post, "D": post["D"] >> (q_dd - cx.q - cy.q)}
    elif q_dd < cx.q + cy.q:
        s["XC"] += cx.q + cy.q - q_dd
        cx = cx.shr(cx.q + cy.q - q_dd)
    pd = _V(cx.q + cy.q, cx.b * cy.b + top(pre["D"]) * top(post["D"]))
    assert pd.b <= INT32_MAX
    # Q_t: the finest format in which a + b + (pd >> PD) fits int16 (so t times eta_i + eta_j fits int32)
    q_t = 30
    while a.to(q_t).b + bb.to(q_t).b + pd.to(q_t).b > INT16_MAX:
        q_t -= 1
    s["XA"], s["YB"], s["PD"] = a.q - q_t, bb.q - q_t, pd.q - q_t
    tb = a.to(q_t).b + bb.to(q_t).b + pd.to(q_t).b
    eb = top(pre["E"]) + top(post["E"])
    s["DW"] = q_t + fmt["E"] + 1 - w_q
    dmax = _shifted_bound(tb * eb, s["DW"])
    if w_abs + dmax > INT32_MAX:
        return None  # a coarser weight format
    lim = INT32_MAX // (n * bx)
    k_min = max(0, w_q + Q_ACT - Z_Q_MAX)
    if w_q + Q_ACT - max(k_min, _fit(w_abs, lim)) < Z_Q_MIN:
        raise NchlError(f"fixed point: a layer of {n} inputs cannot sum saturated weights in int32 "
                        "with the tanh table's precision; lower the weight range (clip)")
    t_sat = -(-w_abs // dmax) if dmax else 0
    return NcHLLayerPlan(n, p, pre, post, s, dmax, lim, k_min, t_sat, cx.q + cy.q - fmt["D"])


class FixedNcHL(FixedController):
    """NcHL in integer arithmetic: int32 weights in a stated range, saturated like ``clip`` (the
    default range, 32768, and any power-of-two clip lose one unit at the top: ``[-2**30, 2**30 - 1]``).

    State: the weights ``w0, w1, ...`` (int32, Q ``plan.w_q``) and ``t``, the plastic steps taken
    (it sets the forward pass's weight exponent; it stops at ``plan.t_stop``)."""

    rule = "nchl"

    def reset(self, seed: int = 0) -> None:
        check_seed(seed)
        self.weights = [np.zeros((L.n, L.p), dtype=np.int32) for L in self.plan.layers]
        self.t = 0

    def step_q(self, obs_q: object) -> np.ndarray:
        x = self._checked(obs_q)
        P = self.plan
        acts = [x]
        for L, w in zip(P.layers, self.weights):
            k = L.forward_shift(self.t, -P.w_min_q)
            z = rshift(w.astype(np.int64), k).T @ acts[-1]
            acts.append(tanh_q(z, P.w_q + Q_ACT - k))
        freeze = self.spec.freeze_after
        if freeze is None or self.t < freeze:
            for l, L in enumerate(P.layers):
                self.weights[l] = _nchl_update(L, self.weights[l], acts[l], acts[l + 1], P.w_min_q,
                                               P.w_max_q)
            self.t = min(self.t + 1, P.t_stop)
        return acts[-1].astype(np.int16)

    def state(self) -> dict[str, np.ndarray]:
        return {**{f"w{l}": w.copy() for l, w in enumerate(self.weights)}, "t": np.uint32(self.t)}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.weights = [state[f"w{l}"].astype(np.int32) for l in range(len(self.weights))]
        self.t = int(state["t"])


def _nchl_update(L: NcHLLayerPlan, w: np.ndarray, x: np.ndarray, y: np.ndarray, w_min_q: int,
                 w_max_q: int) -> np.ndarray:
    s, pre, post = L.shifts, L.pre, L.post
    a = rshift(pre["A"] * x, s["XA"])
    cx = rshift(pre["C"] * x, s["XC"])
    b = rshift(post["B"] * y, s["YB"])
    cy = rshift(post["C"] * y, s["YC"])
    pd = np.multiply.outer(cx, cy) + np.multiply.outer(pre["D"], post["D"])
    t = a[:, None] + b[None, :] + rshift(pd, s["PD"])
    d = rshift(t * np.add.outer(pre["E"], post["E"]), s["DW"])
    return np.clip(w.astype(np.int64) + d, w_min_q, w_max_q).astype(np.int32)


def make_fixed(spec: Spec, genome: object, obs_range: float = DEFAULT_OBS_RANGE) -> FixedController:
    """The integer reference controller of ``spec.rule``."""
    if spec.rule == "nchl":
        return FixedNcHL(spec, genome, obs_range)
    return FixedWNcHL(spec, genome, obs_range)

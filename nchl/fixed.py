"""Fixed-point (integer-only) weightless NcHL: the Python reference of ``nchl codegen --numeric fixed``.

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

Arithmetic: products of two int16 values in int32 (one ``MULS`` on a Cortex-M0),
int32 sums in the ``O(m n)`` and ``O(m p)`` loops, int64 only for ``O(n)``
per-layer sums. A right shift by ``s`` rounds half up: ``(v + 2**(s-1)) >> s``
with an arithmetic shift (what GCC and Clang do for signed values on every
target). Integer sums are exact, so their order does not matter.

The layer is the low-rank form of :class:`nchl.controllers.WNcHL` regrouped for
integers: with ``x`` the input, ``x(k), y(k)`` the window rows and ``K`` the
filled rows,

    2 z_j = sum_k alpha_k + eta_j sum_k beta_k + B_j (s_eta + eta_j s_1) Y_j
            + C_j sum_k y_j(k) gamma_k + (C_j eta_j) sum_k y_j(k) delta_k
            + K D_j (d_eta + eta_j d_1),          Y_j = sum_k y_j(k)

(``alpha_k .. delta_k = x(k) . (eta A x, A x, eta C x, C x)``), so the inner
loops are plain multiply-adds of int16 values. tanh is a 257-entry table of
``tanh`` on ``[0, 8]`` in Q15 with linear interpolation (error below 1e-4,
under the Q12 output's resolution).
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
FRAC_BITS = 11                 # interpolation weight resolution
Z_Q_MIN, Z_Q_MAX = 5, 27        # tanh input formats the table lookup supports
SUPPORTED = ("wnchl",)
DEFAULT_OBS_RANGE = 8.0        # the whole int16 Q12 range, when the task sets no bound


class ObservationOutOfRange(NonFiniteObservation):
    """An integer observation beyond the range the formats were planned for; the state is untouched."""


def rshift(v, s: int):
    """``v / 2**s`` rounded half up (``s > 0``), or ``v * 2**-s`` (``s <= 0``): the C ``rs`` macro."""
    if s > 0:
        return (v + (1 << (s - 1))) >> s
    return v << -s if s < 0 else v


def _fit(bound: int, limit: int = INT16_MAX) -> int:
    """The smallest right shift after which a value of magnitude ``bound`` fits ``limit``."""
    s = 0
    while rshift(bound, s) > limit:
        s += 1
    return s


def quantize_vector(v: np.ndarray) -> tuple[np.ndarray, int]:
    """int16 values and the finest format ``Q <= 15`` in which the largest of ``v`` fits."""
    top = float(np.max(np.abs(v))) if v.size else 0.0
    q = 15
    while q > -16 and round(top * 2.0 ** q) > INT16_MAX:
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
    y = (y + 4) >> 3                              # Q15 -> Q12, rounded
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
        """Flash of the constants: 8 int16 per input neuron (7 and a pad), 5 per output, the tanh table."""
        return 2 * (sum(8 * L.n + 5 * L.p for L in self.layers) + len(TANH_TABLE))

    @property
    def state_bytes(self) -> int:
        """RAM kept between steps: the int16 window, two uint32 counters (three when frozen), 4-aligned."""
        t = self.spec.topology
        counters = 4 * (2 + (self.spec.freeze_after is not None))
        return counters + 4 * math.ceil(2 * self.spec.window * t.neurons / 4)

    @property
    def work_bytes(self) -> int:
        """Stack for the activations of the layer being computed: two int16 buffers."""
        return 2 * 2 * self.spec.topology.max_width

    def describe(self) -> list[str]:
        """The formats, one line each, for the generated header."""
        lines = [f"observations/activations/actions/window: int16 Q{Q_ACT}; |observation| <= {self.obs_max} "
                 f"({self.obs_max / ONE:g})",
                 "parameters (int16): " + ", ".join(f"{k} Q{q}" for k, q in self.formats.items())]
        for l, L in enumerate(self.layers):
            lines.append(f"layer {l}: tanh input Q{L.z_q}; shifts " + " ".join(f"{k}={v}" for k, v in L.shifts.items()))
        return lines


def _parameter_vectors(spec: Spec, genome: np.ndarray) -> dict[str, np.ndarray]:
    g = check_genome(spec, genome, np.dtype(np.float32)).astype(np.float64)
    b = split_blocks(g, spec)
    t = spec.topology
    n0 = t.n_in
    beta = np.concatenate([np.zeros(n0), b["B"]])           # B per neuron, zero on inputs
    alpha = np.concatenate([b["A"], np.zeros(t.n_out)])      # A per neuron, zero on outputs
    return {"E": b["eta"], "A": alpha, "B": beta, "C": b["C"], "D": b["D"],
            "EA": b["eta"] * alpha, "EC": b["eta"] * b["C"], "ED": b["eta"] * b["D"], "CE": b["C"] * b["eta"]}


def plan(spec: Spec, genome: object, obs_range: float = DEFAULT_OBS_RANGE) -> Plan:
    """Formats and shifts of the integer controller for this genome, observations within ``+-obs_range``."""
    if spec.rule not in SUPPORTED:
        raise NchlError(f"--numeric fixed supports rule {', '.join(SUPPORTED)}, not {spec.rule!r}")
    if not (isinstance(obs_range, (int, float)) and 0 < obs_range):
        raise NchlError(f"observation range must be a number > 0, got {obs_range!r}")
    obs_max = min(INT16_MAX, int(round(obs_range * ONE)))
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


def _plan_layer(pre: dict, post: dict, fmt: dict, bx: int, m: int) -> LayerPlan:
    """Shifts of one layer, from worst-case magnitudes (Python integers, exact).

    ``bx`` bounds the input and the window's input rows, ``ONE`` the window's output rows (tanh)."""
    n, p = len(pre["E"]), len(post["E"])
    mag = {k: [abs(int(v)) for v in a] for k, a in pre.items()}
    top = {k: max((abs(int(v)) for v in a), default=0) for k, a in post.items()}
    s, q = {}, {}
    # x_i times each input term, stored int16: alpha_k.. sums of x(k)_i T_i must fit int32
    window_sum = {}
    for name in _PRE:
        k = 0
        while True:
            t = [rshift(v * bx, k) for v in mag[name]]
            if max(t, default=0) <= INT16_MAX and bx * sum(t) <= INT32_MAX:
                break
            k += 1
        s["T" + name], q["T" + name] = k, fmt[name] + Q_ACT - k
        window_sum[name] = bx * sum(t)
    # gamma_k, delta_k as int16 for the per-output sums over the window (m ONE |G| must fit int32)
    for name, key in (("EC", "G"), ("C", "DL")):
        k = 0
        while rshift(window_sum[name], k) > INT16_MAX or m * ONE * rshift(window_sum[name], k) > INT32_MAX:
            k += 1
        s[key], q[key] = k, q["T" + name] + Q_ACT - k
    g_max, dl_max = rshift(window_sum["EC"], s["G"]), rshift(window_sum["C"], s["DL"])
    # per-output window sums Y_j, sum y gamma, sum y delta, narrowed to int16
    s["Y"] = _fit(m * ONE)
    s["YG"], s["YD"] = _fit(m * ONE * g_max), _fit(m * ONE * dl_max)
    y16, yg16, yd16 = rshift(m * ONE, s["Y"]), rshift(m * ONE * g_max, s["YG"]), rshift(m * ONE * dl_max, s["YD"])
    # per-layer sums (int64): s_eta, s_1, d_eta, d_1, sum alpha, sum beta
    se_b, s1_b = bx * sum(mag["E"]), bx * n
    de_b, d1_b = bx * sum(mag["ED"]), bx * sum(mag["D"])
    # eta_j sum beta
    s["FB"] = _fit(m * window_sum["A"])
    fb16 = rshift(m * window_sum["A"], s["FB"])
    terms = {"a": (q["TEA"] + Q_ACT, m * window_sum["EA"]),
             "b": (fmt["E"] + q["TA"] + Q_ACT - s["FB"], top["E"] * fb16)}
    # B_j (s_eta + eta_j s_1): s_1 narrowed to int16, s_eta to the same format
    k = 0
    while rshift(s1_b, k) > INT16_MAX or rshift(se_b, k) + top["E"] * rshift(s1_b, k) > INT32_MAX:
        k += 1
    s["U1"] = k
    u_b, q_u = rshift(se_b, k) + top["E"] * rshift(s1_b, k), fmt["E"] + Q_ACT - k
    s["U"] = _fit(u_b)
    s["BS"] = _fit(top["B"] * rshift(u_b, s["U"]))
    bs16, q_bs = rshift(top["B"] * rshift(u_b, s["U"]), s["BS"]), fmt["B"] + q_u - s["U"] - s["BS"]
    terms["y"] = (q_bs + Q_ACT - s["Y"], bs16 * y16)
    terms["g"] = (fmt["C"] + Q_ACT + q["G"] - s["YG"], top["C"] * yg16)
    terms["d"] = (fmt["CE"] + Q_ACT + q["DL"] - s["YD"], top["CE"] * yd16)
    # K D_j (d_eta + eta_j d_1): d_1 narrowed to int16, d_eta aligned to eta_j d_1's format
    k = 0
    while True:
        q_dd = fmt["E"] + fmt["D"] + Q_ACT - k
        r = fmt["ED"] + Q_ACT - q_dd
        dd_b = rshift(de_b, r) + top["E"] * rshift(d1_b, k)
        if rshift(d1_b, k) <= INT16_MAX and dd_b <= INT32_MAX and rshift(de_b, r) <= INT32_MAX:
            break
        k += 1
    s["D1"], s["DE"] = k, r
    s["DD"] = _fit(dd_b)
    s["KD"] = _fit(m * top["D"])
    kd16, dd16 = rshift(m * top["D"], s["KD"]), rshift(dd_b, s["DD"])
    terms["k"] = (fmt["D"] - s["KD"] + q_dd - s["DD"], kd16 * dd16)
    # z: every term to one int32 format, the finest in which their sum fits
    z_q = min(Z_Q_MAX - 1, min(qt for qt, _ in terms.values()) + 40)
    while sum(rshift(b, qt - z_q) for qt, b in terms.values()) > INT32_MAX:
        z_q -= 1
    if z_q + 1 < Z_Q_MIN:
        raise NchlError(f"fixed point: a layer's pre-activation needs format Q{z_q + 1}, coarser than "
                        f"Q{Z_Q_MIN}; the parameters are too large for int16/int32 arithmetic")
    for name, (qt, _) in terms.items():
        s["Z" + name] = qt - z_q
    return LayerPlan(n, p, pre, post, s, z_q + 1)  # + 1: the rule's factor 1/2


# -- the reference controller -----------------------------------------------------------------------
class FixedWNcHL(Controller):
    """Weightless NcHL in integer arithmetic; the generated fixed-point C computes the same integers.

    :meth:`step_q` takes and returns int16 Q12 values; :meth:`step` is the float face used in
    rollouts (observations quantized by :func:`quantize_observation`, actions divided by 4096)."""

    rule = "wnchl"

    def __init__(self, spec: Spec, genome: object, obs_range: float = DEFAULT_OBS_RANGE) -> None:
        self.plan = plan(spec, genome, obs_range)
        super().__init__(spec, genome, np.float32)

    def _unpack(self, blocks: dict[str, np.ndarray]) -> None:
        pass  # the plan holds the integer constants

    @property
    def window(self) -> int:
        return int(self.spec.window)  # type: ignore[arg-type]

    def reset(self, seed: int = 0) -> None:
        check_seed(seed)
        self.acts = np.zeros((self.window, self.topology.neurons), dtype=np.int16)
        self.pos, self.count, self.t = 0, 0, 0

    def step(self, obs: object) -> np.ndarray:
        x = self._observe(obs)
        return (self.step_q(quantize_observation(x, self.plan.obs_max)) / ONE).astype(np.float32)

    def step_q(self, obs_q: object) -> np.ndarray:
        """One step on int16 Q12 observations; returns int16 Q12 actions."""
        x = np.asarray(obs_q)
        if x.shape != (self.topology.n_in,) or x.dtype.kind not in "iu":
            raise NchlError(f"integer observation must have shape ({self.topology.n_in},), got {x.shape} {x.dtype}")
        x = x.astype(np.int64)
        bad = np.flatnonzero(np.abs(x) > self.plan.obs_max)
        if bad.size:
            raise ObservationOutOfRange(f"integer observation {int(x[bad[0]])} at index {int(bad[0])} is beyond "
                                        f"+-{self.plan.obs_max} (Q12); the controller state is unchanged")
        off = self.topology.offsets
        past = self.acts[:self.count].astype(np.int64)
        acts = [x]
        for l, L in enumerate(self.plan.layers):
            x = _layer(L, x, past[:, off[l]:off[l + 1]], past[:, off[l + 1]:off[l + 2]])
            acts.append(x)
        if self._plastic():
            self.acts[self.pos] = np.concatenate(acts)
            self.pos = (self.pos + 1) % self.window
            self.count = min(self.count + 1, self.window)
        return x.astype(np.int16)

    def state(self) -> dict[str, np.ndarray]:
        return self._with_counter({"acts": self.acts.copy(), "pos": np.uint32(self.pos),
                                   "count": np.uint32(self.count)})

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.acts = state["acts"].astype(np.int16)
        self.pos, self.count, self.t = int(state["pos"]), int(state["count"]), int(state.get("t", 0))


def _layer(L: LayerPlan, x: np.ndarray, xp: np.ndarray, yp: np.ndarray) -> np.ndarray:
    """One layer of the integer step (int64 numpy arrays holding the C's int16/int32/int64 values)."""
    s, pre, post = L.shifts, L.pre, L.post
    t = [rshift(pre[name] * x, s["T" + name]) for name in _PRE]
    se, s1 = int((pre["E"] * x).sum()), int(x.sum())
    de, d1 = int((pre["ED"] * x).sum()), int((pre["D"] * x).sum())
    coef = xp @ np.stack(t, axis=1)                       # (K, 4): alpha, beta, gamma, delta per row
    sum_a, sum_b = int(coef[:, 0].sum()), int(coef[:, 1].sum())
    g, dl = rshift(coef[:, 2], s["G"]), rshift(coef[:, 3], s["DL"])
    y_sum, yg, yd = yp.sum(axis=0), g @ yp, dl @ yp
    e, k = post["E"], len(xp)
    tb = e * rshift(sum_b, s["FB"])
    u = rshift(rshift(se, s["U1"]) + e * rshift(s1, s["U1"]), s["U"])
    bs = rshift(post["B"] * u, s["BS"])
    ty = bs * rshift(y_sum, s["Y"])
    tg = post["C"] * rshift(yg, s["YG"])
    td = post["CE"] * rshift(yd, s["YD"])
    dd = rshift(rshift(de, s["DE"]) + e * rshift(d1, s["D1"]), s["DD"])
    tk = rshift(k * post["D"], s["KD"]) * dd
    z = (rshift(sum_a, s["Za"]) + rshift(tb, s["Zb"]) + rshift(ty, s["Zy"]) + rshift(tg, s["Zg"])
         + rshift(td, s["Zd"]) + rshift(tk, s["Zk"]))
    return tanh_q(z, L.z_q)

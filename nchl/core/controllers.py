"""Reference controllers for the three plasticity rules.

Every controller keeps its episode state in explicit named arrays
(:meth:`Controller.state`) so the same state maps onto a C struct, an ONNX
tensor and a batch. One control step (:meth:`Controller.step`) is: forward
through all layers with the current weights (``y = tanh(x W)``, ``W`` stored
``(pre, post)``), which gives
the action; then every layer is updated from the activations of this step
(pre = layer ``l``, the raw observation for ``l = 0``; post = layer ``l + 1``).

Every float32 operation happens in one fixed order, the order of the generated
C loops: element-wise updates one rounding per operation, sums in index order
and a shared rational tanh (:mod:`nchl.core.activation`). The float32 reference and
the generated C are therefore bit-identical, step after step.
"""

from __future__ import annotations

from functools import cached_property
from typing import Mapping

import numpy as np

from .activation import seq_sum, tanh
from .errors import GenomeError, NchlError, NonFiniteObservation
from .prng import check_seed, uniform_weights
from .spec import Spec
from .topology import Topology

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _check_dtype(dtype: object) -> np.dtype:
    dt = np.dtype(dtype)  # type: ignore[call-overload]
    if dt not in DTYPES:
        raise TypeError(f"dtype must be float32 (deployment) or float64 (analysis), got {dt}")
    return dt


def check_genome(spec: Spec, genome: object, dtype: np.dtype) -> np.ndarray:
    try:
        g = np.asarray(genome, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise GenomeError(f"genome is not an array of numbers: {e}") from None
    if g.ndim != 1:
        raise GenomeError(f"genome must be a 1-D array, got shape {g.shape}; expected {spec.describe_layout()}")
    if g.size != spec.genome_length:
        raise GenomeError(f"genome has {g.size} values; expected {spec.describe_layout()}")
    bad = np.flatnonzero(~np.isfinite(g))
    if bad.size:
        raise GenomeError(f"genome has {bad.size} non-finite values (first at index {bad[0]})")
    return g.astype(dtype)


def split_blocks(genome: np.ndarray, spec: Spec) -> dict[str, np.ndarray]:
    """The genome's named blocks (views), in the layout of :mod:`nchl.core.spec`."""
    out, k = {}, 0
    for name, n in spec.blocks:
        out[name] = genome[k:k + n]
        k += n
    return out


class Controller:
    """Common surface of the rules: ``reset(seed)``, ``step(obs)``, ``state()``."""

    rule: str = ""

    def __init__(self, spec: Spec, genome: object, dtype: object = np.float32) -> None:
        if spec.rule != self.rule:
            raise NchlError(f"{type(self).__name__} implements rule {self.rule!r}, spec says {spec.rule!r}")
        self.spec = spec
        self.dtype = _check_dtype(dtype)
        self.genome = check_genome(spec, genome, self.dtype)
        self.genome.setflags(write=False)
        self._unpack(split_blocks(self.genome, spec))
        self.reset(0)

    @property
    def topology(self) -> Topology:
        return self.spec.topology

    def _unpack(self, blocks: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def reset(self, seed: int = 0) -> None:
        """Start an episode; ``seed`` (uint32) picks the initial weights when ``init_range > 0``."""
        raise NotImplementedError

    def step(self, obs: object) -> np.ndarray:
        """One control step; returns the action (a new array of ``n_L`` values)."""
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        """Copies of the named state arrays."""
        raise NotImplementedError

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Replace the state with arrays of the shapes :meth:`state` returns."""
        current = self.state()
        if set(state) != set(current):
            raise NchlError(f"state needs keys {sorted(current)}, got {sorted(state)}")
        for name, ref in current.items():
            arr = np.asarray(state[name])
            if arr.shape != ref.shape:
                raise NchlError(f"state[{name!r}] must have shape {ref.shape}, got {arr.shape}")
        self._load_state({k: np.asarray(v, dtype=current[k].dtype) for k, v in state.items()})

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _plastic(self) -> bool:
        """Whether this step still learns (``spec.freeze_after``); counts the step."""
        k = self.spec.freeze_after
        if k is None:
            return True
        plastic = self.t < k
        self.t += plastic  # saturates at k, as the C counter does
        return plastic

    def _with_counter(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return state if self.spec.freeze_after is None else {**state, "t": np.uint32(self.t)}

    def _observe(self, obs: object) -> np.ndarray:
        """Validate an observation before anything changes."""
        x = np.asarray(obs)
        if x.shape != (self.topology.n_in,):
            raise NchlError(f"observation must have shape ({self.topology.n_in},), got {x.shape}")
        with np.errstate(over="ignore"):
            x = x.astype(self.dtype)
        if not np.isfinite(x).all():
            bad = int(np.flatnonzero(~np.isfinite(x))[0])
            raise NonFiniteObservation(
                f"observation has a non-finite value at index {bad} ({np.asarray(obs)[bad]!r} "
                f"as {self.dtype}); the controller state is unchanged"
            )
        return x

    def __repr__(self) -> str:
        s = self.spec
        extra = f", window={s.window}" if s.window is not None else ""
        return f"{type(self).__name__}(layers=[{s.topology}]{extra}, dtype={self.dtype})"


def forward(weights: list[np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """The activations of every layer, input first: ``y = tanh(x W)`` with each
    ``z_j = sum_i w_ij x_i`` summed over ``i`` in order (the generated C's loop)."""
    acts = [x]
    for w in weights:
        x = tanh(seq_sum(w * x[:, None]))
        acts.append(x)
    return acts


class _WeightedController(Controller):
    """HL and NcHL: a stored weight matrix per layer, updated after the forward pass."""

    def reset(self, seed: int = 0) -> None:
        seed = check_seed(seed)
        t = self.topology
        if self.spec.init_range > 0:
            flat = uniform_weights(seed, t.synapses, self.spec.init_range, self.dtype)
        else:
            flat = np.zeros(t.synapses, dtype=self.dtype)
        self.weights = t.split_matrices(flat)  # views of one fresh array: each layer owns its slice
        self.t = 0

    def step(self, obs: object) -> np.ndarray:
        acts = forward(self.weights, self._observe(obs))
        clip = self.spec.clip
        if self._plastic():
            for l, w in enumerate(self.weights):
                w += self._delta(l, acts[l], acts[l + 1])
                if clip is not None:
                    np.clip(w, -clip, clip, out=w)
        return acts[-1].copy()

    def _delta(self, layer: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        return self._with_counter({f"w{l}": w.copy() for l, w in enumerate(self.weights)})

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.weights = [state[f"w{l}"].copy() for l in range(len(self.weights))]
        self.t = int(state.get("t", 0))


class HL(_WeightedController):
    """Synapse-centric ABCD rule: ``dw = eta (A x_i + B y_j + C x_i y_j + D)``."""

    rule = "hl"

    def _unpack(self, blocks: dict[str, np.ndarray]) -> None:
        self.layer_params = hl_layers(self.topology, blocks)

    def _delta(self, layer: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        # (((A*x_i + B*y_j) + C*(x_i*y_j)) + D) * eta, one rounding per operation
        q = self.layer_params[layer]
        d = q["A"] * x[:, None]
        d += q["B"] * y
        d += q["C"] * np.multiply.outer(x, y)
        d += q["D"]
        d *= q["eta"]
        return d


def hl_layers(topology: Topology, blocks: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Per-layer HL parameters: ``A, B, C, D, eta`` as ``(pre, post)`` matrices."""
    per_block = {name: topology.split_matrices(blocks[name]) for name in ("A", "B", "C", "D", "eta")}
    return [{name: mats[l] for name, mats in per_block.items()} for l in range(topology.n_layers)]


def nchl_layers(topology: Topology, blocks: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Per-layer NcHL parameters: pre-neuron vectors (``*_pre``), post-neuron ones (``*_post``)."""
    off = topology.offsets
    n0 = topology.n_in
    out = []
    for l in range(topology.n_layers):
        pre = slice(off[l], off[l + 1])
        post = slice(off[l + 1], off[l + 2])
        out.append({
            "eta_pre": blocks["eta"][pre], "A_pre": blocks["A"][pre],
            "C_pre": blocks["C"][pre], "D_pre": blocks["D"][pre],
            "eta_post": blocks["eta"][post], "B_post": blocks["B"][post.start - n0:post.stop - n0],
            "C_post": blocks["C"][post], "D_post": blocks["D"][post],
        })
    return out


def add_synapse_constants(q: dict[str, np.ndarray]) -> None:
    """Precompute the per-synapse constants of :func:`nchl_delta` (C computes them on the fly,
    with the same operations, hence the same bits)."""
    q["eta_syn"] = np.add.outer(q["eta_pre"], q["eta_post"]) * q["eta_pre"].dtype.type(0.5)
    q["DD"] = np.multiply.outer(q["D_pre"], q["D_post"])


def nchl_delta(q: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """NcHL update of one layer, ``(pre, post)``, in the canonical operation order:

    ``(((A_i x_i + B_j y_j) + (C_i x_i)(C_j y_j)) + D_i D_j) * ((eta_i + eta_j) * 0.5)``
    """
    d = np.add.outer(q["A_pre"] * x, q["B_post"] * y)
    d += np.multiply.outer(q["C_pre"] * x, q["C_post"] * y)
    d += q["DD"]
    d *= q["eta_syn"]
    return d


def window_weights(q: Mapping[str, np.ndarray], xp: np.ndarray, yp: np.ndarray) -> np.ndarray:
    """``W = sum_k dW(k)``: the weights of one layer that a window of past pre (``xp``) and post
    (``yp``) activations stands for, at ``O(m n p)``. ``q`` needs :func:`add_synapse_constants`."""
    w = np.zeros((xp.shape[1], yp.shape[1]), dtype=xp.dtype)
    for pre, post in zip(xp, yp):
        w += nchl_delta(q, pre, post)
    return w


class NcHL(_WeightedController):
    """Neuron-centric rule: synapse ``i -> j`` combines the parameters of ``i`` and ``j``."""

    rule = "nchl"

    def _unpack(self, blocks: dict[str, np.ndarray]) -> None:
        self.layer_params = nchl_layers(self.topology, blocks)
        for q in self.layer_params:
            add_synapse_constants(q)

    def _delta(self, layer: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return nchl_delta(self.layer_params[layer], x, y)


class WNcHL(Controller):
    """Weightless NcHL: weights are the sum of the last ``m`` NcHL updates, never stored.

    State: ``acts``, a ring buffer ``(m, N)`` of the activations of every neuron
    in the last ``m`` steps; ``pos``, the row the next step writes; ``count``,
    how many rows hold a completed step (``min(t, m)``). The step being computed
    is not part of its own window, so step ``t`` uses the updates of steps
    ``t - m .. t - 1``.

    The forward pass uses the low-rank structure of the NcHL update. With ``x``
    the current input of a layer and ``x(k)``, ``y(k)`` its pre and post
    activations at past step ``k``, ``z_j = sum_k sum_i dw_ij(k) x_i`` is

        z_j = ( sum_k alpha_k + eta_j sum_k beta_k
                + sum_k y_j(k) [B_j (s_eta + eta_j s_1) + C_j (gamma_k + eta_j delta_k)]
                + K D_j (d_eta + eta_j d_1) ) / 2

    with ``alpha_k, beta_k, gamma_k, delta_k = x(k) . (eta A x, A x, eta C x, C x)``,
    ``s_eta = eta . x``, ``s_1 = sum x``, ``d_eta = (eta D) . x``, ``d_1 = D . x``
    and ``K`` the filled window: about ``4 m n + 2 m p`` multiply-adds per layer
    instead of the ``m n p`` of building ``W``. Every sum runs in the order of
    the generated C loops (:func:`~nchl.core.activation.seq_sum`).
    """

    rule = "wnchl"

    def _unpack(self, blocks: dict[str, np.ndarray]) -> None:
        self.layer_params = nchl_layers(self.topology, blocks)
        for q in self.layer_params:
            q["etaD_pre"] = q["eta_pre"] * q["D_pre"]

    @property
    def window(self) -> int:
        return int(self.spec.window)  # type: ignore[arg-type]

    @property
    def weights(self) -> list[np.ndarray]:
        """The weights the window stands for, rebuilt with :func:`window_weights`: for analysis
        (how large do they get?), never used by :meth:`step`, which needs no weight matrix."""
        off = self.topology.offsets
        past = self.acts[:self.count]
        return [window_weights(q, past[:, off[l]:off[l + 1]], past[:, off[l + 1]:off[l + 2]])
                for l, q in enumerate(self._synapse_params)]

    @cached_property
    def _synapse_params(self) -> list[dict[str, np.ndarray]]:
        """Layer parameters with the per-synapse constants of :func:`nchl_delta`, built on the first
        call of :attr:`weights` only: the low-rank step never needs per-synapse values."""
        out = []
        for q in self.layer_params:
            q = dict(q)
            add_synapse_constants(q)
            out.append(q)
        return out

    def reset(self, seed: int = 0) -> None:
        check_seed(seed)  # the window starts empty: the seed has nothing to draw
        self.acts = np.zeros((self.window, self.topology.neurons), dtype=self.dtype)
        self.pos = 0
        self.count = 0
        self.t = 0

    def step(self, obs: object) -> np.ndarray:
        x = self._observe(obs)
        off = self.topology.offsets
        past = self.acts[:self.count]  # rows 0..count-1 are exactly the filled ones
        acts = [x]
        for l, q in enumerate(self.layer_params):
            x = self._layer(q, x, past[:, off[l]:off[l + 1]], past[:, off[l + 1]:off[l + 2]])
            acts.append(x)
        if self._plastic():  # frozen: the window, and so the weights it stands for, stay as they are
            self.acts[self.pos] = np.concatenate(acts)
            self.pos = (self.pos + 1) % self.window
            self.count = min(self.count + 1, self.window)
        return x.copy()

    def _layer(self, q: dict[str, np.ndarray], x: np.ndarray, xp: np.ndarray, yp: np.ndarray) -> np.ndarray:
        """Output of one layer for input ``x``, given its past pre (``xp``) and post (``yp``) activations."""
        eta_i, eta_j = q["eta_pre"], q["eta_post"]
        ax, cx = q["A_pre"] * x, q["C_pre"] * x
        s_eta, s_1 = seq_sum(eta_i * x), seq_sum(x)
        d_eta, d_1 = seq_sum(q["etaD_pre"] * x), seq_sum(q["D_pre"] * x)
        # (n, K, 4): x_i(k) times (eta A x, A x, eta C x, C x)_i, summed over i in order
        v = np.stack([eta_i * ax, ax, eta_i * cx, cx], axis=1)
        coef = seq_sum(np.ascontiguousarray(xp.T)[:, :, None] * v[:, None, :])
        alpha, beta, gamma, delta = coef.T
        per_k = yp * ((q["B_post"] * (s_eta + eta_j * s_1))[None, :]
                      + q["C_post"] * (gamma[:, None] + eta_j * delta[:, None]))
        z = (((seq_sum(alpha) + eta_j * seq_sum(beta)) + seq_sum(per_k))
             + (self.dtype.type(len(xp)) * q["D_post"]) * (d_eta + eta_j * d_1)) * self.dtype.type(0.5)
        return tanh(z)

    def state(self) -> dict[str, np.ndarray]:
        return self._with_counter({"acts": self.acts.copy(), "pos": np.uint32(self.pos),
                                   "count": np.uint32(self.count)})

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        pos, count = int(state["pos"]), int(state["count"])
        if not (0 <= count <= self.window and 0 <= pos < self.window
                and (count == self.window or pos == count)):
            raise NchlError(f"inconsistent ring buffer position: pos={pos}, count={count}, window={self.window}")
        self.acts, self.pos, self.count = state["acts"].copy(), pos, count
        self.t = int(state.get("t", 0))


class Static(Controller):
    """No plasticity: the genome is the weight matrices, used as they are (the baseline that says
    what plasticity buys). The forward pass is the plastic rules' own, so C matches it bit for bit."""

    rule = "static"

    def _unpack(self, blocks: dict[str, np.ndarray]) -> None:
        self.weights = self.topology.split_matrices(blocks["W"])

    def reset(self, seed: int = 0) -> None:
        check_seed(seed)  # nothing to draw: the weights are the genome

    def step(self, obs: object) -> np.ndarray:
        return forward(self.weights, self._observe(obs))[-1].copy()

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        pass


def nchl_as_hl(spec: Spec, genome: object) -> tuple[Spec, np.ndarray]:
    """The HL spec and genome that behave as an NcHL genome: ``A_ij = A_i``, ``B_ij = B_j``,
    ``C_ij = C_i C_j``, ``D_ij = D_i D_j``, ``eta_ij = (eta_i + eta_j) / 2`` (for size comparisons
    of the same controller deployed synapse-centric)."""
    if spec.rule not in ("nchl", "wnchl"):
        raise NchlError(f"only an NcHL genome has an HL equivalent, not {spec.rule!r}")
    values = check_genome(spec, genome, np.dtype(np.float64))
    per: dict[str, list[np.ndarray]] = {name: [] for name in ("A", "B", "C", "D", "eta")}
    for q in nchl_layers(spec.topology, split_blocks(values, spec)):
        shape = (len(q["A_pre"]), len(q["B_post"]))
        per["A"].append(np.broadcast_to(q["A_pre"][:, None], shape))
        per["B"].append(np.broadcast_to(q["B_post"][None, :], shape))
        per["C"].append(np.multiply.outer(q["C_pre"], q["C_post"]))
        per["D"].append(np.multiply.outer(q["D_pre"], q["D_post"]))
        per["eta"].append(np.add.outer(q["eta_pre"], q["eta_post"]) / 2)
    hl = Spec("hl", spec.topology, init_range=spec.init_range, clip=spec.clip)
    return hl, np.concatenate([np.concatenate([m.ravel() for m in per[name]]) for name in per])


CONTROLLERS: dict[str, type[Controller]] = {"hl": HL, "nchl": NcHL, "wnchl": WNcHL, "static": Static}


def make_controller(spec: Spec, genome: object, dtype: object = np.float32) -> Controller:
    """The reference controller for ``spec.rule`` with the given genome."""
    return CONTROLLERS[spec.rule](spec, genome, dtype)

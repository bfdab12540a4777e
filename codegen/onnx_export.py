"""ONNX export of one control step, and an onnxruntime-backed controller.

The graph takes ``obs`` and the state tensors and returns ``action`` and the new
state, so a runtime keeps the state between calls exactly as the C caller owns
its struct:

* ``hl``, ``nchl``: inputs ``w0 .. w{L-1}`` (``(pre, post)`` float32 matrices),
  outputs ``w0_out ..``;
* ``wnchl``: inputs ``acts`` (``(m, N)`` ring buffer), ``pos`` and ``count``
  (int64 scalars), outputs ``acts_out``, ``pos_out``, ``count_out``.

Rule parameters are initializers. Every operation is the reference's, in its
order: element-wise updates, the shared rational tanh, and sums written as
chains of ``Add`` in index order (``MatMul``/``ReduceSum`` would leave the
summation order to the runtime). onnxruntime therefore reproduces the Python
float32 reference value for value (the sign of a zero aside), at the cost of a
larger graph; tests hold it to 1e-5 per action over full-length rollouts.
Non-finite observations are rejected by :class:`OnnxController` before they
reach the graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nchl import __version__
from nchl.core.activation import TANH_CLAMP, TANH_P, TANH_Q
from nchl.core.controllers import Controller, check_genome, hl_layers, make_controller, nchl_layers, split_blocks
from nchl.core.errors import NchlError
from nchl.core.spec import Spec

OPSET = 17


class _Graph:
    """A tiny builder: every node gets a fresh output name; constants become initializers."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value, hint: str = "c", dtype=np.float32) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs) -> str:
        out = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def add(self, a: str, b: str) -> str:
        return self.op("Add", a, b)

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", a, b)

    def col(self, v: str) -> str:
        return self.op("Unsqueeze", v, self.const([1], "ax1", np.int64))

    def row(self, v: str) -> str:
        return self.op("Unsqueeze", v, self.const([0], "ax0", np.int64))

    def seqsum(self, v: str, length: int) -> str:
        """Sum over axis 0 in index order from zero, as a chain of Adds: the order of the C loops
        (MatMul and ReduceSum would leave the order to the runtime)."""
        parts = [self.name("part") for _ in range(length)]
        self.nodes.append(helper.make_node("Split", [v, self.const([1] * length, "split", np.int64)], parts, axis=0))
        acc = self.const(0.0, "zero")
        for part in parts:
            acc = self.add(acc, part)
        return self.op("Squeeze", acc, self.const([0], "ax0", np.int64))

    def tanh(self, z: str, out: str | None = None) -> str:
        """The shared float32 rational tanh, operation for operation."""
        lo, hi = self.const(-TANH_CLAMP, "tanh_lo"), self.const(TANH_CLAMP, "tanh_hi")
        x = self.op("Clip", z, lo, hi)
        s = self.mul(x, x)
        p = self.const(TANH_P[-1], "tanh_p")
        for c in TANH_P[-2::-1]:
            p = self.add(self.mul(p, s), self.const(c, "tanh_p"))
        q = self.const(TANH_Q[-1], "tanh_q")
        for c in TANH_Q[-2::-1]:
            q = self.add(self.mul(q, s), self.const(c, "tanh_q"))
        y = self.op("Div", self.mul(x, p), q)
        return self.op("Clip", y, self.const(-1.0, "one_lo"), self.const(1.0, "one_hi"), out=out)


def _tensor(name: str, shape: list[int], dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def export(spec: Spec, genome: np.ndarray, sha256: str | None = None) -> onnx.ModelProto:
    """One control step of ``spec`` with ``genome`` as an ONNX model (checked by onnx.checker)."""
    if spec.freeze_after is not None:
        raise NchlError("a frozen deployment (freeze_after) has no ONNX export yet: export the plastic controller")
    values = check_genome(spec, genome, np.dtype(np.float32))
    t = spec.topology
    g = _Graph()
    x = "obs"
    inputs, outputs = [_tensor("obs", [t.n_in])], []
    blocks = split_blocks(values, spec)
    if spec.rule == "wnchl":
        m, n_all = spec.window, t.neurons
        inputs += [_tensor("acts", [m, n_all]), _tensor("pos", [], TensorProto.INT64),
                   _tensor("count", [], TensorProto.INT64)]
        kf = g.op("Cast", "count", to=TensorProto.FLOAT)
        half = g.const(0.5, "half")
        off = t.offsets
        acts = [x]
        for l, q in enumerate(nchl_layers(t, blocks)):
            c = {k: g.const(v, k) for k, v in q.items()}
            xp = g.op("Slice", "acts", g.const([off[l]], "s", np.int64), g.const([off[l + 1]], "e", np.int64),
                      g.const([1], "a", np.int64))
            yp = g.op("Slice", "acts", g.const([off[l + 1]], "s", np.int64), g.const([off[l + 2]], "e", np.int64),
                      g.const([1], "a", np.int64))
            n = t.layers[l]
            ax, cx = g.mul(c["A_pre"], x), g.mul(c["C_pre"], x)
            s_eta, s_1 = g.seqsum(g.mul(c["eta_pre"], x), n), g.seqsum(x, n)
            d_eta = g.seqsum(g.mul(g.mul(c["eta_pre"], c["D_pre"]), x), n)
            d_1 = g.seqsum(g.mul(c["D_pre"], x), n)
            v = g.op("Concat", *(g.col(u) for u in (g.mul(c["eta_pre"], ax), ax, g.mul(c["eta_pre"], cx), cx)),
                     axis=1)  # (n, 4)
            xpt = g.op("Unsqueeze", g.op("Transpose", xp, perm=[1, 0]), g.const([2], "ax2", np.int64))  # (n, m, 1)
            coef = g.seqsum(g.mul(xpt, g.col(v)), n)  # (m, 4): alpha, beta, gamma, delta per past step
            alpha, beta, gamma, delta = (g.op("Gather", coef, g.const(k, "k", np.int64), axis=1) for k in range(4))
            left = g.row(g.mul(c["B_post"], g.add(s_eta, g.mul(c["eta_post"], s_1))))
            right = g.mul(g.row(c["C_post"]), g.add(g.col(gamma), g.mul(g.row(c["eta_post"]), g.col(delta))))
            per_k = g.mul(yp, g.add(left, right))
            z = g.add(g.add(g.seqsum(alpha, m), g.mul(c["eta_post"], g.seqsum(beta, m))), g.seqsum(per_k, m))
            z = g.add(z, g.mul(g.mul(kf, c["D_post"]), g.add(d_eta, g.mul(c["eta_post"], d_1))))
            x = g.tanh(g.mul(z, half), out="action" if l == t.n_layers - 1 else None)
            acts.append(x)
        current = g.op("Concat", *acts, axis=0)
        rows = g.op("Range", g.const(0, "zero", np.int64), g.const(m, "m", np.int64), g.const(1, "one", np.int64))
        mask = g.col(g.op("Equal", rows, "pos"))
        g.op("Where", mask, g.row(current), "acts", out="acts_out")
        one, mm = g.const(1, "one", np.int64), g.const(m, "m", np.int64)
        g.op("Mod", g.add("pos", one), mm, out="pos_out")
        g.op("Min", g.add("count", one), mm, out="count_out")
        outputs = [_tensor("action", [t.n_out]), _tensor("acts_out", [m, n_all]),
                   _tensor("pos_out", [], TensorProto.INT64), _tensor("count_out", [], TensorProto.INT64)]
    elif spec.rule == "static":  # the forward pass alone, the weights as constants: no state
        for l, w in enumerate(t.split_matrices(blocks["W"])):
            x = g.tanh(g.seqsum(g.mul(g.col(x), g.const(w, f"W{l}")), t.layers[l]),
                       out="action" if l == t.n_layers - 1 else None)
        outputs = [_tensor("action", [t.n_out])]
    else:
        layers_q = (hl_layers if spec.rule == "hl" else nchl_layers)(t, blocks)
        for l, ((n, p), q) in enumerate(zip(t.shapes, layers_q)):
            w = f"w{l}"
            inputs.append(_tensor(w, [n, p]))
            c = {name: g.const(v, name) for name, v in q.items()}
            xc = g.col(x)
            y = g.tanh(g.seqsum(g.mul(xc, w), n), out="action" if l == t.n_layers - 1 else None)
            yr = g.row(y)
            if spec.rule == "hl":
                d = g.add(g.mul(c["A"], xc), g.mul(c["B"], yr))
                d = g.add(d, g.mul(c["C"], g.mul(xc, yr)))
                d = g.mul(g.add(d, c["D"]), c["eta"])
            else:
                eta = g.mul(g.add(g.col(c["eta_pre"]), g.row(c["eta_post"])), g.const(0.5, "half"))
                d = g.add(g.col(g.mul(c["A_pre"], x)), g.row(g.mul(c["B_post"], y)))
                d = g.add(d, g.mul(g.col(g.mul(c["C_pre"], x)), g.row(g.mul(c["C_post"], y))))
                d = g.mul(g.add(d, g.mul(g.col(c["D_pre"]), g.row(c["D_post"]))), eta)
            new_w = g.add(w, d)
            if spec.clip is not None:
                g.op("Clip", new_w, g.const(-spec.clip, "clip_lo"), g.const(spec.clip, "clip_hi"), out=f"{w}_out")
            else:
                g.op("Identity", new_w, out=f"{w}_out")
            outputs.append(_tensor(f"{w}_out", [n, p]))
            x = y
        outputs.insert(0, _tensor("action", [t.n_out]))
    graph = helper.make_graph(g.nodes, f"nchl_{spec.rule}_step", inputs, outputs, g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="nchl", producer_version=__version__)
    model.doc_string = "One control step of a Hebbian controller: (obs, state) -> (action, new state)."
    meta = {"rule": spec.rule, "layers": ",".join(map(str, t.layers)), "window": str(spec.window or ""),
            "init_range": repr(spec.init_range), "clip": "" if spec.clip is None else repr(spec.clip),
            "genome_sha256": sha256 or ""}
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def save(model: onnx.ModelProto, path: str | Path) -> Path:
    path = Path(path)
    onnx.save(model, str(path))
    return path


class OnnxController(Controller):
    """An exported step run by onnxruntime behind the reference controller's interface."""

    def __init__(self, spec: Spec, genome: object, model: onnx.ModelProto | None = None) -> None:
        self.rule = spec.rule
        self._model = model
        super().__init__(spec, genome, np.float32)

    def _unpack(self, blocks: dict[str, np.ndarray]) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise NchlError("onnxruntime is needed to run ONNX models: pip install onnxruntime") from None
        model = self._model or export(self.spec, self.genome)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self.session.get_outputs()]
        self._reference = make_controller(self.spec, self.genome)  # for initial states only

    def reset(self, seed: int = 0) -> None:
        self._reference.reset(seed)
        self._state = self._feed(self._reference.state())

    def _feed(self, state: dict) -> dict:
        if self.rule == "wnchl":
            return {"acts": state["acts"].astype(np.float32), "pos": np.array(int(state["pos"]), np.int64),
                    "count": np.array(int(state["count"]), np.int64)}
        return {k: v.astype(np.float32) for k, v in state.items()}

    def step(self, obs: object) -> np.ndarray:
        x = self._observe(obs)
        results = dict(zip(self._outputs, self.session.run(self._outputs, {"obs": x, **self._state})))
        self._state = {k: results[f"{k}_out"] for k in self._state}
        return results["action"].copy()

    def state(self) -> dict[str, np.ndarray]:
        if self.rule == "wnchl":
            return {"acts": self._state["acts"].copy(), "pos": np.uint32(self._state["pos"]),
                    "count": np.uint32(self._state["count"])}
        return {k: v.copy() for k, v in self._state.items()}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self._state = self._feed(state)

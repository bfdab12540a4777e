"""Compile generated C with cffi and drive it from Python with the reference controller's interface.

Builds use ``ffi.set_source`` + ``ffi.compile`` (not the deprecated ``ffi.verify``)
with ``-std=c99 -O2 -ffp-contract=off`` and no fast-math, into a cache
directory keyed by the sha256 of the generated sources, the cdef and the flags:
a genome is compiled once per machine. The cache lives in ``$NCHL_CACHE`` or
``$XDG_CACHE_HOME/nchl`` (default ``~/.cache/nchl``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from nchl.core.controllers import Controller, check_genome
from nchl.core.errors import NchlError, NonFiniteObservation
from nchl.core.fixed import DEFAULT_OBS_RANGE, ONE, FixedController, ObservationOutOfRange
from nchl.core.prng import check_seed
from nchl.core.spec import Spec

from . import cdef, generate_checked

CFLAGS = ("-std=c99", "-O2", "-ffp-contract=off", "-fno-fast-math")


def cache_root() -> Path:
    if os.environ.get("NCHL_CACHE"):
        return Path(os.environ["NCHL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nchl"


def _load(module_name: str, folder: Path) -> Any:
    so = next(folder.glob(f"{module_name}.*.so"), None) or next(folder.glob(f"{module_name}*.pyd"), None)
    if so is None:
        return None
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, so)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    sys.modules[module_name] = module
    return module


def build(spec: Spec, genome: np.ndarray | None, prefix: str = "nchl_ctrl", numeric: str = "float",
          obs_range: float = DEFAULT_OBS_RANGE) -> Any:
    """The compiled cffi module (``.lib``, ``.ffi``) of the generated controller.

    With ``genome=None`` the build takes the genome at run time (``<prefix>_step(params, ...)``):
    one compilation per spec, for evaluating many genomes. ``numeric="fixed"``: the integer-only
    controller for observations within ``obs_range``."""
    values = None if genome is None else check_genome(spec, genome, np.dtype(np.float64))
    return build_checked(spec, values, prefix, numeric, obs_range)


def build_checked(spec: Spec, values: np.ndarray | None, prefix: str = "nchl_ctrl", numeric: str = "float",
                  obs_range: float = DEFAULT_OBS_RANGE) -> Any:
    """:func:`build` for a genome ``check_genome`` passed (a controller's own): one validation per call."""
    from cffi import FFI

    runtime = values is None
    values = None if runtime else np.asarray(values, dtype=np.float64)   # float32 genomes: the same values
    files = generate_checked(spec, np.zeros(spec.genome_length) if runtime else values, prefix, runtime, numeric,
                             obs_range)
    declarations = cdef(spec, prefix, runtime, numeric)
    h = hashlib.sha256()
    for part in (*sorted(files.items()), ("cdef", declarations), ("flags", " ".join(CFLAGS))):
        h.update(repr(part).encode())
    key = h.hexdigest()[:20]
    module_name = f"_nchl_c_{key}"
    folder = cache_root() / "cffi" / key
    module = _load(module_name, folder)
    if module is not None:
        return module
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=folder.parent))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text)
        ffi = FFI()
        ffi.cdef(declarations)
        ffi.set_source(module_name, f'#include "{prefix}.h"', sources=[str(tmp / f"{prefix}.c")],
                       include_dirs=[str(tmp)], extra_compile_args=list(CFLAGS), libraries=["m"])
        try:
            ffi.compile(tmpdir=str(tmp), verbose=False)
        except Exception as e:
            raise NchlError(f"compiling the generated C failed: {e}") from None
        try:
            os.replace(tmp, folder)
        except OSError:  # another process built the same key first
            pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    module = _load(module_name, folder)
    if module is None:
        raise NchlError(f"built {module_name} but cannot find it in {folder}")
    return module


_RUNTIME_MODULES: dict[tuple[Spec, str], Any] = {}


class _StateViews:
    """The state of a compiled controller: numpy views of its C struct, by the reference's names."""

    def _views(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        return {k: np.uint32(a[0]) if a.dtype == np.uint32 else a.copy() for k, a in self._views().items()}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        for name, view in self._views().items():
            view[...] = state[name]


class CController(_StateViews, Controller):
    """The generated C controller behind the reference controller's interface (float32 only).

    ``runtime_params=False`` compiles the genome into the code, exactly as deployed;
    ``True`` reuses one build per spec and passes the genome at run time (for evolution).
    Both perform the same float operations."""

    def __init__(self, spec: Spec, genome: object, prefix: str = "nchl_ctrl", runtime_params: bool = False) -> None:
        self.rule = spec.rule
        self.prefix = prefix
        self.runtime_params = runtime_params
        super().__init__(spec, genome, np.float32)

    def _unpack(self, blocks: dict[str, np.ndarray]) -> None:
        if self.runtime_params:
            key = (self.spec, self.prefix)
            if key not in _RUNTIME_MODULES:
                _RUNTIME_MODULES[key] = build_checked(self.spec, None, self.prefix)
            module = _RUNTIME_MODULES[key]
        else:
            module = build_checked(self.spec, self.genome, self.prefix)
        ffi, lib = module.ffi, module.lib
        self._init = getattr(lib, f"{self.prefix}_init")
        step = getattr(lib, f"{self.prefix}_step")
        if self.runtime_params:
            params = ffi.cast("float *", ffi.from_buffer(self.genome))
            self._step = lambda state, obs, act: step(params, state, obs, act)
        else:
            self._step = step
        self._state = ffi.new(f"{self.prefix}_state_t *")
        self._raw = np.frombuffer(ffi.buffer(self._state), dtype=np.uint8)  # the struct's bytes
        t = self.topology
        self._obs = np.zeros(t.n_in, dtype=np.float32)
        self._act = np.zeros(t.n_out, dtype=np.float32)
        self._obs_ptr = ffi.cast("float *", ffi.from_buffer(self._obs))
        self._act_ptr = ffi.cast("float *", ffi.from_buffer(self._act))

    def _views(self) -> dict[str, np.ndarray]:
        """Named numpy views into the C struct (no copies)."""
        t = self.topology
        if self.rule == "wnchl":
            m, n = self.spec.window, t.neurons
            floats = self._raw[:4 * m * n].view(np.float32).reshape(m, n)
            counters = self._raw[4 * m * n:].view(np.uint32)
            views = {"acts": floats, "pos": counters[0:1], "count": counters[1:2]}
        elif self.rule == "static":
            return {}  # no state: the weights are the genome
        else:
            floats = self._raw[:4 * t.synapses].view(np.float32)
            counters = self._raw[4 * t.synapses:].view(np.uint32)
            views = {f"w{l}": w for l, w in enumerate(t.split_matrices(floats))}
        if self.spec.freeze_after is not None:
            views["t"] = counters[-1:]
        return views

    def reset(self, seed: int = 0) -> None:
        self._init(self._state, check_seed(seed))

    def step(self, obs: object) -> np.ndarray:
        x = np.asarray(obs)
        if x.shape != (self.topology.n_in,):
            raise NchlError(f"observation must have shape ({self.topology.n_in},), got {x.shape}")
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, which C rejects
            self._obs[:] = x
        if self._step(self._state, self._obs_ptr, self._act_ptr) != 0:
            raise NonFiniteObservation("observation has a non-finite value (C step returned 1); "
                                       "the controller state is unchanged")
        return self._act.copy()


class FixedCController(_StateViews, FixedController):
    """The generated integer-only C behind the interface of :class:`nchl.core.fixed.FixedController`
    (weightless NcHL or NcHL); the float face converts observations with the generated helper
    ``<prefix>_obs_from_float``."""

    def __init__(self, spec: Spec, genome: object, obs_range: float = DEFAULT_OBS_RANGE,
                 prefix: str = "nchl_ctrl") -> None:
        self.prefix = prefix
        self._obs_range = obs_range
        self.rule = spec.rule  # one class for both rules: Controller checks it against the spec
        super().__init__(spec, genome, obs_range)

    def _unpack(self, blocks: dict[str, np.ndarray]) -> None:
        super()._unpack(blocks)
        module = build_checked(self.spec, self.genome, self.prefix, "fixed", self._obs_range)
        ffi, lib = module.ffi, module.lib
        self._init = getattr(lib, f"{self.prefix}_init")
        self._step = getattr(lib, f"{self.prefix}_step")
        self._convert = getattr(lib, f"{self.prefix}_obs_from_float")
        self._state = ffi.new(f"{self.prefix}_state_t *")
        self._raw = np.frombuffer(ffi.buffer(self._state), dtype=np.uint8)
        t = self.topology
        self._fobs = np.zeros(t.n_in, dtype=np.float32)
        self._obs = np.zeros(t.n_in, dtype=np.int16)
        self._act = np.zeros(t.n_out, dtype=np.int16)
        self._fobs_ptr = ffi.cast("float *", ffi.from_buffer(self._fobs))
        self._obs_ptr = ffi.cast("int16_t *", ffi.from_buffer(self._obs))
        self._act_ptr = ffi.cast("int16_t *", ffi.from_buffer(self._act))

    def _views(self) -> dict[str, np.ndarray]:
        t = self.topology
        if self.spec.rule == "nchl":
            views = {"t": self._raw[:4].view(np.uint32)}
            flat = self._raw[4:4 + 4 * t.synapses].view(np.int32)
            at = 0
            for l, (n, p) in enumerate(t.shapes):
                views[f"w{l}"] = flat[at:at + n * p].reshape(n, p)
                at += n * p
            return views
        counters, n = 2 + (self.spec.freeze_after is not None), t.neurons
        c = self._raw[:4 * counters].view(np.uint32)
        colsum = self._raw[4 * counters:4 * (counters + n)].view(np.int32)
        acts = self._raw[4 * (counters + n):4 * (counters + n) + 2 * self.spec.window * n].view(np.int16)
        views = {"pos": c[0:1], "count": c[1:2], "colsum": colsum, "acts": acts.reshape(self.spec.window, n)}
        if counters == 3:
            views["t"] = c[2:3]
        return views

    def reset(self, seed: int = 0) -> None:
        self._init(self._state, check_seed(seed))

    def step(self, obs: object) -> np.ndarray:
        x = self._observe(obs)
        self._fobs[:] = x
        if self._convert(self._fobs_ptr, self._obs_ptr) != 0:
            raise NonFiniteObservation("observation has a non-finite value; the controller state is unchanged")
        return (self._step_c() / ONE).astype(np.float32)  # the helper saturates: within range by construction

    def step_q(self, obs_q: object) -> np.ndarray:
        x = np.asarray(obs_q)
        if x.shape != (self.topology.n_in,) or x.dtype.kind not in "iu":
            raise NchlError(f"integer observation must have shape ({self.topology.n_in},), got {x.shape} {x.dtype}")
        if np.abs(x.astype(np.int64)).max(initial=0) > 32767:
            raise ObservationOutOfRange("integer observation beyond int16")
        self._obs[:] = x
        return self._step_c()

    def _step_c(self) -> np.ndarray:
        """The C step on the int16 observation in ``self._obs``."""
        if self._step(self._state, self._obs_ptr, self._act_ptr) != 0:
            raise ObservationOutOfRange(f"an integer observation is beyond +-{self.plan.obs_max} (Q12; C step "
                                        "returned 1); the controller state is unchanged")
        return self._act.copy()


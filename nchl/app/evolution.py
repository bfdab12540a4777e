"""``nchl evolve``: evolve the rule parameters of a controller on a task.

A run lives in one directory:

* ``config.json``: the validated settings, the optimizer actually used, package versions and CPU;
* ``log.jsonl``: one JSON line per generation;
* ``best.npz``: the champion (core genome format): the genome with the best mean over
  the run's validation episodes (or, with validation off, the best training evaluation);
* ``checkpoint.bin``: optimizer and RNG state after the last completed
  generation, rewritten atomically every generation.

Every candidate of a generation is evaluated on the same episode seeds (common
random numbers), drawn from ``(seed, generation)``, so the run is a function of
its settings alone: the number of workers, interruptions and resumes do not
change the log or the best genome.

A single training episode flatters lucky candidates, so the champion is chosen
on validation episodes instead: every ``validation_every`` generations (and at
the last one) the generation's ``validation_top`` candidates and the optimizer's
mean are re-run on ``validation_episodes`` fixed full-length episodes whose
seeds never occur in training (:mod:`nchl.app.seeds`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import pickle
import platform
import signal
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nchl_sim import get_task, rollout
from nchl_sim.perturb import Condition, Randomization, check_applicable, perturbed_layer

from ..core.controllers import make_controller
from ..core.errors import NchlError
from ..core.fileio import WriterLock, atomic_write
from ..core.fixed import DEFAULT_OBS_RANGE, make_fixed
from ..core.genome import Genome
from .optimizers import make_optimizer
from ..core.prng import check_seed
from .seeds import evaluation_seeds, held_out, training_seeds, validation_seeds
from ..core.spec import RULES, Spec
from ..core.topology import Topology
from .workers import WorkerPool

CHECKPOINT = "checkpoint.bin"
LOG = "log.jsonl"
_CHECKPOINT_MAGIC = b"NCHL-CHECKPOINT-1\n"
GENOME_INIT_RANGE = 1.0  # the initial ES mean is uniform in [-1, 1], as in the paper
BACKENDS = ("c", "python")
_FINAL_ONLY = "final_validation"  # checkpoint key: what a validation due only to the run's end changed
NO_VALIDATION = {"validation_mean": None, "validation_std": None, "validation_of": None}  # log fields, not validated


def read_log(run_dir: str | Path) -> list[dict]:
    """The rows of a run's ``log.jsonl``, one per completed generation; a missing, corrupt or empty
    log is a clear error, since every reader of a run needs at least one row. A last line without
    its newline is a row being written by the running generation, not yet a row."""
    path = Path(run_dir) / LOG
    try:
        complete = path.read_text().rpartition("\n")[0]
        rows = [json.loads(line) for line in complete.splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise NchlError(f"{path} is unreadable: {e}") from None
    if not rows:
        raise NchlError(f"{path} is unreadable: no completed generation in it yet")
    return rows


class ConfigError(NchlError):
    pass


class CheckpointError(NchlError):
    pass


def training_words(settings: dict) -> str:
    """What a run trains on, in a few words, from its settings (``[evolve]`` or ``config.json``'s):
    ``intact``, ``randomized``, ``rate cost 0.1``, ``from zoo:ant-robust``; reports keep runs that
    train differently apart by it."""
    parts = ["randomized"] if settings.get("randomize") else []
    if settings.get("action_rate_cost"):
        parts.append(f"rate cost {settings['action_rate_cost']:g}")
    if settings.get("start_from"):
        parts.append(f"from {settings['start_from']}")
    return ", ".join(parts) or "intact"


@dataclass(frozen=True)
class EvolveConfig:
    """Settings of a run; the same keys are accepted from the command line and from TOML."""

    task: str = "ant"
    rule: str = "nchl"
    window: int | None = None
    layers: tuple[int, ...] | None = None   # full layer sizes; default: the task's
    generations: int = 100
    popsize: int | None = None              # default: the optimizer's
    sigma: float = 0.1
    init_range: float = 0.0                 # initial weights uniform in [-r, r) (0 = zeros)
    clip: float | None = None
    episodes: int = 1                       # rollouts averaged per candidate
    seed: int = 0
    workers: int = 2
    optimizer: str = "auto"                 # auto | cma | sep-cma | openai-es
    early_stop: bool = True
    backend: str = "c"                      # c (generated C, bit-identical, faster) | python
    scheduler: str | None = None            # tcp://HOST:PORT of a Dask scheduler; None = local workers
    validation_every: int = 5               # validate every k generations (and at the last one)
    validation_top: int = 3                 # the generation's best k candidates, plus the optimizer mean
    validation_episodes: int = 10           # fixed held-out episodes per validated genome (0 = off)
    randomize: dict | None = None           # robust evolution: {condition: [low, high]} drawn per episode
    randomize_p: float = 1.0                # probability that each randomized condition is on in an episode
    action_rate_cost: float = 0.0           # smooth actuation: fitness = distance - cost * action travel
    start_from: str | None = None           # fine-tuning: a genome file or zoo:NAME as the initial ES mean

    @classmethod
    def from_mapping(cls, values: dict[str, Any], source: str = "config") -> "EvolveConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown keys {unknown}; allowed: {', '.join(sorted(known))}")
        v = dict(values)
        if v.get("layers") is not None:
            try:
                v["layers"] = Topology.of(v["layers"]).layers
            except (NchlError, TypeError) as e:
                raise ConfigError(f"{source}: layers: {e}") from None
        cfg = cls(**v)
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "config") -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ConfigError(f"{source}: {what}")

        def is_int(x: object) -> bool:
            return isinstance(x, int) and not isinstance(x, bool)

        def is_num(x: object) -> bool:
            return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

        need(isinstance(self.task, str), f"task must be a name, got {self.task!r}")
        need(self.rule in RULES, f"rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        need(is_int(self.generations) and self.generations >= 1, f"generations must be an integer >= 1, got {self.generations!r}")
        need(self.popsize is None or (is_int(self.popsize) and self.popsize >= 2), f"popsize must be an integer >= 2, got {self.popsize!r}")
        need(is_num(self.sigma) and self.sigma > 0, f"sigma must be a number > 0, got {self.sigma!r}")
        need(is_int(self.episodes) and self.episodes >= 1, f"episodes must be an integer >= 1, got {self.episodes!r}")
        need(is_int(self.validation_every) and self.validation_every >= 1,
             f"validation_every must be an integer >= 1, got {self.validation_every!r}")
        need(is_int(self.validation_top) and self.validation_top >= 0,
             f"validation_top must be an integer >= 0, got {self.validation_top!r}")
        need(is_int(self.validation_episodes) and self.validation_episodes >= 0,
             f"validation_episodes must be an integer >= 0 (0 = no validation), got {self.validation_episodes!r}")
        need(is_int(self.seed) and 0 <= self.seed < 2**32, f"seed must be an integer in [0, 2**32), got {self.seed!r}")
        need(is_int(self.workers) and self.workers >= 1, f"workers must be an integer >= 1, got {self.workers!r}")
        need(isinstance(self.early_stop, bool), f"early_stop must be true or false, got {self.early_stop!r}")
        need(isinstance(self.optimizer, str), f"optimizer must be a name, got {self.optimizer!r}")
        need(self.backend in BACKENDS, f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        need(self.scheduler is None or (isinstance(self.scheduler, str) and "://" in self.scheduler),
             f"scheduler must be an address like tcp://HOST:PORT, got {self.scheduler!r}")
        need(self.start_from is None or (isinstance(self.start_from, str) and self.start_from != ""),
             f"start_from must be a genome file or zoo:NAME, got {self.start_from!r}")
        need(is_num(self.action_rate_cost) and self.action_rate_cost >= 0,
             f"action_rate_cost must be a number >= 0 (metres per unit of action travel), got {self.action_rate_cost!r}")
        if self.randomize is not None or self.randomize_p != 1.0:
            try:
                randomization = Randomization.of(self.randomize, self.randomize_p)
                check_applicable([n for n, _, _ in randomization.ranges], get_task(self.task).parts,
                                 repr(self.task))
            except NchlError as e:
                raise ConfigError(f"{source}: randomize: {e}") from None

    def episodes_settings(self) -> Episodes:
        """How training episodes run (validation: the same at full length)."""
        randomize = None if self.randomize is None else Randomization.of(self.randomize, self.randomize_p)
        return Episodes(self.task, self.early_stop, self.backend, randomize, float(self.action_rate_cost))

    def task_obj(self):
        return get_task(self.task)

    def spec(self) -> Spec:
        task = self.task_obj()
        topology = task.topology() if self.layers is None else Topology.of(self.layers)
        n_in, n_out = task.sizes
        if (topology.n_in, topology.n_out) != (n_in, n_out):
            raise ConfigError(f"layers [{topology}] do not fit task {self.task!r}: it has {n_in} "
                              f"observations and {n_out} actions")
        window = self.window if self.rule == "wnchl" else None
        if self.rule != "wnchl" and self.window is not None:
            raise ConfigError(f"window only applies to rule 'wnchl', not {self.rule!r}")
        return Spec(self.rule, topology, window=window, init_range=self.init_range, clip=self.clip)

    def initial_mean(self, spec: Spec) -> tuple[np.ndarray, str]:
        """The ES's first mean and how it was chosen: uniform in [-1, 1] from the seed (the paper's), or
        the genome ``start_from`` names, which must fit ``spec``'s layout (NcHL and WNcHL share one, so
        a WNcHL run may start from an NcHL champion). Starting from a champion fine-tunes it, e.g. under
        the perturbations of ``randomize``; read only when a run starts, never on resume."""
        if self.start_from is None:
            rng = np.random.default_rng(self.seed)
            x0 = rng.uniform(-GENOME_INIT_RANGE, GENOME_INIT_RANGE, spec.genome_length)
            return x0, f"uniform(-{GENOME_INIT_RANGE}, {GENOME_INIT_RANGE})"
        genome = Genome.load(self.start_from)
        try:
            start = genome.spec.redeployed(spec.rule, spec.window)
        except NchlError as e:
            raise ConfigError(f"start_from {self.start_from}: {e}; this run is {spec.rule}") from None
        if start.topology != spec.topology:
            raise ConfigError(f"start_from {self.start_from}: layers [{start.topology}] differ from this "
                              f"run's [{spec.topology}]")
        return np.array(genome.values), f"start_from {self.start_from} (genome sha256 {genome.sha256()})"


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


# -- the worker side ---------------------------------------------------------
_LOCAL = threading.local()  # one environment cache per thread (a Dask worker may run several)


def fixed_obs_range(task: str | None) -> float:
    """The observation range a fixed-point controller is planned for: the task's bound, else int16 Q12's."""
    bound = get_task(task).obs_bound if task is not None else math.inf
    return bound if math.isfinite(bound) else DEFAULT_OBS_RANGE


def evaluation_controller(spec: Spec, genome: np.ndarray, backend: str, numeric: str = "float",
                          task: str | None = None):
    """The controller used to score a genome: the Python reference, or the generated C built
    once per spec with the genome passed at run time. Both compute the same bits. ``numeric="fixed"``:
    the integer controller (:mod:`nchl.core.fixed`; C with its constants compiled in)."""
    if numeric == "fixed":
        if backend == "python":
            return make_fixed(spec, genome, fixed_obs_range(task))
        from nchl_codegen.build import FixedCController

        return FixedCController(spec, genome, fixed_obs_range(task))
    if backend == "python":
        return make_controller(spec, genome)
    from nchl_codegen.build import CController

    return CController(spec, genome, runtime_params=True)


@dataclass(frozen=True)
class Episodes:
    """How a worker runs a genome's episodes: the task, the early stop, the controller backend and,
    for robust evolution, the domain randomization and the cost of fast-changing actions."""

    task: str
    early_stop: bool = False
    backend: str = "c"
    randomize: Randomization | None = None
    action_rate_cost: float = 0.0
    numeric: str = "float"


def action_travel(actions: np.ndarray) -> float:
    """How far the commands moved over an episode: sum over steps of the mean |a_t - a_t-1| over
    motors (from rest, a = 0). A bang-bang gait that switches every other step collects about one
    unit per step; a servo-friendly one a small fraction of that."""
    a = np.asarray(actions, dtype=np.float64)
    return float(np.abs(np.diff(a, axis=0, prepend=0.0)).mean(axis=1).sum()) if len(a) else 0.0


def worker_env(task: str, early_stop: bool = False, conditions: tuple[Condition, ...] = (),
               perturbable: bool = False):
    """A worker's environment for these settings, made once and reused for every later episode."""
    envs = _LOCAL.__dict__.setdefault("envs", {})
    key = (task, early_stop, conditions, perturbable)
    if key not in envs:
        envs[key] = get_task(task).make_env(early_stop=early_stop, conditions=conditions, perturbable=perturbable)
    return envs[key]


def evaluate_candidate(payload: tuple, attempt: int) -> dict:
    """Mean fitness of one genome over the given episode seeds (runs in a worker), with
    each episode's outcome. The environment is created once per worker and task, then reused.
    The fitness is the distance, less ``action_rate_cost`` times :func:`action_travel`."""
    how, spec, genome, seeds = payload
    env = worker_env(how.task, how.early_stop, perturbable=how.randomize is not None)
    controller = evaluation_controller(spec, genome, how.backend, how.numeric, how.task)
    episodes, fitness, steps = [], [], 0
    for s in seeds:
        if how.randomize is not None:  # domain randomization: this episode's conditions, drawn from its seed
            perturbed_layer(env).set_conditions(how.randomize.draw(s))
        r = rollout(env, controller, s, record=how.action_rate_cost > 0)
        f = r.fitness
        if how.action_rate_cost > 0:
            travel = action_travel(r.actions)
            f -= how.action_rate_cost * travel
            episodes.append({"seed": s, **r.as_dict(), "action_travel": travel, "fitness": f, "distance": r.fitness})
        else:
            episodes.append({"seed": s, **r.as_dict()})
        fitness.append(f)
        steps += r.steps
    return {"fitness": float(np.mean(fitness)), "steps": steps, "episodes": episodes}


# -- the run -------------------------------------------------------------------
# CPU features by which OpenBLAS, numpy and glibc's libm pick their kernels: results that differ
# between machines in the last bit (and, through a chaotic gait, in the distance) trace to them
_FP_CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f")


def _cpu() -> str:
    """The CPU's model and its floating-point relevant features, from /proc/cpuinfo where there is one."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine() or "unknown"
    first = {}  # the first processor's block: "key<tabs>: value" lines up to a blank one
    for line in info.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        first[key.strip()] = value.strip()
    model = first.get("model name") or platform.machine() or "unknown"
    flags = set(first.get("flags", "").split())
    return f"{model} ({' '.join(f for f in _FP_CPU_FLAGS if f in flags) or 'no listed SIMD'})"


def provenance() -> dict[str, str]:
    """Python and package versions and the CPU a result was computed with. A library that picks its
    kernels by CPU can change the last bits of a result between machines, and a forking gait turns
    them into another walk: OpenBLAS's AVX-512 kernel once moved VSR champions by up to 60 %
    (docs/results.md, "The same bits on every machine")."""
    out = {"python": platform.python_version()}
    for pkg in ("nchl", "numpy", "cma", "gymnasium", "mujoco"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    out["cpu"] = _cpu()
    return out


_GLOBAL_RNG = np.random.randn.__self__  # numpy's global generator, which pycma samples from
_GLOBAL_RNG_ID = "numpy.random global generator"


class _CheckpointPickler(pickle.Pickler):
    """Pickles numpy's global generator as a reference, not as a copy.

    pycma keeps ``np.random.randn``, a method bound to the global generator. A plain pickle
    would restore it bound to a private copy while the rest of pycma still draws from the
    global one (its TPA step-size rule, used from 300 dimensions on, calls
    ``np.random.randint`` every iteration): the uninterrupted run interleaves one stream, the
    resumed run would split it in two and diverge from its second generation on. The run
    saves and restores the global generator's state itself (``np_random``)."""

    def persistent_id(self, obj: Any) -> str | None:
        return _GLOBAL_RNG_ID if obj is _GLOBAL_RNG else None


class _CheckpointUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # checkpoints written before nchl/ split into core and app name the flat module
        if module == "nchl.optimizers":
            module = "nchl.app.optimizers"
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        if pid != _GLOBAL_RNG_ID:
            raise pickle.UnpicklingError(f"unknown reference {pid!r}")
        return _GLOBAL_RNG


def write_checkpoint(path: Path, state: dict) -> None:
    buffer = io.BytesIO()
    _CheckpointPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
    payload = buffer.getvalue()
    atomic_write(path, _CHECKPOINT_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def read_checkpoint(path: Path) -> dict:
    """Load a checkpoint written by :func:`write_checkpoint`; a damaged one is an error, never a restart."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read checkpoint: {e}") from None
    head = len(_CHECKPOINT_MAGIC)
    if not data.startswith(_CHECKPOINT_MAGIC) or len(data) < head + 65:
        raise CheckpointError(f"{path}: not an nchl checkpoint (bad header)")
    digest, payload = data[head:head + 64].decode(errors="replace"), data[head + 65:]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"{path}: checkpoint is corrupt or truncated (checksum mismatch); "
                              "refusing to restart the run silently")
    try:
        return _CheckpointUnpickler(io.BytesIO(payload)).load()
    except Exception as e:  # a checksum-valid payload from an incompatible version
        raise CheckpointError(f"{path}: checkpoint cannot be loaded by this nchl: {e}") from None


class _Interrupt:
    """What Ctrl-C did: remembered in ``requested`` (read at the top of every generation), raised at
    once except while ``held``, so that a generation's log line, champion and checkpoint land together.
    Plain flags: signal handlers run in the main thread, the only one that reads them."""

    def __init__(self) -> None:
        self.requested, self.held = False, False

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        self.held = True
        try:
            yield
        finally:
            self.held = False

    def on_sigint(self, signum, frame) -> None:
        self.requested = True
        if not self.held:
            raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupts() -> Iterator[_Interrupt]:
    """Ctrl-C raises KeyboardInterrupt as usual (deferred while a generation is saved: ``hold``) and is
    also remembered, so the run stops at the next generation even when the exception lands in code
    that swallows it."""
    interrupt = _Interrupt()
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield interrupt  # not ours to handle: another thread, or SIGINT ignored on purpose (nohup, background jobs)
        return
    previous = signal.signal(signal.SIGINT, interrupt.on_sigint)
    try:
        yield interrupt
    finally:
        signal.signal(signal.SIGINT, previous)


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Run:
    """One evolution run in ``out``: start fresh or resume, then :meth:`run`.

    The run is the directory's one writer (:class:`~nchl.core.fileio.WriterLock`) from construction
    to the end of :meth:`run`, unless the caller passes the ``lock`` it holds on ``out`` (a
    campaign cell keeps its directory until the champion is evaluated)."""

    def __init__(self, out: str | os.PathLike, config: EvolveConfig | None = None, resume: bool = False,
                 generations: int | None = None, log: Callable[[str], None] = print,
                 evaluator: str = "nchl.app.evolution:evaluate_candidate", where: dict | None = None,
                 lock: WriterLock | None = None, command: list[str] | None = None) -> None:
        """``where`` may change ``workers``/``scheduler`` of a resumed run: they do not change results.
        ``command`` is the command line a new run records as provenance (default: this process's)."""
        self.out = Path(out)
        self.command = list(sys.argv if command is None else command)
        self.log = log
        self.evaluator = evaluator
        if resume and not (self.out / "config.json").is_file():
            raise ConfigError(f"{self.out}: no run to resume (config.json missing)")
        if not resume:
            if config is None:
                raise ConfigError("a new run needs a config")
            self._start = config.initial_mean(config.spec())  # bad settings fail before the directory exists
        self._own_lock = None if lock else WriterLock(self.out, "run")
        try:
            self._open(config, resume, generations, where)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        if self._own_lock is not None:
            self._own_lock.release()

    def _open(self, config: EvolveConfig | None, resume: bool, generations: int | None, where: dict | None) -> None:
        log = self.log
        if resume:
            cfg_path = self.out / "config.json"
            try:
                saved = json.loads(cfg_path.read_text())
                config = EvolveConfig.from_mapping(saved["settings"], str(cfg_path))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ConfigError(f"{cfg_path}: unreadable run config: {e}") from None
            changes = {**(where or {}), **({} if generations is None else {"generations": generations})}
            if changes:
                config = EvolveConfig.from_mapping({**saved["settings"], **changes}, "resume options")
            self.config = config
            self.spec = config.spec()
            recorded, now = saved.get("model_sha256"), config.task_obj().model_sha256
            if recorded is not None and recorded != now:
                raise ConfigError(f"{cfg_path}: the run was started on a model with SHA-256 {recorded[:12]}..., "
                                  f"but task {config.task!r} now has {str(now)[:12]}...: the model changed")
            self.state = read_checkpoint(self.out / CHECKPOINT)
            self.state.setdefault("best_validation", -math.inf)  # checkpoints from before validation
            self._truncate_log(self.state["generation"])
            if _FINAL_ONLY in self.state and config.generations > self.state["generation"]:
                self._undo_final_validation()
            log(f"resuming {self.out} at generation {self.state['generation'] + 1}/{config.generations}")
        else:
            if (self.out / "config.json").exists():
                raise ConfigError(f"{self.out} already holds a run; continue it with --resume {self.out} "
                                  "or choose another --out")
            self.config = config
            self.spec = config.spec()
            self.out.mkdir(parents=True, exist_ok=True)
            x0, genome_init = self._start
            optimizer = make_optimizer(config.optimizer, x0, config.sigma, config.popsize, config.seed)
            self.state = {"generation": 0, "optimizer": optimizer, "np_random": np.random.get_state(),
                          "best_genome": None, "best_fitness": -math.inf, "best_validation": -math.inf,
                          "evaluations": 0,
                          "env_steps": 0, "wall_time": 0.0}
            record = {"settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
                      "optimizer": optimizer.name, "popsize": optimizer.popsize,
                      "genome_length": self.spec.genome_length, "layers": list(self.spec.topology.layers),
                      "genome_init": genome_init,
                      "validation_seeds": self.validation_seeds,
                      "versions": provenance(), "command": self.command,
                      **({"model_sha256": sha} if (sha := config.task_obj().model_sha256) else {})}
            # config.json last: it marks a run that can be resumed (a crash before it leaves a new run)
            write_checkpoint(self.out / CHECKPOINT, self.state)
            atomic_write(self.out / LOG, b"")
            atomic_write(self.out / "config.json", (json.dumps(record, indent=2) + "\n").encode())
            log(f"new run {self.out}: task {config.task}, rule {self.spec.rule}, layers [{self.spec.topology}], "
                f"{self.spec.genome_length} parameters, {optimizer.name} with popsize {optimizer.popsize}")

    @property
    def validation_seeds(self) -> list[int]:
        return validation_seeds(self.config.seed, self.config.validation_episodes)

    def _validates_periodically(self, generation: int) -> bool:
        cfg = self.config
        return cfg.validation_episodes > 0 and generation % cfg.validation_every == 0

    def _validates(self, generation: int) -> bool:
        """Whether generation ``generation`` (1-based) re-evaluates its best on the validation episodes:
        every ``validation_every`` generations, and at the last one so that a run ends on a validated champion."""
        return self._validates_periodically(generation) or (self.config.validation_episodes > 0
                                                            and generation == self.config.generations)

    def _undo_final_validation(self) -> None:
        """A run extended past its last generation continues as if it had been asked for the longer
        budget from the start: the validation that only ran because the run ended there is taken
        back (its log fields, the champion it chose), so extended and uninterrupted runs are equal."""
        undo = self.state.pop(_FINAL_ONLY)
        self.state["best_genome"], self.state["best_validation"] = undo["best_genome"], undo["best_validation"]
        lines = (self.out / LOG).read_text().splitlines(keepends=True)
        atomic_write(self.out / LOG, "".join(lines[:-1] + [json.dumps(undo["row"]) + "\n"]).encode())
        if undo["best_genome"] is None:
            (self.out / "best.npz").unlink(missing_ok=True)
        else:
            self._save_champion(undo["best_genome"], undo["best_validation"])

    def _save_champion(self, genome: np.ndarray, fitness: float) -> None:
        cfg = self.config
        Genome(self.spec, genome, task=cfg.task, seed=cfg.seed, fitness=fitness,
               model_sha256=cfg.task_obj().model_sha256).save(self.out / "best.npz")

    def _validate_best(self, pool, candidates: np.ndarray, fitness: np.ndarray,
                       center: np.ndarray) -> tuple[dict, tuple[np.ndarray, float] | None]:
        """Run the generation's best candidates and the optimizer mean on the validation episodes.

        Returns the log fields of the best of them and, if it beats the best validation so far,
        ``(genome, validation mean)``. One job per (genome, episode) so that a few genomes still
        spread over all workers; validation episodes run to full length, like ``nchl evaluate``;
        a genome with a failed episode is not eligible."""
        cfg, seeds, st = self.config, self.validation_seeds, self.state
        top = [int(k) for k in np.argsort(-fitness, kind="stable")[:cfg.validation_top] if np.isfinite(fitness[k])]
        genomes = [candidates[k] for k in top] + [np.asarray(center, dtype=float)]
        names = [f"rank {r + 1}" for r in range(len(top))] + ["mean"]
        how = replace(cfg.episodes_settings(), early_stop=False)  # validation: full length
        outcomes = pool.map([(how, self.spec, x, [s]) for x in genomes for s in seeds])
        scores = {}
        for k in range(len(genomes)):
            mine = outcomes[k * len(seeds):(k + 1) * len(seeds)]
            if all(o.ok for o in mine):
                scores[k] = np.array([o.value["fitness"] for o in mine])
        if not scores:
            return dict(NO_VALIDATION), None
        j = max(scores, key=lambda k: (scores[k].mean(), -k))
        fields = {"validation_mean": float(scores[j].mean()), "validation_std": float(scores[j].std()),
                  "validation_of": names[j]}
        if fields["validation_mean"] <= st["best_validation"]:
            return fields, None
        st["best_validation"] = fields["validation_mean"]
        return fields, (genomes[j], fields["validation_mean"])

    def _truncate_log(self, generations: int) -> None:
        """Drop log lines written after the checkpoint (a crash between the two writes)."""
        path = self.out / LOG
        lines = path.read_text().splitlines(keepends=True) if path.exists() else []
        if len(lines) < generations:
            raise CheckpointError(f"{path} has {len(lines)} generations but the checkpoint has {generations}")
        if len(lines) > generations:
            atomic_write(path, "".join(lines[:generations]).encode())

    def run(self) -> dict:
        try:
            return self._generations()
        finally:
            self._release()

    def _generations(self) -> dict:
        cfg, st = self.config, self.state
        opt = st["optimizer"]
        np.random.set_state(st["np_random"])
        started, gen_times = time.perf_counter(), []
        if cfg.scheduler:
            from .cluster import DaskPool

            pool_cm: Any = DaskPool(self.evaluator, cfg.scheduler, log=self.log)
        else:
            pool_cm = WorkerPool(self.evaluator, cfg.workers, log=self.log)
        with pool_cm as pool, _interrupts() as interrupted:
            while st["generation"] < cfg.generations:
                if interrupted.requested:  # a library swallowed the KeyboardInterrupt (pycma has bare excepts)
                    raise KeyboardInterrupt
                g = st["generation"]
                t0 = time.perf_counter()
                candidates = opt.ask()
                seeds = training_seeds(cfg.seed, g, cfg.episodes)
                how = cfg.episodes_settings()
                outcomes = pool.map([(how, self.spec, x, seeds) for x in candidates])
                ok = np.array([o.ok for o in outcomes])
                if not ok.any():
                    raise NchlError(f"all {len(outcomes)} evaluations of generation {g + 1} failed; "
                                    f"last error:\n{outcomes[-1].errors[-1]}")
                fitness = np.array([o.value["fitness"] if o.ok else np.nan for o in outcomes])
                scored = np.where(ok, fitness, np.nanmin(fitness) - 1.0)  # failures rank below everything
                opt.tell(candidates, scored)
                steps = sum(o.value["steps"] for o in outcomes if o.ok)
                training_time = time.perf_counter() - t0
                i = int(np.nanargmax(fitness))
                champion = None
                if fitness[i] > st["best_fitness"]:
                    st["best_fitness"] = float(fitness[i])
                    champion = None if cfg.validation_episodes else (candidates[i], st["best_fitness"])
                validation = dict(NO_VALIDATION)
                before_final = {"best_genome": st["best_genome"], "best_validation": st["best_validation"]}
                if self._validates(g + 1):
                    validation, better = self._validate_best(pool, candidates, np.where(ok, fitness, -np.inf),
                                                             opt.center)
                    champion = better or champion
                elapsed = time.perf_counter() - t0
                st["generation"] = g + 1
                st["evaluations"] += len(candidates) * cfg.episodes
                st["env_steps"] += steps
                st["wall_time"] += elapsed
                st["np_random"] = np.random.get_state()
                if champion is not None:
                    st["best_genome"] = champion[0].copy()
                good = fitness[ok]
                entry = {"generation": g + 1, "best": float(good.max()), "mean": float(good.mean()),
                         "std": float(good.std()), "best_ever": st["best_fitness"], **validation,
                         "best_validation": st["best_validation"] if cfg.validation_episodes else None,
                         "sigma": opt.sigma, "evaluations": st["evaluations"], "env_steps": st["env_steps"],
                         "failures": int((~ok).sum()), "env_steps_per_s": steps / training_time,
                         "wall_time": st["wall_time"]}
                st.pop(_FINAL_ONLY, None)
                if self._validates(g + 1) and not self._validates_periodically(g + 1):
                    st[_FINAL_ONLY] = {**before_final, "row": {**entry, **NO_VALIDATION,
                                                                "best_validation": before_final["best_validation"]}}
                with interrupted.hold():  # a Ctrl-C here stops the run after this generation, not before
                    with open(self.out / LOG, "a") as f:
                        f.write(json.dumps(entry) + "\n")
                    if champion is not None:
                        self._save_champion(st["best_genome"], champion[1])
                    write_checkpoint(self.out / CHECKPOINT, st)
                gen_times.append(elapsed)
                eta = np.median(gen_times) * (cfg.generations - g - 1)
                val = (f"  validation {entry['validation_mean']:8.3f} +- {entry['validation_std']:.3f} "
                       f"({entry['validation_of']})" if entry["validation_mean"] is not None else "")
                self.log(f"gen {g + 1:>4}/{cfg.generations}  best {entry['best']:9.3f}  mean {entry['mean']:9.3f}  "
                         f"best-ever {entry['best_ever']:9.3f}  sigma {entry['sigma']:.4f}  "
                         f"{entry['env_steps_per_s']:8.0f} steps/s  ETA {_fmt_time(eta)}{val}")
        chosen = (f"best validation mean {st['best_validation']:.3f} over {cfg.validation_episodes} episodes"
                  if cfg.validation_episodes else f"best training fitness {st['best_fitness']:.3f}")
        self.log(f"done after {st['generation']} generations ({_fmt_time(time.perf_counter() - started)}): "
                 f"champion with {chosen} in {self.out / 'best.npz'}")
        return {"best_fitness": st["best_fitness"], "best_validation": st["best_validation"],
                "generations": st["generation"]}


def evaluate_genome(spec: Spec, genome: np.ndarray, task: str, episodes: int, seed: int = 0,
                    workers: int = 1, early_stop: bool = False, backend: str = "c",
                    log: Callable[[str], None] = print, numeric: str = "float") -> dict:
    """The paper's protocol: statistics of one genome over ``episodes`` full rollouts with seeds
    ``seed .. seed + episodes - 1`` (held out from training and validation by default)."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise NchlError(f"episodes must be an integer >= 1, got {episodes!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise NchlError(f"workers must be an integer >= 1, got {workers!r}")
    seeds = evaluation_seeds(check_seed(seed), episodes)
    check_seed(seeds[-1])
    with WorkerPool("nchl.app.evolution:evaluate_candidate", min(workers, episodes), log=log) as pool:
        how = Episodes(task, early_stop, backend, numeric=numeric)
        outcomes = pool.map([(how, spec, genome, [s]) for s in seeds])
    failed = [s for s, o in zip(seeds, outcomes) if not o.ok]
    if failed:
        raise NchlError(f"{len(failed)} of {episodes} episodes failed (seeds {failed[:5]}); first error:\n"
                        f"{next(o for o in outcomes if not o.ok).errors[-1]}")
    per_episode = [o.value["episodes"][0] for o in outcomes]
    f = np.array([e["fitness"] for e in per_episode])
    return {"mean": float(f.mean()), "std": float(f.std()), "median": float(np.median(f)),
            "min": float(f.min()), "max": float(f.max()), "forward_fraction": float((f > 0).mean()),
            "episodes": episodes, "seeds": [seeds[0], seeds[-1]], "held_out": held_out(seeds),
            "early_stop": early_stop, "per_episode": per_episode}

"""Genome files: one ``.npz`` holding the genome and its JSON metadata.

Arrays in the archive:

* ``genome``: 1-D float64, the evolved values (cast to the controller dtype on use);
* ``metadata``: a 0-d string, JSON with ``format`` (``"nchl-genome"``),
  ``format_version``, ``rule``, ``layers``, ``window``, ``init_range``, ``clip``,
  ``task``, ``seed`` and ``fitness``; optionally ``model_sha256``, the content hash of the robot
  model the genome was evolved on (robot tasks), so that using it on a changed model is refused.

Loading checks every field and the genome length and reports the first problem
as a :class:`GenomeFileError` naming the file and the field, never a numpy or
zipfile traceback. Saving is atomic (temporary file + rename).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .controllers import Controller, check_genome, make_controller
from .fileio import atomic_write
from .errors import GenomeError, GenomeFileError, SpecError, TopologyError
from .spec import Spec
from .topology import Topology

FORMAT = "nchl-genome"
FORMAT_VERSION = 1
_KEYS = {"format", "format_version", "rule", "layers", "window", "init_range", "clip", "task", "seed", "fitness"}
_OPTIONAL = {"model_sha256"}


def genome_sha256(values: np.ndarray) -> str:
    """Digest of genome values (little-endian float64), independent of any archive bytes."""
    return hashlib.sha256(np.asarray(values, dtype="<f8").tobytes()).hexdigest()


@dataclass(frozen=True)
class Genome:
    """An evolved genome with the spec it belongs to and where it came from."""

    spec: Spec
    values: np.ndarray
    task: str | None = None
    seed: int | None = None
    fitness: float | None = None
    model_sha256: str | None = None

    def __post_init__(self) -> None:
        values = check_genome(self.spec, self.values, np.dtype(np.float64))
        values.setflags(write=False)
        object.__setattr__(self, "values", values)

    def controller(self, dtype: object = np.float32, spec: Spec | None = None) -> Controller:
        """The reference controller; ``spec`` may redeploy an NcHL genome as WNcHL and back."""
        return make_controller(spec or self.spec, self.values, dtype)

    def sha256(self) -> str:
        return genome_sha256(self.values)

    def metadata(self) -> dict:
        s = self.spec
        if s.freeze_after is not None:
            raise GenomeError("freeze_after is a deployment choice, not part of a genome file: save the plastic spec")
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "rule": s.rule,
            "layers": list(s.topology.layers), "window": s.window, "init_range": s.init_range,
            "clip": s.clip, "task": self.task, "seed": self.seed, "fitness": self.fitness,
            **({} if self.model_sha256 is None else {"model_sha256": self.model_sha256}),
        }

    def save(self, path: str | os.PathLike) -> Path:
        buf = io.BytesIO()
        np.savez(buf, genome=self.values, metadata=np.array(json.dumps(self.metadata(), sort_keys=True)))
        return atomic_write(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Genome":
        """Load a genome file, or a shipped champion given as ``zoo:NAME``."""
        from .zoo import resolve

        path = resolve(path)

        def fail(why: str) -> GenomeFileError:
            return GenomeFileError(f"{path}: {why}")

        if not path.is_file():
            raise fail("no such file")
        try:
            with np.load(path, allow_pickle=False) as z:
                names = set(z.files)
                if names != {"genome", "metadata"}:
                    raise fail(f"expected arrays 'genome' and 'metadata', found {sorted(names)}")
                raw_meta, values = z["metadata"], z["genome"]
        except GenomeFileError:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
            raise fail(f"not a readable .npz genome archive (truncated or corrupt?): {e}") from None
        if raw_meta.shape != () or raw_meta.dtype.kind != "U":
            raise fail("'metadata' must be a JSON string")
        try:
            meta = json.loads(str(raw_meta))
        except json.JSONDecodeError as e:
            raise fail(f"metadata is not valid JSON: {e}") from None
        if not isinstance(meta, dict):
            raise fail("metadata must be a JSON object")
        if meta.get("format") != FORMAT:
            raise fail(f"metadata 'format' must be {FORMAT!r}, got {meta.get('format')!r}")
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise fail(f"unsupported format_version {version!r}; this nchl reads version {FORMAT_VERSION}")
        missing, unknown = _KEYS - set(meta), set(meta) - _KEYS - _OPTIONAL
        if missing:
            raise fail(f"metadata lacks {sorted(missing)}")
        if unknown:
            raise fail(f"metadata has unknown keys {sorted(unknown)}")
        if values.dtype.kind not in "fiu":
            raise fail(f"'genome' must be numeric, got dtype {values.dtype}")
        try:
            spec = Spec(meta["rule"], Topology.of(_int_list(meta["layers"])), window=meta["window"],
                        init_range=meta["init_range"], clip=meta["clip"])
        except (SpecError, TopologyError, TypeError) as e:
            raise fail(f"metadata describes no valid controller: {e}") from None
        task, seed, fitness = meta["task"], meta["seed"], meta["fitness"]
        if task is not None and not isinstance(task, str):
            raise fail(f"'task' must be a string or null, got {task!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise fail(f"'seed' must be an integer or null, got {seed!r}")
        if fitness is not None and (isinstance(fitness, bool) or not isinstance(fitness, (int, float))
                                    or math.isnan(fitness)):
            raise fail(f"'fitness' must be a number or null, got {fitness!r}")
        model = meta.get("model_sha256")
        if model is not None and (not isinstance(model, str) or len(model) != 64):
            raise fail(f"'model_sha256' must be a SHA-256 hex digest or absent, got {model!r}")
        try:
            return cls(spec, values, task=task, seed=seed, fitness=None if fitness is None else float(fitness),
                       model_sha256=model)
        except GenomeError as e:
            raise fail(str(e)) from None


def _int_list(layers: object) -> list:
    if not isinstance(layers, list):
        raise TypeError(f"'layers' must be a list of integers, got {layers!r}")
    return layers

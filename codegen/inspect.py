"""Compile generated C as a standalone object and measure it: warnings, symbols, sizes, stack.

Used by ``nchl codegen --report`` and by the tests that hold the generated code
to its promises (strict C99, no heap/stdio symbols, RAM equal to the analytical
state size).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nchl.core.errors import NchlError
from nchl.core.memory import footprint
from nchl.core.spec import Spec

from . import generate, write

STRICT_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wdouble-promotion", "-Wconversion",
                "-Wshadow", "-O2", "-ffp-contract=off", "-fstack-usage")
FORBIDDEN_SYMBOLS = ("malloc", "calloc", "realloc", "free", "printf", "fprintf", "sprintf", "puts", "fopen")


@dataclass
class ObjectInfo:
    path: Path
    symbols: dict[str, tuple[str, int]]  # name -> (nm type, size in bytes)
    undefined: list[str]
    stack: dict[str, int]                # function -> bytes, from -fstack-usage


def compile_object(c_file: Path, cc: str = "gcc", flags: tuple[str, ...] = STRICT_FLAGS) -> ObjectInfo:
    """Compile one generated ``.c`` to an object next to it; any warning is an error."""
    if shutil.which(cc) is None:
        raise NchlError(f"C compiler {cc!r} not found")
    obj = c_file.with_suffix(".o")
    r = subprocess.run([cc, *flags, "-c", str(c_file), "-o", str(obj)], capture_output=True, text=True,
                       cwd=c_file.parent)
    if r.returncode != 0:
        raise NchlError(f"{cc} rejected {c_file.name}:\n{r.stderr}")
    nm = subprocess.run(["nm", "-S", str(obj)], capture_output=True, text=True, check=True).stdout
    symbols, undefined = {}, []
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.append(parts[1])
        elif len(parts) == 4:
            symbols[parts[3]] = (parts[2], int(parts[1], 16))
    stack = {}
    su = obj.with_suffix(".su")
    if su.exists():
        for line in su.read_text().splitlines():
            where, size, _kind = line.split("\t")
            stack[where.rsplit(":", 1)[-1]] = int(size)
    return ObjectInfo(obj, symbols, undefined, stack)


def size_report(spec: Spec, prefix: str = "nchl_ctrl", cc: str = "gcc") -> dict:
    """Compiled sizes of one variant next to the analytical model (values do not change sizes)."""
    from .build import build

    genome = np.zeros(spec.genome_length)
    fp = footprint(spec)
    with tempfile.TemporaryDirectory() as tmp:
        files = write(generate(spec, genome, prefix), tmp)
        info = compile_object(files[1], cc)
    module = build(spec, genome, prefix)
    return {
        "rule": spec.rule, "window": spec.window, "layers": list(spec.topology.layers),
        "params_bytes": info.symbols[f"{prefix}_params"][1], "params_bytes_analytical": fp.params_bytes,
        "state_bytes": module.ffi.sizeof(f"{prefix}_state_t"), "state_bytes_analytical": fp.state_bytes,
        "state_formula": fp.state_formula, "step_stack_bytes": info.stack.get(f"{prefix}_step"),
        "work_bytes_analytical": fp.work_bytes,
        "forbidden_symbols": sorted(set(info.undefined) & set(FORBIDDEN_SYMBOLS)),
    }

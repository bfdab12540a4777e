"""Microcontroller builds of the generated controller (Cortex-M, and RV32IMC for fixed point): size
reports and emulated replay.

* :func:`size_firmware` links the controller into the smallest firmware that
  owns its state (``size_main.c``) for one core and reports flash
  (``.isr_vector + .text + .rodata + .ARM.exidx + .data``), RAM (``.data + .bss``)
  and the worst stack of a step from ``-fstack-usage``.
* :func:`emulate` builds a bare-metal image for an emulated board (startup code,
  linker script and replay program, all from ``firmware_templates/``), replays
  an observation trace through ``<prefix>_step`` under ``qemu-system-arm`` (or
  ``qemu-system-riscv32``) and compares every action with the Python reference.
  Cost per step comes from SysTick (RISC-V: the ``instret`` counter) under
  ``-icount``: QEMU then advances virtual time by ``2**shift`` ns per
  instruction, so the count is a deterministic function of the instructions
  executed.

Toolchains: Debian's ``gcc-arm-none-eabi``, ``libnewlib-arm-none-eabi`` and
``qemu-system-arm``; for RISC-V ``gcc-riscv64-unknown-elf`` and
``qemu-system-misc`` (freestanding: no C library).
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nchl import __version__
from nchl.core.errors import NchlError
from nchl.core.memory import macs_per_step
from nchl.core.spec import Spec

from nchl.core.fixed import DEFAULT_OBS_RANGE, ONE, make_fixed, quantize_observation

from . import _environment, c_float, generate, write


@dataclass(frozen=True)
class Toolchain:
    """Compiler, size tool, emulator and link settings of one architecture."""

    arch: str
    cc: str
    size: str
    qemu: str
    cflags: tuple[str, ...]
    link: tuple[str, ...]
    startup: str        # template of the startup file
    packages: str       # Debian packages that provide it


ARM = Toolchain("arm", "arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm", (),
                ("-nostartfiles", "-Wl,--gc-sections", "--specs=nano.specs"), "startup.c.j2",
                "gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm")
# freestanding: the controller needs no C library; the startup file brings memset/memcpy
RISCV = Toolchain("riscv", "riscv64-unknown-elf-gcc", "riscv64-unknown-elf-size", "qemu-system-riscv32",
                  ("-ffreestanding", "-fno-tree-loop-distribute-patterns"),
                  ("-nostdlib", "-nostartfiles", "-Wl,--gc-sections", "-Wl,--no-relax", "-lgcc"),
                  "startup_riscv.c.j2", "gcc-riscv64-unknown-elf and qemu-system-misc")
TARGETS = {
    "cortex-m4f": ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
    "cortex-m0": ("-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft"),
    "cortex-m3": ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"),
    "cortex-m33": ("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
    "rv32imc": ("-march=rv32imc", "-mabi=ilp32"),  # no F extension: integer code, or soft float
}
TOOLCHAINS = {target: RISCV if target.startswith("rv") else ARM for target in TARGETS}
FLAGS = ("-std=c99", "-O2", "-ffp-contract=off", "-ffunction-sections", "-fdata-sections", "-Wall", "-Wextra",
         "-Werror", "-fstack-usage")


@dataclass(frozen=True)
class Board:
    target: str
    flash_origin: str
    flash_length: str
    ram_origin: str
    ram_length: str
    cpu_hz: int                     # counter ticks per second (RISC-V instret under -icount: ns)
    machine: tuple[str, ...] = ()   # QEMU machine arguments (default: -M with the board's name)


# QEMU's MPS2 boards: code in ZBT SSRAM1, data in ZBT SSRAM2/3. an386: Cortex-M4 with FPU;
# an385: Cortex-M3, no FPU (soft float); both clock SysTick at 25 MHz. an505 (MPS2+ TrustZone):
# Cortex-M33 with FPU at 20 MHz, booting in the secure state, so code and data sit at the secure aliases.
BOARDS = {
    "mps2-an386": Board("cortex-m4f", "0x00000000", "4M", "0x20000000", "4M", 25_000_000),
    "mps2-an385": Board("cortex-m3", "0x00000000", "4M", "0x20000000", "4M", 25_000_000),
    "mps2-an505": Board("cortex-m33", "0x10000000", "4M", "0x38000000", "2M", 20_000_000),
    # BBC micro:bit v1 (nRF51822): a real Cortex-M0 part, 256 KB flash, 16 KB RAM, 16 MHz
    "microbit": Board("cortex-m0", "0x00000000", "256K", "0x20000000", "16K", 16_000_000),
    # QEMU's RISC-V virt machine, 32-bit, no firmware: the image is loaded into its DRAM at 0x80000000
    "riscv32-virt": Board("rv32imc", "0x80000000", "4M", "0x80400000", "4M", 1_000_000_000,
                          ("-M", "virt", "-bios", "none")),
}
ICOUNT_SHIFT = 6  # 64 ns of virtual time per instruction
# which builds a board's core executes: ARMv6-M (M0) is a subset of ARMv7-M (M3, M4) and of ARMv8-M
# Mainline (M33); code built for a hard-float ABI needs an FPU
RUNS_ON = {
    "rv32imc": ("rv32imc",),
    "cortex-m0": ("cortex-m0",),
    "cortex-m3": ("cortex-m3", "cortex-m0"),
    "cortex-m4f": ("cortex-m4f", "cortex-m3", "cortex-m0"),
    "cortex-m33": ("cortex-m33", "cortex-m3", "cortex-m0"),
}
_CTYPE = {"float": "float", "fixed": "int16_t"}  # observation and action type of the generated step


def check_toolchain(target: str, numeric: str, emulator: bool = False) -> Toolchain:
    """The target's toolchain, or a clear error naming the Debian packages that are missing."""
    tc = TOOLCHAINS[target]
    if tc is RISCV and numeric != "fixed":
        raise NchlError(f"{target} builds the integer-only controller (--numeric fixed): the float32 C needs "
                        "<math.h>, and the RISC-V toolchain here has no C library")
    missing = [t for t in (tc.cc, tc.size, *((tc.qemu,) if emulator else ())) if shutil.which(t) is None]
    if missing:
        raise NchlError(f"{', '.join(missing)} not found; install Debian's {tc.packages}")
    return tc


def _target_flags(target: str) -> tuple[str, ...]:
    try:
        return TARGETS[target]
    except KeyError:
        raise NchlError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}") from None


def _render(template: str, **ctx) -> str:
    return _environment().get_template(template).render(version=__version__, **ctx)


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise NchlError(f"{what} failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")
    return r.stdout


def _sections(path: Path, tc: Toolchain) -> dict[str, int]:
    out = _run([tc.size, "-A", str(path)], path.parent, tc.size)
    sizes: dict[str, int] = {}
    for line in out.splitlines():
        m = re.match(r"^(\.\S+)\s+(\d+)\s+\d+", line)
        if m:
            sizes[m.group(1)] = sizes.get(m.group(1), 0) + int(m.group(2))
    return sizes


def _link(folder: Path, target: str, sources: list[str], board: Board) -> Path:
    (folder / "link.ld").write_text(_render("link.ld.j2", board=board.target, flash_origin=board.flash_origin,
                                            flash_length=board.flash_length, ram_origin=board.ram_origin,
                                            ram_length=board.ram_length))
    tc = TOOLCHAINS[target]
    (folder / "startup.c").write_text(_render(tc.startup))
    elf = folder / "firmware.elf"
    cmd = [tc.cc, *_target_flags(target), *FLAGS, *tc.cflags, "-T", "link.ld", "-o", elf.name, "startup.c", *sources,
           *tc.link]
    r = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    overflow = re.search(r"region `(RAM|FLASH)' overflowed by (\d+) bytes", r.stderr)
    if overflow:
        region, length = overflow.groups()
        size = board.ram_length if region == "RAM" else board.flash_length
        raise NchlError(f"the firmware does not fit the board: {region} ({size}) overflowed by {length} bytes "
                        "(nchl size shows what the controller needs)")
    if r.returncode != 0:
        raise NchlError(f"{tc.cc} ({target}) failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")
    return elf


def _stack(folder: Path, prefix: str) -> int:
    """Worst stack of ``<prefix>_step``: its own frame plus the largest frame of the helpers it calls."""
    frames = {}
    for line in (folder / f"{prefix}.su").read_text().splitlines():
        where, size, _ = line.split("\t")
        frames[where.rsplit(":", 1)[-1]] = int(size)
    helpers = [v for k, v in frames.items() if k not in (f"{prefix}_step", f"{prefix}_init")]
    return frames[f"{prefix}_step"] + max(helpers, default=0)


def read_header(header: Path) -> dict:
    """Rule, window and analytical sizes a generated header declares (its comment and macros)."""
    text = header.read_text()
    m = re.search(r"\* rule (\w+)(?:, window (\d+))?, layers \[([\d,]+)\]", text)
    if not m or "generated by nchl" not in text:
        raise NchlError(f"{header} is not a header generated by nchl codegen")
    macros = dict(re.findall(r"#define \w+?_(STATE_BYTES|PARAMS_BYTES) (\d+)", text))
    return {"rule": m.group(1), "window": int(m.group(2)) if m.group(2) else None,
            "numeric": "fixed" if "nchl codegen --numeric fixed" in text else "float",
            "layers": [int(v) for v in m.group(3).split(",")],
            "state_bytes_analytical": int(macros["STATE_BYTES"]), "params_bytes_analytical": int(macros["PARAMS_BYTES"])}


def size_sources(src: Path, prefix: str, target: str) -> dict:
    """Flash, RAM and stack of generated ``<prefix>.c/.h`` linked into a minimal firmware for ``target``."""
    flags = _target_flags(target)
    info = read_header(src / f"{prefix}.h")
    tc = check_toolchain(target, info["numeric"])
    board = Board(target, "0x00000000", "16M", "0x20000000", "16M", 0)  # roomy: we measure, not fit
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for ext in (".c", ".h"):
            shutil.copy(src / f"{prefix}{ext}", folder)
        (folder / "size_main.c").write_text(_render("size_main.c.j2", prefix=prefix, P=prefix.upper(),
                                                    ctype=_CTYPE[info["numeric"]]))
        elf = _link(folder, target, ["size_main.c", f"{prefix}.c"], board)
        _run([tc.cc, *flags, *FLAGS, *tc.cflags, "-c", f"{prefix}.c", "-o", f"{prefix}.o"], folder,
             f"{tc.cc} ({target})")
        image, obj = _sections(elf, tc), _sections(folder / f"{prefix}.o", tc)
        stack = _stack(folder, prefix)
    flash = sum(image.get(s, 0) for s in (".isr_vector", ".text", ".rodata", ".ARM.exidx", ".data"))
    ram = image.get(".data", 0) + image.get(".bss", 0)
    return {**info, "prefix": prefix, "target": target, "flash_bytes": flash, "ram_bytes": ram,
            "stack_bytes": stack,
            "controller_code_bytes": sum(v for k, v in obj.items() if k.startswith(".text")),
            "controller_const_bytes": sum(v for k, v in obj.items() if k.startswith(".rodata"))}


def size_firmware(spec: Spec, genome: np.ndarray, prefix: str, target: str, numeric: str = "float",
                  obs_range: float = DEFAULT_OBS_RANGE) -> dict:
    """:func:`size_sources` of a controller generated on the fly."""
    with tempfile.TemporaryDirectory() as tmp:
        write(generate(spec, genome, prefix, numeric=numeric, obs_range=obs_range), tmp)
        return size_sources(Path(tmp), prefix, target)


def size_folder(folder: Path, targets: list[str]) -> list[dict]:
    """:func:`size_sources` of every generated controller in ``folder`` (``<prefix>.c`` beside
    ``<prefix>.h``), per target."""
    prefixes = sorted(p.stem for p in folder.glob("*.c") if (folder / f"{p.stem}.h").exists())
    if not prefixes:
        raise NchlError(f"{folder} holds no generated controller (<prefix>.c with <prefix>.h)")
    return [size_sources(folder, p, t) for t in targets for p in prefixes]


def size_variants(spec: Spec, genome: np.ndarray, targets: list[str], windows: list[int], numeric: str = "float",
                  obs_range: float = DEFAULT_OBS_RANGE) -> list[dict]:
    """Sizes of one genome as every rule it runs as, side by side, per target: HL (for an NcHL genome,
    its synapse parameters expanded by :func:`~nchl.core.controllers.nchl_as_hl`), NcHL and WNcHL at each
    window. What a user weighs when choosing a rule for a chip. ``numeric="fixed"``: NcHL and WNcHL
    at each window in float32 and in fixed point, side by side."""
    from nchl.core.controllers import nchl_as_hl

    if numeric == "fixed":
        if spec.rule not in ("nchl", "wnchl"):
            raise NchlError(f"--numeric fixed sizes NcHL and weightless NcHL; a {spec.rule!r} genome runs as neither")
        with tempfile.TemporaryDirectory() as tmp:
            prefixes = []
            variants = [("nchl", Spec("nchl", spec.topology))]
            variants += [(f"wnchl_m{m}", Spec("wnchl", spec.topology, window=m)) for m in windows]
            for name, variant in variants:
                for kind in ("float", "fixed"):
                    prefix = name + ("_q" if kind == "fixed" else "")
                    write(generate(variant, genome, prefix, numeric=kind, obs_range=obs_range), tmp)
                    prefixes.append(prefix)
            return [size_sources(Path(tmp), prefix, t) for t in targets for prefix in prefixes
                    if TOOLCHAINS[t] is ARM or prefix.endswith("_q")]  # RISC-V: integer code only
    if spec.rule in ("hl", "static"):  # no other rule runs these genomes (a C prefix cannot be "static")
        variants = [("hl" if spec.rule == "hl" else "static_net", spec, genome)]
    else:
        variants = [("hl", *nchl_as_hl(spec, genome)), ("nchl", Spec("nchl", spec.topology), genome)]
        variants += [(f"wnchl_m{m}", Spec("wnchl", spec.topology, window=m), genome) for m in windows]
    with tempfile.TemporaryDirectory() as tmp:
        for prefix, variant, values in variants:
            write(generate(variant, values, prefix), tmp)
        return [size_sources(Path(tmp), prefix, t) for t in targets for prefix, *_ in variants]


def emulate(spec: Spec, genome: np.ndarray, obs: np.ndarray, seed: int, board_name: str = "mps2-an386",
            prefix: str = "nchl_ctrl", timeout: float = 600.0, clock_mhz: float = 100.0, target: str | None = None,
            numeric: str = "float", obs_range: float = DEFAULT_OBS_RANGE) -> dict:
    """Replay ``obs`` through the controller on an emulated board; compare with the Python reference.

    ``target`` builds for another core than the board's own, which the board must be able to run:
    a Cortex-M0 build (ARMv6-M, a subset of the Cortex-M3's ARMv7-M) is measured on the M3 board.
    ``numeric="fixed"``: the integer controller, fed the observations as Q12 integers and compared
    with the integer reference of :mod:`nchl.core.fixed` (errors in Q12 units divided by 4096).

    Time per step is an estimate at ``clock_mhz``: instructions / clock, i.e. one instruction per
    cycle; QEMU counts instructions, it does not model cycles (loads, divisions, wait states)."""
    if not (isinstance(clock_mhz, (int, float)) and clock_mhz > 0):
        raise NchlError(f"clock_mhz must be a number > 0, got {clock_mhz!r}")
    from nchl.core.controllers import make_controller

    from .verify import ulp_distance

    try:
        board = BOARDS[board_name]
    except KeyError:
        raise NchlError(f"unknown board {board_name!r}; choose one of {', '.join(BOARDS)}") from None
    target = target or board.target
    _target_flags(target)
    tc = check_toolchain(target, numeric, emulator=True)
    if target not in RUNS_ON[board.target]:
        raise NchlError(f"board {board_name} ({board.target}) cannot run code built for {target}; "
                        f"it runs {', '.join(RUNS_ON[board.target])}")
    obs = np.asarray(obs, dtype=np.float32)
    if numeric == "fixed":
        py = make_fixed(spec, genome, obs_range)
        py.reset(seed)
        obs_q = [quantize_observation(o, py.plan.obs_max) for o in obs]
        expected = np.array([py.step_q(o) for o in obs_q]).astype(np.float64) / ONE
        literals = [[str(int(v)) for v in row] for row in obs_q]
    else:
        py = make_controller(spec, genome)
        py.reset(seed)
        expected = np.array([py.step(o) for o in obs])
        literals = [[c_float(v) for v in row] for row in obs]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write(generate(spec, genome, prefix, numeric=numeric, obs_range=obs_range), folder)
        (folder / "replay_main.c").write_text(_render(
            "replay_main.c.j2", prefix=prefix, P=prefix.upper(), steps=len(obs), seed=seed, obs=literals,
            ctype=_CTYPE[numeric], arch=tc.arch))
        elf = _link(folder, target, ["replay_main.c", f"{prefix}.c"], board)
        cmd = [tc.qemu, *(board.machine or ("-M", board_name)), "-nographic", "-monitor", "none",
               "-serial", "none", "-semihosting-config", "enable=on,target=native", "-icount", f"shift={ICOUNT_SHIFT}",
               "-kernel", str(elf)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise NchlError(f"{tc.qemu} did not finish within {timeout:.0f} s") from None
    text = r.stdout + r.stderr  # QEMU writes the semihosting console to one of them
    lines = [ln.split() for ln in text.splitlines() if ln.startswith("S ")]
    if "DONE" not in text or len(lines) != len(obs):
        raise NchlError(f"emulated firmware did not complete ({len(lines)} of {len(obs)} steps); "
                        f"exit {r.returncode}\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    status = np.array([int(ln[1], 16) for ln in lines])
    ticks = np.array([int(ln[2], 16) for ln in lines])
    words = np.array([[int(h, 16) for h in ln[3:]] for ln in lines], dtype=np.uint32)
    if numeric == "fixed":
        actions = words.astype(np.uint16).view(np.int16).astype(np.float64) / ONE
    else:
        actions = words.view(np.float32)
    ns_per_tick = 1e9 / board.cpu_hz
    instructions = ticks * ns_per_tick / 2**ICOUNT_SHIFT
    floor = macs_per_step(spec)
    return {
        "board": board_name, "target": target, "rule": spec.rule, "window": spec.window,
        "layers": list(spec.topology.layers), "steps": len(obs), "nonzero_status": int((status != 0).sum()),
        "max_abs_error": float(np.abs(actions.astype(np.float64) - expected).max()),
        "max_ulp_error": ulp_distance(actions, expected) if numeric == "float" else 0,
        "numeric": numeric, "built_for": target,
        "instructions_per_step_median": float(statistics.median(instructions)),
        "instructions_per_step_max": float(instructions.max()),
        "floor_macs_per_step": floor,
        "instructions_per_mac": float(statistics.median(instructions)) / floor,
        "clock_mhz": float(clock_mhz),
        "estimated_us_per_step": float(statistics.median(instructions)) / clock_mhz,
        "estimate": "instructions / clock (one instruction per cycle); QEMU does not model cycles",
        "measurement": f"SysTick at {board.cpu_hz} Hz under qemu -icount shift={ICOUNT_SHIFT} "
                       f"({2**ICOUNT_SHIFT} ns per instruction); includes call overhead",
    }

"""A 2-D voxel-based soft robot (VSR) on MuJoCo.

The classic 2-D VSR model: every voxel is a square whose four corners are point
masses joined by spring-damper links (four edges and two diagonals). Corner
masses are shared by neighbouring voxels and can only move in the vertical
x-z plane (two slide joints each). The controller sets one value ``u`` in
``[-1, 1]`` per voxel, which changes the rest length of all its links to
``L0 (1 + a u)``: every link is a MuJoCo general actuator on a spatial tendon
with gain ``k L0 a`` and affine bias ``(k L0, -k, -d)``, i.e. exactly

    F = k L0 a u + k L0 - k L - d dL/dt = -k (L - L0 (1 + a u)) - d dL/dt.

Small spheres at the corners touch the ground (flat, or a row of low random
steps). The model is built with ``mujoco.MjSpec``.

Geometry convention: a body is a boolean grid, row 0 at the top; voxels are
numbered row by row from the top-left. Corners of a voxel are ordered
bottom-left, bottom-right, top-right, top-left.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import mujoco
import numpy as np

from nchl.core.errors import NchlError

BIPED = ("####", "####", "#..#")
INTEGRATORS = {"euler": mujoco.mjtIntegrator.mjINT_EULER, "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT,
               "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST, "rk4": mujoco.mjtIntegrator.mjINT_RK4}


class BodyError(NchlError):
    """A voxel grid that is not a valid VSR body."""


def parse_body(body: object) -> np.ndarray:
    """A rectangular boolean grid with at least one voxel, all 4-connected.

    Accepts a 2-D array-like of bools/0-1 or a sequence of strings using ``#``
    (voxel) and ``.`` (empty), row 0 at the top.
    """
    if isinstance(body, str):
        raise BodyError("give a body as rows, e.g. ('####', '#..#'), not a single string")
    rows = list(body)  # type: ignore[call-overload]
    if not rows:
        raise BodyError("body grid is empty")
    if all(isinstance(r, str) for r in rows):
        bad = {ch for r in rows for ch in r} - {"#", "."}
        if bad:
            raise BodyError(f"body rows may only use '#' and '.', found {sorted(bad)}")
        rows = [[ch == "#" for ch in r] for r in rows]
    widths = {len(r) for r in rows}
    if len(widths) != 1 or 0 in widths:
        raise BodyError(f"body grid must be rectangular and non-empty, got row lengths {[len(r) for r in rows]}")
    grid = np.array(rows)
    if grid.dtype != bool:
        if not np.isin(grid, (0, 1)).all():
            raise BodyError("body grid cells must be booleans or 0/1")
        grid = grid.astype(bool)
    cells = list(zip(*np.nonzero(grid)))
    if not cells:
        raise BodyError("body grid has no voxel")
    seen, todo = {cells[0]}, deque([cells[0]])
    while todo:
        r, c = todo.popleft()
        for nb in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if nb not in seen and 0 <= nb[0] < grid.shape[0] and 0 <= nb[1] < grid.shape[1] and grid[nb]:
                seen.add(nb)
                todo.append(nb)
    if len(seen) != len(cells):
        raise BodyError(f"body voxels must be 4-connected; {len(cells) - len(seen)} of {len(cells)} are cut off")
    return grid


@dataclass(frozen=True)
class VSRParams:
    """Physical settings of the VSR model (``nchl/VSRWalker-v1``).

    Chosen so that a gait does not depend on the integration step (issue 21; measurements in
    docs/results.md, "Does a gait depend on the physics step?"):

    * links: the springs of the 2-D VSR simulator of the authors' earlier work (2dhmsr,
      ``Voxel.java``: distance joints at ``SPRING_F`` = 8 Hz, damping ratio ``SPRING_D`` = 0.3) on
      one corner mass, ``k = m (2 pi 8)^2`` = 126 N/m and ``d = 2 0.3 sqrt(k m)`` = 1.5 N s/m. For the
      3-6 links a corner shares, its time scales ``m / (n d)`` and ``sqrt(m / (n k))`` are 5-12 ms,
      5-12 steps at 1 ms. ``v0``'s 600 N/m and 10 N s/m had damping times of 0.8-1.7 ms at a 2 ms
      step, integrated with a first-order error: its champion walked 55.7 m, and 35.5 m at a
      quarter of the step.
    * integrator: MuJoCo's semi-implicit Euler. With time scales this long it is stable, and it
      converges much faster than ``implicitfast``, whose implicit damping (``M - dt D``) is
      first-order accurate: a 5 Hz sinusoid walked 6.51 m at 1 ms and 7.36 m at 0.125 ms under it,
      7.55 and 7.46 m under Euler. Euler's physics step is also cheaper (26 vs 36 us measured).
    * step: 1 ms (20 per 20 ms control step), 1.46-1.58x the cost of ``v0`` per control step;
      0.5 ms would converge further (a 1 Hz sinusoid: 10 % -> 0.4 %) at 2.45x, beyond the budget of 2x.
    * actuation bandwidth: the springs themselves; a voxel follows its rest length up to its 8 Hz
      resonance and filters faster commands (``actuation_lag`` adds a first-order lag; off).
    * contacts: MuJoCo's default soft constraints (20 ms time constant, 20 steps) and friction 1.
    """

    voxel_size: float = 0.2        # m
    corner_mass: float = 0.05      # kg per corner mass
    stiffness: float = 126.0       # N/m per link
    damping: float = 1.5           # N s/m per link
    actuation: float = 0.2         # a: rest length changes by +-20 %
    radius: float = 0.02           # m, contact spheres at the corners
    friction: float = 1.0
    timestep: float = 0.001        # s, physics step (20 per 20 ms control step)
    integrator: str = "euler"      # MuJoCo integrator: euler, implicit, implicitfast, rk4
    actuation_lag: float = 0.0     # s, first-order time constant of the rest length (0: instant)


# The model of nchl/VSRWalker-v0 (before issue 21): stiff links at a 2 ms step, kept so that the
# results obtained on it can be reproduced; its gaits depend on the step.
VSR_V0_PARAMS = VSRParams(stiffness=600.0, damping=10.0, timestep=0.002, integrator="implicitfast")


@dataclass(frozen=True)
class VSRModel:
    model: mujoco.MjModel
    grid: np.ndarray                 # (rows, cols) bool
    voxels: np.ndarray               # (n_voxels, 2) row, col of each voxel
    corners: np.ndarray              # (n_voxels, 4) mass index of bl, br, tr, tl
    rest_xz: np.ndarray              # (n_masses, 2) rest position of each mass
    qpos_adr: np.ndarray             # (n_masses, 2) qpos index of x and z slides
    qvel_adr: np.ndarray             # (n_masses, 2)
    act_voxel: np.ndarray            # (n_actuators,) voxel driving each actuator
    mass_of_geom: np.ndarray         # (n_geoms,) mass index of a geom, -1 for terrain
    params: VSRParams


def build_model(body: object = BIPED, params: VSRParams = VSRParams(),
                terrain: str = "flat", terrain_seed: int = 0) -> VSRModel:
    """Compile the MuJoCo model of a body on flat or uneven ground."""
    grid = parse_body(body)
    p = params
    s = p.voxel_size
    rows, cols = grid.shape
    spec = mujoco.MjSpec()
    spec.modelname = "vsr"
    spec.option.timestep = p.timestep
    try:
        spec.option.integrator = INTEGRATORS[p.integrator]
    except KeyError:
        raise NchlError(f"unknown integrator {p.integrator!r}; choose one of {', '.join(INTEGRATORS)}") from None

    ground = spec.worldbody
    if terrain == "flat":
        ground.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 1], friction=[p.friction, 0.005, 0.0001],
                        contype=0, conaffinity=1, rgba=[0.5, 0.6, 0.5, 1])
    elif terrain == "uneven":
        # steps one voxel wide, 0-3 cm high, starting under the body and running 60 voxels ahead
        rng = np.random.default_rng(terrain_seed)
        heights = rng.uniform(0.0, 0.15 * s, 64 + cols)
        ground.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 1], friction=[p.friction, 0.005, 0.0001],
                        contype=0, conaffinity=1, rgba=[0.5, 0.6, 0.5, 1])
        for k, h in enumerate(heights):
            ground.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[s / 2, 1.0, h / 2 + 1e-4],
                            pos=[(k - 2) * s + s / 2, 0, h / 2], friction=[p.friction, 0.005, 0.0001],
                            contype=0, conaffinity=1, rgba=[0.45, 0.5, 0.45, 1])
    else:
        raise NchlError(f"unknown terrain {terrain!r}; choose 'flat' or 'uneven'")
    lift = p.radius + (0.16 * s if terrain == "uneven" else 0.0)

    voxels = np.argwhere(grid)
    mass_index: dict[tuple[int, int], int] = {}
    corners = np.zeros((len(voxels), 4), dtype=np.int64)
    for v, (r, c) in enumerate(voxels):
        base = rows - 1 - r  # lattice row of the voxel's bottom edge
        for k, (i, j) in enumerate(((c, base), (c + 1, base), (c + 1, base + 1), (c, base + 1))):
            corners[v, k] = mass_index.setdefault((i, j), len(mass_index))
    rest_xz = np.zeros((len(mass_index), 2))
    for (i, j), m in mass_index.items():
        rest_xz[m] = (i * s, j * s)

    for m, (x, z) in enumerate(rest_xz):
        b = spec.worldbody.add_body(name=f"m{m}", pos=[x, 0, z + lift])
        b.add_joint(name=f"m{m}x", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[1, 0, 0])
        b.add_joint(name=f"m{m}z", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[0, 0, 1])
        b.add_geom(name=f"g{m}", type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[p.radius, 0, 0], mass=p.corner_mass,
                   contype=1, conaffinity=0, friction=[p.friction, 0.005, 0.0001], rgba=[0.2, 0.2, 0.8, 1])
        b.add_site(name=f"s{m}")

    act_voxel = []
    links = ((0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (1, 3))  # four edges, two diagonals
    for v in range(len(voxels)):
        for a, b_ in links:
            ma, mb = corners[v, a], corners[v, b_]
            # sqrt(dx^2 + dz^2) in plain IEEE operations, not np.linalg.norm: that calls OpenBLAS, whose
            # AVX-512 kernel rounds the last bit differently, and a forking gait amplified that model
            # difference between machines to 60 % of its distance (docs/results.md, "The same bits
            # on every machine")
            dx, dz = rest_xz[ma] - rest_xz[mb]
            rest = math.sqrt(dx * dx + dz * dz)
            t = spec.add_tendon(name=f"v{v}_{a}{b_}", width=0.004, rgba=[0.8, 0.3, 0.2, 1])
            t.wrap_site(f"s{ma}")
            t.wrap_site(f"s{mb}")
            act = spec.add_actuator(name=f"a{v}_{a}{b_}", target=t.name, trntype=mujoco.mjtTrn.mjTRN_TENDON)
            act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
            act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
            act.gainprm[0] = p.stiffness * rest * p.actuation
            act.biasprm[0] = p.stiffness * rest
            act.biasprm[1] = -p.stiffness
            act.biasprm[2] = -p.damping
            if p.actuation_lag > 0:
                act.dyntype = mujoco.mjtDyn.mjDYN_FILTEREXACT
                act.dynprm[0] = p.actuation_lag
            act.ctrllimited = True
            act.ctrlrange = [-1.0, 1.0]
            act_voxel.append(v)

    model = spec.compile()
    qpos_adr = np.array([[model.jnt_qposadr[model.joint(f"m{m}{ax}").id] for ax in "xz"]
                         for m in range(len(rest_xz))])
    qvel_adr = np.array([[model.jnt_dofadr[model.joint(f"m{m}{ax}").id] for ax in "xz"]
                         for m in range(len(rest_xz))])
    mass_of_geom = np.full(model.ngeom, -1, dtype=np.int64)
    for m in range(len(rest_xz)):
        mass_of_geom[model.geom(f"g{m}").id] = m
    rest_xz = rest_xz + np.array([0.0, lift])
    return VSRModel(model, grid, voxels, corners, rest_xz, qpos_adr, qvel_adr,
                    np.array(act_voxel), mass_of_geom, p)

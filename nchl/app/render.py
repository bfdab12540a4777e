"""``nchl render``: watch a controller walk. Episodes rendered offscreen to GIF or MP4.

MuJoCo tasks (Ant) render through Gymnasium's ``rgb_array`` mode, which needs an
offscreen OpenGL context: EGL or OSMesa, chosen with ``MUJOCO_GL``. Unless the
user set it, :func:`gl_backend` probes EGL then OSMesa in a subprocess (a failed
probe can leave PyOpenGL bound to the wrong platform in this process) and keeps
the first that renders. The VSR walker draws itself in 2-D and needs no OpenGL.

Frames are taken every ``k`` control steps so the video plays in real time at
about ``fps``; each panel carries a caption (task, rule, time, distance so far).
GIFs are written by Pillow, MP4 (H.264) by the ffmpeg binary that the
``imageio-ffmpeg`` wheel ships.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.errors import NchlError, NonFiniteObservation
from .evolution import evaluation_controller
from ..core.genome import Genome
from ..core.spec import Spec

FORMATS = (".gif", ".mp4")
_PROBE = """
import os
os.environ["MUJOCO_GL"] = os.environ["PYOPENGL_PLATFORM"] = "{name}"
import mujoco
m = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='1'/></worldbody></mujoco>")
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
r = mujoco.Renderer(m, 16, 16)
r.update_scene(d)
assert r.render().shape == (16, 16, 3)
"""
_PACKAGES = {"egl": "libegl1 libegl-mesa0 libgl1-mesa-dri", "osmesa": "libosmesa6"}


def gl_backend() -> str:
    """The offscreen OpenGL backend MuJoCo will use (sets ``MUJOCO_GL``), or a clear error."""
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        return chosen
    why = {}
    for name in ("egl", "osmesa"):
        try:
            r = subprocess.run([sys.executable, "-c", _PROBE.format(name=name)], capture_output=True, text=True,
                               timeout=120)
        except subprocess.TimeoutExpired:
            why[name] = "the probe timed out"
            continue
        if r.returncode == 0:
            os.environ["MUJOCO_GL"] = name
            os.environ.setdefault("PYOPENGL_PLATFORM", name)
            return name
        why[name] = (r.stderr.strip().splitlines() or ["failed"])[-1]
    raise NchlError("no offscreen OpenGL backend for MuJoCo: "
                    + "; ".join(f"{n.upper()}: {w}" for n, w in why.items())
                    + f". Install EGL ({_PACKAGES['egl']}) or OSMesa ({_PACKAGES['osmesa']}) with apt-get "
                    "(bash setup.sh does), or set MUJOCO_GL")


@dataclass
class Panel:
    """One genome as deployed in one panel of the video."""

    ref: str
    genome: Genome
    spec: Spec

    @property
    def label(self) -> str:
        return self.spec.rule + (f" m={self.spec.window}" if self.spec.window else "")


def parse_panel(ref: str, rule: str | None = None, window: int | None = None) -> Panel:
    """``GENOME`` or ``GENOME@RULE[:M]`` (e.g. ``zoo:ant-nchl@wnchl:10``): a genome file or zoo
    champion, deployed as its own rule or redeployed NcHL <-> WNcHL."""
    path, _, deploy = ref.partition("@")
    if deploy:
        rule, _, m = deploy.partition(":")
        try:
            window = int(m) if m else None
        except ValueError:
            raise NchlError(f"{ref}: the window after ':' must be an integer") from None
    genome = Genome.load(path)
    if rule is None and window is None:
        return Panel(ref, genome, genome.spec)
    try:
        return Panel(ref, genome, genome.spec.redeployed(rule, window))
    except NchlError as e:
        raise NchlError(f"{ref}: {e} (a weightless deployment is written GENOME@wnchl:M)") from None


def film(panel: Panel, task_name: str, seed: int, steps: int, width: int, height: int, camera: str, fps: float,
         backend: str = "c") -> tuple[list[np.ndarray], dict]:
    """Frames of one episode (task termination applies, at most ``steps`` steps) with captions."""
    from nchl_sim import VSR_ID, task_for_genome

    task = task_for_genome(panel.genome, task_name, panel.ref)
    if task.sizes != (panel.spec.topology.n_in, panel.spec.topology.n_out):
        raise NchlError(f"{panel.ref}: layers [{panel.spec.topology}] do not fit task {task_name!r}")
    if task.env_id != VSR_ID:
        gl_backend()
    env = task.make_env(render_mode="rgb_array", width=width, height=height, camera=camera)
    controller = evaluation_controller(panel.spec, panel.genome.values, backend)
    rate = 1.0 / env.unwrapped.dt
    every = max(1, round(rate / fps))
    obs, info = env.reset(seed=seed)
    controller.reset(seed)
    x0, frames, t, reason = info["x_position"], [], 0, "steps"
    caption = f"{task_name} | {panel.label}"
    frames.append(_caption(env.render(), f"{caption} | t {0.0:5.1f} s | distance {0.0:+6.2f} m"))
    try:
        while t < steps:
            obs, _, terminated, truncated, info = env.step(controller.step(obs))
            t += 1
            if t % every == 0 or terminated or truncated or t == steps:
                frames.append(_caption(env.render(), f"{caption} | t {t / rate:5.1f} s | "
                                                     f"distance {info['x_position'] - x0:+6.2f} m"))
            if terminated or truncated:
                reason = "terminated" if terminated else "time_limit"
                break
    except NonFiniteObservation as e:
        raise NchlError(f"{panel.ref}: {e}") from None
    finally:
        env.close()
    return frames, {"ref": panel.ref, "rule": panel.spec.rule, "window": panel.spec.window, "steps": t,
                    "distance": float(info["x_position"] - x0), "end": reason, "frames": len(frames),
                    "fps": rate / every}


def _caption(frame: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.fromarray(np.ascontiguousarray(frame))
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    box = d.textbbox((4, 3), text, font=font)
    d.rectangle([0, 0, img.width, box[3] + 3], fill=(20, 20, 20))
    d.text((4, 3), text, fill=(255, 255, 255), font=font)
    return np.asarray(img)


def side_by_side(films: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Panels next to each other; a panel whose episode ended early holds its last frame."""
    n = max(len(f) for f in films)
    sep = np.full((films[0][0].shape[0], 4, 3), 255, dtype=np.uint8)
    out = []
    for k in range(n):
        row = []
        for i, f in enumerate(films):
            row += ([sep] if i else []) + [f[min(k, len(f) - 1)]]
        out.append(np.concatenate(row, axis=1))
    return out


def write_video(frames: list[np.ndarray], path: str | Path, fps: float) -> Path:
    path = Path(path)
    if path.suffix.lower() == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0,
                       optimize=True)
        return path
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    pad = ((0, h % 2), (0, w % 2), (0, 0))  # H.264 with yuv420p wants even sizes
    writer = imageio_ffmpeg.write_frames(str(path), (w + w % 2, h + h % 2), fps=fps, codec="libx264",
                                         pix_fmt_out="yuv420p", macro_block_size=1, quality=7,
                                         ffmpeg_log_level="error")
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(np.pad(f, pad, mode="edge")))
    writer.close()
    return path


def render(refs: list[str], output: str | Path, task: str | None = None, seed: int = 0, steps: int = 400,
           width: int = 480, height: int = 360, fps: float = 20.0, camera: str = "track", rule: str | None = None,
           window: int | None = None, backend: str = "c", log: Callable[[str], None] = print) -> dict:
    """Render one episode per genome reference (several: side by side) to ``output`` (.gif or .mp4)."""
    if Path(output).suffix.lower() not in FORMATS:
        raise NchlError(f"{output}: the output must end in {' or '.join(FORMATS)}")
    for name, v, lo in (("steps", steps, 1), ("width", width, 16), ("height", height, 16)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise NchlError(f"{name} must be an integer >= {lo}, got {v!r}")
    if not (isinstance(fps, (int, float)) and 0 < fps <= 120):
        raise NchlError(f"fps must be in (0, 120], got {fps!r}")
    panels = [parse_panel(r, rule, window) for r in refs]
    tasks = {task or p.genome.task for p in panels}
    if None in tasks:
        raise NchlError("a genome names no task; pass --task")
    if len(tasks) > 1:
        raise NchlError(f"side-by-side panels must share one task, got {sorted(tasks)}; pass --task")
    task_name = tasks.pop()
    films, episodes = [], []
    for p in panels:
        frames, info = film(p, task_name, seed, steps, width, height, camera, fps, backend)
        log(f"{p.ref} as {p.label}: {info['steps']} steps, {info['distance']:+.2f} m ({info['end']}), "
            f"{info['frames']} frames")
        films.append(frames)
        episodes.append(info)
    frames = films[0] if len(films) == 1 else side_by_side(films)
    path = write_video(frames, output, episodes[0]["fps"])
    return {"output": str(path), "task": task_name, "seed": seed, "frames": len(frames), "fps": episodes[0]["fps"],
            "size": [int(frames[0].shape[1]), int(frames[0].shape[0])], "bytes": path.stat().st_size,
            "episodes": episodes}

"""Rendering: the VSR's rgb_array mode, `nchl render` to GIF and MP4, offscreen and headless."""

import json
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import nchl_sim  # noqa: F401  (registers the VSR environment)
from nchl import Genome, Spec
from nchl.core.errors import NchlError
from nchl_sim import get_task


def nchl(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nchl.app.cli", *args], cwd=cwd, capture_output=True, text=True)


def random_genome(tmp_path, task, name="g.npz", seed=0, hidden=(6,)):
    spec = Spec("nchl", get_task(task).topology(hidden))
    values = np.random.default_rng(seed).uniform(-1, 1, spec.genome_length)
    return str(Genome(spec, values, task=task).save(tmp_path / name))


def gif_frames(path):
    with Image.open(path) as im:
        frames = []
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert("RGB")))
    return frames


def assert_moving_picture(frames, width, height):
    assert len(frames) >= 20 and frames[0].shape == (height, width, 3)
    assert all(f.std() > 5 for f in frames)  # not blank
    changes = [np.abs(a.astype(int) - b).mean() for a, b in zip(frames, frames[1:])]
    assert sum(c > 0.5 for c in changes) >= len(changes) // 2  # not static


@pytest.mark.filterwarnings("ignore:.*render_mode='ascii'")  # gymnasium warns before our env refuses it
def test_vsr_env_renders_rgb_frames_and_passes_the_env_checker():
    from gymnasium.utils.env_checker import check_env

    env = gym.make("nchl/VSRWalker-v1", render_mode="rgb_array", width=96, height=64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version.*")
        check_env(env)  # as gymnasium.make returns it; includes the render check of the rgb_array mode
    check_env(env.unwrapped)
    env.reset(seed=0)
    frames = []
    for t in range(30):
        env.step(np.sin(np.arange(10) + t / 3))
        frames.append(env.render())
    assert_moving_picture(frames, 96, 64)
    assert env.metadata["render_fps"] == 50
    with pytest.raises(NchlError, match="render_mode must be one of"):
        gym.make("nchl/VSRWalker-v1", render_mode="ascii")


def test_render_vsr_gif_and_mp4(tmp_path):
    g = random_genome(tmp_path, "vsr-low")
    r = nchl("render", g, "-o", "v.gif", "--steps", "100", "--width", "80", "--height", "60", "--fps", "25",
             "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    frames = gif_frames(tmp_path / "v.gif")
    assert info["frames"] == len(frames) == 51 and info["fps"] == 25  # every 2nd step of 50 Hz, plus t = 0
    assert_moving_picture(frames, 80, 60)
    r = nchl("render", g, "-o", "v.mp4", "--steps", "60", "--width", "81", "--height", "61", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(tmp_path / "v.mp4"))
    meta = next(reader)
    assert meta["size"] == (82, 62) and sum(1 for _ in reader) == 31  # padded to even sizes for H.264


def test_render_ant_offscreen_side_by_side(tmp_path):
    g = random_genome(tmp_path, "ant", seed=3)
    r = nchl("render", g, f"{g}@wnchl:5", "--side-by-side", "-o", "a.gif", "--steps", "40", "--width", "64",
             "--height", "48", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert [e["rule"] for e in info["episodes"]] == ["nchl", "wnchl"] and info["size"] == [2 * 64 + 4, 48]
    frames = gif_frames(tmp_path / "a.gif")
    assert_moving_picture(frames, 2 * 64 + 4, 48)


@pytest.mark.parametrize("args, match", [
    (["-o", "x.avi"], "must end in .gif or .mp4"),
    (["G", "-o", "x.gif"], "add --side-by-side"),
    (["-o", "x.gif", "--side-by-side"], "needs two or more genomes"),
    (["-o", "x.gif", "--steps", "0"], "steps must be an integer >= 1"),
])
def test_render_errors_are_clear(tmp_path, args, match):
    g = random_genome(tmp_path, "vsr-low")
    r = nchl("render", g, *[g if a == "G" else a for a in args], cwd=tmp_path)
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr


def test_missing_opengl_is_named(monkeypatch):
    from nchl.app import render

    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(render, "_PROBE", "raise SystemExit('no display here {name}')")
    with pytest.raises(NchlError, match="no offscreen OpenGL backend.*EGL: no display here egl.*libosmesa6"):
        render.gl_backend()

"""One writer per run and campaign directory; readers during a write; output piped into a reader that stops."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from nchl.app.campaign import run_campaign
from nchl.app.evolution import EvolveConfig, Run, read_log
from nchl.core.fileio import LOCK_FILE, DirectoryBusy, WriterLock
from test_campaign import TINY as TINY_CAMPAIGN

TINY = ["--task", "vsr-low", "--layers", "12,4,10", "--popsize", "4", "--workers", "1", "--validation-episodes", "0"]
CAMPAIGN = TINY_CAMPAIGN.replace('rules = ["nchl", "wnchl"]', 'rules = ["nchl"]')  # cells vsr-low-nchl-s0, -s1


def nchl(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nchl.app.cli", *args], cwd=cwd, capture_output=True, text=True)


def start(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "nchl.app.cli", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def holding(directory, process, timeout=120):
    """Wait until ``process`` holds ``directory``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        lock = directory / LOCK_FILE
        if lock.exists() and f"pid {process.pid} " in lock.read_text():
            return
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    pytest.fail(f"{process.pid} did not take {directory}")


def test_second_evolve_on_a_run_fails_fast_and_changes_nothing(tmp_path):
    assert nchl("evolve", *TINY, "--generations", "1", "--out", "run", cwd=tmp_path).returncode == 0
    first = start("evolve", "--resume", "run", "--generations", "6", cwd=tmp_path)
    holding(tmp_path / "run", first)
    config = (tmp_path / "run" / "config.json").read_bytes()
    t0 = time.time()
    second = nchl("evolve", "--resume", "run", "--generations", "6", cwd=tmp_path)
    assert second.returncode == 2 and time.time() - t0 < 30
    (line,) = second.stderr.strip().splitlines()  # one line, naming the holder
    assert f"is being written by pid {first.pid} on {os.uname().nodename}" in line
    assert (tmp_path / "run" / "config.json").read_bytes() == config
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert [row["generation"] for row in read_log(tmp_path / "run")] == list(range(1, 7))


def test_a_run_held_by_this_process_is_refused_too(tmp_path):
    cfg = EvolveConfig.from_mapping({"task": "vsr-low", "layers": (12, 4, 10), "generations": 1, "popsize": 4,
                                     "workers": 1, "validation_episodes": 0})
    with WriterLock(tmp_path / "run", "run"):
        with pytest.raises(DirectoryBusy, match=f"pid {os.getpid()}"):
            Run(tmp_path / "run", cfg, log=lambda m: None)
        assert not (tmp_path / "run" / "config.json").exists()
    Run(tmp_path / "run", cfg, log=lambda m: None).run()  # released: the next writer proceeds
    with pytest.raises(DirectoryBusy):  # a run holds its directory from construction to the end of run()
        held = Run(tmp_path / "run", resume=True, generations=2, log=lambda m: None)
        Run(tmp_path / "run", resume=True, generations=2, log=lambda m: None)
    held.run()
    assert len(read_log(tmp_path / "run")) == 2


def test_a_killed_writer_leaves_a_directory_the_next_command_resumes(tmp_path):
    first = start("evolve", *TINY, "--generations", "200", "--out", "run", cwd=tmp_path)
    holding(tmp_path / "run", first)
    while not (tmp_path / "run" / "log.jsonl").exists() or not read_log_rows(tmp_path / "run"):
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    r = nchl("evolve", "--resume", "run", "--generations", "4", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [row["generation"] for row in read_log(tmp_path / "run")][-1] == 4


def read_log_rows(run_dir):
    try:
        return read_log(run_dir)
    except Exception:
        return []


def test_second_campaign_on_one_out_fails_fast(tmp_path):
    """The campaign holds its directory, each of its parallel cells its run directory."""
    (tmp_path / "c.toml").write_text(CAMPAIGN)
    first = start("campaign", "c.toml", "--out", "c", "--workers", "1", "--parallel", "2", cwd=tmp_path)
    holding(tmp_path / "c", first)
    second = nchl("campaign", "c.toml", "--out", "c", "--workers", "1", cwd=tmp_path)
    assert second.returncode == 2
    assert f"c is being written by pid {first.pid}" in second.stderr
    assert first.wait(timeout=300) == 0, first.stderr.read()
    for seed in (0, 1):
        assert [r["generation"] for r in read_log(tmp_path / "c" / f"vsr-low-nchl-s{seed}")] == [1, 2]
    # a campaign's cell is a run directory: while a campaign runs it, `nchl evolve --resume` on it is refused
    with WriterLock(tmp_path / "c" / "vsr-low-nchl-s1", "run"):
        r = nchl("evolve", "--resume", "c/vsr-low-nchl-s1", "--generations", "7", cwd=tmp_path)
        assert r.returncode == 2 and "is being written by" in r.stderr
    with WriterLock(tmp_path / "c", "campaign"):
        with pytest.raises(DirectoryBusy, match="a campaign directory has one writer"):
            run_campaign(tmp_path / "c.toml", tmp_path / "c", workers=1, log=lambda m: None)


def test_readers_skip_the_row_being_written(tmp_path):
    (tmp_path / "log.jsonl").write_text(json.dumps({"generation": 1}) + "\n" + '{"generation": 2, "be')
    assert read_log(tmp_path) == [{"generation": 1}]


@pytest.mark.parametrize("reader", ["head -1", "true"])  # true: a reader that stops before the first line
@pytest.mark.parametrize("command", ["zoo --json", "tasks"])
def test_output_piped_into_a_reader_that_stops_ends_quietly(tmp_path, command, reader):
    r = subprocess.run(f"{sys.executable} -m nchl.app.cli {command} | {reader}", shell=True, cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.count("\n") == (reader == "head -1")
    assert r.stderr == ""

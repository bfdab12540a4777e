"""The zoo: shipped champions load as zoo:NAME, carry their provenance, and reproduce their scores."""

import json
import subprocess
import sys

import numpy as np
import pytest

from nchl import Genome
from nchl.core import zoo
from nchl.core.errors import NchlError
from nchl.app.evolution import EvolveConfig, Run
from nchl.app.ship import add_champion
from nchl_sim import get_task

SHIPPED = ("ant-nchl", "ant-wnchl", "ant-wnchl-m2", "vsr-high-nchl", "ant-robust")


def nchl(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nchl.app.cli", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_champion_loads_with_provenance(name):
    genome = Genome.load(f"zoo:{name}")
    record = zoo.provenance(name)
    assert record["genome_sha256"] == genome.sha256() and record["task"] == genome.task
    assert get_task(genome.task).sizes == (genome.spec.topology.n_in, genome.spec.topology.n_out)
    run = record["run"]
    assert run["generations"] >= 1 and run["settings"]["task"] == genome.task and run["command"]
    e = record["evaluation"]
    f = np.array(e["fitness"])
    assert e["episodes"] == len(f) == 100 and e["seeds"] == [0, 99]
    assert e["mean"] == pytest.approx(f.mean()) and e["median"] == pytest.approx(np.median(f))
    assert e["forward_fraction"] == pytest.approx((f > 0).mean())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scores_reproduce(tmp_path, name):
    """The first held-out episodes of the record come out again: to the bit on the machine that made
    them, within 1e-9 relative on another CPU (MuJoCo's compiled arithmetic differs in the last bits
    between CPUs: vsr-high-nchl's first episode is 55.6651112595755 m where it was recorded and
    55.665111259575326 m on an AMD EPYC)."""
    r = nchl("evaluate", f"zoo:{name}", "--episodes", "2", "--json", "--workers", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = [e["fitness"] for e in json.loads(r.stdout)["per_episode"]]
    assert got == pytest.approx(zoo.provenance(name)["evaluation"]["fitness"][:2], rel=1e-9, abs=1e-12)


def test_zoo_listing_and_unknown_names(tmp_path):
    r = nchl("zoo", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert set(SHIPPED) <= {c["name"] for c in json.loads(r.stdout)}
    r = nchl("zoo", cwd=tmp_path)
    assert r.returncode == 0 and "ant-nchl" in r.stdout and "forward" in r.stdout
    r = nchl("evaluate", "zoo:walker", cwd=tmp_path)
    assert r.returncode == 2 and "no champion 'walker' in the zoo; choose one of" in r.stderr
    assert "ant-nchl" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(NchlError, match="no champion"):
        Genome.load("zoo:")


def test_add_champion_writes_a_loadable_record(tmp_path):
    cfg = EvolveConfig.from_mapping({"task": "vsr-low", "layers": (12, 4, 10), "generations": 2, "popsize": 4,
                                     "workers": 1, "validation_episodes": 1})
    Run(tmp_path / "run", cfg, log=lambda m: None).run()
    record = add_champion(tmp_path / "run", "tiny-vsr", episodes=2, into=tmp_path / "zoo", workers=1,
                          stress_episodes=1, log=lambda m: None)
    stress = record["stress"]
    assert stress["episodes"] == 1 and [c["name"] for c in stress["conditions"]][:3] == ["obs-noise", "quantize",
                                                                                          "latency"]
    assert all(c["retained"] is None or c["retained"] == pytest.approx(c["mean"] / stress["intact"]["mean"])
               for c in stress["conditions"])
    assert zoo.names(tmp_path / "zoo") == ["tiny-vsr"]
    assert zoo.provenance("tiny-vsr", tmp_path / "zoo") == json.loads(json.dumps(record))
    assert record["selected_at"]["generation"] == 2 and record["evaluation"]["episodes"] == 2
    assert record["env"] == "nchl/VSRWalker-v1"  # the model the champion was scored on
    assert Genome.load(tmp_path / "zoo" / "tiny-vsr.npz").sha256() == record["genome_sha256"]
    with pytest.raises(NchlError, match="lower-case words"):
        add_champion(tmp_path / "run", "Bad Name", into=tmp_path / "zoo")

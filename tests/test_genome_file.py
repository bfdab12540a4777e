"""Genome files: round trip and every malformed case with its clear error."""

import io
import json
import zipfile

import numpy as np
import pytest

from nchl import Genome, GenomeFileError, Spec


@pytest.fixture
def genome():
    spec = Spec("wnchl", [3, 4, 2], window=5)
    return Genome(spec, np.random.default_rng(0).uniform(-1, 1, spec.genome_length),
                  task="ant", seed=3, fitness=12.5)


def test_round_trip(tmp_path, genome):
    path = genome.save(tmp_path / "best.npz")
    back = Genome.load(path)
    assert back.spec == genome.spec
    np.testing.assert_array_equal(back.values, genome.values)
    assert (back.task, back.seed, back.fitness) == ("ant", 3, 12.5)
    assert back.sha256() == genome.sha256()
    assert not list(tmp_path.glob("*.tmp"))


def _write(path, genome_arr, meta):
    buf = io.BytesIO()
    arrays = {} if genome_arr is None else {"genome": genome_arr}
    if meta is not None:
        arrays["metadata"] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())
    return path


def _meta(genome, **changes):
    m = genome.metadata()
    m.update(changes)
    return m


@pytest.mark.parametrize("case, match", [
    ("missing", "no such file"),
    ("not_zip", "not a readable .npz"),
    ("truncated", "not a readable .npz"),
    ("no_metadata", "expected arrays 'genome' and 'metadata'"),
    ("meta_not_json", "not valid JSON"),
    ("meta_list", "JSON object"),
    ("wrong_format", "'format' must be 'nchl-genome'"),
    ("future_version", "unsupported format_version 99"),
    ("missing_key", r"lacks \['clip'\]"),
    ("unknown_key", r"unknown keys \['colour'\]"),
    ("bad_rule", "unknown rule 'abc'"),
    ("bad_layers", "layer 1 has size 0"),
    ("bad_window", "window m >= 1"),
    ("wrong_length", "genome has 39 values; expected rule 'wnchl'"),
    ("nan_genome", "non-finite"),
    ("string_genome", "must be numeric"),
    ("bad_seed", "'seed' must be an integer"),
    ("bad_fitness", "'fitness' must be a number"),
    ("object_meta", "not a readable .npz"),
])
def test_malformed_files_give_clear_errors(tmp_path, genome, case, match):
    p = tmp_path / "g.npz"
    good = genome.save(tmp_path / "good.npz").read_bytes()
    v = genome.values
    if case == "missing":
        p = tmp_path / "nope.npz"
    elif case == "not_zip":
        p.write_text("hello")
    elif case == "truncated":
        p.write_bytes(good[: len(good) // 2])
    elif case == "no_metadata":
        _write(p, v, None)
    elif case == "meta_not_json":
        _write(p, v, "{not json")
    elif case == "meta_list":
        _write(p, v, [1, 2])
    elif case == "wrong_format":
        _write(p, v, _meta(genome, format="other"))
    elif case == "future_version":
        _write(p, v, _meta(genome, format_version=99))
    elif case == "missing_key":
        m = _meta(genome)
        del m["clip"]
        _write(p, v, m)
    elif case == "unknown_key":
        _write(p, v, _meta(genome, colour="red"))
    elif case == "bad_rule":
        _write(p, v, _meta(genome, rule="abc"))
    elif case == "bad_layers":
        _write(p, v, _meta(genome, layers=[3, 0, 2]))
    elif case == "bad_window":
        _write(p, v, _meta(genome, window=0))
    elif case == "wrong_length":
        _write(p, v[:39], _meta(genome))
    elif case == "nan_genome":
        bad = v.copy()
        bad[3] = np.nan
        _write(p, bad, _meta(genome))
    elif case == "string_genome":
        _write(p, np.array(["a", "b"]), _meta(genome))
    elif case == "bad_seed":
        _write(p, v, _meta(genome, seed="x"))
    elif case == "bad_fitness":
        _write(p, v, _meta(genome, fitness="high"))
    elif case == "object_meta":
        buf = io.BytesIO()
        np.savez(buf, genome=v, metadata=np.array([{"a": 1}], dtype=object))
        p.write_bytes(buf.getvalue())
    with pytest.raises(GenomeFileError, match=match) as info:
        Genome.load(p)
    assert str(p) in str(info.value)


def test_zip_with_corrupt_member(tmp_path, genome):
    good = genome.save(tmp_path / "good.npz")
    p = tmp_path / "flipped.npz"
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as z:
        info = z.getinfo("genome.npy")
    data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF  # inside the genome payload
    p.write_bytes(bytes(data))
    with pytest.raises(GenomeFileError, match="not a readable .npz"):
        Genome.load(p)

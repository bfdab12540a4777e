"""Generation wall time on the local pool vs a Dask cluster, 1 and 2 workers, in one run.

Both use real processes on this machine: the local pool (``--workers N``) and a
loopback Dask cluster (a scheduler and N single-threaded ``dask worker``
processes). Each configuration runs the same small evolution (same seed, so the
same evaluations); reported are the median generation wall time (generation 1,
which builds environments, excluded) and the Dask overhead per evaluation,
(dask - local) / evaluations per generation, for the same worker count.

    python benchmarks/bench_cluster.py [--task vsr-low] [--generations 6] [--popsize 16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

from common import emit_json

from nchl.app.cluster import LoopbackCluster
from nchl.app.evolution import EvolveConfig, Run


def generation_times(out: str, settings: dict) -> list[float]:
    Run(out, EvolveConfig.from_mapping(settings), log=lambda m: None).run()
    with open(f"{out}/log.jsonl") as f:
        walls = [json.loads(line)["wall_time"] for line in f]
    return [b - a for a, b in zip(walls, walls[1:])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="vsr-low", help="default vsr-low: full-length episodes, cheap to build")
    ap.add_argument("--generations", type=int, default=6)
    ap.add_argument("--popsize", type=int, default=16)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    base = {"task": args.task, "rule": "nchl", "generations": args.generations, "popsize": args.popsize, "seed": 1}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 2):
            local = generation_times(f"{tmp}/local{n}", {**base, "workers": n})
            with LoopbackCluster(workers=n, cwd=tmp) as cluster:
                dask = generation_times(f"{tmp}/dask{n}", {**base, "scheduler": cluster.address})
            lm, dm = statistics.median(local), statistics.median(dask)
            rows.append({"workers": n, "local_s_per_generation": lm, "dask_s_per_generation": dm,
                         "dask_overhead_ms_per_evaluation": (dm - lm) / args.popsize * 1e3})
    print(f"{args.task}, NcHL, popsize {args.popsize}, median of {args.generations - 1} generations")
    print(f"{'workers':>8}{'local s/gen':>13}{'dask s/gen':>12}{'overhead ms/eval':>18}")
    for r in rows:
        print(f"{r['workers']:>8}{r['local_s_per_generation']:>13.3f}{r['dask_s_per_generation']:>12.3f}"
              f"{r['dask_overhead_ms_per_evaluation']:>18.2f}")
    emit_json({"benchmark": "cluster", "task": args.task, "popsize": args.popsize, "results": rows}, args.json)


if __name__ == "__main__":
    main()

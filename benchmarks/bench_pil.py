"""Every zoo champion on every firmware board: cycles per control step in the loop with the physics
(nchl pil, one episode of 100 steps), time per step at the board's clock, share of the control period,
flash and RAM against the chip's, and whether it fits; then the fault table on the micro:bit.
Prints the markdown tables of docs/deploy.md, then the JSON (``--json PATH`` also saves it).

    python benchmarks/bench_pil.py            # about 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse

from common import emit_json

from nchl.app.pil import FAULT_SPECS, run_pil
from nchl.core import zoo
from nchl.core.errors import NchlError
from nchl_codegen.app import APP_BOARDS, FPU

STEPS = 100


def _args(genome: str, board: str, numeric: str, fault: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(genome=f"zoo:{genome}", board=board, numeric=numeric, task=None, rule=None,
                              window=None, freeze_after=None, prefix="nchl_ctrl", rate_limit=None, episodes=1,
                              seed=0, steps=STEPS, fault=fault, fault_step=10 if fault else None, clock_mhz=None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", metavar="PATH", help="also save the JSON result here")
    cli = p.parse_args()
    rows, faults = [], []
    for name in zoo.names():
        for board, info in APP_BOARDS.items():
            numeric = "float" if info.target in FPU else "fixed"
            row = {"champion": name, "board": board, "numeric": numeric}
            try:
                r = run_pil(_args(name, board, numeric), log=lambda m: None)
            except NchlError as e:
                row.update(fits=False, why=str(e).splitlines()[0])
            else:
                row.update(fits=r["headroom"] > 0, bit_exact=r["bit_exact"], cycles=r["cycles_per_step"],
                           cycles_max=r["cycles_per_step_max"], clock_mhz=r["clock_mhz"],
                           time_ms=1e3 * r["time_per_step_s"], share=1 - r["headroom"],
                           period_ms=1e3 * r["control_period_s"],
                           **{k: r[k] for k in ("flash_bytes", "ram_bytes", "flash_chip", "ram_chip") if k in r})
            rows.append(row)
    for fault in FAULT_SPECS:
        r = run_pil(_args("ant-robust", "microbit", "fixed", fault), log=lambda m: None)
        faults.append({"fault": fault, "what": FAULT_SPECS[fault], "events": r["faults"][0],
                       "bad_commands": r["bad_commands"], "off_safe_pose": r["episodes"][0]["off_safe_pose"],
                       "bit_exact": r["bit_exact"], "stop_cycled_at": r["fault"]["stop_cycled_at"]})
    print("| champion | board | numeric | cycles/step (max) | time/step | share of period | flash / chip | RAM / chip | fits |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "cycles" not in r:
            print(f"| {r['champion']} | {r['board']} | {r['numeric']} | - | - | - | - | - | no: {r['why']} |")
            continue
        mem = (f"{r['flash_bytes']:,} / {r['flash_chip'] // 1024} K | {r['ram_bytes']:,} / {r['ram_chip'] // 1024} K"
               if "flash_bytes" in r else "- | -")
        print(f"| {r['champion']} | {r['board']} | {r['numeric']} | {r['cycles']:,.0f} ({r['cycles_max']:,.0f}) | "
              f"{r['time_ms']:.2f} ms at {r['clock_mhz']:g} MHz | {100 * r['share']:.1f} % of {r['period_ms']:g} ms | "
              f"{mem} | {'yes' if r['fits'] else 'no'}{'' if r['bit_exact'] else ' (not bit-exact)'} |")
    print("\n| fault | what the firmware did (step: state, latched code) | bad commands | safe pose held | bit-exact |")
    print("|---|---|---|---|---|")
    for f in faults:
        ev = "; ".join(f"{e['step']}: {e['state']} {'+'.join(e['faults'])}".strip() for e in f["events"])
        print(f"| {f['fault']} | {ev} | {f['bad_commands']} | {'yes' if f['off_safe_pose'] == 0 else 'no'} | "
              f"{'yes' if f['bit_exact'] else 'no'} |")
    emit_json({"benchmark": "pil", "steps": STEPS, "boards": rows, "faults": faults}, cli.json)


if __name__ == "__main__":
    main()

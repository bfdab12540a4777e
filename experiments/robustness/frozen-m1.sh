#!/usr/bin/env bash
# Frozen deployments across the campaign: every WNcHL m=1 champion of both halves with plasticity
# switched off after 100 control steps (5 s), intact and under the three conditions where robust
# training changed the most, on the same 20 held-out episodes as the campaign's stress tables.
# About 1.5 min per champion on one core; JSON in docs/robustness/frozen-m1/.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=docs/robustness/frozen-m1
mkdir -p "$out"
for half in ant-intact ant-randomized; do
  for s in 0 1 2 3 4; do
    nchl stress "experiments/robustness/archive/$half/ant-wnchl-m1-s$s/best.npz" --freeze-after 100 \
      --episodes 20 --conditions latency dead-motor leg-damage --workers 1 --json > "$out/$half-m1-s$s.json"
  done
done

#!/usr/bin/env bash
# Stress tables of the shipped champions, plastic and frozen after 100 steps, on 20 held-out episodes,
# every catalogue condition at its default strength; then events at step 500 (recovery).
# Writes docs/robustness/*.json and *.png. About 25 minutes on 2 cores; run with the venv active.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=docs/robustness
mkdir -p "$out"
for name in ant-nchl ant-wnchl-m2 ant-wnchl vsr-high-nchl; do
  nchl stress "zoo:$name" --episodes 20 --json --plot "$out/$name.png" > "$out/$name.json"
  nchl stress "zoo:$name" --episodes 20 --freeze-after 100 --json --plot "$out/$name-frozen100.png" \
    > "$out/$name-frozen100.json"
done
for name in ant-nchl ant-wnchl-m2; do
  for freeze in "" 100; do
    tag=$name-events${freeze:+-frozen$freeze}
    nchl stress "zoo:$name" --episodes 20 --onset 500 --conditions dead-motor leg-damage=0.5/1 mass friction \
      ${freeze:+--freeze-after $freeze} --json --plot "$out/$tag.png" > "$out/$tag.json"
  done
done

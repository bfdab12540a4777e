#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for nchl: the Cortex-M toolchain and emulator from
# Debian packages (only those missing), a virtualenv in .venv, and nchl installed into it.
#   bash setup.sh          # the package
#   bash setup.sh --test   # the package with its test dependencies (and the RISC-V toolchain)
set -euo pipefail
cd "$(dirname "$0")"
extra=""
[ "${1:-}" = "--test" ] && extra="[test]"
# host compilers (gcc; clang for the strict-compile tests), toolchain and emulator for Cortex-M; EGL (Mesa, software) and OSMesa for offscreen MuJoCo rendering
packages="make gcc clang libc6-dev gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6"
# --test also brings the RISC-V toolchain and emulator (fixed-point builds for rv32imc), which the main job does not need
[ "${1:-}" = "--test" ] && packages="$packages gcc-riscv64-unknown-elf qemu-system-misc"
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup.sh: installing Debian packages:$missing" >&2
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q ".$extra"

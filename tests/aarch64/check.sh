#!/usr/bin/env bash
# The aarch64 check (see tests/aarch64/check.py): fer-edge installed as the README's Raspberry Pi OS Lite block says,
# in an arm64 Debian 12 root built with mmdebstrap (cached in /var/cache/fer-edge-aarch64, outside the repository),
# run under qemu-user as a Cortex-A72 (Pi 4) and a Cortex-A76 (Pi 5): the no-torch test, `fer-edge run --image` on
# the group photo, `fer-edge evaluate` agreement with x86. Needs root, mmdebstrap, qemu-user-static, binfmt-support;
# without them it prints one "aarch64 check skipped: ..." line and exits 0 (--require: exit 2).
#   tests/aarch64/check.sh                          # 20 val faces per class, results in build/aarch64/
#   tests/aarch64/check.sh --full-val --out benchmarks/results/aarch64
set -euo pipefail
cd "$(dirname "$0")/../.."
exec "${PYTHON:-.venv/bin/python}" tests/aarch64/check.py "$@"

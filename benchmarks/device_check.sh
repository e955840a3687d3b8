#!/bin/bash
# The device check as one command on a lent GPU machine (/work/.library/device): installs
# the wheels `make device-wheels` put in .whl/ (benchmarks/device_setup.sh), then runs
# benchmarks.device_check, writing into $OUT (or benchmarks/results without one).
#   device run: command "bash benchmarks/device_check.sh", carry [".whl"], timeout_s 560
# (nothing new starts after 420 s; the files are rewritten as each part ends).
set -euo pipefail
out="${OUT:-benchmarks/results}"
source benchmarks/device_setup.sh
python3 -m benchmarks.device_check --out_dir="$out" --curve_seconds=60 \
  --deadline_seconds=420 "$@" 2>&1 | tee "$out/device_check.log"

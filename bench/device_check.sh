#!/usr/bin/env bash
# Run the test suite and the benchmarks on every OpenCL device present, and
# write each device's results beside this script (bench/results-device-<n>-<name>.txt),
# e.g. on a GPU machine:  bash bench/device_check.sh  (then commit the GPU's file
# as bench/results-gpu.txt). Set QUICK=0 for the full benchmark rounds.
# A simulator (Oclgrind: apt-get install oclgrind) gets tests/test_oclgrind.py
# only, the generated kernels under its checks; no benchmarks (it is slow).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT_DIR:-bench}
QUICK=${QUICK:-1}
quick=$([ "$QUICK" = 1 ] && echo --quick)

mapfile -t DEVICES < <("$PY" - <<'PY'
from fusec.runtime import broken_reason, is_simulator, list_devices
for platform, dev in list_devices():
    if broken_reason(dev) is None:
        print(f"{platform.name.strip()}\t{dev.name.strip()}\t{int(is_simulator(dev))}")
PY
)
if [ "${#DEVICES[@]}" -eq 0 ]; then
    echo "device_check: no usable OpenCL device" >&2
    exit 1
fi
status=0
for i in "${!DEVICES[@]}"; do
    IFS=$'\t' read -r platform name simulator <<<"${DEVICES[$i]}"
    slug=$(echo "$i-$name" | tr -c 'A-Za-z0-9\n-' '_' | cut -c1-60)
    file="$OUT/results-device-$slug.txt"
    # a device is chosen by a substring of its name (FUSEC_DEVICE); the full name is one
    export FUSEC_DEVICE="$name"
    {
        echo "== device $i: $platform: $name"
        echo "== $(date -u +%FT%TZ), $(uname -m), $(nproc) cores"
        "$PY" -m fusec devices
        if [ "$simulator" = 1 ]; then
            echo "== tests/test_oclgrind.py (a simulator: no benchmarks)"
            "$PY" -m pytest -q -p no:cacheprovider tests/test_oclgrind.py 2>&1 | tail -n 15
        else
            echo "== tests (tests/test_oclgrind.py has the simulator's own file)"
            "$PY" -m pytest -q -x -p no:cacheprovider --ignore=tests/test_oclgrind.py 2>&1 | tail -n 15
            echo "== bench/calls.py"
            "$PY" bench/calls.py $quick 2>&1
            echo "== bench/elementwise.py"
            "$PY" bench/elementwise.py $quick 2>&1 | tail -n 40
            echo "== bench/linear.py"
            "$PY" bench/linear.py $quick 2>&1 | tail -n 40
        fi
    } > "$file" 2>&1 || status=1
    echo "device_check: $name -> $file"
done
exit $status

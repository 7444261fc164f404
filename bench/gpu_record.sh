#!/usr/bin/env bash
# The speed record of a GPU machine: bench_trial.py and bench_population.py, each
# under a time limit, writing its JSON into OUT_DIR, with the device named
# (device.json). On a GPU machine, from the repository root, after
# `python -m pip install -e .`:
#
#     bash bench/gpu_record.sh DATA_DIR OUT_DIR
#
# then put the figures in docs/results.md with the device. DATA_DIR holds
# Fashion-MNIST's four idx files. Without a GPU it stops at once (exit 2);
# LOTTERY_TICKET_GPU_RECORD_ON_CPU=1 runs it anyway, and
# LOTTERY_TICKET_GPU_RECORD_QUICK=1 shrinks every size (how the tests try it).
# PYTHON names the interpreter (default: python3). Each benchmark runs even if the
# other failed; the script exits 1 if either did, printing the end of its log.
set -uo pipefail

usage="usage: bash bench/gpu_record.sh DATA_DIR OUT_DIR (DATA_DIR: Fashion-MNIST's idx files)"
if [ $# -ne 2 ]; then
  echo "error: $usage" >&2
  exit 2
fi
data=$1
out=$2
python=${PYTHON:-python3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ ! -d "$data" ]; then
  echo "error: no data directory $data; $usage" >&2
  exit 2
fi
if ! "$python" -c "import lottery_ticket" 2> /dev/null; then
  echo "error: $python cannot import lottery_ticket; install it first:" \
       "python -m pip install -e . (from the repository root), or set PYTHON." >&2
  exit 2
fi
mkdir -p "$out"

# The device, as TensorFlow and the driver name it; exit 3 when there is no GPU.
"$python" - "$out/device.json" <<'EOF'
import json, os, subprocess, sys
import tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
record = {"gpus": [tf.config.experimental.get_device_details(gpu) for gpu in gpus],
          "tensorflow": tf.__version__, "cpu_count": os.cpu_count()}
try:
    record["nvidia_smi"] = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv"],
        capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
except (OSError, subprocess.SubprocessError):
    record["nvidia_smi"] = None
with open(sys.argv[1], "w") as file:
    json.dump(record, file, indent=1)
sys.exit(0 if gpus or os.environ.get("LOTTERY_TICKET_GPU_RECORD_ON_CPU") == "1" else 3)
EOF
status=$?
if [ $status -eq 3 ]; then
  echo "error: TensorFlow sees no GPU here, and this record is for a GPU machine;" \
       "set LOTTERY_TICKET_GPU_RECORD_ON_CPU=1 to run it on this CPU anyway." >&2
  exit 2
elif [ $status -ne 0 ]; then
  echo "error: the device check failed (exit $status); see the Python error above." >&2
  exit 1
fi

if [ "${LOTTERY_TICKET_GPU_RECORD_QUICK:-0}" = 1 ]; then
  limit=600
  trial=(--levels=1 --iterations=100 --level_iterations=100 --densities=1.0,0.01)
  population=(--lenet_ks=1,2 --lenet_iterations=10 --tiny_networks=8 --tiny_iterations=10
              --tiny_singles=2 --jit=0 --paths=0 --sparse=1 --sparse_ks=2
              --sparse_densities=0.01 --sparse_iterations=10)
else
  # A whole 31-level trial of 1,000 iterations a level and the levels section at
  # its default densities; populations of 1 to 256 LeNets, dense and sparse. Each
  # is cut off after `limit` seconds, so that a slow device still leaves a record
  # of the other.
  limit=280
  trial=(--iterations=1000 --level_iterations=2000)
  population=(--lenet_ks=1,16,64,256 --sparse=1 --sparse_ks=16,64)
fi

failed=0
run() {  # run NAME ARGS...: writes OUT/NAME.json and OUT/NAME.log
  local name=$1
  shift
  if ! timeout "$limit" "$python" "$here/$name.py" "$@" > "$out/$name.json" 2> "$out/$name.log"; then
    echo "error: $name failed or ran past ${limit}s; the end of $out/$name.log:" >&2
    tail -n 20 "$out/$name.log" >&2
    failed=1
  fi
}
run bench_trial --data="$data" --sections=trial,levels "${trial[@]}"
run bench_population --data="$data" "${population[@]}"
if [ $failed -ne 0 ]; then
  exit 1
fi
echo "wrote $out/device.json, $out/bench_trial.json and $out/bench_population.json"

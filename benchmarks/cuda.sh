#!/usr/bin/env bash
# The CUDA tables and CUDA tests, on a machine with a CUDA device, from the repository root:
#
#     bash benchmarks/cuda.sh            # about 10 minutes on one GPU
#
# It runs the tests that need CUDA (they skip elsewhere), then writes efficiency_cuda.*,
# train_throughput_paper_cuda.* and train_throughput_cuda.* to benchmarks/results (or to the
# folder given as $1: each table then prints `--out <folder>` in its command).
# Each step runs even if an earlier one failed; the exit status is the first failure's.
set -u
out=()
[ $# -ge 1 ] && out=(--out "$1")
python=${PYTHON:-python3}
status=0
step() { echo "== $*"; "$@" || { rc=$?; echo "== failed ($rc): $*"; [ $status -ne 0 ] || status=$rc; }; }

step "$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())"
step "$python" -m pytest -q -p no:cacheprovider tests/test_factored_attention.py tests/test_ppo.py -k cuda
step "$python" -m benchmarks.train_throughput --device cuda --size paper "${out[@]}"
step "$python" -m benchmarks.train_throughput --device cuda "${out[@]}"
step "$python" -m benchmarks.efficiency --device cuda "${out[@]}"
exit $status

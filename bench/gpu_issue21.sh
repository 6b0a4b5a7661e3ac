#!/usr/bin/env bash
# Issue 21's accelerator measurements in one prepared run; outputs under $OUT (default /tmp/gpu21), tables last.
#   bash bench/gpu_issue21.sh            # on the GPU machine, from the repository root
#   TINY=1 bash bench/gpu_issue21.sh     # a smoke run at test sizes (any machine)
# 1. W4XL bfloat16: hand-written JAX vs deepcore (scanned, unrolled, XLA attention) vs PyTorch: step time, MFU.
# 2. W4LC (context 4096) bfloat16: deepcore (auto: cuDNN flash attention) vs XLA attention vs PyTorch SDPA.
# 3. Where deepcore's W4XL step spends its time: device kernels from a jax.profiler trace (bench/op_profile.py).
# 4. Peak temporary memory and step time per remat policy, W4XL bfloat16, scanned.
set -u
OUT=${OUT:-/tmp/gpu21}
mkdir -p "$OUT"
SIZE=""; PSIZE=""; [ "${TINY:-0}" = 1 ] && SIZE="--tiny" && PSIZE="--size tiny"
export PYTHONPATH=$PWD XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.6}
TORCH=",torch"; python -c "import torch" 2>/dev/null || TORCH=""
(nvidia-smi -L; python -c "import jax; print(jax.__version__, jax.devices())") > "$OUT/machine.txt" 2>&1
timeout 160 python bench/mfu.py --workload W4XL --dtype bfloat16 $SIZE --rounds 3 --steps 10 \
  --impls "pure_jax,deepcore,deepcore_unrolled,deepcore:implementation=xla$TORCH" --json "$OUT/w4xl.json" \
  > "$OUT/w4xl.txt" 2>&1
timeout 120 python bench/mfu.py --workload W4LC --dtype bfloat16 $SIZE --rounds 2 --steps 5 \
  --impls "pure_jax,deepcore,deepcore:implementation=xla$TORCH" --json "$OUT/w4lc.json" > "$OUT/w4lc.txt" 2>&1
for impl in deepcore pure_jax; do
  timeout 45 python bench/op_profile.py --impl $impl --workload W4XL --dtype bfloat16 --steps 3 $PSIZE --top 15 \
    > "$OUT/profile_$impl.txt" 2>&1
done
timeout 90 python bench/remat_policies.py --workload W4XL --dtype bfloat16 --layouts scan --steps 5 $SIZE \
  --policies none,dots_no_batch,names:mlp_hidden,attn_out,nothing --json "$OUT/remat.json" > "$OUT/remat.txt" 2>&1
for f in machine w4xl w4lc profile_deepcore profile_pure_jax remat; do
  echo "== $f"; grep -v "^{" "$OUT/$f.txt" | grep -iv "warning\|^ *$\|^W[0-9]*\|^I[0-9]" | tail -30
done

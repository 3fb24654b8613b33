#!/usr/bin/env bash
# Builds the `cachedit` CLI with the `cuda` feature on a machine that has neither a GPU nor a CUDA
# toolkit (see README "GPU"). The binary runs on a machine with an NVIDIA driver for CUDA 13.0
# (e.g. 580.x) and the cuBLAS/cuRAND/cudart 13 libraries on LD_LIBRARY_PATH.
#
#   tools/gpu/build-cuda.sh            # compute capability 90 (H100/H200)
#   CUDA_COMPUTE_CAP=89 tools/gpu/build-cuda.sh
#
# Environment: CUDA_VENV (default ~/.cache/cachedit/cuda-venv) is where the CUDA 13.0 wheels go;
# CARGO_TARGET_DIR is honoured.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${CUDA_VENV:-$HOME/.cache/cachedit/cuda-venv}
cap=${CUDA_COMPUTE_CAP:-90}
start=$(date +%s)

# 1. nvcc, nvvm, headers and the runtime libraries from PyPI. nvvm must match nvcc (13.0): a newer
#    nvvm emits PTX that ptxas 13.0 and a 13.0 driver reject.
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
"$venv/bin/pip" install -q \
  "nvidia-cuda-nvcc==13.0.88" "nvidia-nvvm==13.0.*" "nvidia-cuda-runtime==13.0.*" \
  "nvidia-cuda-crt==13.0.*" "nvidia-cuda-cccl==13.0.*" "nvidia-cublas==13.0.*" \
  "nvidia-curand==10.4.0.*" "nvidia-cuda-nvrtc==13.0.*"
cu=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')

# 2. The linker looks for unversioned names; the wheels ship only versioned ones.
for lib in cudart cublas cublasLt curand nvrtc; do
  real=$(ls "$cu/lib/lib$lib.so."* | grep -v builtins | head -n 1)
  ln -sf "$(basename "$real")" "$cu/lib/lib$lib.so"
done

# 3. libcuda (the driver) has no wheel: link against a stub that defines every `cu*` symbol the
#    driver bindings of cudarc declare. At run time the device's real libcuda.so.1 is loaded.
cd "$root"
cargo fetch --quiet
cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-*/ | sort -V | tail -n 1)
stub="$venv/libcuda-stub"
mkdir -p "$stub"
grep -ohE '^\s*fn cu[A-Za-z0-9_]+\(' "$cudarc"src/driver/sys/*.rs | sed -E 's/^\s*fn (cu[A-Za-z0-9_]+)\(/\1/' | sort -u \
  | awk '{print "void " $1 "(void) {}"}' > "$stub/stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub/libcuda.so" "$stub/stub.c"
echo "libcuda stub: $(wc -l < "$stub/stub.c") symbols from $(basename "$cudarc")"

# 4. Build.
PATH="$cu/bin:$PATH" CUDA_ROOT="$cu" CUDA_PATH="$cu" CUDA_COMPUTE_CAP="$cap" \
  LIBRARY_PATH="$cu/lib:$stub${LIBRARY_PATH:+:$LIBRARY_PATH}" \
  cargo build --release --features cuda --bin cachedit

bin="${CARGO_TARGET_DIR:-$root/target}/release/cachedit"
echo
echo "built:  $bin"
echo "size:   $(du -h "$bin" | cut -f1)"
echo "time:   $(( $(date +%s) - start )) s"
echo "needs:"
readelf -d "$bin" | awk '/NEEDED/ {print "  " $5}' | tr -d '[]'
echo "On the GPU machine: LD_LIBRARY_PATH=<site-packages>/nvidia/cu13/lib $bin bench --device cuda"

#!/usr/bin/env bash
# Build bidder with `--features cuda` (or only type-check it) on a machine with no GPU and no
# system CUDA: the CUDA toolkit comes from NVIDIA's PyPI wheels, so this works wherever PyPI and
# crates.io are reachable (a clean clone, CI, a developer's laptop).
#
#   scripts/check-cuda.sh            cargo build --release --locked --features cuda
#   scripts/check-cuda.sh --check    cargo check --locked --features cuda (what CI runs)
#
# Why: the CUDA build is what a GPU box serves, yet the CPU build and the test suite never compile
# it, so without this check it rots. candle's build scripts need nvcc and the CUDA headers even for
# `cargo check` (candle-kernels compiles its kernels in build.rs), and linking needs libcuda.so,
# which only a GPU driver ships: a link stub is generated here from cuda.h instead (as the
# toolkit's own lib/stubs/libcuda.so is), so the binary records libcuda.so.1 and the real driver
# supplies it at run time.
#
# Environment:
#   BIDDER_CUDA_CACHE  where the toolkit is installed and reused (default ~/.cache/bidder-cuda);
#                      one folder per CUDA version, installed once, about 1.2 GiB
#   CUDA_COMPUTE_CAP   the GPU generation the kernels are built for (default 90 = H100/H200;
#                      80 = A100, 86 = A10/RTX 30, 89 = L4/RTX 40): there is no GPU to ask
#   CARGO_TARGET_DIR   honoured as usual (default target/)
#
# Idempotent: a complete install in the cache is used as it is (no network); a partial one is
# started again. Needs python3 with pip, gcc and cargo.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

die() { echo "check-cuda: error: $*" >&2; exit 1; }
say() { echo "check-cuda: $*" >&2; }

mode=build
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument ${1}: use --check, or nothing for the release build" ;;
esac
[ $# -le 1 ] || die "one argument at most"

# CUDA 13.0 Update 2, one version throughout: the versions PyPI's cuda-toolkit==13.0.2 pins (the
# H100/H200 machines' driver runs CUDA 13.0). nvcc needs crt (host headers), nvvm (cicc) and the
# runtime (cuda.h, cuda_runtime.h, libcudart); candle-kernels includes thrust and cub (cccl); the
# link asks for cublas/cublasLt, curand and nvrtc (cudarc's dynamic linking, see candle-core).
cuda_version=13.0.2
packages=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
  nvidia-cublas==13.1.0.3
  nvidia-curand==10.4.0.35
  nvidia-cuda-nvrtc==13.0.88
)

cache=${BIDDER_CUDA_CACHE:-$HOME/.cache/bidder-cuda}
prefix=$cache/cuda-$cuda_version
stamp=$prefix/.complete
want=$(printf '%s\n' "${packages[@]}")

# Install once into a fresh folder, then move it into place: an interrupted run leaves no prefix
# that looks complete.
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  command -v python3 >/dev/null || die "python3 (with pip) is needed"
  command -v gcc >/dev/null || die "gcc is needed (nvcc's host compiler)"
  say "installing CUDA $cuda_version from PyPI into $prefix (about 1.2 GiB, once)"
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.install.XXXXXX")
  chmod 755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --root-user-action=ignore --only-binary=:all: --target "$tmp" "${packages[@]}"
  cu=$tmp/nvidia/cu13
  if [ ! -x "$cu/bin/nvcc" ] || [ ! -f "$cu/include/cuda.h" ]; then
    die "the wheels did not install nvcc and cuda.h under nvidia/cu13"
  fi

  # The wheels ship versioned libraries only (libcublas.so.13); the linker's -lcublas wants
  # libcublas.so. And no libcuda: generate a link stub from cuda.h, every driver API function
  # the header declares (with and without its _v2/_ptds renames) as an empty function, under
  # the real library's soname. It is never loaded: LD_LIBRARY_PATH does not name this folder.
  mkdir -p "$tmp/link"
  for lib in cudart:13 cublas:13 cublasLt:13 curand:10 nvrtc:13; do
    ln -s "../nvidia/cu13/lib/lib${lib%%:*}.so.${lib##*:}" "$tmp/link/lib${lib%%:*}.so"
    [ -e "$tmp/link/lib${lib%%:*}.so" ] || die "no lib${lib%%:*}.so.${lib##*:} in the wheels"
  done
  for defines in "" "-D__CUDA_API_VERSION_INTERNAL" "-DCUDA_API_PER_THREAD_DEFAULT_STREAM"; do
    # shellcheck disable=SC2086
    gcc -E -P $defines -I "$cu/include" -x c "$cu/include/cuda.h"
  done | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d '( \t' | sort -u \
    | sed 's/.*/void &(void) {}/' >"$tmp/link/libcuda-stub.c"
  [ "$(wc -l <"$tmp/link/libcuda-stub.c")" -gt 300 ] || die "too few driver functions in cuda.h"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$tmp/link/libcuda.so" "$tmp/link/libcuda-stub.c"

  printf '%s\n' "$want" >"$tmp/.complete"
  rm -rf "$prefix"
  mv "$tmp" "$prefix"
  trap - EXIT
fi

cuda_home=$prefix/nvidia/cu13
export CUDA_HOME=$cuda_home CUDA_PATH=$cuda_home CUDA_ROOT=$cuda_home
export PATH=$cuda_home/bin:$PATH
export LIBRARY_PATH=$prefix/link${LIBRARY_PATH:+:$LIBRARY_PATH}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
nvcc_release=$(nvcc --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
say "nvcc $nvcc_release ($cuda_home/bin/nvcc), kernels for sm_$CUDA_COMPUTE_CAP"

target_dir=${CARGO_TARGET_DIR:-$root/target}
start=$SECONDS
if [ "$mode" = check ]; then
  cargo check --locked --features cuda
  say "cargo check --features cuda passed in $((SECONDS - start)) s" \
    "(CUDA $cuda_version, sm_$CUDA_COMPUTE_CAP; --check builds no binary)"
else
  cargo build --release --locked --features cuda
  bin=$target_dir/release/bidder
  [ -x "$bin" ] || die "cargo succeeded but $bin is missing"
  say "built in $((SECONDS - start)) s: bidder with CUDA $cuda_version for sm_$CUDA_COMPUTE_CAP"
  say "  binary: $bin"
  say "  at run time it needs the NVIDIA driver's libcuda.so.1 (580 or newer for CUDA 13.0) and"
  say "  these libraries from the wheels (put their folder on LD_LIBRARY_PATH):"
  LD_LIBRARY_PATH=$cuda_home/lib ldd "$bin" \
    | awk -v d="$cuda_home/lib/" 'index($3, d) == 1 { print $3 }' \
    | while read -r lib; do say "    $(du -hL "$lib" | cut -f1)  $lib"; done
  say "  e.g. LD_LIBRARY_PATH=$cuda_home/lib $bin serve --device cuda ..."
fi

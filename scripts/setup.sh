#!/usr/bin/env bash
# scripts/setup.sh: install octa's dependencies from Debian packages, put the real MNIST and
# Fashion-MNIST where train_gpu looks for them (./data/MNIST/raw and ./data/FashionMNIST/raw,
# torchvision's layout), configure and build.
# Safe to run any number of times: it installs only what is missing and rebuilds incrementally.
#
#   scripts/setup.sh                 # everything, Release build in ./build
#   scripts/setup.sh --no-build      # dependencies and data only
#   BUILD_DIR=out scripts/setup.sh   # another build directory
#   CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=80" scripts/setup.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
do_build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) do_build=0 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- 1. Debian packages ------------------------------------------------------------------------
packages=(build-essential cmake pkg-config git catch2 libspdlog-dev libfmt-dev libcli11-dev
          nlohmann-json3-dev zlib1g-dev libssl-dev libcurl4-openssl-dev libopenblas-dev libomp-dev
          libpng-dev libturbojpeg0-dev python3
          clang-14 libclang-rt-14-dev  # libFuzzer for fuzz/ (scripts/fuzz.sh); the build is GCC
          openmpi-bin libopenmpi-dev)  # data-parallel training under mpirun (engine/dist/)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing: ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo_cmd=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "dependencies already installed"
fi

# Optional: Python's safetensors + numpy, for the test that PyTorch-side readers load our files.
if command -v python3 >/dev/null && ! python3 -c "import safetensors.numpy, numpy" 2>/dev/null; then
  if python3 -m pip install --quiet --disable-pip-version-check safetensors numpy 2>/dev/null; then
    say "installed Python safetensors + numpy (interop tests)"
  else
    say "Python safetensors/numpy not installable here: the interop tests will skip"
  fi
fi

# Optional: Chromium, for the test that opens the HTML report in a real headless browser (about
# 12 s to install here). Without it that test skips and says why.
if ! command -v chromium >/dev/null; then
  apt_cmd=(apt-get)
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null && apt_cmd=(sudo apt-get) || apt_cmd=()
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ((${#apt_cmd[@]})) &&
     { "${apt_cmd[@]}" install -y -qq --no-install-recommends chromium >/dev/null 2>&1 ||
       { "${apt_cmd[@]}" update -qq >/dev/null 2>&1 &&
         "${apt_cmd[@]}" install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; }; then
    say "installed chromium (report browser test)"
  else
    say "chromium not installable here: the report browser test will skip"
  fi
fi

# The CUDA toolkit is not a Debian package here: it is used when nvcc is found.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
if command -v nvcc >/dev/null; then
  say "CUDA toolkit: $(nvcc --version | tail -n 2 | head -n 1)"
else
  say "no CUDA toolkit (nvcc) found: building the CPU engine only"
fi

# --- 2. MNIST and Fashion-MNIST ------------------------------------------------------------------
# Each into torchvision's layout: data/MNIST/raw, data/FashionMNIST/raw.
files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz
       t10k-labels-idx1-ubyte.gz)
place_dataset() {  # place_dataset SHARED_NAME FOLDER TITLE
  local shared="$root/../shared/data/$1" raw="$root/data/$2/raw"
  if [ -d "$shared" ]; then
    mkdir -p "$raw"
    for f in "${files[@]}"; do
      if [ ! -f "$raw/$f" ] || ! cmp -s "$shared/$f" "$raw/$f"; then
        cp "$shared/$f" "$raw/$f.part" && mv "$raw/$f.part" "$raw/$f"
      fi
    done
    say "$3 in $raw (copied from ../shared/data/$1)"
  else
    say "no ../shared/data/$1: train_gpu will look in ./data and download $3 if it can"
  fi
}
place_dataset mnist MNIST MNIST
place_dataset fashion-mnist FashionMNIST Fashion-MNIST

# --- 3. Build -----------------------------------------------------------------------------------
if ((do_build)); then
  say "configuring and building in $build_dir"
  cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
  cmake --build "$build_dir" -j "$(nproc)"
  say "built: $build_dir/apps/train_gpu"
fi

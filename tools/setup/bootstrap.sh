#!/usr/bin/env bash
# Create or update .venv: Debian build tools when missing, the pinned Python requirements with the
# ROS 2 Jazzy wheels, and the fix those wheels need before CMake can build interfaces (DESIGN §4).
# Idempotent: a second run only re-checks.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv="$root/.venv"
python=${PYTHON:-python3}

# Debian packages, by the command each provides.
declare -A debian=([gcc]=gcc [g++]=g++ [cmake]=cmake [make]=make [dpkg-deb]=dpkg)
missing=()
for cmd in "${!debian[@]}"; do command -v "$cmd" >/dev/null || missing+=("${debian[$cmd]}"); done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

"$python" - <<'PY'
import sys
if not (3, 10) <= sys.version_info[:2] <= (3, 14):
    sys.exit(f"setup: Python {sys.version.split()[0]} found; the ROS 2 Jazzy wheels need 3.10 to 3.14")
PY

[ -x "$venv/bin/python" ] || { echo "setup: creating $venv"; "$python" -m venv "$venv"; }
# Variables of another interpreter's ROS wheel bootstrap must not leak into this venv's Python.
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE LD_LIBRARY_PATH
echo "setup: installing pinned Python requirements"
# Every requirements file, except: constraints.txt (pins only), no-deps.txt (installed without
# dependencies), venv-*.txt (separate virtual environments, see their own scripts) and robot.txt
# (a robot's apt ROS install: NumPy 1 and NVIDIA's torch, README "On the robot").
req="$root/requirements"
files=()
for f in "$req"/*.txt; do
  case "$(basename "$f")" in constraints.txt|no-deps.txt|venv-*.txt|robot.txt) ;; *) files+=(-r "$f") ;; esac
done
# Packages built from source (llama-cpp-python: llama.cpp, ~8 min on 2 cores) build on every core.
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
# On x86, llama.cpp for a portable AVX2 CPU rather than -march=native: a native build on a CPU with AMX
# takes ggml's AMX path, which crashes on any prompt of more than one token (seen in a VM on a Sapphire
# Rapids host). CMAKE_ARGS set by the caller (e.g. -DGGML_CUDA=on) wins.
[ "$(uname -m)" = x86_64 ] && export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -c "$req/constraints.txt" "${files[@]}"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$req/no-deps.txt"

# Fix: the wheels' generator exports name the include directories of the machine that built them.
"$venv/bin/python" - <<'PY'
import re
import sys
import sysconfig
from pathlib import Path

import numpy

python_include = sysconfig.get_paths()["include"]
numpy_include = numpy.get_include()
build_root = r"/opt/python/cp3\d+-cp3\d+"
patterns = [
    (re.compile(build_root + r"/lib/python3\.\d+/site-packages/numpy/_core/include"), numpy_include),
    (re.compile(build_root + r"/include/python3\.\d+"), python_include),
]
fixed = 0
for path in Path(sys.prefix, "share").glob("*/cmake/*generator_pyExport.cmake"):
    text = original = path.read_text()
    for pattern, replacement in patterns:
        text = pattern.sub(replacement, text)
    if text != original:
        path.write_text(text)
        fixed += 1
if fixed:
    print(f"setup: pointed {fixed} generator exports at {python_include} and {numpy_include}")
PY

#!/usr/bin/env bash
# Build msg/ and srv/ with CMake (rosidl) from the pip wheels and install them into .venv, which
# makes `humanoid_stack.msg` importable with no extra variables. The Python packages themselves
# are installed editable afterwards, so the copies CMake installs are removed here.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv="$root/.venv"
build="$root/build/interfaces"
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv" PATH="$venv/bin:$PATH"
mkdir -p "$root/build"
echo "setup: building interfaces (CMake, about a minute the first time)"
cmake -S "$root" -B "$build" -DCMAKE_INSTALL_PREFIX="$venv" -DPython3_EXECUTABLE="$venv/bin/python" \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >"$build.log" 2>&1 \
  || { tail -n 30 "$build.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" >>"$build.log" 2>&1 || { tail -n 30 "$build.log"; exit 1; }
cmake --install "$build" >>"$build.log" 2>&1 || { tail -n 30 "$build.log"; exit 1; }
# Keep only the generated interface package (humanoid_stack) of what CMake put in site-packages.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
sed -n "s#^$site/\([^/]*\)/.*#\1#p" "$build/install_manifest.txt" | sort -u | grep -v '^humanoid_stack[-.]' \
  | grep -vx humanoid_stack | while read -r top; do rm -rf "${site:?}/$top"; done

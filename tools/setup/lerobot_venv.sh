#!/usr/bin/env bash
# Create .venv-lerobot: the separate virtual environment the vla_node's LeRobot backend runs its
# worker in (vla_node/lerobot_worker.py). lerobot 0.4.4 pins torch < 2.11, the main .venv has a newer
# torch, so the two cannot share one environment. Idempotent: does nothing when the installed
# requirements match requirements/venv-lerobot.txt. Needs PyPI; about 5 GB (torch is a CUDA build).
#
#   tools/setup/lerobot_venv.sh            # create or update
#   PYTHON=python3.11 tools/setup/lerobot_venv.sh
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$repo/.venv-lerobot"
requirements="$repo/requirements/venv-lerobot.txt"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "lerobot venv: up to date ($venv)"
    exit 0
fi

# The wheels' bootstrapper of the main venv must not leak into this one (DESIGN §4).
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE LD_LIBRARY_PATH

echo "lerobot venv: creating $venv from $requirements (several GB on the first run)"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --progress-bar on -r "$requirements"
"$venv/bin/python" -c "import lerobot, torch; print('lerobot venv: lerobot', lerobot.__version__, 'torch', torch.__version__)"
echo "$want" > "$stamp"

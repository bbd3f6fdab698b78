# Sourced by scripts/serve and scripts/test: make sure .venv exists and holds the current project.
# (Re)installs when .venv is missing or pyproject.toml is newer than the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.memq-installed"
python="${MEMQ_PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ] || [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    echo "scripts: setting up $venv" >&2
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[${MEMQ_EXTRAS:-dev}]"
    touch "$stamp"
fi
# Bytecode for memq itself: `memq hook` starts on every tool call, and compiling its modules
# from source each time (PYTHONDONTWRITEBYTECODE=1 environments never cache it) would
# double its start-up. compileall skips files whose bytecode is current.
if [ -d "$root/memq" ]; then
    "$venv/bin/python" -m compileall -q "$root/memq" >/dev/null || true
fi
export PATH="$venv/bin:$PATH"
cd "$root"

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
export PATH="$venv/bin:$PATH"
cd "$root"

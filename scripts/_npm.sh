# Sourced by scripts/test: install the assistants' CLIs from npm, each into
# .cache/npm/<name> (git-ignored), for the end-to-end tests (tests/e2e). Never fails the run:
# when npm or the registry cannot be had, it writes why into .cache/npm/<name>/unavailable.txt
# and that CLI's tests skip, saying so (tests/helpers/npm_cli.py reads it).
#
#   MEMQ_CLAUDE_CODE_VERSION=2.1.197 scripts/test   # another version than npm's choice
#   MEMQ_CLAUDE_CODE_SKIP=1 scripts/test            # do not install that CLI at all
#   (the same with MEMQ_CODEX_*, MEMQ_GEMINI_CLI_*, MEMQ_OPENCODE_*)
#
# An installed CLI is kept; a different version asks for a new install.

_npm_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# _npm_cli NAME PACKAGE BIN VARIABLE_PREFIX
_npm_cli() {
    local name="$1" package="$2" bin="$3" prefix_var="$4"
    local version_var="${prefix_var}_VERSION" skip_var="${prefix_var}_SKIP"
    local prefix="$_npm_root/.cache/npm/$name"
    local spec="$package${!version_var:+@${!version_var}}"
    local reason="$prefix/unavailable.txt" stamp="$prefix/installed-spec.txt"
    local log="$prefix/install.log"
    mkdir -p "$prefix"
    _npm_unavailable() {
        rm -f "$stamp"  # try again next time
        echo "$1" >"$reason"
        echo "scripts: $name CLI not installed ($1); its end-to-end tests will skip" >&2
    }
    if [ -n "${!skip_var:-}" ]; then
        _npm_unavailable "$skip_var is set"
        return 0
    fi
    if [ -x "$prefix/node_modules/.bin/$bin" ] && [ -f "$stamp" ] \
        && [ "$(cat "$stamp")" = "$spec" ]; then
        rm -f "$reason"
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        _npm_unavailable "npm is not on PATH"
        return 0
    fi
    echo "scripts: installing $spec into $prefix" >&2
    if ! timeout 600 npm install --prefix "$prefix" --no-audit --no-fund --no-save \
        --loglevel=error "$spec" >"$log" 2>&1; then
        _npm_unavailable "npm install $spec failed: $(tail -n 3 "$log" | tr '\n' ' ')"
        return 0
    fi
    if ! "$prefix/node_modules/.bin/$bin" --version >>"$log" 2>&1; then
        _npm_unavailable "the installed $bin does not run: $(tail -n 2 "$log" | tr '\n' ' ')"
        return 0
    fi
    echo "$spec" >"$stamp"
    rm -f "$reason"
}

# Never fails the run: a CLI that cannot be had makes its tests skip instead.
_npm_cli claude-code @anthropic-ai/claude-code claude MEMQ_CLAUDE_CODE || true
_npm_cli codex @openai/codex codex MEMQ_CODEX || true
_npm_cli gemini-cli @google/gemini-cli gemini MEMQ_GEMINI_CLI || true
_npm_cli opencode opencode-ai opencode MEMQ_OPENCODE || true

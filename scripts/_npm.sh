# Sourced by scripts/test: install the Claude Code CLI from npm into .cache/npm (git-ignored)
# for the end-to-end test (tests/e2e). Never fails the run: when npm or the registry cannot
# be had, it writes why into .cache/npm/unavailable.txt and the test skips, saying so.
#
#   MEMQ_CLAUDE_CODE_VERSION=2.1.197 scripts/test    # another version than npm's choice
#   MEMQ_CLAUDE_CODE_SKIP=1 scripts/test             # do not touch npm at all
#
# An installed CLI is kept; a different MEMQ_CLAUDE_CODE_VERSION installs that one.

_npm_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_npm_prefix="$_npm_root/.cache/npm"
_npm_spec="@anthropic-ai/claude-code${MEMQ_CLAUDE_CODE_VERSION:+@$MEMQ_CLAUDE_CODE_VERSION}"
_npm_reason="$_npm_prefix/unavailable.txt"
_npm_stamp="$_npm_prefix/installed-spec.txt"

_npm_unavailable() {
    mkdir -p "$_npm_prefix"
    rm -f "$_npm_stamp"  # try again next time
    echo "$1" >"$_npm_reason"
    echo "scripts: Claude Code CLI not installed ($1); its end-to-end test will skip" >&2
}

_npm_install() {
    if [ -n "${MEMQ_CLAUDE_CODE_SKIP:-}" ]; then
        _npm_unavailable "MEMQ_CLAUDE_CODE_SKIP is set"
        return 0
    fi
    if [ -x "$_npm_prefix/node_modules/.bin/claude" ] && [ -f "$_npm_stamp" ] \
        && [ "$(cat "$_npm_stamp")" = "$_npm_spec" ]; then
        rm -f "$_npm_reason"
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        _npm_unavailable "npm is not on PATH"
        return 0
    fi
    mkdir -p "$_npm_prefix"
    echo "scripts: installing $_npm_spec into $_npm_prefix" >&2
    local log="$_npm_prefix/install.log"
    if ! timeout 600 npm install --prefix "$_npm_prefix" --no-audit --no-fund --no-save \
        --loglevel=error "$_npm_spec" >"$log" 2>&1; then
        _npm_unavailable "npm install $_npm_spec failed: $(tail -n 3 "$log" | tr '\n' ' ')"
        return 0
    fi
    if ! "$_npm_prefix/node_modules/.bin/claude" --version >>"$log" 2>&1; then
        _npm_unavailable "the installed claude does not run: $(tail -n 2 "$log" | tr '\n' ' ')"
        return 0
    fi
    echo "$_npm_spec" >"$_npm_stamp"
    rm -f "$_npm_reason"
}

_npm_install || true  # never fails the run: the test skips instead

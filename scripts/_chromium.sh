# Sourced by scripts/test: Debian's Chromium for the browser tests (tests/browser), installed
# with apt when /usr/bin/chromium is missing and we are root with apt-get (as CI is). Never
# fails the run: without a Chromium the browser tests skip, and this says so in one line.
#
#   MEMQ_CHROMIUM_SKIP=1 scripts/test    # do not touch apt at all

_chromium_skipped() {
    echo "scripts: browser tests (tests/browser) will be skipped: $1" >&2
}

_chromium_install() {
    if [ -n "${MEMQ_CHROMIUM:-}" ] || [ -x /usr/bin/chromium ]; then
        return 0
    fi
    if [ -n "${MEMQ_CHROMIUM_SKIP:-}" ]; then
        _chromium_skipped "no /usr/bin/chromium and MEMQ_CHROMIUM_SKIP is set"
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        _chromium_skipped "no /usr/bin/chromium (as root: apt-get install chromium)"
        return 0
    fi
    echo "scripts: installing chromium with apt-get for the browser tests" >&2
    local log
    log="$(mktemp)"
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } \
        >"$log" 2>&1 || [ ! -x /usr/bin/chromium ]; then
        _chromium_skipped "apt-get install chromium failed: $(tail -n 1 "$log")"
    fi
    rm -f "$log"
}

_chromium_install || true  # never fails the run: the browser tests skip instead

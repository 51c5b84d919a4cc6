# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this
# Sourced by scripts/tools*.sh: where built binaries are cached and installed, and how Go builds run.
# Set TOOLS_LOG_TAG before sourcing to name the script in log lines.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN_DIR="$ROOT/.tools/bin"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/floodgate/tools"
BUILD_PARALLELISM="${FLOODGATE_TOOLS_JOBS:-2}"

export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOFLAGS="-buildvcs=false"
# GOPATH / GOMODCACHE / GOCACHE stay at their defaults so downloads and compiled packages survive
# between runs and clones.

log() { printf '[%s] %s\n' "${TOOLS_LOG_TAG:-tools}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- shared by the build scripts ---------------------------------------------------------------------

cached_path() { printf '%s/%s-%s/%s' "$CACHE_ROOT" "$1" "$2" "$1"; } # name version

elapsed() { # start-seconds
    local s=$((SECONDS - $1))
    printf '%dm%02ds' $((s / 60)) $((s % 60))
}

new_workdir() { mktemp -d "${TMPDIR:-/tmp}/floodgate-tools.XXXXXX"; }

# Runs a go command with its chatter in $WORK_LOG; on failure shows the tail and keeps the work dir.
quiet() {
    if ! "$@" >>"$WORK_LOG" 2>&1; then
        tail -n 60 "$WORK_LOG" >&2
        die "failed: $* (full log: $WORK_LOG)"
    fi
}

# Moves a freshly built binary into the cache atomically (a half-written binary is never cached).
store() { # name version built-file
    local dest_dir
    dest_dir="$(dirname "$(cached_path "$1" "$2")")"
    mkdir -p "$dest_dir"
    mv -f "$3" "$dest_dir/.$1.tmp"
    mv -f "$dest_dir/.$1.tmp" "$dest_dir/$1"
}

install_bin() { # name version: link the cached binary into .tools/bin
    local src
    src="$(cached_path "$1" "$2")"
    ln -sfn "$src" "$BIN_DIR/$1"
    log "$1 $2 -> .tools/bin/$1 ($(du -h "$src" | cut -f1))"
}

ensure() { # name version builder: build unless cached, then link
    if [[ ! -x "$(cached_path "$1" "$2")" ]]; then
        # Several clones / CI runs may call this at once: one build per builder+version at a time,
        # and whoever waited finds the binary cached afterwards.
        exec 9>"$CACHE_ROOT/.lock-$3-$2"
        if command -v flock >/dev/null 2>&1; then flock 9; fi
        if [[ ! -x "$(cached_path "$1" "$2")" ]]; then
            "$3"
            [[ -x "$(cached_path "$1" "$2")" ]] || die "$1 $2 was not built"
        fi
        exec 9>&-
    else
        log "$1 $2 cached"
    fi
    install_bin "$1" "$2"
}

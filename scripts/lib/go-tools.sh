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

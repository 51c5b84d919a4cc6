#!/usr/bin/env bash
# Builds Jaeger (all-in-one: OTLP receiver + in-memory storage + query API) from the Go module proxy with
# the ordinary `go` command, caches it per user OUTSIDE the clone keyed by version, and links it into
# .tools/bin/jaeger (gitignored). The trace tests (tests/integration/telemetry) run it.
#
#   scripts/tools-jaeger.sh
#
# Cache layout: ${XDG_CACHE_HOME:-$HOME/.cache}/floodgate/tools/jaeger-<version>/jaeger
# A cached binary is never rebuilt; bumping the version below rebuilds it. Idempotent, safe to run
# concurrently (one build per version at a time).
set -euo pipefail

JAEGER_VERSION="v1.76.0" # github.com/jaegertracing/jaeger: cmd/jaeger is the OTel-collector-based all-in-one

TOOLS_LOG_TAG=tools-jaeger
# shellcheck source=scripts/lib/go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-tools.sh"
CACHED="$CACHE_ROOT/jaeger-$JAEGER_VERSION/jaeger"

build() {
    local work start
    start=$SECONDS
    work="$(mktemp -d "${TMPDIR:-/tmp}/floodgate-jaeger.XXXXXX")"
    log "building jaeger $JAEGER_VERSION (cold) in $work"
    local gomod
    gomod="$(cd "$work" && go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_VERSION" |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
    [[ -f "$gomod" ]] || die "could not download github.com/jaegertracing/jaeger@$JAEGER_VERSION"
    (
        cd "$work"
        # `go install pkg@version` refuses modules with replace directives (jaeger pins sarama that way):
        # build from a throwaway main module that carries jaeger's replace lines verbatim instead.
        go mod init floodgate.local/tools/jaeger >/dev/null 2>&1
        sed -n '/^replace (/,/^)/p; /^replace [^(]/p' "$gomod" >>go.mod
        go get "github.com/jaegertracing/jaeger@$JAEGER_VERSION"
        go build -mod=mod -p "$BUILD_PARALLELISM" -trimpath -ldflags "-s -w" \
            -o "$work/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
    )
    mkdir -p "$(dirname "$CACHED")"
    # Atomic: a half-written binary is never found in the cache.
    mv -f "$work/jaeger" "$CACHED.tmp"
    mv -f "$CACHED.tmp" "$CACHED"
    rm -rf "$work"
    local s=$((SECONDS - start))
    log "jaeger $JAEGER_VERSION cold build took $((s / 60))m$(printf '%02d' $((s % 60)))s"
}

command -v go >/dev/null 2>&1 || die "the 'go' command is required"
mkdir -p "$BIN_DIR" "$CACHE_ROOT"
if [[ ! -x "$CACHED" ]]; then
    exec 9>"$CACHE_ROOT/.lock-jaeger-$JAEGER_VERSION"
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    [[ -x "$CACHED" ]] || build
    exec 9>&-
else
    log "jaeger $JAEGER_VERSION cached"
fi
ln -sfn "$CACHED" "$BIN_DIR/jaeger"
log "jaeger $JAEGER_VERSION -> .tools/bin/jaeger ($(du -h "$CACHED" | cut -f1))"

#!/usr/bin/env bash
# Builds skaffold (and the helm 3 it needs) from the Go module proxy with the ordinary `go` command, caches it per user OUTSIDE the
# clone keyed by version, and links it into .tools/bin (gitignored). Used by the chart tests to validate
# skaffold.yaml with skaffold itself (`skaffold diagnose`, `skaffold render --offline`).
#
#   scripts/tools-skaffold.sh
#
# Cache layout: ${XDG_CACHE_HOME:-$HOME/.cache}/floodgate/tools/skaffold-<version>/skaffold
#               ${XDG_CACHE_HOME:-$HOME/.cache}/floodgate/tools/helm3-<version>/helm
# Run skaffold as `PATH="$PWD/.tools/helm3:$PATH" .tools/bin/skaffold …`.
# A cached binary is never rebuilt. A cold build takes ~10-20 min on 2 cores (skaffold pulls in the
# docker, buildpacks and cloud SDKs); the Go build cache makes a rebuild of the same version fast.
# The JSON schema of skaffold.yaml's version ships in the same module: it is cached beside the binary
# and linked to .tools/share/skaffold/<schema>.json, so the tests can also check the file against it.
# Run from the repository root (`make tools` does).
set -euo pipefail

# --- pinned version --------------------------------------------------------------------------------
# v2.16.1 is the newest release the module proxy serves here; its newest config schema is
# skaffold/v4beta13, which is what skaffold.yaml declares. Bump both together.
SKAFFOLD_VERSION="v2.16.1"
SKAFFOLD_SCHEMA="v4beta13"
# skaffold 2.16 drives `helm version --client` and executable post-renderers, both gone in helm 4:
# it gets a helm 3 of its own, first on its PATH (.tools/helm3/helm); the tests use helm 4 otherwise.
HELM3_VERSION="v3.19.0"
# ---------------------------------------------------------------------------------------------------

# shellcheck source=scripts/lib/go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-tools.sh"
MODULE="github.com/GoogleContainerTools/skaffold/v2"

command -v go >/dev/null 2>&1 || die "the 'go' command is required"
mkdir -p "$BIN_DIR" "$CACHE_ROOT"

dest_dir="$CACHE_ROOT/skaffold-$SKAFFOLD_VERSION"
cached="$dest_dir/skaffold"
cached_schema="$dest_dir/$SKAFFOLD_SCHEMA.json"

module_dir() { # prints the module's source directory (downloading it if needed)
    local info dir
    info="$(cd "${TMPDIR:-/tmp}" && go mod download -json "$MODULE@$SKAFFOLD_VERSION")" ||
        die "could not download $MODULE@$SKAFFOLD_VERSION: $info"
    dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")"
    [[ -d "$dir" ]] || die "no module directory in: $info"
    printf '%s\n' "$dir"
}

build() {
    local start=$SECONDS work src info_file date commit ldflags pkg="$MODULE/pkg/skaffold/version"
    work="$(mktemp -d "${TMPDIR:-/tmp}/floodgate-tools.XXXXXX")"
    log "building skaffold $SKAFFOLD_VERSION (not cached) in $work"
    src="$(module_dir)"
    # The proxy records the release's time and commit: stamp them as skaffold's own Makefile does.
    info_file="$(go env GOMODCACHE)/cache/download/github.com/!google!container!tools/skaffold/v2/@v/$SKAFFOLD_VERSION.info"
    date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info_file" 2>/dev/null || true)"
    commit="$(sed -n 's/.*"Hash":"\([0-9a-f]*\)".*/\1/p' "$info_file" 2>/dev/null || true)"
    # skaffold's go.mod has replace directives, which `go install module@version` refuses: build it as the
    # main module from a writable copy of its source instead (so the replaces apply, as in its Makefile).
    cp -r "$src" "$work/src"
    chmod -R u+w "$work/src"
    ldflags="-s -w -X $pkg.version=$SKAFFOLD_VERSION -X $pkg.buildDate=${date:-unknown} -X $pkg.gitCommit=$commit"
    if ! (cd "$work/src" && go build -mod=mod -p "$BUILD_PARALLELISM" -trimpath \
        -tags "timetzdata osusergo netgo release" -ldflags "$ldflags" \
        -o "$work/skaffold" ./cmd/skaffold) >"$work/build.log" 2>&1; then
        tail -n 60 "$work/build.log" >&2
        die "skaffold build failed (full log: $work/build.log)"
    fi
    mkdir -p "$dest_dir"
    mv -f "$work/skaffold" "$dest_dir/.skaffold.tmp"
    mv -f "$dest_dir/.skaffold.tmp" "$cached"
    rm -rf "$work"
    log "skaffold $SKAFFOLD_VERSION build took $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s"
}

if [[ ! -x "$cached" ]]; then
    # Several clones / CI runs may call this at once: one build at a time, the waiter finds it cached.
    exec 9>"$CACHE_ROOT/.lock-skaffold-$SKAFFOLD_VERSION"
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    [[ -x "$cached" ]] || build
    exec 9>&-
else
    log "skaffold $SKAFFOLD_VERSION cached"
fi
ln -sfn "$cached" "$BIN_DIR/skaffold"
if [[ ! -f "$cached_schema" ]]; then
    src="$(module_dir)/docs-v2/content/en/schemas/$SKAFFOLD_SCHEMA.json"
    [[ -f "$src" ]] || die "skaffold $SKAFFOLD_VERSION ships no $SKAFFOLD_SCHEMA schema ($src)"
    mkdir -p "$dest_dir"
    cp "$src" "$cached_schema.tmp" && mv -f "$cached_schema.tmp" "$cached_schema"
fi
mkdir -p "$ROOT/.tools/share/skaffold"
ln -sfn "$cached_schema" "$ROOT/.tools/share/skaffold/$SKAFFOLD_SCHEMA.json"
log "skaffold $SKAFFOLD_VERSION -> .tools/bin/skaffold ($(du -h "$cached" | cut -f1))"

helm3_dir="$CACHE_ROOT/helm3-$HELM3_VERSION"
if [[ ! -x "$helm3_dir/helm" ]]; then
    exec 9>"$CACHE_ROOT/.lock-helm3-$HELM3_VERSION"
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    if [[ ! -x "$helm3_dir/helm" ]]; then
        start=$SECONDS
        work="$(mktemp -d "${TMPDIR:-/tmp}/floodgate-tools.XXXXXX")"
        log "building helm $HELM3_VERSION for skaffold (not cached) in $work"
        pkg=helm.sh/helm/v3
        # What helm's own Makefile stamps for a release tag.
        ldflags="-s -w -X $pkg/internal/version.version=$HELM3_VERSION -X $pkg/internal/version.metadata="
        ldflags+=" -X $pkg/internal/version.gitTreeState=clean"
        if ! (cd "$work" && GOBIN="$work" go install -p "$BUILD_PARALLELISM" -trimpath \
            -ldflags "$ldflags" "$pkg/cmd/helm@$HELM3_VERSION") >"$work/build.log" 2>&1; then
            tail -n 60 "$work/build.log" >&2
            die "helm $HELM3_VERSION build failed (full log: $work/build.log)"
        fi
        mkdir -p "$helm3_dir"
        mv -f "$work/helm" "$helm3_dir/.helm.tmp"
        mv -f "$helm3_dir/.helm.tmp" "$helm3_dir/helm"
        rm -rf "$work"
        log "helm $HELM3_VERSION build took $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s"
    fi
    exec 9>&-
else
    log "helm $HELM3_VERSION (for skaffold) cached"
fi
mkdir -p "$ROOT/.tools/helm3"
ln -sfn "$helm3_dir/helm" "$ROOT/.tools/helm3/helm"
log "helm $HELM3_VERSION -> .tools/helm3/helm"

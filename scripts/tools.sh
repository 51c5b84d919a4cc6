#!/usr/bin/env bash
# Builds the external binaries the k8s tests need (etcd, the Kubernetes binaries, helm) from the Go
# module proxy with the ordinary `go` command, caches them per user OUTSIDE the clone keyed by version,
# and installs them into .tools/bin (gitignored).
#
#   scripts/tools.sh               # all tools
#   scripts/tools.sh helm etcd     # only these (names: etcd helm and the KUBE_BINARIES below)
#
# Cache layout: ${XDG_CACHE_HOME:-$HOME/.cache}/floodgate/tools/<name>-<version>/<name>
# A cached binary is never rebuilt; bumping a version below rebuilds that tool only.
# Run from the repository root (`make tools` does).
set -euo pipefail

# --- pinned versions -------------------------------------------------------------------------------
ETCD_VERSION="v3.6.16"         # go.etcd.io/etcd/server/v3 (kube-apiserver 1.36 needs etcd >= 3.5.11)
KUBERNETES_VERSION="v1.36.3"   # k8s.io/kubernetes: every binary in KUBE_BINARIES
HELM_VERSION="v4.3.1"          # helm.sh/helm/v4
# The control plane and the node of the test cluster (scripts/cluster.sh), all from k8s.io/kubernetes.
KUBE_BINARIES=(kube-apiserver kubectl kubelet kube-proxy kube-scheduler kube-controller-manager)
# ---------------------------------------------------------------------------------------------------

# shellcheck source=scripts/lib/go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-tools.sh"

MIN_GO_MINOR=26 # k8s.io/kubernetes v1.36 and helm v4.3 declare `go 1.26.0`; GOTOOLCHAIN=local won't fetch one
command -v go >/dev/null 2>&1 || die "the 'go' command (>= 1.$MIN_GO_MINOR) is required"
go_version="$(go env GOVERSION)" # e.g. go1.26.8
go_minor="${go_version#go1.}"
go_minor="${go_minor%%[!0-9]*}"
((go_minor >= MIN_GO_MINOR)) || die "$go_version is too old: these modules need go >= 1.$MIN_GO_MINOR"
mkdir -p "$BIN_DIR" "$CACHE_ROOT"

build_etcd() {
    local v="$ETCD_VERSION" work start
    start=$SECONDS
    work="$(new_workdir)"
    log "building etcd $v (not cached) in $work"
    (
        cd "$work"
        # Throwaway module that requires the server module: etcd's own replace lines do not apply to a
        # dependent, so every etcd module resolves to its published version.
        WORK_LOG="$work/build.log"
        quiet go mod init floodgate.local/tools/etcd
        quiet go get "go.etcd.io/etcd/server/v3@$v"
        quiet go build -mod=mod -p "$BUILD_PARALLELISM" -trimpath \
            -ldflags "-s -w" -o "$work/etcd" go.etcd.io/etcd/server/v3
    )
    store etcd "$v" "$work/etcd"
    rm -rf "$work"
    log "etcd $v build took $(elapsed "$start")"
}

# Builds every Kubernetes binary not yet cached, from one module in ONE `go build`: the packages they
# share (client-go, apimachinery, the api types) compile once and the links run in parallel.
build_kubernetes() {
    local v="$KUBERNETES_VERSION" work start gomod info staging major minor date ldflags name
    local -a replaces=() missing=() pkgs=()
    for name in "${KUBE_BINARIES[@]}"; do
        [[ -x "$(cached_path "$name" "$v")" ]] || missing+=("$name")
    done
    ((${#missing[@]} > 0)) || return 0
    start=$SECONDS
    work="$(new_workdir)"
    major="${v#v}"; major="${major%%.*}"
    minor="${v#v*.}"; minor="${minor%%.*}"
    # Staging modules are published as v0.<minor>.<patch> for kubernetes v1.<minor>.<patch>.
    staging="v0.${v#v*.}"
    log "building ${missing[*]} $v (not cached; staging modules at $staging) in $work"
    info="$(cd "$work" && go mod download -json "k8s.io/kubernetes@$v")" ||
        die "could not download k8s.io/kubernetes@$v"
    gomod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")"
    [[ -f "$gomod" ]] || die "no go.mod for k8s.io/kubernetes@$v in: $info"
    # The proxy knows the release's time (not its commit): use it as the build date.
    date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "${gomod%.mod}.info")"
    # k8s.io/kubernetes replaces each staging module with ./staging/src/...; a dependent cannot use those
    # local paths, so point every one of them at its published version instead.
    while read -r mod; do
        replaces+=("-replace=$mod=$mod@$staging")
    done < <(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod")
    ((${#replaces[@]} > 0)) || die "found no staging replace directives in $gomod"
    log "replacing ${#replaces[@]} staging modules with $staging"
    ldflags="-s -w"
    for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        ldflags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit= -X $pkg.buildDate=${date:-unknown}"
    done
    (
        cd "$work"
        WORK_LOG="$work/build.log"
        quiet go mod init floodgate.local/tools/kubernetes
        quiet go mod edit "${replaces[@]}"
        # The main module's godebug settings govern the binary: keep kubernetes' own.
        if grep -q '^godebug ' "$gomod"; then
            grep '^godebug ' "$gomod" >>go.mod
        fi
        quiet go get "k8s.io/kubernetes@$v"
        for name in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$name"); done
        mkdir -p "$work/out"
        quiet go build -mod=mod -p "$BUILD_PARALLELISM" -trimpath -ldflags "$ldflags" -o "$work/out/" "${pkgs[@]}"
    )
    for name in "${missing[@]}"; do store "$name" "$v" "$work/out/$name"; done
    rm -rf "$work"
    log "${missing[*]} $v build took $(elapsed "$start")"
}

build_helm() {
    local v="$HELM_VERSION" work start
    start=$SECONDS
    work="$(new_workdir)"
    log "building helm $v (not cached)"
    local pkg=helm.sh/helm/v4
    # What helm's own Makefile stamps for a release tag (go install alone would report "v4.3").
    local ldflags="-s -w -X $pkg/internal/version.version=$v -X $pkg/internal/version.metadata="
    ldflags+=" -X $pkg/internal/version.gitTreeState=clean"
    (
        cd "$work"
        WORK_LOG="$work/build.log"
        quiet env GOBIN="$work" go install -p "$BUILD_PARALLELISM" -trimpath -ldflags "$ldflags" "$pkg/cmd/helm@$v"
    )
    store helm "$v" "$work/helm"
    rm -rf "$work"
    log "helm $v build took $(elapsed "$start")"
}

selected=("$@")
is_selected() {
    ((${#selected[@]} == 0)) && return 0
    local s
    for s in "${selected[@]}"; do [[ "$s" == "$1" ]] && return 0; done
    return 1
}

is_kube() { local k; for k in "${KUBE_BINARIES[@]}"; do [[ "$k" == "$1" ]] && return 0; done; return 1; }
for s in "${selected[@]}"; do
    case "$s" in etcd | helm) ;; *) is_kube "$s" || die "unknown tool '$s'" ;; esac
done

for name in "${KUBE_BINARIES[@]}"; do
    if is_selected "$name"; then ensure "$name" "$KUBERNETES_VERSION" build_kubernetes; fi
done
if is_selected etcd; then ensure etcd "$ETCD_VERSION" build_etcd; fi
if is_selected helm; then ensure helm "$HELM_VERSION" build_helm; fi
log "tools ready in .tools/bin"

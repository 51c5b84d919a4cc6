#!/usr/bin/env bash
# Builds the node-side binaries of the test cluster that are not part of k8s.io/kubernetes, from the Go
# module proxy with the ordinary `go` command, caches them per user OUTSIDE the clone keyed by version,
# and links them into .tools/bin (gitignored):
#
#   containerd, ctr, containerd-shim-runc-v2   github.com/containerd/containerd/v2 (one `go build`)
#   metrics-server                             sigs.k8s.io/metrics-server (the HPA's resource metrics)
#   kube-state-metrics                         k8s.io/kube-state-metrics/v2 (the dashboards' kube_* series)
#   coredns                                    github.com/coredns/coredns, with only the plugins the
#                                              cluster's Corefile uses: no `forward`, so the cluster DNS
#                                              cannot send a query off the machine even if misconfigured
#
# The kubelet, kube-proxy, scheduler and controller-manager come from scripts/tools.sh (one module).
# Cache layout: ${XDG_CACHE_HOME:-$HOME/.cache}/floodgate/tools/<name>-<version>/<name>
# Run from the repository root (`make tools` does).
set -euo pipefail

# --- pinned versions -------------------------------------------------------------------------------
CONTAINERD_VERSION="v2.4.2" # kubelet 1.36 needs containerd >= 2.0 (1.x support ended with 1.35)
COREDNS_VERSION="v1.14.7"
METRICS_SERVER_VERSION="v0.8.0" # its manifests/base ship in the module: the harness applies them
KUBE_STATE_METRICS_VERSION="v2.18.0" # the newest the module proxy serves here (v2.16/v2.17 are refused)
# The Corefile (scripts/cluster/Corefile) may use only these directives.
COREDNS_PLUGINS=(errors health ready kubernetes cache loadbalance log metrics)
# ---------------------------------------------------------------------------------------------------

TOOLS_LOG_TAG=tools-cluster
# shellcheck source=scripts/lib/go-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-tools.sh"
command -v go >/dev/null 2>&1 || die "the 'go' command is required"
mkdir -p "$BIN_DIR" "$CACHE_ROOT"

build_containerd() {
    local v="$CONTAINERD_VERSION" work start m=github.com/containerd/containerd/v2
    start=$SECONDS
    work="$(new_workdir)"
    log "building containerd $v (not cached) in $work"
    (
        cd "$work"
        WORK_LOG="$work/build.log"
        quiet go mod init floodgate.local/tools/containerd
        quiet go get "$m@$v"
        mkdir -p out
        # The snapshotters this node does not have (btrfs, zfs, devmapper) stay out: overlayfs only.
        quiet go build -mod=mod -p "$BUILD_PARALLELISM" -trimpath -tags "no_btrfs no_zfs no_devmapper" \
            -ldflags "-s -w -X $m/version.Version=$v -X $m/version.Package=$m" \
            -o out/ "$m/cmd/containerd" "$m/cmd/ctr" "$m/cmd/containerd-shim-runc-v2"
    )
    local name
    for name in containerd ctr containerd-shim-runc-v2; do store "$name" "$v" "$work/out/$name"; done
    rm -rf "$work"
    log "containerd $v build took $(elapsed "$start")"
}

build_coredns() {
    local v="$COREDNS_VERSION" work start m=github.com/coredns/coredns p
    start=$SECONDS
    work="$(new_workdir)"
    log "building coredns $v with plugins: ${COREDNS_PLUGINS[*]} (not cached) in $work"
    (
        cd "$work"
        WORK_LOG="$work/build.log"
        quiet go mod init floodgate.local/tools/coredns
        quiet go get "$m@$v"
        # coredns.go with the plugin list cut down: a plugin registers itself when imported.
        {
            printf 'package main\n\nimport (\n'
            for p in "${COREDNS_PLUGINS[@]}"; do printf '\t_ "%s/plugin/%s"\n' "$m" "$p"; done
            printf '\t"%s/coremain"\n)\n\nfunc main() { coremain.Run() }\n' "$m"
        } >main.go
        quiet go mod tidy
        quiet go build -mod=mod -p "$BUILD_PARALLELISM" -trimpath \
            -ldflags "-s -w -X $m/coremain.GitCommit=$v" -o coredns .
    )
    store coredns "$v" "$work/coredns"
    rm -rf "$work"
    log "coredns $v build took $(elapsed "$start")"
}

build_metrics_server() {
    local v="$METRICS_SERVER_VERSION" work start m=sigs.k8s.io/metrics-server
    start=$SECONDS
    work="$(new_workdir)"
    log "building metrics-server $v (not cached) in $work"
    (
        cd "$work"
        WORK_LOG="$work/build.log"
        quiet env GOBIN="$work" go install -p "$BUILD_PARALLELISM" -trimpath \
            -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$v" "$m/cmd/metrics-server@$v"
    )
    store metrics-server "$v" "$work/metrics-server"
    rm -rf "$work"
    log "metrics-server $v build took $(elapsed "$start")"
}

build_kube_state_metrics() {
    local v="$KUBE_STATE_METRICS_VERSION" work start m=k8s.io/kube-state-metrics/v2
    start=$SECONDS
    work="$(new_workdir)"
    log "building kube-state-metrics $v (not cached) in $work"
    (
        cd "$work"
        WORK_LOG="$work/build.log"
        # A throwaway module (go install pkg@v asks the proxy for the version list, which it refuses).
        quiet go mod init floodgate.local/tools/kube-state-metrics
        quiet go get "$m@$v"
        quiet go build -mod=mod -p "$BUILD_PARALLELISM" -trimpath \
            -ldflags "-s -w -X github.com/prometheus/common/version.Version=${v#v}" -o kube-state-metrics "$m"
    )
    store kube-state-metrics "$v" "$work/kube-state-metrics"
    rm -rf "$work"
    log "kube-state-metrics $v build took $(elapsed "$start")"
}

for name in containerd ctr containerd-shim-runc-v2; do ensure "$name" "$CONTAINERD_VERSION" build_containerd; done
ensure coredns "$COREDNS_VERSION" build_coredns
ensure metrics-server "$METRICS_SERVER_VERSION" build_metrics_server
ensure kube-state-metrics "$KUBE_STATE_METRICS_VERSION" build_kube_state_metrics
log "cluster tools ready in .tools/bin"

#!/usr/bin/env bash
# Install the Debian packages the local cluster (scripts/cluster) runs when they are missing:
# runc and the CNI plugins for the node, podman and mmdebstrap to make images from Debian packages,
# docker-registry for the loopback registry, iptables and conntrack for kube-proxy.
set -euo pipefail
need=()
for pkg in runc containernetworking-plugins podman mmdebstrap docker-registry iptables conntrack; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

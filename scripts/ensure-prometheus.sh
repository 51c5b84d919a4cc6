#!/usr/bin/env bash
# Install Debian's Prometheus server when missing: the dashboard tests evaluate every panel's PromQL
# against a real one (they start their own process on a free loopback port; the packaged service is
# neither needed nor started here).
set -euo pipefail
if ! command -v prometheus >/dev/null 2>&1; then
  echo "installing: prometheus"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  # RUNLEVEL=1: invoke-rc.d must not start the packaged daemon (tests run their own).
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq --no-install-recommends \
    prometheus >/dev/null
fi
prometheus --version 2>&1 | head -1

#!/usr/bin/env bash
# Builds the external binaries into .tools/bin (placeholder until the control-plane issue lands).
set -euo pipefail
mkdir -p .tools/bin

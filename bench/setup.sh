#!/usr/bin/env bash
# Install what the benchmark needs from Debian when missing: wrk (load generator), taskset
# (util-linux), Redis and PostgreSQL (+ contrib for pg_stat_statements). Idempotent.
set -euo pipefail
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
ls /usr/lib/postgresql/*/lib/pg_stat_statements.so >/dev/null 2>&1 || need+=(postgresql-contrib)
if [ ${#need[@]} -gt 0 ]; then
  echo "bench/setup.sh: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

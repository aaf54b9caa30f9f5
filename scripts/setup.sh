#!/usr/bin/env bash
# setup.sh: everything demper needs on a fresh Debian 12 machine, as root: Debian packages, the
# PGXS build installed into PostgreSQL 15, and the CMake build (unit tests, mock marketplace,
# benchmark tools, the extension once more to keep that build working). Safe to run again.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/lib/packages.sh"

packages=(
  postgresql-15 postgresql-server-dev-15 postgresql-contrib
  g++ make cmake pkg-config
  libcurl4-openssl-dev rapidjson-dev libssl-dev
  libgtest-dev googletest
  libipc-run-perl curl procps python3 python3-yaml
  clang libclang-rt-14-dev
  prometheus prometheus-postgres-exporter
  dpkg-dev debhelper fakeroot postgresql-server-dev-all
)
# Installed for their tools (promtool, the exporter the tests start on ports of their own), not as
# services: when this script installs them, it does not leave their daemons running.
tool_services=(prometheus prometheus-postgres-exporter)
if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs packages and the extension)" >&2
  exit 1
fi
mapfile -t installing < <(missing_packages "${packages[@]}")
install_missing_packages "${packages[@]}"
if [ -d /run/systemd/system ]; then
  for svc in "${tool_services[@]}"; do
    [[ " ${installing[*]} " == *" $svc "* ]] && systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
  done
fi

export PATH=/usr/lib/postgresql/15/bin:$PATH
jobs=$(nproc)
echo "== building with PGXS and installing"
make -C "$root" -s -j"$jobs" PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config >/dev/null
make -C "$root" -s install PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config >/dev/null
echo "== building with CMake (unit tests, mock marketplace, tools)"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DPG_CONFIG=/usr/lib/postgresql/15/bin/pg_config >/dev/null
cmake --build "$root/build" -j"$jobs" >/dev/null
echo "== setup done"

#!/usr/bin/env bash
# build-deb.sh: the Debian package postgresql-15-demper, built from this tree with the standard
# tooling of PostgreSQL extensions (debian/: pg_buildext, dh --with pgxs_loop), as root on Debian 12:
#   bash scripts/build-deb.sh [--install] [output directory]      (default /tmp/demper-deb)
# It installs the Debian packages the build needs, builds in a copy of the tree (the tree itself is
# not written to), runs the package's install check (the pg_regress suite against the files in the
# package, on a throw-away pg_virtualenv cluster), and leaves the .deb files in the output directory.
# With --install it then installs the package (apt-get install ./postgresql-15-demper_<version>_amd64.deb).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
install=false
if [ "${1:-}" = --install ]; then install=true; shift; fi
out=${1:-/tmp/demper-deb}

if [ "$(id -u)" -ne 0 ]; then
  echo "build-deb.sh: run as root (it installs the build dependencies)" >&2
  exit 1
fi
packages=(dpkg-dev debhelper fakeroot postgresql-common postgresql-server-dev-all postgresql-15
          g++ make libcurl4-openssl-dev libssl-dev rapidjson-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# One version: demper.control's default_version is the package's upstream version.
version=$(sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$root/demper.control")
deb_version=$(cd "$root" && dpkg-parsechangelog -S Version)
if [ "${deb_version%-*}" != "$version" ]; then
  echo "build-deb.sh: debian/changelog is at $deb_version, demper.control at $version:" \
       "add a debian/changelog entry for $version-1 (dch -v $version-1)" >&2
  exit 1
fi

work=$(mktemp -d /tmp/demper-deb-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"   # the install check's cluster runs as postgres and reads the build tree
src=$work/demper-$version
mkdir "$src"
# The tree as it is (uncommitted changes included), without builds, test output or git.
tar -C "$root" --exclude=./.git --exclude='./build*' --exclude=./tmp_check --exclude=./results \
    --exclude='./test/tmp_check' --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
    --exclude=./regression.diffs --exclude=./regression.out -cf - . | tar -C "$src" -xf -

cd "$src"
pg_buildext checkcontrol   # debian/control must be what debian/control.in gives (pg_buildext updatecontrol)
echo "== dpkg-buildpackage (PGXS build, install check on a pg_virtualenv cluster)"
if ! dpkg-buildpackage -b -us -uc -j"$(nproc)"; then
  # The install check's differences, before the trap removes the build tree.
  find "$src" -name regression.diffs -exec sh -c 'echo "== $1"; cat "$1"' _ {} \;
  exit 1
fi
mkdir -p "$out"
for f in "$work"/*.deb; do
  cp "$f" "$out/"
  echo "built: $out/$(basename "$f")"
done
if $install; then
  deb=$(ls "$out"/postgresql-15-demper_"$deb_version"_*.deb)
  echo "== apt-get install $deb"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb"
  echo "installed: $(dpkg-query -W -f='${Package} ${Version}' postgresql-15-demper)"
fi

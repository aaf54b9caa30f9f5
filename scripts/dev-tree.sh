#!/usr/bin/env bash
# dev-tree.sh: a private copy of the system's PostgreSQL 15 (binaries, lib, share; the include
# directory is a symlink) for building, installing and testing demper without touching the
# server other people use, and without root: PostgreSQL finds its lib, share and include
# directories relative to its binaries, so `make install` with the copy's pg_config writes into
# the copy only. Prints the PG_CONFIG to use on stdout, so that
#     eval "$(bash scripts/dev-tree.sh [DIR])"
# sets it for the shell. DIR defaults to /tmp/pg-<name of the worktree>. An existing tree is kept
# (remove DIR to start over, e.g. after the system's postgresql-15 package was upgraded).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tree=${1:-/tmp/pg-$(basename "$root")}
bin=$tree/usr/lib/postgresql/15/bin

if [ ! -x "$bin/pg_config" ]; then
  [ -x /usr/lib/postgresql/15/bin/pg_config ] ||
    { echo "dev-tree.sh: /usr/lib/postgresql/15 is missing (scripts/setup.sh installs it)" >&2; exit 1; }
  mkdir -p "$tree/usr/lib/postgresql" "$tree/usr/share/postgresql" "$tree/usr/include"
  cp -a /usr/lib/postgresql/15 "$tree/usr/lib/postgresql/"
  cp -a /usr/share/postgresql/15 "$tree/usr/share/postgresql/"
  ln -sfn /usr/include/postgresql "$tree/usr/include/postgresql"
  # A demper installed in the system tree is not this worktree's: without it, a test run before
  # `make install` fails plainly instead of testing someone else's build.
  rm -rf "$tree"/usr/lib/postgresql/15/lib/demper.so "$tree"/usr/lib/postgresql/15/lib/bitcode/demper* \
         "$tree"/usr/share/postgresql/15/extension/demper[-.]*
  echo "dev-tree.sh: PostgreSQL 15 copied to $tree" >&2
fi
# The copy's pg_config must report the copy's directories, or `make install` would write into the
# system tree.
case $("$bin/pg_config" --pkglibdir) in
  "$tree"/*) ;;
  *) echo "dev-tree.sh: $bin/pg_config does not point into $tree" >&2; exit 1 ;;
esac
echo "export PG_CONFIG=$bin/pg_config"

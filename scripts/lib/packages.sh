# shellcheck shell=bash
# packages.sh: installing the Debian packages a script needs, for scripts/setup.sh and
# bench/run.sh (source it; the functions need bash).

# missing_packages prints, one per line, those of the named Debian packages that are not installed.
missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

# install_missing_packages installs those of the named Debian packages that are not installed
# (as root); apt's package lists are refreshed only when something is missing.
install_missing_packages() {
  local missing
  mapfile -t missing < <(missing_packages "$@")
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "== installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

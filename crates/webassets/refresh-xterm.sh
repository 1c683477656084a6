#!/usr/bin/env bash
# Refreshes the vendored terminal (npm @xterm/xterm and @xterm/addon-fit, both MIT) that
# web_console serves from its binary (through oobkit-webassets): downloads each package with `npm pack`, checks the
# tarball's own SHA-512 against the npm registry's integrity hash, and keeps the browser build,
# the stylesheet and the licence. Nothing here runs at build time.
#
# Usage: crates/webassets/refresh-xterm.sh [XTERM_VERSION FIT_VERSION]
#        (default: the versions in XTERM)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
xterm_version=${1:-$(sed -n 's/^xterm_version=//p' "$here/XTERM")}
fit_version=${2:-$(sed -n 's/^fit_version=//p' "$here/XTERM")}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# fetch PACKAGE VERSION: unpacks into ./PACKAGE-NAME and prints the verified integrity.
fetch() {
  local package=$1 version=$2 name tarball registry computed
  name=${package#@xterm/}
  npm pack "$package@$version" >/dev/null 2>&1
  tarball="xterm-$name-$version.tgz"
  registry=$(npm view "$package@$version" dist.integrity)
  computed="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$computed" != "$registry" ]; then
    echo "$package $version: the tarball hashes to $computed, the registry says $registry" >&2
    exit 1
  fi
  mkdir "$name" && tar xzf "$tarball" -C "$name"
  echo "$registry"
}
xterm_integrity=$(fetch @xterm/xterm "$xterm_version")
fit_integrity=$(fetch @xterm/addon-fit "$fit_version")
rm -rf "$here/xterm"
mkdir -p "$here/xterm"
cp xterm/package/lib/xterm.js "$here/xterm/xterm.js"
cp xterm/package/css/xterm.css "$here/xterm/xterm.css"
cp xterm/package/LICENSE "$here/xterm/LICENSE-xterm"
cp addon-fit/package/lib/addon-fit.js "$here/xterm/addon-fit.js"
cp addon-fit/package/LICENSE "$here/xterm/LICENSE-addon-fit"
printf 'xterm_version=%s\nxterm_integrity=%s\nfit_version=%s\nfit_integrity=%s\n' \
  "$xterm_version" "$xterm_integrity" "$fit_version" "$fit_integrity" >"$here/XTERM"
echo "@xterm/xterm $xterm_version ($xterm_integrity), @xterm/addon-fit $fit_version ($fit_integrity) vendored"

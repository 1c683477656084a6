#!/usr/bin/env bash
# The whole oobkit test suite on a fresh Debian machine with a Rust toolchain, in one command:
# installs the peer programs the tests drive (programs nobody here wrote), then runs
# `cargo test --workspace`. `.ci/run` calls it too. A missing peer fails the run, never skips.
#
# Usage: ./test.sh [--setup-only | --no-setup] [-- CARGO TEST ARGS...]
#   --setup-only   install the peers, run no test
#   --no-setup     run the tests with the peers already installed
#   anything else  is passed to `cargo test --workspace` (e.g. a test name filter)
#
# Peers (add a new one here, in one place, never only in CI):
#   Debian: curl (Digest interop), amtterm and telnet (SOL interop), bsdutils (`script`: the
#           simulator's SOL pseudo-terminal), util-linux (`setsid`: rrmt-agent's shells; `setpriv`: the simulator's SOL program dies with it),
#           g++ (libFuzzer for the fuzz targets, the bundled SQLite), python3 and python3-venv (vncdotool),
#           xorriso (bootable El Torito ISOs for the IDE-R boot tests), valgrind (callgrind counts
#           in docs/performance.md), openssl (RS256 tokens for the VNC proxy's gate),
#           tigervnc-standalone-server (Xtigervnc: the VNC server behind the KubeVirt stand-in),
#           chromium and chromium-driver (noVNC and xterm.js in a real browser, driven with
#           fantoccini), openssh-server and openssh-client (the sshd web_console's tests start on
#           loopback, ssh-keygen for its keys).
#           postgresql (the throwaway clusters of the multi-server RRMT tests: initdb and pg_ctl
#           on a loopback port; the Debian service itself is never started).
#           websockify (the relay noVNC users reach for: vnc_proxy's bench runs it beside the
#           stand-in's own websocket-to-TCP hop).
#   Account: oobkit-ssh-test, the user web_console's tests log in as (password and
#           keyboard-interactive go through PAM, so it is a real account): its password is drawn
#           at random into target/ssh-test-password (0600) by each setup.
#   PyPI:   vncdotool (the kvm_vnc interop test), into target/vncdotool-venv; lxml and xmltodict
#           (the WS-Man parse peers of benches/report.sh), into target/bench-venv;
#           lab-orchestrator-lib-auth 0.0.5 and 2.2.0 (tokens for the VNC proxy's gate), into
#           target/labauth-VERSION-venv; the seed proxy lab-orchestrator-ws-proxy-lib 1.0.0 (its
#           bench baseline), into target/seedproxy-venv; webssh 1.6.3 (web_console's bench
#           baseline), into target/webssh-venv.
# Not root: prints the exact `sudo apt-get install ...` line and stops.
set -euo pipefail
cd "$(dirname "$0")"

DEBIAN_PACKAGES=(curl amtterm telnet bsdutils util-linux g++ python3 python3-venv xorriso valgrind openssl tigervnc-standalone-server chromium chromium-driver openssh-server openssh-client postgresql websockify)
# Program each package must provide, checked after the install (package:program).
PEER_PROGRAMS=(curl:curl amtterm:amtterm telnet:telnet bsdutils:script util-linux:setsid util-linux:setpriv util-linux:taskset g++:g++ xorriso:xorriso valgrind:valgrind openssl:openssl tigervnc-standalone-server:Xtigervnc chromium:chromium chromium-driver:chromedriver openssh-server:sshd openssh-client:ssh-keygen postgresql:pg_ctlcluster websockify:websockify)
VNCDOTOOL_VERSION=1.4.2
BENCH_PYPI=(lxml==6.1.3 xmltodict==1.0.4)
# The seed's token library, both generations vnc_proxy must accept (each pins its own PyJWT).
LABAUTH_VERSIONS=(0.0.5 2.2.0)
# The seed proxy itself, run beside vnc_proxy by its bench.
SEED_PROXY_VERSION=1.0.0
# webssh (Tornado + paramiko), the web terminal web_console's bench runs beside it.
WEBSSH_VERSION=1.6.3

setup=1
run=1
cargo_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --setup-only) run=0 ;;
    --no-setup) setup=0 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; cargo_args+=("$@"); break ;;
    *) cargo_args+=("$1") ;;
  esac
  shift
done

say() { printf '[test.sh] %s\n' "$*" >&2; }

missing_packages() {
  local pkg
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
  done
}

install_debian() {
  local missing
  missing=$(missing_packages | tr '\n' ' ')
  if [ -z "${missing// /}" ]; then
    say "Debian peers present: ${DEBIAN_PACKAGES[*]}"
    return
  fi
  if [ "$(id -u)" != 0 ]; then
    say "missing Debian packages: $missing"
    say "install them, then run ./test.sh again:"
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $missing" >&2
    exit 1
  fi
  say "installing Debian packages: $missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

check_programs() {
  local entry pkg program
  for entry in "${PEER_PROGRAMS[@]}"; do
    pkg=${entry%%:*}
    program=${entry#*:}
    if ! command -v "$program" >/dev/null; then
      say "FATAL: '$program' (Debian package $pkg) is missing after the install"
      exit 1
    fi
  done
  # The cluster programs the RRMT tests start (initdb, pg_ctl) are off PATH on Debian.
  if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    say "FATAL: /usr/lib/postgresql/*/bin/initdb (Debian package postgresql) is missing after the install"
    exit 1
  fi
}

# install_pypi VENV NAME==VERSION...: a virtualenv holding exactly these PyPI packages.
install_pypi() {
  local venv=$1
  shift
  local wanted installed=""
  wanted=$(printf '%s\n' "$@" | tr 'A-Z' 'a-z' | sort | tr '\n' ' ')
  if [ -x "$venv/bin/pip" ]; then
    # Read the whole output first: `grep -q` would close the pipe early and, with pipefail,
    # turn pip's SIGPIPE into "not installed".
    installed=$("$venv/bin/pip" freeze 2>/dev/null | tr 'A-Z' 'a-z' | grep -xF -f <(printf '%s\n' "$@" | tr 'A-Z' 'a-z') | sort | tr '\n' ' ' || true)
  fi
  if [ "$installed" = "$wanted" ]; then
    say "PyPI peers present in $venv: $*"
    return
  fi
  say "installing PyPI peers into $venv: $*"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
  installed=$("$venv/bin/pip" freeze 2>/dev/null | tr 'A-Z' 'a-z' | grep -xF -f <(printf '%s\n' "$@" | tr 'A-Z' 'a-z') | sort | tr '\n' ' ' || true)
  if [ "$installed" != "$wanted" ]; then
    say "FATAL: $* did not install into $venv (got: $installed)"
    exit 1
  fi
}

install_vncdotool() {
  install_pypi target/vncdotool-venv "vncdotool==$VNCDOTOOL_VERSION"
  if [ ! -x target/vncdotool-venv/bin/vncdo ]; then
    say "FATAL: vncdotool did not install (target/vncdotool-venv/bin/vncdo missing)"
    exit 1
  fi
}

# The account web_console's tests log in as, with a fresh random password each setup (it is
# a real account on this machine, so nothing guessable).
setup_ssh_account() {
  if [ "$(id -u)" != 0 ]; then
    say "FATAL: creating the SSH test account oobkit-ssh-test needs root: run ./test.sh --setup-only as root once"
    exit 1
  fi
  if ! id oobkit-ssh-test >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash oobkit-ssh-test
  fi
  (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' >target/ssh-test-password)
  printf 'oobkit-ssh-test:%s\n' "$(cat target/ssh-test-password)" | chpasswd
  mkdir -p /run/sshd
  say "SSH test account oobkit-ssh-test ready (password in target/ssh-test-password)"
}

if [ "$setup" = 1 ]; then
  install_debian
  check_programs
  mkdir -p target
  setup_ssh_account
  install_vncdotool
  install_pypi target/bench-venv "${BENCH_PYPI[@]}"
  install_pypi target/seedproxy-venv "lab-orchestrator-ws-proxy-lib==$SEED_PROXY_VERSION"
  install_pypi target/webssh-venv "webssh==$WEBSSH_VERSION"
  for version in "${LABAUTH_VERSIONS[@]}"; do
    install_pypi "target/labauth-$version-venv" "lab-orchestrator-lib-auth==$version"
  done
fi
if [ "$run" = 1 ]; then
  say "cargo test --workspace ${cargo_args[*]:-}"
  exec cargo test --workspace "${cargo_args[@]}"
fi

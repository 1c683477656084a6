#!/usr/bin/env bash
# Regenerates docs/performance.md and docs/perf/*.svg from one run on this machine: the
# criterion codec benches, the WS-Man parse beside quick-xml's floor, the seed's lxml path and
# xmltodict (with callgrind instruction counts), and the program benches (sol_telnet, kvm_vnc,
# amt_ider, vnc_proxy beside the seed and websockify, web_console beside webssh, RRMT exec beside
# OpenSSH, rrmt-load on one server and on two sharing PostgreSQL). Peers come from
# `./test.sh --setup-only` (valgrind, target/bench-venv, webssh, the seed proxy, sshd, PostgreSQL,
# websockify).
#
# Usage: benches/report.sh [--quick]   (--quick: short criterion runs, small loads; for CI)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
out=target/perf
mkdir -p "$out"
figures=$out/figures.txt
: >"$figures"
say() { printf '[report] %s\n' "$*" >&2; }

for peer in valgrind target/bench-venv/bin/python; do
  command -v "$peer" >/dev/null || { say "missing $peer: run ./test.sh --setup-only"; exit 1; }
done

say "codecs (criterion)"
rm -rf target/criterion
if [ "$quick" = 1 ]; then times=(--warm-up-time 0.2 --measurement-time 0.5); else times=(--warm-up-time 1 --measurement-time 4); fi
cargo bench -q -p oobkit-benches --bench digest --bench redir --bench rrmt --bench wsman --bench wspass -- "${times[@]}" --noplot >/dev/null

say "WS-Man parse beside quick-xml, the seed's path and xmltodict"
cargo build -q --release -p oobkit-benches --bin wsman_parse --bin perf_report
./target/release/wsman_parse time >>"$figures"
./target/release/wsman_parse dump "$out/pull100.xml"
target/bench-venv/bin/python benches/python/wsman_parse.py "$out/pull100.xml" >>"$figures"
for mode in reader ns_reader oobkit_view oobkit; do
  # 20 parses, minus one parse's worth of set-up measured with 0 parses: instructions per parse.
  ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null ./target/release/wsman_parse "$mode" "$1" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
  with=$(ir 20)
  without=$(ir 0)
  echo "FIGURE callgrind_${mode}_ir=$(( (with - without) / 20 ))" >>"$figures"
done
# Of quick-xml's bare loop, the part spent checking that each slice it hands out is UTF-8 (it
# does so even when the document is a str already).
utf8_ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect='core::str::converts::from_utf8' ./target/release/wsman_parse reader "$1" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
with=$(utf8_ir 20)
without=$(utf8_ir 0)
echo "FIGURE callgrind_reader_utf8_ir=$(( (with - without) / 20 ))" >>"$figures"

# The seed's Python path, counted the same way (its interpreter start-up subtracted).
py_ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null target/bench-venv/bin/python benches/python/wsman_parse.py "$out/pull100.xml" seed_lxml "$1" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
with=$(py_ir 5)
without=$(py_ir 0)
echo "FIGURE callgrind_seed_lxml_ir=$(( (with - without) / 5 ))" >>"$figures"

say "programs: sol_telnet echo, kvm_vnc relay, amt_ider throughput, vnc_proxy beside the seed proxy and websockify, web_console beside webssh, RRMT exec beside OpenSSH"
if [ "$quick" = 1 ]; then bench_args=(-- --test); else bench_args=(); fi
cargo bench -q -p sol_telnet -p kvm_vnc -p amt_ider -p vnc_proxy -p web_console -p rrmt "${bench_args[@]}" 2>/dev/null | grep '^FIGURE' >>"$figures"

say "rrmt-load"
cargo build -q --release -p rrmt
if [ "$quick" = 1 ]; then agents=200 execs=200; else agents=5000 execs=5000; fi
./target/release/rrmt-load --agents "$agents" --execs "$execs" | grep '^FIGURE' >>"$figures"
# Two servers sharing a throwaway PostgreSQL: memory per agent, exec same-server beside
# cross-server (the 38 000-agent run of docs/rrmt-cluster.md is the same command, larger).
./target/release/rrmt-load --postgres --servers 2 --agents "$agents" --execs "$execs" --idle-secs 5 \
  | grep '^FIGURE' | sed 's/ rrmt_/ cluster_rrmt_/g' >>"$figures"

machine="$(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
./target/release/perf_report "$figures" target/criterion docs/performance.md docs/perf "$machine" "$(date -u +%F)"
say "figures in $figures"

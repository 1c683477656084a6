#!/usr/bin/env bash
# Fuzzes every target for a fixed time, one after another, and writes a table of what libFuzzer
# reported at the end of each run (executions, rate, coverage edges, features, corpus size).
#
#   fuzz/campaign.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 600 s, every target)
#
# Needs cargo-fuzz and a nightly toolchain. Findings stay in fuzz/corpus/<target>/ (ignored by
# git); crashes in fuzz/artifacts/<target>/ and make the script exit 1. The report goes to
# fuzz/campaign-report.md (or $CAMPAIGN_REPORT; overwritten) and to stdout. On several cores,
# run one campaign per core over part of the targets each, with a report each.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi

cargo +nightly fuzz build --release >/dev/null
bin=target/x86_64-unknown-linux-gnu/release
report=${CAMPAIGN_REPORT:-campaign-report.md}
{
  echo "Fuzz campaign, $(date -u +%Y-%m-%dT%H:%MZ), ${seconds} s per target, $(nproc) cores, $(rustc +nightly --version)"
  echo
  echo "| target | executions | exec/s | coverage (edges) | features | corpus | result |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
} > "$report"
failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="artifacts/$t/campaign.log"
  result=ok
  "$bin/$t" "corpus/$t" "seeds/$t" -max_total_time="$seconds" -print_final_stats=1 \
      -artifact_prefix="artifacts/$t/" -rss_limit_mb=2048 >"$log" 2>&1 || { result=CRASH; failed=1; }
  # libFuzzer's last status line: "#N  DONE  cov: C ft: F corp: K/.. exec/s: R ..."
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
  cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.*corp: ([0-9]+).*/\1/p' <<<"$last")
  rate=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<<"$last")
  echo "| $t | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $result |" >> "$report"
  echo "$t: $result ($last)"
done
cat "$report"
exit "$failed"

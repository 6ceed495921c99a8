#!/usr/bin/env bash
# The engine beside llama.cpp, in one run, on the same GGUF, prompt length, generation length
# and threads: prints both JSON lines and the ratios (bidder / llama.cpp; above 1 is faster),
# with each one's peak RSS.
#
#   scripts/bench-vs-llama.sh MODEL.gguf [PROMPT_TOKENS=332] [GEN_TOKENS=128] [THREADS=2]
#
# BIDDER_CPU_FEATURES=avx2 holds our kernels (and candle's) to AVX2 and compares them with an
# AVX2-only llama.cpp (PEER_CPU=avx2); unset, both use everything this CPU has.
# PAIRS=N (default 1) runs both N times in turn and prints the medians and the median ratio.
# Needs llama.cpp's peer-bench.sh (PEER_BENCH, default ../shared/tools/peer-bench.sh) and a
# release build (cargo build --release). Run it on an otherwise idle machine.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model=${1:?usage: bench-vs-llama.sh MODEL.gguf [PROMPT_TOKENS] [GEN_TOKENS] [THREADS]}
pp=${2:-332}; tg=${3:-128}; threads=${4:-2}
peer=${PEER_BENCH:-$root/../shared/tools/peer-bench.sh}
case "${BIDDER_CPU_FEATURES:-}" in
  avx2) export PEER_CPU=avx2 ;;
  ""|avx512) export PEER_CPU=native ;;
  *) echo "bench-vs-llama: llama.cpp has no build to match BIDDER_CPU_FEATURES=$BIDDER_CPU_FEATURES" >&2; exit 2 ;;
esac
[ -x "$root/target/release/bidder" ] || (cd "$root" && cargo build --release >&2)
# PAIRS=N runs the two N times in turn (ours, theirs, ours, …) and reports the medians and the
# median of the pairs' ratios: on a shared machine one run of either can be a third off.
pairs=${PAIRS:-1}
runs=$(mktemp)
trap 'rm -f "$runs" "$runs.rss"' EXIT
for _ in $(seq "$pairs"); do
  ours=$("$root/target/release/bidder" bench-model --model "$model" --prompt-tokens "$pp" --gen "$tg" --threads "$threads")
  # llama-bench's peak RSS: the largest of peer-bench's processes (GNU time reports the biggest child).
  theirs=$(/usr/bin/time -v -o "$runs.rss" bash "$peer" "$model" "$pp" "$tg" "$threads")
  peer_rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$runs.rss")
  echo "$ours"
  echo "$theirs"
  printf '%s\t%s\t%s\n' "$ours" "$theirs" "$peer_rss_kb" >>"$runs"
done
python3 - "$runs" <<'PY'
import json, statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
ours = [json.loads(r[0]) for r in rows]
theirs = [json.loads(r[1]) for r in rows]
peer_rss = [int(r[2]) / 1024 for r in rows]
median = lambda xs: round(statistics.median(xs), 2)
ratio = lambda k: median([o[k] / t[k] for o, t in zip(ours, theirs)]) if all(t.get(k) for t in theirs) else None
print(json.dumps({"cpu_tier": ours[0]["cpu_tier"], "peer_cpu": theirs[0]["cpu"], "prompt_tokens": ours[0]["prompt_tokens"],
                  "pairs": len(rows),
                  "prefill_tps": median([o["prefill_tps"] for o in ours]), "peer_prefill_tps": median([t["prefill_tps"] for t in theirs]),
                  "decode_tps": median([o["decode_tps"] for o in ours]), "peer_decode_tps": median([t["decode_tps"] for t in theirs]),
                  "prefill_ratio": ratio("prefill_tps"), "decode_ratio": ratio("decode_tps"),
                  "rss_mb": max(o["rss_mb"] for o in ours), "peer_rss_mb": round(max(peer_rss), 1),
                  "rss_ratio": round(max(o["rss_mb"] for o in ours) / max(peer_rss), 2)}))
PY

#!/usr/bin/env bash
# The engine beside llama.cpp, in one run, on the same GGUF, prompt length, generation length
# and threads: prints both JSON lines and the ratios (bidder / llama.cpp; above 1 is faster),
# with each one's peak RSS.
#
#   scripts/bench-vs-llama.sh MODEL.gguf [PROMPT_TOKENS=332] [GEN_TOKENS=128] [THREADS=2]
#
# BIDDER_CPU_FEATURES=avx2 holds our kernels (and candle's) to AVX2 and compares them with an
# AVX2-only llama.cpp (PEER_CPU=avx2); unset, both use everything this CPU has.
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
ours=$("$root/target/release/bidder" bench-model --model "$model" --prompt-tokens "$pp" --gen "$tg" --threads "$threads")
# llama-bench's peak RSS: the largest of peer-bench's processes (GNU time reports the biggest child).
rss_log=$(mktemp)
theirs=$(/usr/bin/time -v -o "$rss_log" bash "$peer" "$model" "$pp" "$tg" "$threads")
peer_rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$rss_log")
rm -f "$rss_log"
echo "$ours"
echo "$theirs"
python3 - "$ours" "$theirs" "$peer_rss_kb" <<'PY'
import json, sys
ours, theirs, peer_rss = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]) / 1024
ratio = lambda k: round(ours[k] / theirs[k], 2) if theirs.get(k) else None
print(json.dumps({"cpu_tier": ours["cpu_tier"], "peer_cpu": theirs["cpu"], "prompt_tokens": ours["prompt_tokens"],
                  "prefill_ratio": ratio("prefill_tps"), "decode_ratio": ratio("decode_tps"),
                  "rss_mb": ours["rss_mb"], "peer_rss_mb": round(peer_rss, 1),
                  "rss_ratio": round(ours["rss_mb"] / peer_rss, 2) if peer_rss else None}))
PY

#!/usr/bin/env bash
# The engine beside llama.cpp, in one run, on the same GGUF, prompt length, generation length
# and threads: prints both JSON lines and the ratios (bidder / llama.cpp; above 1 is faster).
#
#   scripts/bench-vs-llama.sh MODEL.gguf [PROMPT_TOKENS=332] [GEN_TOKENS=128] [THREADS=2]
#
# Needs llama.cpp's peer-bench.sh (PEER_BENCH, default ../shared/tools/peer-bench.sh) and a
# release build (cargo build --release). Run it on an otherwise idle machine.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model=${1:?usage: bench-vs-llama.sh MODEL.gguf [PROMPT_TOKENS] [GEN_TOKENS] [THREADS]}
pp=${2:-332}; tg=${3:-128}; threads=${4:-2}
peer=${PEER_BENCH:-$root/../shared/tools/peer-bench.sh}
[ -x "$root/target/release/bidder" ] || (cd "$root" && cargo build --release >&2)
ours=$("$root/target/release/bidder" bench-model --model "$model" --prompt-tokens "$pp" --gen "$tg" --threads "$threads")
theirs=$(bash "$peer" "$model" "$pp" "$tg" "$threads")
echo "$ours"
echo "$theirs"
python3 - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ratio = lambda k: round(ours[k] / theirs[k], 2) if theirs.get(k) else None
print(json.dumps({"prefill_ratio": ratio("prefill_tps"), "decode_ratio": ratio("decode_tps")}))
PY

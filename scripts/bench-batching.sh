#!/usr/bin/env bash
# Several answers at once, through HTTP, beside llama.cpp's own server in the same run.
#
#   scripts/bench-batching.sh MODEL.gguf [N=4] [BRIEF=tests/fixtures/briefs/blog-post-sustainable-investing.json]
#
# 1. `bidder serve` with --max-batch N on 127.0.0.1: N prototypes of BRIEF (signed, each its own
#    task id) one after another, then N at once; the total time of each and their ratio.
# 2. The same with --max-batch 1 (one sequence a pass, the way the worker served before
#    batching): how much of the gain is batching rather than overlapping the non-model work.
# 3. llama.cpp's llama-server (built by peer-bench.sh --server-path from the same source as
#    peer-bench.sh) with --parallel N on the same file: N completions of the prompt length and
#    answer length our prototypes averaged, one after another, then N at once.
# Prints one JSON line. Needs a release build, python3, and llama-server's build (minutes, once).
# The Xeon the README's figures come from advertises AMX that its VM refuses: there, hand
# PEER_SERVER the path of a llama-server built with AMX off (see the README's Benchmarks).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model=${1:?usage: bench-batching.sh MODEL.gguf [N] [BRIEF]}
n=${2:-4}
brief=${3:-$root/tests/fixtures/briefs/blog-post-sustainable-investing.json}
threads=${THREADS:-2}
[ -x "$root/target/release/bidder" ] || (cd "$root" && cargo build --release >&2)
server=${PEER_SERVER:-$(bash "${PEER_BENCH:-$root/../shared/tools/peer-bench.sh}" --server-path)}
key=bench_key secret=bench_secret
port=$((20000 + RANDOM % 20000))
metrics_port=$((port + 1))
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

wait_ready() {
  for _ in $(seq 600); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "bench-batching: $1 never became ready" >&2
  exit 1
}

# `in_a_row` and `together` seconds for N prototypes, and the tokens they read and wrote.
bidder_run() {
  local batch=$1
  "$root/target/release/bidder" serve --model "$model" --threads "$threads" --listen "127.0.0.1:$port" \
    --metrics-listen "127.0.0.1:$metrics_port" --api-key "$key" --signing-secrets "$secret" \
    --max-batch "$batch" --queue-capacity $((2 * n)) >/dev/null 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_ready "http://127.0.0.1:$port/health"
  python3 - "$port" "$brief" "$n" "$key" "$secret" <<'PY'
import hashlib, hmac, json, sys, threading, time, urllib.request, uuid
port, brief, n, key, secret = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
template = json.load(open(brief))

def prototype():
    task = dict(template, task_id=str(uuid.uuid4()))
    body = json.dumps(task).encode()
    headers = {"Content-Type": "application/json", "X-AITasker-Key": key, "X-AITasker-Task-ID": task["task_id"],
               "X-AITasker-Timestamp": str(int(time.time())),
               "X-AITasker-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/execute", body, headers)
    with urllib.request.urlopen(request, timeout=900) as response:
        answer = json.load(response)
    usage = answer.get("token_usage", {})
    return usage.get("input_tokens", 0), usage.get("output_tokens", 0)

def timed(work):
    started = time.monotonic()
    result = work()
    return time.monotonic() - started, result

in_a_row, tokens = timed(lambda: [prototype() for _ in range(n)])
results = [None] * n
def one(i):
    results[i] = prototype()
threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
together, _ = timed(lambda: ([t.start() for t in threads], [t.join() for t in threads]))
# Both ways' token counts: a prototype that ran short of time would write less, and a faster
# "together" that wrote less would be no gain.
print(json.dumps({"in_a_row_s": round(in_a_row, 1), "together_s": round(together, 1),
                  "input_tokens": sum(t[0] for t in tokens) // n, "output_tokens": sum(t[1] for t in tokens) // n,
                  "together_output_tokens": sum(r[1] for r in results) // n}))
PY
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

batched=$(bidder_run "$n")
single=$(bidder_run 1)

# llama-server on the same file, the same number of answers, of the lengths our prototypes had.
"$server" -m "$model" -t "$threads" --parallel "$n" -c $((8192 * n / 4 > 8192 ? 8192 * n / 4 : 8192)) \
  --host 127.0.0.1 --port "$port" >/dev/null 2>&1 &
pids+=("$!")
wait_ready "http://127.0.0.1:$port/health"
peer=$(python3 - "$port" "$n" "$batched" <<'PY'
import json, sys, threading, time, urllib.request
port, n, ours = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
prompt_tokens, answer_tokens = max(ours["input_tokens"], 16), max(ours["output_tokens"], 16)

def completion(i):
    # Different openings, so that no request reuses another's cached prompt.
    prompt = f"Request {i}. " + "Write about saving for retirement with index funds. " * (prompt_tokens // 10)
    body = json.dumps({"prompt": prompt, "n_predict": answer_tokens, "temperature": 0.4, "ignore_eos": True,
                       "cache_prompt": False}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/completion", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=900) as response:
        return json.load(response)["timings"]["predicted_n"]

def timed(work):
    started = time.monotonic()
    work()
    return time.monotonic() - started

in_a_row = timed(lambda: [completion(i) for i in range(n)])
threads = [threading.Thread(target=completion, args=(n + i,)) for i in range(n)]
together = timed(lambda: ([t.start() for t in threads], [t.join() for t in threads]))
print(json.dumps({"in_a_row_s": round(in_a_row, 1), "together_s": round(together, 1),
                  "prompt_tokens": prompt_tokens, "answer_tokens": answer_tokens}))
PY
)
python3 - "$n" "$batched" "$single" "$peer" <<'PY'
import json, sys
n = int(sys.argv[1])
batched, single, peer = (json.loads(a) for a in sys.argv[2:])
speedup = lambda r: round(r["in_a_row_s"] / r["together_s"], 2)
print(json.dumps({"concurrent": n, "bidder": dict(batched, speedup=speedup(batched)),
                  "bidder_max_batch_1": dict(single, speedup=speedup(single)),
                  "llama_server": dict(peer, speedup=speedup(peer))}))
PY

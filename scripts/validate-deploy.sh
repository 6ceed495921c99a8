#!/usr/bin/env bash
# Validate deploy/ offline: every manifest against the Kubernetes JSON schemas (strict: unknown
# fields are errors) for each Kubernetes version below, plus the checks a schema cannot make
# (kustomization.yaml lists exactly the manifests in deploy/k8s, the HPA's metric is the one the
# prometheus-adapter rule serves, the grace period covers preStop + drain).
#
#   scripts/validate-deploy.sh            (K8S_VERSIONS="1.30.0 1.37.0" by default)
#
# Needs python3 (3.9+) with pip and, the first time, the PyPI registry: the pinned validator
# (deploy/requirements-validate.txt) is installed into target/deploy-venv (BIDDER_DEPLOY_VENV).
# Exits non-zero on any error or warning, naming the file.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
versions=${K8S_VERSIONS:-1.30.0 1.37.0}
venv=${BIDDER_DEPLOY_VENV:-$root/target/deploy-venv}
requirements=deploy/requirements-validate.txt

die() { echo "validate-deploy: error: $*" >&2; exit 1; }
say() { echo "validate-deploy: $*" >&2; }

command -v python3 >/dev/null || die "python3 is needed"

# Install the pinned validator once; reinstall when the pins change. A venv where python3 has
# the venv module, else a plain --target directory (Debian's python3 without python3-venv).
stamp=$venv/.requirements.sha256
want=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$requirements")
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  rm -rf "$venv"
  say "installing $(grep -m1 '^kubernetes-validate' "$requirements") into ${venv#"$root"/}"
  if python3 -m venv "$venv" >/dev/null 2>&1 && [ -x "$venv/bin/python" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$requirements" ||
      die "pip could not install $requirements (is PyPI reachable?)"
  else
    rm -rf "$venv"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$venv/site" -r "$requirements" ||
      die "pip could not install $requirements (is PyPI reachable? is pip installed?)"
  fi
  echo "$want" >"$stamp"
fi
if [ -x "$venv/bin/python" ]; then
  py=("$venv/bin/python")
else
  py=(env "PYTHONPATH=$venv/site" python3)
fi

# Every YAML file under deploy/ that is a Kubernetes object (kustomization.yaml is kustomize's
# own format, checked below).
mapfile -t manifests < <(find deploy -name '*.yaml' ! -name kustomization.yaml | sort)
[ ${#manifests[@]} -gt 0 ] || die "no manifests under deploy/"

failed=0
for version in $versions; do
  # The validator only warns when it has no schema for a kind or apiVersion (a typo such as
  # autoscaling/v3 would pass); treat every warning as a failure.
  if ! out=$("${py[@]}" -m kubernetes_validate --strict --quiet -k "$version" "${manifests[@]}" 2>&1); then
    failed=1
  fi
  if [ -n "$out" ]; then
    echo "$out" >&2
    failed=1
  else
    say "kubernetes $version: ${#manifests[@]} files valid (strict)"
  fi
done

"${py[@]}" - <<'PY' || failed=1
import pathlib, sys
import yaml

errors = []
k8s = pathlib.Path("deploy/k8s")

kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text())
listed = kustomization.get("resources", [])
for name in listed:
    if not (k8s / name).is_file():
        errors.append(f"kustomization.yaml lists {name}, which does not exist")
for path in sorted(k8s.glob("*.yaml")):
    if path.name == "kustomization.yaml" or path.name.endswith(".example.yaml"):
        continue
    if path.name not in listed:
        errors.append(f"deploy/k8s/{path.name} is not listed in kustomization.yaml")

objects = {}
for name in listed:
    if not (k8s / name).is_file():
        continue
    for doc in yaml.safe_load_all((k8s / name).read_text()):
        if doc:
            objects[doc["kind"]] = doc


def cross_check(deployment, hpa):
    pod = deployment["spec"]["template"]["spec"]
    main = next(c for c in pod["containers"] if c["name"] == "bidder")
    env = {e["name"]: e.get("value") for e in main.get("env", [])}
    drain = int(env.get("BIDDER_DRAIN_SECS", 60))
    pre_stop = main.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    sleep = int(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace <= sleep + drain:
        errors.append(f"terminationGracePeriodSeconds {grace} must exceed preStop sleep {sleep} + BIDDER_DRAIN_SECS {drain}")
    ports = {p.get("name"): str(p["containerPort"]) for p in main["ports"]}
    port, metrics_port = ports.get("http", ""), ports.get("metrics", "")
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    if annotations.get("prometheus.io/port") != metrics_port:
        errors.append(f"prometheus.io/port must be the container port named metrics ({metrics_port or 'none'})")
    listen = env.get("BIDDER_LISTEN", "")
    if not port or not listen.endswith(":" + port):
        errors.append(f"BIDDER_LISTEN {listen!r} does not listen on the container port named http ({port or 'none'})")
    metrics_listen = env.get("BIDDER_METRICS_LISTEN", "")
    if not metrics_port or not metrics_listen.endswith(":" + metrics_port):
        errors.append(
            f"BIDDER_METRICS_LISTEN {metrics_listen!r} does not listen on the container port named metrics "
            f"({metrics_port or 'none'})"
        )
    if hpa["spec"]["scaleTargetRef"]["name"] != deployment["metadata"]["name"]:
        errors.append("the HPA does not target the Deployment")
    hpa_metrics = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    adapter = yaml.safe_load(pathlib.Path("deploy/monitoring/prometheus-adapter-config.yaml").read_text())
    rules = yaml.safe_load(adapter["data"]["config.yaml"])["rules"]
    served = {r["name"]["as"] for r in rules}
    for metric in sorted(hpa_metrics - served):
        errors.append(f"the HPA reads {metric}, which no prometheus-adapter rule serves")
    images = {c["image"].rsplit(":", 1)[0] for c in pod["containers"] + pod.get("initContainers", [])}
    for image in kustomization.get("images", []):
        if image["name"] not in images:
            errors.append(f"kustomization.yaml images: {image['name']} matches no container image")


deployment, hpa = objects.get("Deployment"), objects.get("HorizontalPodAutoscaler")
if deployment is None or hpa is None:
    errors.append("kustomization.yaml must include the Deployment and the HorizontalPodAutoscaler")
else:
    try:
        cross_check(deployment, hpa)
    except (KeyError, TypeError, ValueError, IndexError, StopIteration) as error:
        # A malformed manifest the schema check has already reported.
        errors.append(f"cross-checks could not read the manifests: {error!r}")

for error in errors:
    print(f"validate-deploy: error: {error}", file=sys.stderr)
if not errors:
    print("validate-deploy: kustomization and cross-references consistent", file=sys.stderr)
sys.exit(1 if errors else 0)
PY

[ "$failed" -eq 0 ] || die "deploy/ manifests are invalid (see above)"
say "ok"

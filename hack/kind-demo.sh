#!/usr/bin/env bash
# `make kind-demo`: Ballast in a kind cluster, on real pods, with a real Prometheus and real traffic.
# The story of `make demo`: a good version is promoted through canary steps, a bad one is rolled back
# automatically. Needs Docker, kind, kubectl and helm, so it runs neither on the development machines
# (no Docker) nor in CI. `hack/kind-demo.sh down` (`make kind-down`) deletes the cluster.
set -euo pipefail

cd "$(dirname "$0")/.."
CLUSTER=ballast
NS=shop
PROMETHEUS=http://localhost:9090 # NodePort 30090, mapped to the host by kind-config.yaml
# The demo's own kubeconfig, so that neither kind nor this script touches the user's other contexts.
mkdir -p "${STATE:-.local}"
KUBECONFIG="$(cd "${STATE:-.local}" && pwd)/kind-kubeconfig"
export KUBECONFIG

say() { # say LINE...: one step of the story, narrated like tests/harness/demo.py
  local text=$1 line
  shift
  for line in "$@"; do text+=$'\n    '$line; done
  if [[ -t 1 ]]; then printf '\n\033[1m==> %s\033[0m\n' "$text"; else printf '\n==> %s\n' "$text"; fi
}
show() { echo "\$ $*"; "$@"; }
die() { echo "kind-demo: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not on PATH. Install it first: $2"; }

# wait_until SECONDS WHAT COMMAND...: run COMMAND until it succeeds; give up after SECONDS.
wait_until() {
  local timeout=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || die "gave up after ${timeout}s waiting for ${what}"
    sleep 2
  done
}

if [[ ${1:-} == down ]]; then
  need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
  say "Deleting the kind cluster '$CLUSTER'."
  kind delete cluster --name "$CLUSTER"
  rm -f "$KUBECONFIG"
  exit 0
elif [[ $# -gt 0 ]]; then
  die "usage: $0 [down]"
fi

need docker "https://docs.docker.com/get-docker/"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need helm "https://helm.sh/docs/intro/install/"
need curl "your system's package manager"
docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer (is Docker running?)"
trap 'status=$?; ((status == 0)) || echo "kind-demo failed. The operator logs:
  KUBECONFIG=$KUBECONFIG kubectl logs -n ballast-system -l app.kubernetes.io/name=ballast --prefix --tail=100" >&2' EXIT

# -- helpers for the story ------------------------------------------------------------------------------

prometheus_has() { # prometheus_has QUERY: the instant query returns at least one series
  curl -fsS -G --data-urlencode "query=$1" "$PROMETHEUS/api/v1/query" 2>/dev/null | grep -q '"value"'
}
pause_webhook_active() {
  kubectl get mutatingwebhookconfiguration ballast.dev -o jsonpath='{.webhooks[*].name}' 2>/dev/null |
    tr ' ' '\n' | grep -qx production.pause.ballast.dev
}
ownership_sees_deployment() {
  [[ $(kubectl get serviceownership recommendations -n "$NS" -o jsonpath='{.status.workloadCount}') == 1 ]]
}
releases() {
  kubectl get releases -n "$NS" -l ballast.dev/deployment=recommendations \
    -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | LC_ALL=C sort
}
release_after() { LC_ALL=C comm -13 <(echo "$1") <(releases) | head -n 1; } # the release not in list $1
has_release_after() { [[ -n $(release_after "$1") ]]; }
phase() { kubectl get release "$1" -n "$NS" -o jsonpath='{.status.phase}'; }
phase_in() { # phase_in RELEASE PHASE...
  local current
  current=$(phase "$1")
  shift
  [[ -n $current && " $* " == *" $current "* ]]
}
FINAL=(Promoted RolledBack Superseded Failed)

# ship VERSION ERROR_RATIO: what a service team's `kubectl apply` of a new version amounts to, a changed
# pod template. Sets RELEASE to the Release Ballast opens for it.
ship() {
  local before patch
  before=$(releases)
  patch=$(printf '{"spec":{"template":{"metadata":{"labels":{"app.kubernetes.io/version":"%s"}},"spec":{"containers":[{"name":"recommendations","env":[{"name":"VERSION","value":"%s"},{"name":"ERROR_RATIO","value":"%s"}]}]}}}}' "$1" "$1" "$2")
  show kubectl patch deployment/recommendations -n "$NS" -p "$patch"
  wait_until 60 "a Release for version $1" has_release_after "$before"
  RELEASE=$(release_after "$before")
  echo "Release: $RELEASE"
}

# -- the cluster, Prometheus and the operator ---------------------------------------------------------

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  say "Reusing the kind cluster '$CLUSTER'."
  kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"
else
  say "Creating a kind cluster '$CLUSTER' from kind-config.yaml (one control plane, two workers)."
  show kind create cluster --config kind-config.yaml --wait 180s
fi

say "Building the operator image from the Dockerfile and loading it into the cluster's nodes."
show docker build -t ballast:dev .
show kind load docker-image ballast:dev --name "$CLUSTER"

say "Installing Prometheus (scrapes every pod annotated prometheus.io/scrape, every 5 s)."
show kubectl apply -f deploy/kind/prometheus.yaml
show kubectl rollout status deployment/prometheus-server -n monitoring --timeout=300s

say "Installing Ballast with its Helm chart."
reinstall=false
helm status ballast -n ballast-system >/dev/null 2>&1 && reinstall=true
show helm upgrade --install ballast charts/ballast -n ballast-system --create-namespace \
  --set image.repository=ballast --set image.tag=dev --set image.pullPolicy=Never --wait --timeout 5m
if $reinstall; then
  # Same tag, maybe a new image: the pod template did not change, so only a restart picks it up.
  show kubectl rollout restart deployment/ballast -n ballast-system
  show kubectl rollout status deployment/ballast -n ballast-system --timeout=180s
fi
show kubectl apply -f deploy/kind/operator-metrics.yaml

# -- the policy and the service -------------------------------------------------------------------------

if [[ -n $(kubectl get namespace "$NS" traffic --ignore-not-found -o name) ]]; then
  say "Removing the previous run's service, so the story starts from version 1.0.0 again."
  show kubectl delete namespace "$NS" traffic --ignore-not-found --timeout=180s
fi

say "Applying the production ReleasePolicy from examples/. So that the demo takes minutes, not hours," \
  "the low tier's canary steps are shortened to 25% then 50% of traffic, 30 seconds each."
show kubectl apply -f examples/01-namespace-shop.yaml -f examples/02-releasepolicy-production.yaml
show kubectl patch releasepolicy production --type merge \
  -p '{"spec":{"tiers":{"low":{"steps":[25,50],"stepDuration":"30s","minRequests":20}}}}'
wait_until 60 "the operator to register its webhooks for the policy" pause_webhook_active

say "Deploying recommendations 1.0.0 (0.5% errors, 4 replicas), its ServiceOwnership (tier low), and a" \
  "load generator sending it 20 requests a second. The code comes from ConfigMaps; no image is built."
# The ConfigMaps go first, so that no pod waits for its volume.
kubectl create namespace traffic --dry-run=client -o yaml | kubectl apply -f -
kubectl create configmap demo-app -n "$NS" --from-file=deploy/kind/demo-app/app.py \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl create configmap loadgen -n traffic --from-file=deploy/kind/demo-app/loadgen.py \
  --dry-run=client -o yaml | kubectl apply -f -
show kubectl apply -f deploy/kind/demo-app.yaml
show kubectl rollout status deployment/recommendations -n "$NS" --timeout=300s
show kubectl rollout status deployment/loadgen -n traffic --timeout=300s
wait_until 60 "the ServiceOwnership to find the Deployment" ownership_sees_deployment
wait_until 120 "Prometheus to see the traffic" \
  prometheus_has 'sum(rate(http_requests_total{namespace="shop",pod=~"recommendations-.*"}[30s])) > 0'
show kubectl get serviceownerships,releasepolicies -A

# -- the story ------------------------------------------------------------------------------------------

say "The team ships 1.1.0, as good as today's (0.5% errors). Ballast pauses the Deployment and starts" \
  "a canary that takes a share of the traffic; Prometheus compares it with the stable pods:"
ship 1.1.0 0.005
wait_until 180 "$RELEASE to start its canary" phase_in "$RELEASE" Progressing Promoting "${FINAL[@]}"
show kubectl get deployments,pods -n "$NS" -L app.kubernetes.io/version
say "Every step passes, so the Deployment rolls out natively and the canary goes away:"
wait_until 360 "$RELEASE to finish" phase_in "$RELEASE" "${FINAL[@]}"
[[ $(phase "$RELEASE") == Promoted ]] || die "$RELEASE ended $(phase "$RELEASE"), expected Promoted"
show kubectl rollout status deployment/recommendations -n "$NS" --timeout=180s
show kubectl get deployments,pods -n "$NS" -L app.kubernetes.io/version

say "Next, a bad version: 1.2.0 fails 20% of its requests. Its canary fails the analysis and Ballast" \
  "rolls back automatically:"
ship 1.2.0 0.2
wait_until 300 "$RELEASE to finish" phase_in "$RELEASE" "${FINAL[@]}"
[[ $(phase "$RELEASE") == RolledBack ]] || die "$RELEASE ended $(phase "$RELEASE"), expected RolledBack"
kubectl get release "$RELEASE" -n "$NS" -o jsonpath='{.status.reason}: {.status.message}{"\n"}'
kubectl get deployment recommendations -n "$NS" \
  -o jsonpath='recommendations now runs {.spec.template.spec.containers[0].env[?(@.name=="VERSION")].value}{"\n"}'

say "The release history SREs read:"
show kubectl get releases -n "$NS" -o wide
if command -v kubectl-ballast >/dev/null 2>&1; then
  plugin=(kubectl ballast)
elif [[ -x .venv/bin/kubectl-ballast ]]; then
  echo "(kubectl-ballast is not on PATH; running .venv/bin/kubectl-ballast. Add .venv/bin to PATH for 'kubectl ballast'.)"
  plugin=(.venv/bin/kubectl-ballast)
else
  plugin=()
  echo "kubectl-ballast is not on PATH: 'pip install -e .' (or 'make install') installs the plugin; then"
  echo "  KUBECONFIG=$KUBECONFIG kubectl ballast status -n $NS; kubectl ballast scoreboard -n $NS"
fi
if ((${#plugin[@]})); then
  show "${plugin[@]}" status -n "$NS"
  show "${plugin[@]}" scoreboard -n "$NS"
fi

say "Done. The cluster stays up for exploring:" \
  "  export KUBECONFIG=$KUBECONFIG" \
  "  kubectl get releases,serviceownerships -n $NS" \
  "  $PROMETHEUS             Prometheus" \
  "  http://localhost:8080/metrics     the operator's metrics" \
  "  make kind-down                    deletes the cluster"

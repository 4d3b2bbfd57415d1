#!/usr/bin/env bash
# `make kind-demo`: Ballast in a kind cluster, on real pods, with a real Prometheus and real traffic.
# The first chapters of `make demo`, on the same manifests, chart values and demo app (deploy/kind/): a
# change to a Deployment without a runbook is refused, then fixed; a good version is promoted through
# canary steps; a bad one is rolled back automatically. Needs Docker, kind, kubectl and helm, so it runs
# neither on the development machines (no Docker) nor in CI; tests/integration/test_kind_manifests.py
# holds it to what `make demo` runs there. `hack/kind-demo.sh down` (`make kind-down`) deletes the cluster.
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

# version_patch VERSION ERROR_RATIO: what a service team's `kubectl apply` of a new version amounts to, a
# changed pod template: the demo app's env, as tests/harness/demo.py (Pods.template) ships it.
version_patch() {
  printf '{"spec":{"template":{"spec":{"containers":[{"name":"recommendations","env":[{"name":"VERSION","value":"%s"},{"name":"ERROR_RATIO","value":"%s"}]}]}}}}' "$1" "$2"
}
# refused_now VERSION ERROR_RATIO: a server-side dry run of that change is refused (the webhook is active).
refused_now() {
  ! kubectl patch deployment/recommendations -n "$NS" -p "$(version_patch "$1" "$2")" --dry-run=server >/dev/null 2>&1
}
# ship VERSION ERROR_RATIO: apply that change; sets RELEASE to the Release Ballast opens for it.
ship() {
  local before
  before=$(releases)
  show kubectl patch deployment/recommendations -n "$NS" -p "$(version_patch "$1" "$2")"
  wait_until 60 "a Release for version $1" has_release_after "$before"
  RELEASE=$(release_after "$before")
  echo "Release: $RELEASE"
}
policy_webhooks_gone() {
  ! kubectl get validatingwebhookconfiguration,mutatingwebhookconfiguration ballast.dev \
    -o jsonpath='{.items[*].webhooks[*].name}' 2>/dev/null | tr ' ' '\n' | grep -q '^production\.'
}

# -- the cluster, the images, Prometheus and the operator -------------------------------------------------

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  say "Reusing the kind cluster '$CLUSTER'."
  kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"
else
  say "Creating a kind cluster '$CLUSTER' from kind-config.yaml (one control plane, two workers)."
  show kind create cluster --config kind-config.yaml --wait 180s
fi

# The chart's default image (repository ballast, tag = its appVersion), as deploy/kind/values.yaml keeps it,
# and the demo app's image that deploy/kind/demo-app.yaml and loadgen.yaml name.
APP_VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/ballast/Chart.yaml)
OPERATOR_IMAGE=ballast:$APP_VERSION
DEMO_APP_IMAGE=ballast-demo-app:local
say "Building the operator image (Dockerfile) and the demo app's (deploy/kind/demo-app/Dockerfile), and" \
  "loading both into the cluster's nodes (nothing is pushed or pulled)."
show docker build -t "$OPERATOR_IMAGE" .
show docker build -t "$DEMO_APP_IMAGE" deploy/kind/demo-app
show kind load docker-image "$OPERATOR_IMAGE" "$DEMO_APP_IMAGE" --name "$CLUSTER"

say "Installing Prometheus (scrapes every pod annotated prometheus.io/scrape, every 5 s)."
show kubectl apply -f deploy/kind/prometheus.yaml
show kubectl rollout status deployment/prometheus-server -n monitoring --timeout=300s

say "Installing Ballast with its Helm chart and the demos' values (deploy/kind/values.yaml)."
reinstall=false
helm status ballast -n ballast-system >/dev/null 2>&1 && reinstall=true
show helm upgrade --install ballast charts/ballast -n ballast-system --create-namespace \
  -f deploy/kind/values.yaml --wait --timeout 5m
if $reinstall; then
  # Same tag, maybe a new image: the pod template did not change, so only a restart picks it up.
  show kubectl rollout restart deployment/ballast -n ballast-system
  show kubectl rollout status deployment/ballast -n ballast-system --timeout=180s
fi
show kubectl apply -f deploy/kind/operator-metrics.yaml

# -- the services, as they ran before Ballast governed them -------------------------------------------------

if [[ -n $(kubectl get namespace "$NS" traffic --ignore-not-found -o name) ]]; then
  say "Removing the previous run's policy and services, so the story starts from the beginning again."
  show kubectl delete releasepolicy production --ignore-not-found
  wait_until 60 "the operator to remove the policy's webhooks" policy_webhooks_gone
  show kubectl delete namespace "$NS" traffic --ignore-not-found --timeout=180s
fi

say "Deploying the services as they ran before Ballast: checkout (2 replicas) and recommendations" \
  "(2 replicas, no runbook annotation), and their users sending each 20 requests a second."
show kubectl apply -f examples/01-namespace-shop.yaml -f deploy/kind/demo-app.yaml -f deploy/kind/loadgen.yaml
show kubectl rollout status deployment/checkout -n "$NS" --timeout=300s
show kubectl rollout status deployment/recommendations -n "$NS" --timeout=300s
show kubectl rollout status deployment/loadgen -n traffic --timeout=300s
show kubectl get pods -n "$NS" -o wide

# -- the story ------------------------------------------------------------------------------------------

say "The platform team applies the production ReleasePolicy and the teams their ServiceOwnerships" \
  "(examples/). So that the demo takes minutes, not hours, the low tier's canary steps are shortened to" \
  "25% then 50% of traffic, 30 seconds each."
show kubectl apply -f examples/02-releasepolicy-production.yaml -f examples/03-serviceownership-checkout.yaml \
  -f examples/04-serviceownership-recommendations.yaml
show kubectl patch releasepolicy production --type merge \
  -p '{"spec":{"tiers":{"low":{"steps":[25,50],"stepDuration":"30s","minRequests":20}}}}'
wait_until 60 "the operator to register its webhooks for the policy" pause_webhook_active
wait_until 60 "the ServiceOwnership to find the Deployment" ownership_sees_deployment
wait_until 120 "Prometheus to see the traffic" \
  prometheus_has 'sum(rate(http_requests_total{namespace="shop",pod=~"recommendations-.*"}[30s])) > 0'
show kubectl get serviceownerships,releasepolicies -A

say "The discovery team ships recommendations 3.3.0. Ballast refuses it: the Deployment has no runbook."
wait_until 60 "Ballast's webhook to judge changes to recommendations" refused_now 3.3.0 0.005
if show kubectl patch deployment/recommendations -n "$NS" -p "$(version_patch 3.3.0 0.005)"; then
  die "a change to a Deployment without a runbook was admitted; Ballast should have refused it"
fi

say "They add the runbook the message asks for and ship again (as good as today's: 0.5% errors)." \
  "Ballast pauses the Deployment and starts a canary that takes a share of the traffic; Prometheus" \
  "compares it with the stable pods:"
show kubectl annotate deployment/recommendations -n "$NS" \
  ballast.dev/runbook=https://runbooks.example.com/discovery/recommendations
ship 3.3.0 0.005
wait_until 180 "$RELEASE to start its canary" phase_in "$RELEASE" Progressing Promoting "${FINAL[@]}"
show kubectl get deployments,pods -n "$NS" -o wide -L ballast.dev/track
say "Every step passes, so the Deployment rolls out natively and the canary goes away:"
wait_until 360 "$RELEASE to finish" phase_in "$RELEASE" "${FINAL[@]}"
[[ $(phase "$RELEASE") == Promoted ]] || die "$RELEASE ended $(phase "$RELEASE"), expected Promoted"
show kubectl rollout status deployment/recommendations -n "$NS" --timeout=180s
show kubectl get deployments,pods -n "$NS" -o wide -L ballast.dev/track

say "Next, a bad version: 3.5.0 fails 20% of its requests. Its canary fails the analysis and Ballast" \
  "rolls back automatically:"
ship 3.5.0 0.2
wait_until 300 "$RELEASE to finish" phase_in "$RELEASE" "${FINAL[@]}"
[[ $(phase "$RELEASE") == RolledBack ]] || die "$RELEASE ended $(phase "$RELEASE"), expected RolledBack"
kubectl get release "$RELEASE" -n "$NS" -o jsonpath='{.status.reason}: {.status.message}{"\n"}'
kubectl get deployment recommendations -n "$NS" \
  -o jsonpath='recommendations now runs {.spec.template.spec.containers[0].env[?(@.name=="VERSION")].value}{"\n"}'
echo "What the users saw (the load generator's counts, every 10 s):"
kubectl logs -n traffic deployment/loadgen -c recommendations-users --tail=6

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

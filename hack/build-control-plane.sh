#!/usr/bin/env bash
# Obtain kube-apiserver and kube-controller-manager for the local control plane.
#
# No package registry ships these two binaries, so we build them from Debian's `kubernetes` source
# package (1.20.2) with Debian's Go; the recipe and the two fixes it needs under Go >= 1.16 are in
# hack/lib/build-kubernetes.sh (shared with hack/build-node.sh).
#
# The result is cached under ${BALLAST_CACHE_DIR:-$XDG_CACHE_HOME/ballast} and
# reused. Binaries already on PATH (or in $KUBEBUILDER_ASSETS) win over a build.
# Prints the directory holding both binaries on its last line of stdout.
set -euo pipefail
# shellcheck source=hack/lib/build-kubernetes.sh
source "$(dirname "$0")/lib/build-kubernetes.sh"
LOG_TAG=build-control-plane

# Bump RECIPE when the build changes, so no machine reuses binaries of an older recipe.
RECIPE=1.20.2-r2
binaries=(kube-apiserver kube-controller-manager)

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && have_all_in "$KUBEBUILDER_ASSETS" "${binaries[@]}"; then
  log "using binaries in KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
  echo "$KUBEBUILDER_ASSETS"; exit 0
fi
if path_apiserver=$(command -v kube-apiserver) && have_all_in "$(dirname "$path_apiserver")" "${binaries[@]}"; then
  log "using binaries on PATH in $(dirname "$path_apiserver")"
  dirname "$path_apiserver"; exit 0
fi
build_kubernetes "$RECIPE" "5-8 minutes" "${binaries[@]}"

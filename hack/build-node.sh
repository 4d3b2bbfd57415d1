#!/usr/bin/env bash
# Obtain kubelet, kube-proxy and kube-scheduler 1.20.2 for the local real node (tests/harness/node.py).
#
# Same source tree and recipe as the control plane (hack/lib/build-kubernetes.sh: Debian's kubernetes
# source package, Debian's Go, the vendored reflect2/json-iterator swap, the OpenAPI fix), cached
# separately under its own RECIPE so building the node never invalidates the control-plane binaries.
# About 9 minutes cold on 2 cores. Binaries already on PATH win over a build.
# Prints the directory holding the three binaries on its last line of stdout.
set -euo pipefail
# shellcheck source=hack/lib/build-kubernetes.sh
source "$(dirname "$0")/lib/build-kubernetes.sh"
LOG_TAG=build-node

# Bump RECIPE when the node build changes (independent of the control plane's).
RECIPE=node-1.20.2-r1
binaries=(kubelet kube-proxy kube-scheduler)

if path_kubelet=$(command -v kubelet) && have_all_in "$(dirname "$path_kubelet")" "${binaries[@]}"; then
  log "using binaries on PATH in $(dirname "$path_kubelet")"
  dirname "$path_kubelet"; exit 0
fi
build_kubernetes "$RECIPE" "about 9 minutes" "${binaries[@]}"

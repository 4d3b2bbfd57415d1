#!/usr/bin/env bash
# Obtain kube-apiserver and kube-controller-manager for the local control plane.
#
# No package registry ships these two binaries, so we build them from Debian's
# `kubernetes` source package (1.20.2, vendored dependencies) with Debian's Go (1.19).
# Kubernetes 1.20 predates the Go versions Debian ships, which breaks two things:
#  - reflect2 1.0.1 / json-iterator 1.1.10 crash (SIGSEGV in map iteration) under
#    Go >= 1.18 the first time a custom resource is created: Debian ships the fixed
#    versions, which we copy over the vendored ones;
#  - the vendored OpenAPI type validator treats "" as null under Go >= 1.16, so any
#    custom resource with an empty string is refused (kubernetes/kubernetes#99804).
#    We apply the upstream fix (kubernetes/kubernetes#99817): only nil is null.
#
# The result is cached under ${BALLAST_CACHE_DIR:-$XDG_CACHE_HOME/ballast} and
# reused. Binaries already on PATH (or in $KUBEBUILDER_ASSETS) win over a build.
# Prints the directory holding both binaries on its last line of stdout.
set -euo pipefail

cache_dir="${BALLAST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ballast}"
# Bump RECIPE when the build changes, so no machine reuses binaries of an older recipe.
RECIPE=1.20.2-r2
bin_dir="$cache_dir/kubernetes-$RECIPE/bin"
binaries=(kube-apiserver kube-controller-manager)

log() { printf '[build-control-plane] %s\n' "$*" >&2; }

have_all_in() {
  local dir=$1 b
  for b in "${binaries[@]}"; do [ -x "$dir/$b" ] || return 1; done
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && have_all_in "$KUBEBUILDER_ASSETS"; then
  log "using binaries in KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
  echo "$KUBEBUILDER_ASSETS"; exit 0
fi
if path_apiserver=$(command -v kube-apiserver) && have_all_in "$(dirname "$path_apiserver")"; then
  log "using binaries on PATH in $(dirname "$path_apiserver")"
  dirname "$path_apiserver"; exit 0
fi
if have_all_in "$bin_dir"; then
  log "using cached build in $bin_dir"
  echo "$bin_dir"; exit 0
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

log "no cached build; building from Debian's kubernetes source package (5-8 minutes on 2 cores)"
start=$(date +%s)
sources=/etc/apt/sources.list.d/debian.sources
src_list=/etc/apt/sources.list.d/ballast-deb-src.sources
if [ ! -f "$src_list" ]; then
  # Same archives as the binary entries, for source packages.
  sed 's/^Types: deb$/Types: deb-src/' "$sources" | as_root tee "$src_list" >/dev/null
fi
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  golang-go rsync dpkg-dev make \
  golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev >/dev/null

work="$cache_dir/kubernetes-$RECIPE/src"
rm -rf "$work"; mkdir -p "$work"
( cd "$work" && apt-get source -qq --download-only kubernetes >/dev/null && dpkg-source -x --skip-patches kubernetes_*.dsc tree >/dev/null )
tree="$work/tree"

replace_vendored() {
  local from=$1 to=$2
  find "$to" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
  find "$from" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' -exec cp {} "$to"/ \;
}
replace_vendored /usr/share/gocode/src/github.com/modern-go/reflect2 "$tree/vendor/github.com/modern-go/reflect2"
replace_vendored /usr/share/gocode/src/github.com/json-iterator/go "$tree/vendor/github.com/json-iterator/go"

zero_check='data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data))'
validators=$(grep -rlF "$zero_check" "$tree/vendor" || true)
[ -n "$validators" ] || { log "the OpenAPI type validator to patch was not found"; exit 1; }
for file in $validators; do
  sed -i "s/$(printf '%s' "$zero_check" | sed 's/[][\\.*^$/]/\\&/g')/data == nil/" "$file"
  ! grep -qF "$zero_check" "$file" || { log "could not patch $file"; exit 1; }
  log "patched the empty-string check in ${file#"$tree"/}"
done

( cd "$tree" && GOFLAGS=-mod=vendor GO111MODULE=on make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" GOLDFLAGS="-s -w" >&2 )

mkdir -p "$bin_dir"
for b in "${binaries[@]}"; do
  out=$(find "$tree/_output" -type f -name "$b" -perm -u+x | head -n1)
  [ -n "$out" ] || { log "build produced no $b"; exit 1; }
  cp "$out" "$bin_dir/$b"
done
rm -rf "$work"
log "built in $(( $(date +%s) - start ))s into $bin_dir"
echo "$bin_dir"

# shellcheck shell=bash
# Shared by hack/build-control-plane.sh and hack/build-node.sh: build Kubernetes 1.20.2 binaries from
# Debian's `kubernetes` source package (vendored dependencies) with Debian's Go (1.19), cached under
# ${BALLAST_CACHE_DIR:-$XDG_CACHE_HOME/ballast}/kubernetes-<recipe>/bin.
#
# Kubernetes 1.20 predates the Go versions Debian ships, which breaks two things, fixed before building:
#  - reflect2 1.0.1 / json-iterator 1.1.10 crash (SIGSEGV in map iteration) under Go >= 1.18 the
#    first time a custom resource is created: Debian ships the fixed versions, which we copy over the
#    vendored ones;
#  - the vendored OpenAPI type validator treats "" as null under Go >= 1.16, so any custom resource
#    with an empty string is refused (kubernetes/kubernetes#99804). We apply the upstream fix
#    (kubernetes/kubernetes#99817): only nil is null.
#
# Usage (sourced): LOG_TAG=... build_kubernetes RECIPE "expected duration" binary...
# Prints the cached bin directory on stdout; progress goes to stderr.

cache_dir="${BALLAST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ballast}"

log() { printf '[%s] %s\n' "${LOG_TAG:-build-kubernetes}" "$*" >&2; }

# have_all_in DIR binary...: every binary is an executable in DIR.
have_all_in() {
  local dir=$1 b; shift
  for b in "$@"; do [ -x "$dir/$b" ] || return 1; done
}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# build_kubernetes RECIPE DURATION binary...: the cached build of RECIPE, or build it now.
build_kubernetes() {
  local recipe=$1 duration=$2; shift 2
  local binaries=("$@") targets=() b
  local bin_dir="$cache_dir/kubernetes-$recipe/bin"
  if have_all_in "$bin_dir" "${binaries[@]}"; then
    log "using cached build in $bin_dir"
    echo "$bin_dir"; return 0
  fi
  for b in "${binaries[@]}"; do targets+=("cmd/$b"); done

  log "no cached build of ${binaries[*]}; building from Debian's kubernetes source package ($duration on 2 cores)"
  local start; start=$(date +%s)
  local sources=/etc/apt/sources.list.d/debian.sources
  local src_list=/etc/apt/sources.list.d/ballast-deb-src.sources
  if [ ! -f "$src_list" ]; then
    # Same archives as the binary entries, for source packages.
    sed 's/^Types: deb$/Types: deb-src/' "$sources" | as_root tee "$src_list" >/dev/null
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    golang-go rsync dpkg-dev make \
    golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev >/dev/null

  local work="$cache_dir/kubernetes-$recipe/src"
  rm -rf "$work"; mkdir -p "$work"
  log "unpacking the source package into $work"
  ( cd "$work" && apt-get source -qq --download-only kubernetes >/dev/null && dpkg-source -x --skip-patches kubernetes_*.dsc tree >/dev/null )
  local tree="$work/tree"

  replace_vendored() {
    local from=$1 to=$2
    find "$to" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
    find "$from" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' -exec cp {} "$to"/ \;
  }
  replace_vendored /usr/share/gocode/src/github.com/modern-go/reflect2 "$tree/vendor/github.com/modern-go/reflect2"
  replace_vendored /usr/share/gocode/src/github.com/json-iterator/go "$tree/vendor/github.com/json-iterator/go"

  local zero_check='data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data))'
  local validators file
  validators=$(grep -rlF "$zero_check" "$tree/vendor" || true)
  [ -n "$validators" ] || { log "the OpenAPI type validator to patch was not found"; return 1; }
  for file in $validators; do
    sed -i "s/$(printf '%s' "$zero_check" | sed 's/[][\\.*^$/]/\\&/g')/data == nil/" "$file"
    ! grep -qF "$zero_check" "$file" || { log "could not patch $file"; return 1; }
    log "patched the empty-string check in ${file#"$tree"/}"
  done

  log "make WHAT=\"${targets[*]}\" (started $(date -u +%H:%M:%S) UTC, expect $duration)"
  ( cd "$tree" && GOFLAGS=-mod=vendor GO111MODULE=on make WHAT="${targets[*]}" GOLDFLAGS="-s -w" >&2 )

  mkdir -p "$bin_dir"
  local out
  for b in "${binaries[@]}"; do
    out=$(find "$tree/_output" -type f -name "$b" -perm -u+x | head -n1)
    [ -n "$out" ] || { log "build produced no $b"; return 1; }
    cp "$out" "$bin_dir/$b"
  done
  rm -rf "$work"
  log "built in $(( $(date +%s) - start ))s into $bin_dir"
  echo "$bin_dir"
}

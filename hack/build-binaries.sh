#!/usr/bin/env bash
# Builds the real local control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd), kwok and helm from the Go module proxy.
# Binaries are cached by version under $MODELDEPLOY_CACHE so only the first build is slow.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"
HELM_VERSION="${HELM_VERSION:-v3.19.4}"
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.4.1}"
CACHE="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}"
BIN="$CACHE/bin"
WORK="$CACHE/build"
GO_MIN_MINOR=24
mkdir -p "$BIN" "$WORK"

say() { printf '\033[1m[build]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[build] error:\033[0m %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "Go is not installed (need go >= 1.$GO_MIN_MINOR): install it from your distribution or go.dev, then retry."
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
[ "$go_minor" -ge "$GO_MIN_MINOR" ] || die "Go $(go env GOVERSION) is too old: Kubernetes ${K8S_VERSION} needs go >= 1.$GO_MIN_MINOR."

# Runs a command while printing a heartbeat with the elapsed time, so a cold build is never a silent wait.
with_progress() {
  local label="$1"; shift
  local start=$SECONDS log="$WORK/$label.log"
  say "building $label ..."
  ( while sleep 30; do say "  still building $label ($((SECONDS - start))s elapsed)"; done ) &
  local ticker=$!
  if ! "$@" >"$log" 2>&1; then
    kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
    tail -n 30 "$log" >&2
    if grep -qiE 'dial tcp|no such host|proxy|i/o timeout|connection refused' "$log"; then
      die "$label: the Go module proxy ($(go env GOPROXY)) is unreachable; check network/GOPROXY and retry."
    fi
    die "$label failed; full log: $log"
  fi
  kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
  say "built $label in $((SECONDS - start))s"
}

have() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$BIN/.$1.version"; }

# A wrapper module that pins every staging module of an upstream go.mod that uses local replaces.
make_wrapper() {
  local dir="$1" module="$2" version="$3" staging_version="$4" prefix_re="$5"
  mkdir -p "$dir"
  local gomod
  gomod=$(cd "$dir" && GOFLAGS=-mod=mod go mod download -json "$module@$version" | sed -nE 's/^\s*"GoMod": "(.*)",?$/\1/p')
  [ -f "$gomod" ] || die "could not download $module@$version (Go module proxy: $(go env GOPROXY))"
  {
    echo "module modeldeploy.local/build/$(basename "$dir")"
    echo
    echo "go $(sed -nE 's/^go ([0-9.]+).*/\1/p' "$gomod")"
    echo
    echo "require $module $version"
    echo
    echo "replace ("
    sed -nE "s#^\s*($prefix_re[^ ]*) => \./.*#\1#p" "$gomod" | while read -r m; do
      echo "	$m => $m $staging_version"
    done
    echo ")"
  } >"$dir/go.mod"
}

ldflags_k8s() {
  local v="${K8S_VERSION#v}" major minor
  major=${v%%.*}; minor=$(echo "$v" | cut -d. -f2)
  local f=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f="$f -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "-s -w $f"
}

K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
need_k8s=0
for b in "${K8S_BINS[@]}"; do have "$b" "$K8S_VERSION" || need_k8s=1; done
if [ $need_k8s = 1 ]; then
  d="$WORK/k8s-$K8S_VERSION"
  make_wrapper "$d" k8s.io/kubernetes "$K8S_VERSION" "v0${K8S_VERSION#v1}" 'k8s\.io/'
  pkgs=(); for b in "${K8S_BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  with_progress "kubernetes-$K8S_VERSION (${K8S_BINS[*]})" bash -c "cd '$d' && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -tags selinux,notest -ldflags '$(ldflags_k8s)' -o '$BIN/' ${pkgs[*]}"
  for b in "${K8S_BINS[@]}"; do stamp "$b" "$K8S_VERSION"; done
else
  say "kubernetes $K8S_VERSION binaries cached"
fi

if ! have etcd "$ETCD_VERSION"; then
  d="$WORK/etcd-$ETCD_VERSION"
  make_wrapper "$d" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION" 'go\.etcd\.io/'
  with_progress "etcd-$ETCD_VERSION" bash -c "cd '$d' && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o '$BIN/etcd' go.etcd.io/etcd/server/v3"
  stamp etcd "$ETCD_VERSION"
else
  say "etcd $ETCD_VERSION cached"
fi

if ! have kwok "$KWOK_VERSION"; then
  with_progress "kwok-$KWOK_VERSION" env GOBIN="$BIN" CGO_ENABLED=0 go install -trimpath -ldflags '-s -w' "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  stamp kwok "$KWOK_VERSION"
else
  say "kwok $KWOK_VERSION cached"
fi

if ! have helm "$HELM_VERSION"; then
  with_progress "helm-$HELM_VERSION" env GOBIN="$BIN" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  stamp helm "$HELM_VERSION"
else
  say "helm $HELM_VERSION cached"
fi

# kwok's own stage configs and the Gateway API standard CRDs ship inside their Go modules.
kwok_dir=$(cd "$WORK" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p')
mkdir -p "$CACHE/kwok"
# The "fast" stage set: Pods go straight to Running/Ready (the "general" set waits for init containers).
for s in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
         pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
  f="$kwok_dir/kustomize/stage/$s.yaml"
  [ -f "$f" ] || die "kwok stage $s not found in $kwok_dir"
  cp "$f" "$CACHE/kwok/$(basename "$s").yaml"
done
gw_dir=$(cd "$WORK" && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" | sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p')
mkdir -p "$CACHE/gateway-api"
cp "$gw_dir"/config/crd/standard/*.yaml "$CACHE/gateway-api/" 
chmod -R u+w "$CACHE/kwok" "$CACHE/gateway-api"
say "all binaries in $BIN"

#!/usr/bin/env bash
# The deployment checks of `make test` (no Docker engine or cluster needed):
#   - the Dockerfile and .dockerignore keep their promises (Rust version, locked build,
#     non-root user, ports, HEALTHCHECK, entrypoint and config path);
#   - helm lint; helm template with the defaults, with ci/documented-values.yaml (the
#     documented values, as written) and with the optional extras; the rendered YAML and
#     deploy/k8s/ are parsed and checked by deploy/check_manifests.py, and each ConfigMap's
#     config must pass `ai-service check-config`;
#   - deploy/smoke.sh starts the binary as the image would and stops it with SIGTERM.
# Tools go into the git-ignored .tools/ once (a stamp per tool and version): helm and
# grpcurl from the Go module proxy, PyYAML in a venv. Prints "deploy checks: N passed, M failed".
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

HELM_VERSION=v3.22.0
GRPCURL_VERSION=v1.9.4 # the Makefile's pin
PYYAML_VERSION=6.0.3
# A `go install`ed helm does not know a cluster version (it assumes 1.20); render for the
# oldest Kubernetes the chart supports (native gRPC probes are GA since 1.27).
KUBE_VERSION=1.27.0

tools=$root/.tools
bin=$tools/bin
stamps=$tools/stamps
venv=$tools/venv-deploy
mkdir -p "$bin" "$stamps"
export PATH=$bin:$venv/bin:$PATH

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "  ok   $*"; }
bad() { failed=$((failed + 1)); echo "  FAIL $*"; }
expect() { # expect WHAT COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

go_tool() { # go_tool STAMP PACKAGE@VERSION
    if [[ ! -f $stamps/$1 ]]; then
        echo "deploy: installing $2 into .tools/bin"
        GOBIN=$bin GOFLAGS=-mod=mod go install "$2"
        touch "$stamps/$1"
    fi
}
go_tool "helm@$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
command -v grpcurl >/dev/null || go_tool "grpcurl@$GRPCURL_VERSION" \
    "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
if [[ ! -f $stamps/venv-deploy@pyyaml-$PYYAML_VERSION ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "pyyaml==$PYYAML_VERSION"
    touch "$stamps/venv-deploy@pyyaml-$PYYAML_VERSION"
fi
python=$venv/bin/python

export AI_SERVICE_BIN=${AI_SERVICE_BIN:-$root/target/debug/ai-service}
if [[ ! -x $AI_SERVICE_BIN ]]; then
    cargo build --quiet --bin ai-service
    AI_SERVICE_BIN=${CARGO_TARGET_DIR:-$root/target}/debug/ai-service
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "deploy/Dockerfile, .dockerignore"
dockerfile=deploy/Dockerfile
msrv=$(sed -nE 's/^rust-version *= *"([0-9.]+)"/\1/p' Cargo.toml)
image_rust=$(sed -nE 's/^ARG RUST_VERSION=([0-9.]+)$/\1/p' "$dockerfile")
version_ge() { [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1) == "$2" ]]; }
expect "build stage Rust $image_rust >= rust-version $msrv" \
    version_ge "${image_rust:-0}" "${msrv:-999}"
expect "build stage FROM rust:\${RUST_VERSION}" grep -qE '^FROM rust:\$\{RUST_VERSION\}[^ ]* AS build' "$dockerfile"
expect "cargo build --release --locked" grep -qE 'cargo build --release --locked' "$dockerfile"
expect "multi-stage: a distroless or slim runtime" grep -qE '^FROM (gcr\.io/distroless/cc|debian:[a-z]+-slim)' "$dockerfile"
expect "runs as a non-root user" grep -qE '^USER (65532|nonroot)' "$dockerfile"
expect "EXPOSE 8080 9090" grep -qE '^EXPOSE 8080 9090$' "$dockerfile"
healthcheck_cmd() {
    grep -qE '^HEALTHCHECK ' "$dockerfile" &&
        grep -qE '^ +CMD \["/usr/local/bin/ai-service", "healthcheck", "127\.0\.0\.1:8080"' "$dockerfile"
}
expect "HEALTHCHECK runs ai-service healthcheck 127.0.0.1:8080" healthcheck_cmd
expect "ENTRYPOINT ai-service, CMD serve (what deploy/smoke.sh runs)" \
    bash -c "grep -qx 'ENTRYPOINT \[\"/usr/local/bin/ai-service\"\]' $dockerfile && grep -qx 'CMD \[\"serve\"\]' $dockerfile"
expect "AI_SERVICE_CONFIG=/etc/ai-service/config.yaml (where the ConfigMap is mounted)" \
    grep -qx 'ENV AI_SERVICE_CONFIG=/etc/ai-service/config.yaml' "$dockerfile"
rc=0
out_cc=$(env -i PATH="$PATH" "$AI_SERVICE_BIN" check-config deploy/config.yaml 2>&1) || rc=$?
expect "the image's baked-in config passes check-config" test "$rc" -eq 0
for entry in target/ clients/ .tools/ .git/; do
    expect ".dockerignore keeps $entry out" grep -qx "$entry" .dockerignore
done
# Every path the build stage copies must survive .dockerignore.
for src in Cargo.toml Cargo.lock build.rs proto proto-deps link src deploy/config.yaml; do
    expect "build context keeps $src" bash -c "! grep -qxE '/?$src/?' .dockerignore"
done

# What the build stage COPYs, alone, must be a complete locked cargo project.
context_is_enough() {
    local ctx=$out/context
    mkdir -p "$ctx"
    awk '/^FROM .* AS build/ {b = 1; next} /^FROM / {b = 0} b && /^COPY / && !/--from/ {
            for (i = 2; i < NF; i++) print $i }' "$dockerfile" >"$out/copied"
    [[ -s $out/copied ]] || return 1
    while read -r path; do cp -r "$path" "$ctx/" || return 1; done <"$out/copied"
    cargo metadata --locked --offline --no-deps --format-version 1 \
        --manifest-path "$ctx/Cargo.toml" >"$out/metadata.json" 2>"$out/metadata.err" ||
        { cat "$out/metadata.err"; return 1; }
    # cargo metadata does not look for the sources: the library, binary and build script
    # must be there, and whatever the build script watches (proto/, proto-deps/).
    "$python" - "$ctx" "$out/metadata.json" <<'PY'
import json, os, re, sys
ctx, meta = sys.argv[1], json.load(open(sys.argv[2]))
need = [t["src_path"] for p in meta["packages"] for t in p["targets"]
        if set(t["kind"]) & {"lib", "bin", "custom-build"}]
build_rs = os.path.join(ctx, "build.rs")
if os.path.exists(build_rs):
    need += [os.path.join(ctx, m) for m in
             re.findall(r"cargo:rerun-if-changed=([^\"\s)]+)", open(build_rs).read())]
missing = [os.path.relpath(p, ctx) for p in need if not os.path.exists(p)]
if missing:
    print("missing from the build context:", ", ".join(missing))
sys.exit(1 if missing else 0)
PY
}
expect "the build stage's COPYs make a complete --locked cargo project" context_is_enough

echo "helm"
chart=deploy/helm/ai-service
lint() { helm lint --kube-version "$KUBE_VERSION" "$@" >"$out/lint.log" 2>&1 || { cat "$out/lint.log"; return 1; }; }
expect "helm lint (defaults)" lint "$chart"
expect "helm lint (documented values)" lint "$chart" -f "$chart/ci/documented-values.yaml"
expect "helm lint --strict (extras)" lint --strict "$chart" -f "$chart/ci/extras-values.yaml"
render() { # render NAME [helm args]
    local name=$1
    shift
    helm template ai-service "$chart" --kube-version "$KUBE_VERSION" "$@" >"$out/$name.yaml" 2>"$out/$name.err" ||
        { cat "$out/$name.err"; return 1; }
}
expect "helm template (defaults)" render default
expect "helm template -f ci/documented-values.yaml" render documented -f "$chart/ci/documented-values.yaml"
expect "helm template config.timeout=45s" render timeout45 -f "$chart/ci/documented-values.yaml" --set config.timeout=45s
expect "helm template secrets.openai_key=sk-test" render own-secret --set secrets.openai_key=sk-test
expect "helm template existingSecret=ai-secrets" render existing --set existingSecret=ai-secrets --set secrets.openai_key=ignored
expect "helm template -f ci/extras-values.yaml" render extras -f "$chart/ci/extras-values.yaml"
expect "helm template -f ci/routes-values.yaml" render routes -f "$chart/ci/routes-values.yaml"
expect "helm lint --strict (cloud identities)" lint --strict "$chart" -f "$chart/ci/cloud-values.yaml"
expect "helm template -f ci/cloud-values.yaml" render cloud -f "$chart/ci/cloud-values.yaml"
render_fails() { ! helm template ai-service "$chart" --kube-version "$KUBE_VERSION" "$@" >/dev/null 2>&1; }
expect "helm template refuses tls.enabled without tls.secretName" render_fails --set tls.enabled=true
expect "helm template refuses tracing.headers without tracing.headersSecret" render_fails \
    --set tracing.endpoint=http://otel-collector:4317 --set tracing.headers.authorization=otlp-auth
expect "helm template refuses backup.enabled without backup.storage" render_fails --set backup.enabled=true
expect "helm template refuses vault.enabled without vault.address" render_fails --set vault.enabled=true
expect "helm template refuses both auth.keysSecret and vault.clientKeys" render_fails \
    --set vault.enabled=true --set vault.address=http://vault:8200 --set auth.keysSecret=keys \
    --set vault.clientKeys.path=secret/data/ai/clients --set vault.clientKeys.field=keys

echo "deploy/k8s (the kustomization's resources, in order)"
resources=$("$python" -c '
import sys, yaml
k = yaml.safe_load(open("deploy/k8s/kustomization.yaml"))
print("\n".join(k["resources"]))')
: >"$out/k8s.yaml"
while read -r res; do
    { echo "---"; cat "deploy/k8s/$res"; } >>"$out/k8s.yaml"
done <<<"$resources"
listed=$(sort <<<"$resources" | paste -sd' ')
present=$(cd deploy/k8s && ls *.yaml | grep -vxE 'kustomization.yaml|secret.example.yaml' | sort | paste -sd' ')
expect "kustomization lists every manifest ($listed)" test "$listed" == "$present"

rc=0
"$python" deploy/check_manifests.py "$AI_SERVICE_BIN" \
    k8s="$out/k8s.yaml" secret-example=deploy/k8s/secret.example.yaml \
    default="$out/default.yaml" documented="$out/documented.yaml" timeout45="$out/timeout45.yaml" \
    own-secret="$out/own-secret.yaml" existing="$out/existing.yaml" \
    extras="$out/extras.yaml" routes="$out/routes.yaml" cloud="$out/cloud.yaml" | tee "$out/manifests.log" || rc=$?
line=$(tail -n 1 "$out/manifests.log")
if [[ $line =~ ^manifest\ checks:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
else
    bad "check_manifests.py ended without its summary (exit $rc)"
fi
[[ $rc -eq 0 ]] || [[ $failed -gt 0 ]] || bad "check_manifests.py exited $rc"

echo "container smoke test (deploy/smoke.sh)"
rc=0
bash deploy/smoke.sh | tee "$out/smoke.log" || rc=$?
expect "smoke test: started as the image would, probed, called, SIGTERM -> exit 0" test "$rc" -eq 0

echo "deploy checks: $passed passed, $failed failed"
[[ $failed -eq 0 ]]

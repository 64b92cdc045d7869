#!/usr/bin/env bash
# Runs the LiteLLM proxy locally with the shipped litellm-config.yaml, for `npm start` to talk to, as the
# Docker Compose sidecar runs: LITELLM_NUM_WORKERS workers (2), idle connections kept 10 s, errors-only logs.
# Provider keys (OPENAI_API_KEY, ANTHROPIC_API_KEY) come from the environment or .env. Arguments are passed
# on to LiteLLM and win over these (`npm run litellm -- --config other.yaml --num_workers 1`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .env ]; then set -a; . ./.env; set +a; fi
export LITELLM_MASTER_KEY="${LITELLM_MASTER_KEY:-${LITELLM_API_KEY:-sk-llm-gateway-dev}}"
export LITELLM_LOCAL_MODEL_COST_MAP="${LITELLM_LOCAL_MODEL_COST_MAP:-True}"
export LITELLM_LOG="${LITELLM_LOG:-ERROR}"
unset DATABASE_URL # the gateway's database, not LiteLLM's
exec .tools/litellm-venv/bin/litellm --config litellm-config.yaml --port "${LITELLM_PORT:-4000}" \
  --num_workers "${LITELLM_NUM_WORKERS:-2}" --keepalive_timeout 10 "$@"

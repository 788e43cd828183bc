#!/usr/bin/env bash
# The propagation step by hand: `heroku config:set` for each app, one after the other.
set -euo pipefail
COUNT=${1:-10}
TOKEN=$(curl -sS -f -H "Authorization: Bearer $INFISICAL_TOKEN" \
  "$INFISICAL_DOMAIN/api/v4/secrets/POSTMARK_SERVER_TOKEN?projectId=$INFISICAL_PROJECT_ID&environment=prod&secretPath=/&viewSecretValue=true" \
  | jq -r .secret.secretValue)
for i in $(seq 1 "$COUNT"); do
  curl -sS -f -X PATCH -H "Accept: application/vnd.heroku+json; version=3" \
    -H "Authorization: Bearer $HEROKU_API_KEY" -H "Content-Type: application/json" \
    --data "{\"POSTMARK_SERVER_TOKEN\":\"$TOKEN\"}" "$HEROKU_HOST/apps/$(printf 'app-%04d' "$i")/config-vars" >/dev/null
done

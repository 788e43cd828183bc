#!/usr/bin/env bash
# The Postmark server-token rotation SOP as an ops engineer would script it by hand: bash,
# curl and jq, the same API calls in the same order as runbooks/postmark.rhai, with the SOP's
# checks. The peer the engine is benchmarked against (benches/run.sh).
#
# Needs the exports of `runbook sandbox` (POSTMARK_API_URL, INFISICAL_DOMAIN, INFISICAL_TOKEN,
# INFISICAL_PROJECT_ID, HEROKU_HOST, HEROKU_API_KEY, RAPTOR_API_URL). The dashboard steps use
# the sandbox's control routes, as `RUNBOOK_SANDBOX_DASHBOARD` makes the engine do.
set -euo pipefail

SERVER_NAME=${SERVER_NAME:-raxx-prod}
APPS=${APPS:-"raxx-api-prod raxx-api-staging"}
SECRET=POSTMARK_SERVER_TOKEN
TO=${POSTMARK_TEST_RECIPIENT:-rehearsal@sandbox.invalid}
AUDIT_LOG=${AUDIT_LOG:-/dev/null}
die() { echo "FAILED: $*" >&2; exit 1; }

pm() { # pm TOKEN METHOD PATH [BODY]
  curl -sS -X "$2" -H "Accept: application/json" -H "Content-Type: application/json" \
    -H "X-Postmark-Server-Token: $1" ${4:+--data "$4"} "$POSTMARK_API_URL$3"
}
hk() { # hk METHOD PATH [BODY]
  curl -sS -f -X "$1" -H "Accept: application/vnd.heroku+json; version=3" \
    -H "Authorization: Bearer $HEROKU_API_KEY" -H "Content-Type: application/json" \
    ${3:+--data "$3"} "$HEROKU_HOST$2"
}
inf() { # inf METHOD [BODY]
  curl -sS -f -X "$1" -H "Authorization: Bearer $INFISICAL_TOKEN" -H "Content-Type: application/json" \
    ${2:+--data "$2"} "$INFISICAL_DOMAIN/api/v4/secrets/$SECRET?projectId=$INFISICAL_PROJECT_ID&environment=prod&secretPath=/&viewSecretValue=true"
}

# 1. Pre-rotation checks
OLD_TOKEN=$(inf GET | jq -r .secret.secretValue)
SERVER=$(pm "$OLD_TOKEN" GET /server)
[ "$(jq -r .Name <<<"$SERVER")" = "$SERVER_NAME" ] || die "token belongs to another server"
SERVER_ID=$(jq -r .ID <<<"$SERVER")
COUNT=$(jq '.ApiTokens | length' <<<"$SERVER")
[ "$COUNT" -lt 3 ] || die "server already has 3 tokens"
for app in $APPS; do
  [ "$(hk GET "/apps/$app/config-vars" | jq -r ".$SECRET")" = "$OLD_TOKEN" ] || die "$app does not hold the stored token"
done

# 2. Generate the new credential (dashboard)
BEFORE=$(pm "$OLD_TOKEN" GET /server | jq '.ApiTokens | length')
NEW_TOKEN=$(curl -sS -f -X POST -H "Content-Type: application/json" --data '{}' \
  "$POSTMARK_API_URL/_sandbox/servers/$SERVER_NAME/tokens" | jq -r .token)
[ "$NEW_TOKEN" != "$OLD_TOKEN" ] || die "same token"

# 3. Validate the new credential
NEW=$(pm "$NEW_TOKEN" GET /server)
[ "$(jq -r .Name <<<"$NEW")" = "$SERVER_NAME" ] && [ "$(jq -r .ID <<<"$NEW")" = "$SERVER_ID" ] || die "wrong server"
[ "$(jq '.ApiTokens | length' <<<"$NEW")" -eq $((BEFORE + 1)) ] || die "token count"
MSG=$(pm "$NEW_TOKEN" POST /email "{\"From\":\"noreply@raxx.app\",\"To\":\"$TO\",\"Subject\":\"Token rotation validation $(date -u +%F)\",\"TextBody\":\"This email confirms POSTMARK_SERVER_TOKEN rotation validation.\"}" | jq -r .MessageID)
[ -n "$MSG" ] && [ "$MSG" != null ] || die "no MessageID"

# 4. Store in Infisical
inf PATCH "{\"projectId\":\"$INFISICAL_PROJECT_ID\",\"environment\":\"prod\",\"secretPath\":\"/\",\"secretValue\":\"$NEW_TOKEN\",\"type\":\"shared\"}" >/dev/null

# 5. Propagate to downstream consumers (one app after the other, as config:set does)
for app in $APPS; do
  hk PATCH "/apps/$app/config-vars" "{\"$SECRET\":\"$NEW_TOKEN\"}" >/dev/null
done

# 6. Verify downstream ("after dyno restart": config:set restarted every app; no second restart)
for app in $APPS; do
  [ "$(hk GET "/apps/$app/config-vars" | jq -r ".$SECRET")" = "$NEW_TOKEN" ] || die "$app not updated"
done
RAPTOR=$(curl -sS -f -X POST -H "Content-Type: application/json" \
  --data "{\"to\":\"$TO\",\"subject\":\"rotation validation\"}" "$RAPTOR_API_URL/api/notifications/test-email")
[ "$(jq -r .MessageID <<<"$RAPTOR")" != null ] || die "Raptor sent nothing"
for app in $APPS; do
  URL=$(hk POST "/apps/$app/log-sessions" '{"lines":300,"source":"app"}' | jq -r .logplex_url)
  if curl -sS -f "$URL" | sed -n '/State changed from starting to up/,$p' | grep -Ewi '401|InvalidAPIToken' >/dev/null; then
    die "$app logged a 401"
  fi
done

# 7. Revoke the old credential (dashboard), then the old token must get 401
curl -sS -f -X POST -H "Content-Type: application/json" --data "{\"token\":\"$OLD_TOKEN\"}" \
  "$POSTMARK_API_URL/_sandbox/servers/$SERVER_NAME/tokens/delete" >/dev/null
CODE=$(curl -sS -o /dev/null -w "%{http_code}" -H "Accept: application/json" \
  -H "X-Postmark-Server-Token: $OLD_TOKEN" "$POSTMARK_API_URL/server")
[ "$CODE" = 401 ] || die "old token still answers $CODE"

# 8. Audit log entry
jq -nc --arg actor "${USER:-ops}" --arg server "$SERVER_NAME" \
  '{action:"secret.rotate.completed",actor:$actor,context:{secret_name:"POSTMARK_SERVER_TOKEN",server_name:$server,method:"operator-assisted-dashboard"}}' >> "$AUDIT_LOG"
echo "rotated"

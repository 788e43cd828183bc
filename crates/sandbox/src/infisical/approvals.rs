//! Secret-approval policies: on a protected environment a write becomes a change request
//! (`{"approval": ...}`, Infisical's `SecretApprovalRequestsSchema`) and the secret stays as
//! it was until an approver merges the request. A machine identity cannot read requests
//! (those routes are user-session only), so a client learns of the merge from the secret.

use crate::scenario::{AppliesTo, ApprovalPolicySpec};
use crate::ts;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The user the requests are committed as (the machine identity's creator).
const COMMITTER: &str = "6f1c2b3a-0d4e-4f5a-9b8c-7d6e5f4a3b2c";

/// Who makes a request: Infisical's secret routes apply approval policies to users only
/// (`req.permission.type === ActorType.USER`), not to machine identities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Actor {
    User,
    Identity,
    /// A service token (legacy), the index of its scope in the state.
    Service(usize),
}

/// What a request changes once merged.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Op {
    Create { value: String },
    Update { value: String },
    Delete,
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Create { .. } => "create",
            Op::Update { .. } => "update",
            Op::Delete => "delete",
        }
    }
}

pub(super) struct ChangeRequest {
    pub(super) id: String,
    slug: String,
    policy: usize,
    folder_id: String,
    pub(super) environment: String,
    pub(super) path: String,
    pub(super) key: String,
    pub(super) op: Op,
    /// `open` or `close` (Infisical's RequestState).
    status: &'static str,
    has_merged: bool,
    created_at: String,
    updated_at: String,
    /// When the simulated approver merges it.
    due: Option<Instant>,
}

pub(super) struct Policy {
    id: String,
    spec: ApprovalPolicySpec,
}

/// The policies and every request filed under them.
#[derive(Default)]
pub(super) struct Approvals {
    policies: Vec<Policy>,
    requests: Vec<ChangeRequest>,
}

impl Approvals {
    pub(super) fn new(specs: &[ApprovalPolicySpec]) -> Self {
        Approvals {
            policies: specs
                .iter()
                .map(|spec| Policy {
                    id: uuid::Uuid::new_v4().to_string(),
                    spec: spec.clone(),
                })
                .collect(),
            requests: Vec::new(),
        }
    }

    /// The policy covering writes by `actor` to `env` at `path`, if any.
    fn covering(&self, actor: Actor, env: &str, path: &str) -> Option<usize> {
        self.policies.iter().position(|p| {
            (actor == Actor::User || p.spec.applies_to == AppliesTo::Everyone)
                && p.spec.environment == env
                && p.spec.secret_path.as_deref().is_none_or(|pattern| {
                    let pattern = super::state::normalize_path(pattern);
                    if pattern.contains('*') {
                        crate::faults::glob(pattern.as_bytes(), path.as_bytes())
                    } else {
                        pattern == path
                    }
                })
        })
    }

    /// Files a change request when a policy covers `actor`'s write to `env`/`path`: its
    /// JSON, or `None` when the write may go ahead.
    pub(super) fn file(
        &mut self,
        actor: Actor,
        env: &str,
        path: &str,
        key: &str,
        op: Op,
    ) -> Option<Value> {
        let policy = self.covering(actor, env, path)?;
        let now = ts::millis();
        let spec = &self.policies[policy].spec;
        let after = if spec.approve_keys.iter().any(|k| k == key) {
            Some(spec.approve_after_ms.unwrap_or(0))
        } else {
            spec.approve_after_ms
        };
        let due = after.map(|ms| Instant::now() + Duration::from_millis(ms));
        let request = ChangeRequest {
            id: uuid::Uuid::new_v4().to_string(),
            slug: format!(
                "{}-{}",
                op.name(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            policy,
            folder_id: uuid::Uuid::new_v4().to_string(),
            environment: env.to_string(),
            path: path.to_string(),
            key: key.to_string(),
            op,
            status: "open",
            has_merged: false,
            created_at: now.clone(),
            updated_at: now,
            due,
        };
        let body = self.json(&request);
        self.requests.push(request);
        Some(body)
    }

    /// The requests whose simulated approval is due, marked merged; the caller applies them.
    pub(super) fn due(&mut self) -> Vec<(String, String, String, Op)> {
        let now = Instant::now();
        let mut merged = Vec::new();
        for r in &mut self.requests {
            if r.status == "open" && r.due.is_some_and(|d| d <= now) {
                Self::close(r, true);
                merged.push((
                    r.environment.clone(),
                    r.path.clone(),
                    r.key.clone(),
                    r.op.clone(),
                ));
            }
        }
        merged
    }

    /// Merges (`merge`) or closes an open request by id or slug; what to apply, if merged.
    pub(super) fn decide(
        &mut self,
        id: &str,
        merge: bool,
    ) -> Result<Option<(String, String, String, Op)>, String> {
        let Some(r) = self
            .requests
            .iter_mut()
            .find(|r| r.id == id || r.slug == id)
        else {
            return Err(format!("no change request '{id}'"));
        };
        if r.status != "open" {
            return Err(format!("change request '{}' is already closed", r.slug));
        }
        Self::close(r, merge);
        Ok(merge.then(|| {
            (
                r.environment.clone(),
                r.path.clone(),
                r.key.clone(),
                r.op.clone(),
            )
        }))
    }

    fn close(r: &mut ChangeRequest, merged: bool) {
        r.status = "close";
        r.has_merged = merged;
        r.due = None;
        r.updated_at = ts::millis();
    }

    /// A request by id, as `GET /api/v1/secret-approval-requests/{id}` gives it.
    pub(super) fn get(&self, id: &str) -> Option<Value> {
        let r = self.requests.iter().find(|r| r.id == id)?;
        let mut v = self.json(r);
        v["environment"] = json!(r.environment);
        v["secretPath"] = json!(r.path);
        Some(v)
    }

    /// A request as Infisical's `SecretApprovalRequestsSchema`.
    fn json(&self, r: &ChangeRequest) -> Value {
        json!({
            "id": r.id,
            "policyId": self.policies.get(r.policy).map(|p| p.id.clone()).unwrap_or_default(),
            "hasMerged": r.has_merged,
            "status": r.status,
            "conflicts": [],
            "slug": r.slug,
            "folderId": r.folder_id,
            "bypassReason": null,
            "createdAt": r.created_at,
            "updatedAt": r.updated_at,
            "isReplicated": false,
            "committerUserId": COMMITTER,
            "statusChangedByUserId": if r.status == "open" { Value::Null } else { json!(COMMITTER) },
        })
    }

    /// Every request with its policy and change (the sandbox's own view; values not shown).
    pub(super) fn to_json(&self) -> Value {
        Value::Array(
            self.requests
                .iter()
                .map(|r| {
                    let mut v = self.json(r);
                    v["policy"] = json!(self.policies.get(r.policy).map(|p| p.spec.name.clone()));
                    v["environment"] = json!(r.environment);
                    v["secretPath"] = json!(r.path);
                    v["secretKey"] = json!(r.key);
                    v["op"] = json!(r.op.name());
                    v
                })
                .collect(),
        )
    }
}

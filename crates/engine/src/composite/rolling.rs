//! Rolling updates of a CompositeController's children, with ControllerRevisions.
//!
//! ```text
//!  claim revisions (informer cache) ─► parent as of each revision ─► sync hook per revision
//!        ─► rollout::step (one child moves at most) ─► persist revisions ─► merged desired
//!           children + `Updated` condition, handed back to the ordinary apply path
//! ```
//!
//! Revisions are written before any child, so a restarted engine resumes the rollout where it
//! stopped. Any hook failure or malformed answer fails the sync before the first write.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use metacontroller_api::consts::{API_VERSION, CONTROLLER_REVISION_KIND};
use metacontroller_api::hook::{CompositeHookResponse, ObjectMap, ObjectRefMap};
use metacontroller_api::{CompositeControllerSpec, ControllerRevisionChildren};
use metacontroller_merge::selector::LabelSelector;
use serde_json::{json, Map, Value};

use super::{api_err, api_for, code_of, describe, ConfigError, HookTarget, SyncError, Syncer};
use crate::children::{self, ChildType, DesiredChild, DesiredContext, ObservedChild};
use crate::claim::{self, ClaimDecision};
use crate::discovery::Discovery;
use crate::parent;
use crate::revision;
use crate::rollout::{self, ChildKey, Progress, RollingConfig, RolloutInput, Strategy};

/// The rolling settings of a controller, or `None` when no child type rolls.
pub(super) async fn resolve(
    spec: &CompositeControllerSpec,
    children: &[ChildType],
    discovery: &Discovery,
) -> Result<Option<RollingConfig>, ConfigError> {
    if !children.iter().any(|c| c.method.is_rolling()) {
        return Ok(None);
    }
    let resource = metacontroller_api::consts::CONTROLLER_REVISION_RESOURCE;
    let revisions = discovery
        .resolve(API_VERSION, resource)
        .await
        .map_err(|source| ConfigError::Resource {
            role: "revision",
            api_version: API_VERSION.to_string(),
            resource: resource.to_string(),
            source,
        })?;
    let configured = spec
        .parent_resource
        .revision_history
        .as_ref()
        .map(|h| h.field_paths.clone())
        .unwrap_or_default();
    Ok(Some(RollingConfig {
        revisions,
        field_paths: revision::field_paths(&configured),
        checks: spec
            .child_resources
            .iter()
            .map(|r| {
                r.update_strategy
                    .as_ref()
                    .and_then(|s| s.status_checks.clone())
            })
            .collect(),
    }))
}

/// One claimed revision and the parent it stands for.
struct ParentRevision {
    /// The stored object, `None` for a latest revision not created yet.
    stored: Option<Arc<DynamicObject>>,
    /// Its name.
    name: String,
    /// The parent with the revision's `parentPatch` applied.
    parent: DynamicObject,
    /// The children it owns.
    claims: Vec<ControllerRevisionChildren>,
}

/// A child's identity as revisions record it.
fn child_key(
    t: &ChildType,
    namespace: &str,
    name: &str,
    parent_namespace: Option<&str>,
) -> ChildKey {
    let relative = if namespace.is_empty() || Some(namespace) == parent_namespace {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    };
    ChildKey::new(&t.resource.group, &t.resource.kind, &relative)
}

impl Syncer {
    /// Whether this sync goes through revisions: a rolling child type exists and the parent
    /// is not being deleted without a finalize hook.
    pub(super) fn rolls(&self, parent: &DynamicObject, finalizing: bool) -> bool {
        self.cfg.rolling.is_some()
            && self.revisions.is_some()
            && (finalizing || !parent::is_deleting(parent))
    }

    /// Claims the parent's ControllerRevisions from the cache: owned ones its selector still
    /// matches, plus adopted orphans; owned ones it no longer matches are released.
    async fn claim_revisions(
        &self,
        rc: &RollingConfig,
        parent: &DynamicObject,
        selector: &LabelSelector,
    ) -> Result<Vec<Arc<DynamicObject>>, SyncError> {
        let Some(informer) = &self.revisions else {
            return Ok(Vec::new());
        };
        let uid = parent.metadata.uid.as_deref().unwrap_or("");
        let ns = parent.metadata.namespace.as_deref().unwrap_or("");
        let (group, plural) = (&self.cfg.parent.group, &self.cfg.parent.plural);
        let candidates = informer.read(|s| {
            let mut c = s.list_controlled_by(uid, Some(ns));
            c.extend(s.list_orphans(Some(ns)));
            c
        });
        let owner = claim::controller_ref(
            &self.cfg.parent.api_version,
            &self.cfg.parent.kind,
            parent.metadata.name.as_deref().unwrap_or(""),
            uid,
        );
        let api = api_for(&self.client, &rc.revisions, ns);
        let mut claimed = Vec::new();
        for rev in candidates {
            // A revision we own stays ours while it carries our resource labels, even if the
            // parent's selector (say, matchExpressions only) does not match the labels it got;
            // orphans are adopted only when the selector matches.
            let ours = crate::store::controller_uid(&rev) == Some(uid);
            let matches = revision::labelled_for(rev.metadata.labels.as_ref(), group, plural)
                && (ours || selector.matches(parent::labels_map(&rev).as_ref()));
            let (patch, adopt) =
                match claim::decide(uid, parent::is_deleting(parent), &rev, matches) {
                    ClaimDecision::Ignore => continue,
                    ClaimDecision::Claim => {
                        claimed.push(rev);
                        continue;
                    }
                    ClaimDecision::Adopt => (claim::adopt_patch(&rev, &owner), true),
                    ClaimDecision::Release => (claim::release_patch(&rev, uid), false),
                };
            let what = if adopt { "adopting" } else { "releasing" };
            tracing::info!(revision = %describe(&rev), "{what} ControllerRevision");
            let name = rev.metadata.name.as_deref().unwrap_or("");
            let updated = api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| api_err(format!("claim ControllerRevision {}", describe(&rev)), e))?;
            informer.observe_write(&updated);
            if adopt {
                claimed.push(Arc::new(updated));
            }
        }
        claimed.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(claimed)
    }

    /// Syncs a parent whose children roll: calls `hook` once per revision, advances the
    /// rollout by at most one child, persists the revisions and returns one response: the
    /// merged desired children and the latest revision's status with its `Updated` condition.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn sync_revisions(
        &self,
        target: &HookTarget,
        hook: &'static str,
        parent: &DynamicObject,
        selector: &LabelSelector,
        request_children: ObjectRefMap<'_>,
        related: ObjectMap,
        observed: &[ObservedChild],
        finalizing: bool,
    ) -> Result<CompositeHookResponse, SyncError> {
        let cfg = &self.cfg;
        let Some(rc) = cfg.rolling.as_ref() else {
            return self
                .call_hook(
                    target,
                    hook,
                    parent,
                    &request_children,
                    &related,
                    finalizing,
                )
                .await;
        };
        let stored = self.claim_revisions(rc, parent, selector).await?;
        let parent_value = serde_json::to_value(parent).map_err(SyncError::Encode)?;
        let latest_patch = revision::make_patch(&parent_value, &rc.field_paths);
        let uid = parent.metadata.uid.clone().unwrap_or_default();

        // The latest revision first, then the older ones by name.
        let mut latest: Option<ParentRevision> = None;
        let mut older: Vec<ParentRevision> = Vec::new();
        let mut duplicates: Vec<Arc<DynamicObject>> = Vec::new();
        for rev in stored {
            let patch = rev
                .data
                .get("parentPatch")
                .filter(|p| p.is_object())
                .cloned()
                .unwrap_or_else(|| json!({}));
            let claims = revision::children_of(&rev.data);
            let name = rev.metadata.name.clone().unwrap_or_default();
            if parent::json_eq(&patch, &latest_patch) {
                if let Some(previous) = latest.take().and_then(|l| l.stored) {
                    duplicates.push(previous);
                }
                latest = Some(ParentRevision {
                    stored: Some(rev),
                    name,
                    parent: parent.clone(),
                    claims,
                });
                continue;
            }
            let mut as_of = parent_value.clone();
            revision::apply_patch(&mut as_of, &patch, &rc.field_paths);
            older.push(ParentRevision {
                stored: Some(rev),
                name,
                parent: serde_json::from_value(as_of).map_err(SyncError::Encode)?,
                claims,
            });
        }
        let latest = latest.unwrap_or_else(|| ParentRevision {
            stored: None,
            name: revision::revision_name(
                &cfg.parent.plural,
                &cfg.parent.group,
                &uid,
                &latest_patch,
            ),
            parent: parent.clone(),
            claims: Vec::new(),
        });
        let mut revisions = vec![latest];
        revisions.extend(older);

        // One hook call per revision, all at once; any failure stops here, before any write.
        let calls = revisions.iter().map(|r| {
            self.call_hook(
                target,
                hook,
                &r.parent,
                &request_children,
                &related,
                finalizing,
            )
        });
        let responses: Vec<CompositeHookResponse> = futures::future::join_all(calls)
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let parent_ns = if cfg.parent.namespaced {
            parent.metadata.namespace.as_deref()
        } else {
            None
        };
        let ctx = DesiredContext {
            parent_namespace: parent_ns,
            types: &cfg.children,
            selector,
            generated_uid: cfg.generate_selector.then_some(uid.as_str()),
        };
        let desired: Vec<Vec<DesiredChild>> = responses
            .iter()
            .map(|r| children::prepare_desired(r.children.clone(), &ctx))
            .collect::<Result<_, _>>()?;
        let keyed: Vec<Vec<(ChildKey, &Value)>> = desired
            .iter()
            .map(|list| {
                list.iter()
                    .map(|d| {
                        let t = &cfg.children[d.type_index];
                        (child_key(t, &d.namespace, &d.name, parent_ns), &d.object)
                    })
                    .collect()
            })
            .collect();
        let observed_map: BTreeMap<ChildKey, &Value> = observed
            .iter()
            .map(|o| {
                let t = &cfg.children[o.type_index];
                let ns = o.object.metadata.namespace.as_deref().unwrap_or("");
                let name = o.object.metadata.name.as_deref().unwrap_or("");
                (child_key(t, ns, name, parent_ns), &o.value)
            })
            .collect();
        let rolling: BTreeMap<(String, String), Strategy<'_>> = cfg
            .children
            .iter()
            .enumerate()
            .filter(|(_, t)| t.method.is_rolling())
            .map(|(i, t)| {
                (
                    (t.resource.group.clone(), t.resource.kind.clone()),
                    Strategy {
                        method: t.method,
                        checks: rc.checks.get(i).and_then(Option::as_ref),
                    },
                )
            })
            .collect();

        let mut claims: Vec<Vec<ControllerRevisionChildren>> =
            revisions.iter().map(|r| r.claims.clone()).collect();
        let progress = rollout::step(
            &mut claims,
            &RolloutInput {
                rolling: &rolling,
                latest: &keyed[0],
                observed: &observed_map,
            },
        );
        let keep = rollout::keep_revisions(&claims);
        match &progress {
            Progress::Progressing(k) => {
                tracing::info!(kind = %k.kind, child = %k.name, revision = %revisions[0].name, "rolling child to the latest revision")
            }
            Progress::Waiting(why) => tracing::debug!(%why, "rollout waiting"),
            Progress::OnLatestRevision => {}
        }

        // Persist the revisions before touching any child: latest first, then the older ones
        // still owning children, then deletions of the rest.
        self.persist_revisions(rc, parent, &revisions, &claims, &keep, &latest_patch)
            .await?;
        for (i, r) in revisions.iter().enumerate() {
            if !keep[i] {
                if let Some(stored) = &r.stored {
                    self.delete_revision(rc, stored).await?;
                }
            }
        }
        for dup in &duplicates {
            self.delete_revision(rc, dup).await?;
        }

        // Merge: children owned by an older revision keep that revision's desired state.
        let older_wanted: Vec<(&[ControllerRevisionChildren], BTreeMap<ChildKey, &Value>)> = claims
            .iter()
            .zip(&keyed)
            .skip(1)
            .map(|(c, k)| {
                (
                    c.as_slice(),
                    k.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                )
            })
            .collect();
        let merged: Vec<Value> = rollout::merge_desired(&keyed[0], &older_wanted)
            .into_iter()
            .cloned()
            .collect();

        let mut responses = responses.into_iter();
        let first = responses.next().unwrap_or_default();
        let mut resync = first.resync_after_seconds;
        let mut finalized = first.finalized;
        for r in responses {
            if r.resync_after_seconds > 0.0 && (resync <= 0.0 || r.resync_after_seconds < resync) {
                resync = r.resync_after_seconds;
            }
            finalized &= r.finalized;
        }
        let mut status = first.status.unwrap_or_default();
        if let Err(why) =
            rollout::set_condition(&mut status, progress.condition(&revisions[0].name))
        {
            tracing::warn!(%why, "can't report rollout progress");
        }
        Ok(CompositeHookResponse {
            status: Some(status),
            children: merged,
            resync_after_seconds: resync,
            finalized,
        })
    }

    /// Creates the latest revision if new, and updates every kept revision whose children
    /// changed (guarded by its resourceVersion).
    async fn persist_revisions(
        &self,
        rc: &RollingConfig,
        parent: &DynamicObject,
        revisions: &[ParentRevision],
        claims: &[Vec<ControllerRevisionChildren>],
        keep: &[bool],
        latest_patch: &Value,
    ) -> Result<(), SyncError> {
        let Some(informer) = &self.revisions else {
            return Ok(());
        };
        let ns = parent.metadata.namespace.as_deref().unwrap_or("");
        let api = api_for(&self.client, &rc.revisions, ns);
        for (i, r) in revisions.iter().enumerate() {
            if !keep[i] {
                continue;
            }
            let children = revision::children_value(&claims[i]);
            let written = match &r.stored {
                None => {
                    let obj = self.new_revision(parent, &r.name, latest_patch, children)?;
                    tracing::info!(revision = %r.name, "creating ControllerRevision");
                    api.create(&PostParams::default(), &obj)
                        .await
                        .map_err(|e| {
                            api_err(format!("create ControllerRevision {ns}/{}", r.name), e)
                        })?
                }
                Some(stored) => {
                    let before = revision::children_value(&revision::children_of(&stored.data));
                    if before == children {
                        continue;
                    }
                    let mut obj = (**stored).clone();
                    obj.data["children"] = children;
                    tracing::debug!(revision = %r.name, "updating ControllerRevision");
                    api.replace(&r.name, &PostParams::default(), &obj)
                        .await
                        .map_err(|e| {
                            api_err(format!("update ControllerRevision {ns}/{}", r.name), e)
                        })?
                }
            };
            informer.observe_write(&written);
        }
        Ok(())
    }

    fn new_revision(
        &self,
        parent: &DynamicObject,
        name: &str,
        patch: &Value,
        children: Value,
    ) -> Result<DynamicObject, SyncError> {
        let cfg = &self.cfg;
        let parent_value = serde_json::to_value(parent).map_err(SyncError::Encode)?;
        let labels = revision::revision_labels(
            &parent_value,
            cfg.generate_selector,
            &cfg.parent.group,
            &cfg.parent.plural,
        );
        let owner = claim::controller_ref(
            &cfg.parent.api_version,
            &cfg.parent.kind,
            parent.metadata.name.as_deref().unwrap_or(""),
            parent.metadata.uid.as_deref().unwrap_or(""),
        );
        let mut meta = Map::new();
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(parent.metadata.namespace));
        meta.insert("labels".into(), json!(labels));
        meta.insert("ownerReferences".into(), json!([owner]));
        serde_json::from_value(json!({
            "apiVersion": API_VERSION,
            "kind": CONTROLLER_REVISION_KIND,
            "metadata": meta,
            "parentPatch": patch,
            "children": children,
        }))
        .map_err(SyncError::Encode)
    }

    async fn delete_revision(
        &self,
        rc: &RollingConfig,
        stored: &DynamicObject,
    ) -> Result<(), SyncError> {
        let ns = stored.metadata.namespace.as_deref().unwrap_or("");
        let name = stored.metadata.name.as_deref().unwrap_or("");
        tracing::info!(revision = %describe(stored), "deleting ControllerRevision");
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: stored.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api_for(&self.client, &rc.revisions, ns)
            .delete(name, &params)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(api_err(
                format!("delete ControllerRevision {}", describe(stored)),
                e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::ResourceInfo;
    use metacontroller_api::UpdateMethod;

    fn pods() -> ChildType {
        ChildType {
            resource: Arc::new(ResourceInfo {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: "Pod".into(),
                plural: "pods".into(),
                namespaced: true,
                has_status_subresource: true,
                verbs: vec![],
            }),
            method: UpdateMethod::RollingRecreate,
        }
    }

    #[test]
    fn child_keys_are_relative_to_the_parent_namespace() {
        let t = pods();
        assert_eq!(child_key(&t, "ns", "a", Some("ns")).name, "a");
        assert_eq!(child_key(&t, "other", "a", Some("ns")).name, "other/a");
        assert_eq!(child_key(&t, "ns", "a", None).name, "ns/a");
        assert_eq!(child_key(&t, "", "a", None).name, "a");
        assert_eq!(child_key(&t, "ns", "a", Some("ns")).kind, "Pod");
        assert_eq!(child_key(&t, "ns", "a", Some("ns")).api_group, "");
    }
}

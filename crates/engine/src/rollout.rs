//! Rolling updates: which revision owns which child, and when the next child may move to the
//! latest revision. Pure; `composite` calls the hook once per revision and persists the result.
//!
//! ```text
//!  revisions[0] = latest, revisions[1..] = older ones, each with the children it owns
//!      │
//!      ├─ sync_claims: drop claims on kinds no longer rolling and children latest no longer
//!      │               wants; a child belongs to one revision, latest first
//!      ├─ children nobody owns, or already matching latest, go to latest at once
//!      └─ the first child (in the latest hook's order) not on latest moves there, but only
//!         while every child on latest is up to date and passes its status checks
//! ```
//!
//! "Up to date" means applying the latest desired object to the observed child changes
//! nothing. Without `statusChecks` there is no status requirement; `RollingInPlace` also waits
//! for `status.observedGeneration` (when the child reports one) to reach
//! `metadata.generation`.

use std::collections::BTreeMap;
use std::sync::Arc;

use metacontroller_api::{ControllerRevisionChildren, StatusChecks, UpdateMethod};
use serde_json::{json, Map, Value};

use crate::children::update_for;
use crate::discovery::ResourceInfo;

/// The rolling-update settings of a CompositeController with at least one rolling child type.
#[derive(Debug, Clone)]
pub struct RollingConfig {
    /// The `controllerrevisions` resource of the Metacontroller API group.
    pub revisions: Arc<ResourceInfo>,
    /// The recorded parent fields (`["spec"]` by default).
    pub field_paths: Vec<String>,
    /// Each declared child type's status checks, by type index.
    pub checks: Vec<Option<StatusChecks>>,
}

/// The parent status condition reporting rollout progress.
pub const UPDATED_CONDITION: &str = "Updated";

/// A child as revisions name it: API group (no version), kind, and the name relative to the
/// parent (`name`, or `namespace/name` outside the parent's namespace).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChildKey {
    /// API group (`""` for core).
    pub api_group: String,
    /// Kind.
    pub kind: String,
    /// Name relative to the parent.
    pub name: String,
}

impl ChildKey {
    /// A key from its parts.
    pub fn new(api_group: &str, kind: &str, name: &str) -> Self {
        ChildKey {
            api_group: api_group.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
        }
    }
}

/// How one rolling child kind is updated.
#[derive(Debug, Clone, Copy)]
pub struct Strategy<'a> {
    /// `RollingRecreate` or `RollingInPlace`.
    pub method: UpdateMethod,
    /// The readiness checks, if any.
    pub checks: Option<&'a StatusChecks>,
}

/// What a rollout step sees.
#[derive(Debug, Clone, Copy)]
pub struct RolloutInput<'a> {
    /// Rolling child kinds by `(apiGroup, kind)`; other kinds are not rolled.
    pub rolling: &'a BTreeMap<(String, String), Strategy<'a>>,
    /// The children the latest revision desires, in the hook's order.
    pub latest: &'a [(ChildKey, &'a Value)],
    /// The observed children.
    pub observed: &'a BTreeMap<ChildKey, &'a Value>,
}

impl RolloutInput<'_> {
    fn strategy(&self, group: &str, kind: &str) -> Option<Strategy<'_>> {
        self.rolling
            .get(&(group.to_string(), kind.to_string()))
            .copied()
    }

    fn latest_desired(&self, key: &ChildKey) -> Option<&Value> {
        self.latest.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// The outcome of one rollout step, reported as the parent's `Updated` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A child on the latest revision is not ready; nothing moved.
    Waiting(String),
    /// This child moved to the latest revision.
    Progressing(ChildKey),
    /// Every child is on the latest revision.
    OnLatestRevision,
}

impl Progress {
    /// The `Updated` condition; `latest` names the latest ControllerRevision.
    pub fn condition(&self, latest: &str) -> Value {
        let (status, reason, message) = match self {
            Progress::Waiting(why) => ("False", "RolloutWaiting", why.clone()),
            Progress::Progressing(k) => (
                "False",
                "RolloutProgressing",
                format!("updating {} {}", k.kind, k.name),
            ),
            Progress::OnLatestRevision => (
                "True",
                "OnLatestRevision",
                format!("latest ControllerRevision: {latest}"),
            ),
        };
        json!({"type": UPDATED_CONDITION, "status": status, "reason": reason, "message": message})
    }
}

/// Sets `condition` in `status.conditions`, replacing one of the same type or appending.
/// Fails (leaving the status alone) when `conditions` is present but not a list.
pub fn set_condition(status: &mut Map<String, Value>, condition: Value) -> Result<(), String> {
    let ctype = condition.get("type").cloned();
    let list = status
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if list.is_null() {
        *list = Value::Array(Vec::new());
    }
    let Some(list) = list.as_array_mut() else {
        return Err("status.conditions returned by the hook is not a list".to_string());
    };
    match list.iter_mut().find(|c| c.get("type") == ctype.as_ref()) {
        Some(existing) => *existing = condition,
        None => list.push(condition),
    }
    Ok(())
}

fn find_kind<'a>(
    claims: &'a mut Vec<ControllerRevisionChildren>,
    group: &str,
    kind: &str,
) -> &'a mut ControllerRevisionChildren {
    let pos = claims
        .iter()
        .position(|c| c.api_group == group && c.kind == kind);
    match pos {
        Some(i) => &mut claims[i],
        None => {
            claims.push(ControllerRevisionChildren {
                api_group: group.to_string(),
                kind: kind.to_string(),
                names: Vec::new(),
            });
            claims.last_mut().expect("just pushed")
        }
    }
}

/// Records that a revision owns `key`.
pub fn add_child(claims: &mut Vec<ControllerRevisionChildren>, key: &ChildKey) {
    let group = find_kind(claims, &key.api_group, &key.kind);
    if !group.names.contains(&key.name) {
        group.names.push(key.name.clone());
    }
}

/// Records that a revision no longer owns `key`.
pub fn remove_child(claims: &mut [ControllerRevisionChildren], key: &ChildKey) {
    for c in claims
        .iter_mut()
        .filter(|c| c.api_group == key.api_group && c.kind == key.kind)
    {
        c.names.retain(|n| n != &key.name);
    }
}

/// Cleans the claims of every revision (index 0 is the latest) and returns which revision owns
/// each child: claims on kinds that are no longer rolling and on children the latest revision
/// no longer desires are dropped (those children are deleted at once), and a child claimed
/// twice stays with the first claimant, so the latest revision wins. Kinds left without names
/// are removed.
pub fn sync_claims(
    revisions: &mut [Vec<ControllerRevisionChildren>],
    input: &RolloutInput<'_>,
) -> BTreeMap<ChildKey, usize> {
    let mut owner: BTreeMap<ChildKey, usize> = BTreeMap::new();
    for (index, claims) in revisions.iter_mut().enumerate() {
        for group in claims.iter_mut() {
            if input.strategy(&group.api_group, &group.kind).is_none() {
                group.names.clear();
                continue;
            }
            group.names.retain(|name| {
                let key = ChildKey::new(&group.api_group, &group.kind, name);
                if input.latest_desired(&key).is_none() || owner.contains_key(&key) {
                    return false;
                }
                owner.insert(key, index);
                true
            });
        }
        claims.retain(|g| !g.names.is_empty());
    }
    owner
}

/// Whether applying `desired` to `observed` would change nothing.
pub fn up_to_date(observed: &Value, desired: &Value) -> bool {
    update_for(observed, desired).is_none()
}

/// Checks one child's `status.conditions` against the required ones.
pub fn status_check(checks: Option<&StatusChecks>, child: &Value) -> Result<(), String> {
    let Some(checks) = checks else {
        return Ok(());
    };
    for check in &checks.conditions {
        let cond = child
            .get("status")
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array)
            .and_then(|list| {
                list.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(check.type_.as_str()))
            });
        let Some(cond) = cond else {
            return Err(format!(
                "required condition type missing: {:?}",
                check.type_
            ));
        };
        let field = |f: &str| cond.get(f).and_then(Value::as_str).unwrap_or("");
        if let Some(want) = &check.status {
            if field("status") != want {
                return Err(format!(
                    "{:?} condition status is {:?} (want {:?})",
                    check.type_,
                    field("status"),
                    want
                ));
            }
        }
        if let Some(want) = &check.reason {
            if field("reason") != want {
                return Err(format!(
                    "{:?} condition reason is {:?} (want {:?})",
                    check.type_,
                    field("reason"),
                    want
                ));
            }
        }
    }
    Ok(())
}

/// Whether a child updated in place has seen its latest spec: true unless it reports a
/// positive integer `status.observedGeneration` below `metadata.generation`.
pub fn observed_latest_generation(child: &Value) -> bool {
    let observed = child
        .get("status")
        .and_then(|s| s.get("observedGeneration"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let generation = child
        .get("metadata")
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    observed <= 0 || observed >= generation
}

/// Whether more children may move to the latest revision: every rolling child it owns is
/// observed, up to date, has seen its spec (`RollingInPlace`) and passes its status checks.
/// The error says what the rollout waits for.
pub fn should_continue(
    latest: &[ControllerRevisionChildren],
    input: &RolloutInput<'_>,
) -> Result<(), String> {
    for group in latest {
        let Some(strategy) = input.strategy(&group.api_group, &group.kind) else {
            continue;
        };
        for name in &group.names {
            let key = ChildKey::new(&group.api_group, &group.kind, name);
            let kind = &group.kind;
            let Some(child) = input.observed.get(&key) else {
                return Err(format!("missing child {kind} {name}"));
            };
            let Some(desired) = input.latest_desired(&key) else {
                return Err(format!("can't check if child {kind} {name} is updated"));
            };
            if !up_to_date(child, desired) {
                return Err(format!("child {kind} {name} is not updated yet"));
            }
            if strategy.method == UpdateMethod::RollingInPlace && !observed_latest_generation(child)
            {
                return Err(format!(
                    "child {kind} {name} with RollingInPlace update strategy hasn't observed latest spec"
                ));
            }
            if let Err(e) = status_check(strategy.checks, child) {
                return Err(format!("child {kind} {name} failed status check: {e}"));
            }
        }
    }
    Ok(())
}

/// One rollout step over the revisions' claims (index 0 is the latest): cleans the claims,
/// hands the latest revision every child nobody owns or that already matches it, then moves at
/// most one more child to it. The claims are updated in place.
pub fn step(
    revisions: &mut [Vec<ControllerRevisionChildren>],
    input: &RolloutInput<'_>,
) -> Progress {
    if revisions.is_empty() {
        return Progress::OnLatestRevision;
    }
    let mut owner = sync_claims(revisions, input);

    // Unowned children, and children already matching the latest desired state, join latest.
    for (key, desired) in input.latest {
        if input.strategy(&key.api_group, &key.kind).is_none() {
            continue;
        }
        match owner.get(key).copied() {
            None => {
                add_child(&mut revisions[0], key);
                owner.insert(key.clone(), 0);
            }
            Some(0) => {}
            Some(other) => {
                let matches = input
                    .observed
                    .get(key)
                    .is_some_and(|child| up_to_date(child, desired));
                if matches {
                    add_child(&mut revisions[0], key);
                    remove_child(&mut revisions[other], key);
                    owner.insert(key.clone(), 0);
                }
            }
        }
    }

    // The next child to move, in the latest hook's order.
    for (key, _) in input.latest {
        if input.strategy(&key.api_group, &key.kind).is_none() {
            continue;
        }
        if owner.get(key) == Some(&0) {
            continue;
        }
        if let Err(why) = should_continue(&revisions[0], input) {
            return Progress::Waiting(why);
        }
        add_child(&mut revisions[0], key);
        for older in revisions.iter_mut().skip(1) {
            remove_child(older, key);
        }
        return Progress::Progressing(key.clone());
    }
    Progress::OnLatestRevision
}

/// Which revisions to keep: the latest always, older ones while they own children.
pub fn keep_revisions(revisions: &[Vec<ControllerRevisionChildren>]) -> Vec<bool> {
    revisions
        .iter()
        .enumerate()
        .map(|(i, claims)| i == 0 || claims.iter().any(|c| !c.names.is_empty()))
        .collect()
}

/// The desired children after a rollout step: the latest revision's, except that a child an
/// older revision still owns keeps that revision's desired object (when it desires one).
/// Children keep the latest hook's order.
pub fn merge_desired<'a>(
    latest: &[(ChildKey, &'a Value)],
    older: &[(&[ControllerRevisionChildren], BTreeMap<ChildKey, &'a Value>)],
) -> Vec<&'a Value> {
    latest
        .iter()
        .map(|(key, desired)| {
            older
                .iter()
                .find_map(|(claims, wanted)| {
                    let owns = claims.iter().any(|c| {
                        c.api_group == key.api_group
                            && c.kind == key.kind
                            && c.names.contains(&key.name)
                    });
                    owns.then(|| wanted.get(key).copied()).flatten()
                })
                .unwrap_or(desired)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use metacontroller_api::StatusConditionCheck;

    const LAST_APPLIED: &str = metacontroller_merge::apply::LAST_APPLIED_ANNOTATION;

    fn key(name: &str) -> ChildKey {
        ChildKey::new("", "Pod", name)
    }

    fn desired(name: &str, version: u32) -> Value {
        json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":name},"spec":{"v":version}})
    }

    /// A pod as observed after being written with `version`, with a Ready condition.
    fn pod(name: &str, version: u32, ready: bool) -> Value {
        let d = desired(name, version);
        let mut o = d.clone();
        o["metadata"]["annotations"] = json!({LAST_APPLIED: d.to_string()});
        o["status"] =
            json!({"conditions":[{"type":"Ready","status": if ready {"True"} else {"False"}}]});
        o
    }

    fn ready_check() -> StatusChecks {
        StatusChecks {
            conditions: vec![StatusConditionCheck {
                type_: "Ready".into(),
                status: Some("True".into()),
                reason: None,
            }],
        }
    }

    fn claims(names: &[&str]) -> Vec<ControllerRevisionChildren> {
        vec![ControllerRevisionChildren {
            api_group: "".into(),
            kind: "Pod".into(),
            names: names.iter().map(|s| s.to_string()).collect(),
        }]
    }

    fn names(c: &[ControllerRevisionChildren]) -> Vec<String> {
        c.iter().flat_map(|g| g.names.clone()).collect()
    }

    /// A rollout world: `n` pods, the latest desired version, observed pods as
    /// (version, ready), and a rolling strategy with a Ready check.
    struct World {
        latest: Vec<(ChildKey, Value)>,
        observed: BTreeMap<ChildKey, Value>,
        checks: StatusChecks,
        method: UpdateMethod,
    }

    impl World {
        fn new(version: u32, observed: &[(u32, bool)]) -> World {
            World {
                latest: (0..observed.len())
                    .map(|i| (key(&format!("p{i}")), desired(&format!("p{i}"), version)))
                    .collect(),
                observed: observed
                    .iter()
                    .enumerate()
                    .map(|(i, (v, r))| (key(&format!("p{i}")), pod(&format!("p{i}"), *v, *r)))
                    .collect(),
                checks: ready_check(),
                method: UpdateMethod::RollingRecreate,
            }
        }

        fn step(&self, revisions: &mut [Vec<ControllerRevisionChildren>]) -> Progress {
            let mut rolling = BTreeMap::new();
            rolling.insert(
                ("".to_string(), "Pod".to_string()),
                Strategy {
                    method: self.method,
                    checks: Some(&self.checks),
                },
            );
            let latest: Vec<(ChildKey, &Value)> =
                self.latest.iter().map(|(k, v)| (k.clone(), v)).collect();
            let observed: BTreeMap<ChildKey, &Value> =
                self.observed.iter().map(|(k, v)| (k.clone(), v)).collect();
            step(
                revisions,
                &RolloutInput {
                    rolling: &rolling,
                    latest: &latest,
                    observed: &observed,
                },
            )
        }
    }

    #[test]
    fn a_fresh_parent_puts_every_child_on_latest() {
        let w = World::new(1, &[(1, false), (1, false)]);
        let mut revs = vec![vec![]];
        assert_eq!(w.step(&mut revs), Progress::OnLatestRevision);
        assert_eq!(names(&revs[0]), ["p0", "p1"]);
    }

    #[test]
    fn a_new_template_moves_one_child_at_a_time_while_ready() {
        // Everything on v1 and ready; latest wants v2.
        let mut w = World::new(2, &[(1, true), (1, true), (1, true)]);
        let mut revs = vec![vec![], claims(&["p0", "p1", "p2"])];
        assert_eq!(w.step(&mut revs), Progress::Progressing(key("p0")));
        assert_eq!(names(&revs[0]), ["p0"]);
        assert_eq!(names(&revs[1]), ["p1", "p2"]);
        // p0 not updated yet: wait.
        let p = w.step(&mut revs);
        assert_eq!(
            p,
            Progress::Waiting("child Pod p0 is not updated yet".into())
        );
        // p0 recreated with v2, not ready: wait on the status check.
        w.observed.insert(key("p0"), pod("p0", 2, false));
        assert_eq!(
            w.step(&mut revs),
            Progress::Waiting(
                "child Pod p0 failed status check: \"Ready\" condition status is \"False\" (want \"True\")"
                    .into()
            )
        );
        // p0 missing (being recreated): wait.
        w.observed.remove(&key("p0"));
        assert_eq!(
            w.step(&mut revs),
            Progress::Waiting("missing child Pod p0".into())
        );
        // p0 ready: p1 moves.
        w.observed.insert(key("p0"), pod("p0", 2, true));
        assert_eq!(w.step(&mut revs), Progress::Progressing(key("p1")));
        assert_eq!(names(&revs[0]), ["p0", "p1"]);
        w.observed.insert(key("p1"), pod("p1", 2, true));
        assert_eq!(w.step(&mut revs), Progress::Progressing(key("p2")));
        w.observed.insert(key("p2"), pod("p2", 2, true));
        assert_eq!(w.step(&mut revs), Progress::OnLatestRevision);
        assert_eq!(names(&revs[0]), ["p0", "p1", "p2"]);
        assert_eq!(keep_revisions(&revs), [true, false]);
    }

    #[test]
    fn children_already_matching_latest_move_without_waiting() {
        // p1 already carries v2 (e.g. after a rollback to a revision it was on).
        let w = World::new(2, &[(1, true), (2, false), (1, true)]);
        let mut revs = vec![vec![], claims(&["p0", "p1", "p2"])];
        let p = w.step(&mut revs);
        // p1 joined at once; it is not ready, so nothing else moves.
        assert_eq!(names(&revs[0]), ["p1"]);
        assert!(matches!(p, Progress::Waiting(ref m) if m.contains("p1 failed status check")));
    }

    #[test]
    fn a_rollback_makes_the_earlier_revision_latest_and_rolls_children_back() {
        // p0 and p1 went to v2; the parent is back on v1, whose revision owns p2.
        let w = World::new(1, &[(2, true), (2, false), (1, true)]);
        let mut revs = vec![claims(&["p2"]), claims(&["p0", "p1"])];
        assert_eq!(w.step(&mut revs), Progress::Progressing(key("p0")));
        assert_eq!(names(&revs[0]), ["p2", "p0"]);
        assert_eq!(names(&revs[1]), ["p1"]);
    }

    #[test]
    fn new_children_join_latest_at_once_even_mid_rollout() {
        // Scaled from 2 to 3 while p1 waits on v2: p2 is created on v2 straight away.
        let mut w = World::new(2, &[(1, true), (2, false)]);
        w.latest.push((key("p2"), desired("p2", 2)));
        let mut revs = vec![claims(&["p1"]), claims(&["p0"])];
        let p = w.step(&mut revs);
        assert!(matches!(p, Progress::Waiting(ref m) if m.contains("p1 failed status check")));
        assert_eq!(names(&revs[0]), ["p1", "p2"]);
        assert_eq!(names(&revs[1]), ["p0"]);
        // Scaled down to 1: claims on p1 and p2 are dropped, p0 stays with its revision.
        let mut w = World::new(2, &[(1, true)]);
        w.observed.insert(key("p1"), pod("p1", 2, false));
        let mut revs = vec![claims(&["p1", "p2"]), claims(&["p0"])];
        assert_eq!(w.step(&mut revs), Progress::Progressing(key("p0")));
        assert_eq!(names(&revs[0]), ["p0"]);
        assert_eq!(keep_revisions(&revs), [true, false]);
    }

    #[test]
    fn non_rolling_kinds_are_never_claimed() {
        let w = World::new(2, &[(1, true)]);
        let other = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s"}});
        let mut latest: Vec<(ChildKey, &Value)> =
            w.latest.iter().map(|(k, v)| (k.clone(), v)).collect();
        latest.push((ChildKey::new("", "Service", "s"), &other));
        let mut rolling = BTreeMap::new();
        rolling.insert(
            ("".to_string(), "Pod".to_string()),
            Strategy {
                method: UpdateMethod::RollingRecreate,
                checks: None,
            },
        );
        let observed: BTreeMap<ChildKey, &Value> =
            w.observed.iter().map(|(k, v)| (k.clone(), v)).collect();
        let mut revs = vec![vec![]];
        let p = step(
            &mut revs,
            &RolloutInput {
                rolling: &rolling,
                latest: &latest,
                observed: &observed,
            },
        );
        assert_eq!(p, Progress::OnLatestRevision);
        assert_eq!(names(&revs[0]), ["p0"]);
    }

    #[test]
    fn missing_condition_and_reason_checks() {
        let mut child = pod("p", 1, true);
        let checks = StatusChecks {
            conditions: vec![StatusConditionCheck {
                type_: "Ready".into(),
                status: None,
                reason: Some("AllGood".into()),
            }],
        };
        assert_eq!(
            status_check(Some(&checks), &child),
            Err("\"Ready\" condition reason is \"\" (want \"AllGood\")".into())
        );
        child["status"]["conditions"][0]["reason"] = json!("AllGood");
        assert_eq!(status_check(Some(&checks), &child), Ok(()));
        assert_eq!(status_check(None, &json!({})), Ok(()));
        assert_eq!(
            status_check(Some(&ready_check()), &json!({"status":{}})),
            Err("required condition type missing: \"Ready\"".into())
        );
        // No conditions to check: always passes.
        assert_eq!(
            status_check(Some(&StatusChecks::default()), &json!({})),
            Ok(())
        );
    }

    #[test]
    fn in_place_waits_for_observed_generation_when_reported() {
        assert!(observed_latest_generation(
            &json!({"metadata":{"generation":3}})
        ));
        assert!(observed_latest_generation(
            &json!({"metadata":{"generation":3},"status":{"observedGeneration":3}})
        ));
        assert!(!observed_latest_generation(
            &json!({"metadata":{"generation":3},"status":{"observedGeneration":2}})
        ));
        assert!(observed_latest_generation(
            &json!({"metadata":{"generation":3},"status":{"observedGeneration":"2"}})
        ));
        let mut w = World::new(2, &[(2, true), (1, true)]);
        w.method = UpdateMethod::RollingInPlace;
        w.observed
            .get_mut(&key("p0"))
            .map(|p| {
                p["metadata"]["generation"] = json!(2);
                p["status"]["observedGeneration"] = json!(1);
            })
            .expect("p0");
        let mut revs = vec![claims(&["p0"]), claims(&["p1"])];
        assert!(
            matches!(w.step(&mut revs), Progress::Waiting(ref m) if m.contains("hasn't observed latest spec"))
        );
        // Recreate ignores observedGeneration.
        w.method = UpdateMethod::RollingRecreate;
        assert_eq!(w.step(&mut revs), Progress::Progressing(key("p1")));
    }

    #[test]
    fn claims_drop_unwanted_children_duplicates_and_non_rolling_kinds() {
        let w = World::new(2, &[(1, true), (1, true)]);
        let mut revs = vec![
            claims(&["p0"]),
            vec![
                ControllerRevisionChildren {
                    api_group: "".into(),
                    kind: "Pod".into(),
                    names: vec!["p0".into(), "p1".into(), "gone".into()],
                },
                ControllerRevisionChildren {
                    api_group: "apps".into(),
                    kind: "Deployment".into(),
                    names: vec!["d".into()],
                },
            ],
        ];
        let mut rolling = BTreeMap::new();
        rolling.insert(
            ("".to_string(), "Pod".to_string()),
            Strategy {
                method: UpdateMethod::RollingRecreate,
                checks: None,
            },
        );
        let latest: Vec<(ChildKey, &Value)> =
            w.latest.iter().map(|(k, v)| (k.clone(), v)).collect();
        let observed = BTreeMap::new();
        let input = RolloutInput {
            rolling: &rolling,
            latest: &latest,
            observed: &observed,
        };
        let owner = sync_claims(&mut revs, &input);
        assert_eq!(owner[&key("p0")], 0);
        assert_eq!(owner[&key("p1")], 1);
        assert_eq!(revs[1], claims(&["p1"]));
    }

    #[test]
    fn an_older_revision_without_children_is_pruned() {
        assert_eq!(
            keep_revisions(&[vec![], claims(&[]), claims(&["x"])]),
            [true, false, true]
        );
    }

    #[test]
    fn the_condition_reports_progress() {
        let c = Progress::Progressing(key("p1")).condition("r");
        assert_eq!(
            c,
            json!({"type":"Updated","status":"False","reason":"RolloutProgressing","message":"updating Pod p1"})
        );
        let c = Progress::OnLatestRevision.condition("things.example.com-abc");
        assert_eq!(c["status"], "True");
        assert_eq!(
            c["message"],
            "latest ControllerRevision: things.example.com-abc"
        );
        let c = Progress::Waiting("x".into()).condition("r");
        assert_eq!(c["reason"], "RolloutWaiting");
        let mut status = Map::new();
        set_condition(&mut status, json!({"type":"Other"})).expect("ok");
        set_condition(&mut status, json!({"type":"Updated","status":"False"})).expect("ok");
        set_condition(&mut status, json!({"type":"Updated","status":"True"})).expect("ok");
        assert_eq!(
            Value::Object(status),
            json!({"conditions":[{"type":"Other"},{"type":"Updated","status":"True"}]})
        );
        let mut bad = json!({"conditions": 3}).as_object().cloned().expect("map");
        assert!(set_condition(&mut bad, json!({"type":"Updated"})).is_err());
        assert_eq!(bad["conditions"], 3);
    }

    #[test]
    fn merged_children_keep_their_revision_state() {
        let latest_v = [desired("p0", 2), desired("p1", 2)];
        let old_v = desired("p1", 1);
        let latest: Vec<(ChildKey, &Value)> =
            vec![(key("p0"), &latest_v[0]), (key("p1"), &latest_v[1])];
        let old_claims = claims(&["p1"]);
        let mut wanted = BTreeMap::new();
        wanted.insert(key("p1"), &old_v);
        let merged = merge_desired(&latest, &[(&old_claims, wanted)]);
        assert_eq!(merged, [&latest_v[0], &old_v]);
        // An older revision that no longer desires its child leaves the latest object.
        let merged = merge_desired(&latest, &[(&old_claims, BTreeMap::new())]);
        assert_eq!(merged, [&latest_v[0], &latest_v[1]]);
    }

    #[test]
    fn add_and_remove_are_idempotent() {
        let mut c = vec![];
        add_child(&mut c, &key("a"));
        add_child(&mut c, &key("a"));
        add_child(&mut c, &ChildKey::new("apps", "Deployment", "d"));
        assert_eq!(c.len(), 2);
        assert_eq!(names(&c), ["a", "d"]);
        remove_child(&mut c, &key("a"));
        remove_child(&mut c, &key("zz"));
        assert_eq!(names(&c), ["d"]);
    }
}

//! Kubernetes strategic merge patch for built-in kinds.
//!
//! A strategic merge patch looks like a JSON merge patch (objects merge recursively, `null`
//! deletes) except that some lists merge instead of being replaced. Which lists merge, and
//! by which key, comes from the `patchStrategy`/`patchMergeKey` tags of the Kubernetes Go
//! types; [`BuiltinSchema`] encodes that table for the core, apps, batch and meta types,
//! keyed by field path (and by kind where a path alone is ambiguous). Lists the schema does
//! not know are replaced.
//!
//! Directives understood, as `kubectl` sends them:
//!
//! - `$patch: delete` in a list item removes the items with that key; in an object it empties it;
//! - `$patch: replace` in a list replaces the whole list; in an object, the whole object;
//! - `$patch: merge` in an object is the default behaviour;
//! - `$retainKeys: [...]` drops the original's fields not listed;
//! - `$setElementOrder/<field>: [...]` fixes the order of a merged list;
//! - `$deleteFromPrimitiveList/<field>: [...]` removes values from a list of primitives.
//!
//! Directives never appear in the result. The algorithm follows the upstream
//! `strategicpatch` package step by step (including how merged lists are ordered: patch
//! order first, interleaved with server-only items by their server order).

use serde_json::{Map, Value};

use crate::value::json_eq;

/// Why a strategic merge patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategicError {
    /// The patch (or target) is not shaped as a strategic merge patch expects.
    #[error("invalid strategic merge patch at {path:?}: {reason}")]
    InvalidPatch { path: String, reason: String },
    /// A `$patch` directive has an unknown or unsupported value.
    #[error("invalid $patch directive {directive:?} at {path:?}")]
    BadDirective { path: String, directive: String },
    /// An item of a merging list lacks the list's merge key.
    #[error("item in list {path:?} does not contain the merge key {key:?}")]
    MissingMergeKey { path: String, key: String },
    /// A merging list mixes element types or nests lists.
    #[error("cannot merge list {path:?}: {reason}")]
    UnmergeableList { path: String, reason: String },
}

/// Result alias for this module.
pub type Result<T, E = StrategicError> = std::result::Result<T, E>;

/// How a list field is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the original (the default).
    Replace,
    /// A list of objects merged item by item, matched on this key.
    MergeByKey(&'static str),
    /// A list of primitives merged as a set union.
    MergePrimitives,
}

impl ListStrategy {
    fn merges(self) -> bool {
        self != ListStrategy::Replace
    }

    fn key(self) -> Option<&'static str> {
        match self {
            ListStrategy::MergeByKey(k) => Some(k),
            _ => None,
        }
    }
}

/// Where lists merge and which objects are replaced wholesale.
///
/// `path` is the chain of field names from the document root to the field; list items do
/// not add a segment (so a container's env is `[spec, template, spec, containers, env]`).
pub trait Schema {
    /// The strategy for the list at `path`.
    fn list_strategy(&self, path: &[String]) -> ListStrategy;
    /// Whether the object at `path` is replaced rather than merged (`patchStrategy:"replace"`).
    fn replaces_map(&self, _path: &[String]) -> bool {
        false
    }
}

/// One row of the built-in table: a field path pattern, optionally limited to a kind.
struct Rule {
    /// `None` applies to every kind (for example pod templates embedded anywhere).
    kind: Option<&'static str>,
    /// Dot-separated field names matched against the end of the path; a leading `^`
    /// anchors it at the document root.
    pattern: &'static str,
    strategy: ListStrategy,
}

const fn any(pattern: &'static str, strategy: ListStrategy) -> Rule {
    Rule {
        kind: None,
        pattern,
        strategy,
    }
}

const fn only(kind: &'static str, pattern: &'static str, strategy: ListStrategy) -> Rule {
    Rule {
        kind: Some(kind),
        pattern,
        strategy,
    }
}

use ListStrategy::{MergeByKey as Key, MergePrimitives as Set};

/// The `patchMergeKey`/`patchStrategy` table of the built-in types (core/v1, apps/v1,
/// batch/v1, policy/v1, meta/v1) for list fields.
const LIST_RULES: &[Rule] = &[
    // ObjectMeta, wherever it is embedded.
    any("metadata.finalizers", Set),
    any("metadata.ownerReferences", Key("uid")),
    // PodSpec, in pods and in every pod template.
    any("spec.containers", Key("name")),
    any("spec.initContainers", Key("name")),
    any("spec.ephemeralContainers", Key("name")),
    any("spec.volumes", Key("name")),
    any("spec.imagePullSecrets", Key("name")),
    any("spec.hostAliases", Key("ip")),
    any("spec.topologySpreadConstraints", Key("topologyKey")),
    any("spec.schedulingGates", Key("name")),
    any("spec.resourceClaims", Key("name")),
    // Container and EphemeralContainer.
    any("containers.ports", Key("containerPort")),
    any("initContainers.ports", Key("containerPort")),
    any("ephemeralContainers.ports", Key("containerPort")),
    any("containers.env", Key("name")),
    any("initContainers.env", Key("name")),
    any("ephemeralContainers.env", Key("name")),
    any("containers.volumeMounts", Key("mountPath")),
    any("initContainers.volumeMounts", Key("mountPath")),
    any("ephemeralContainers.volumeMounts", Key("mountPath")),
    any("containers.volumeDevices", Key("devicePath")),
    any("initContainers.volumeDevices", Key("devicePath")),
    any("ephemeralContainers.volumeDevices", Key("devicePath")),
    // PodStatus and ContainerStatus.
    any("status.podIPs", Key("ip")),
    any("status.hostIPs", Key("ip")),
    any("status.resourceClaimStatuses", Key("name")),
    any("containerStatuses.volumeMounts", Key("mountPath")),
    any("initContainerStatuses.volumeMounts", Key("mountPath")),
    any("ephemeralContainerStatuses.volumeMounts", Key("mountPath")),
    any("containerStatuses.allocatedResourcesStatus", Key("name")),
    any(
        "initContainerStatuses.allocatedResourcesStatus",
        Key("name"),
    ),
    any(
        "ephemeralContainerStatuses.allocatedResourcesStatus",
        Key("name"),
    ),
    // Conditions of pods, nodes, namespaces, PVCs, services, deployments, stateful sets,
    // daemon sets, replica sets, replication controllers, jobs, PDBs and ingresses.
    any("status.conditions", Key("type")),
    // Kind-specific fields whose names mean other things elsewhere.
    only("Service", "^spec.ports", Key("port")),
    only("Node", "^status.addresses", Key("type")),
    only("Node", "^spec.podCIDRs", Set),
    only("ServiceAccount", "^secrets", Key("name")),
];

/// Objects replaced wholesale (`patchStrategy:"replace"` on a struct field).
const MAP_REPLACE_RULES: &[(Option<&str>, &str)] =
    &[(Some("PodDisruptionBudget"), "^spec.selector")];

fn pattern_matches(pattern: &str, path: &[String]) -> bool {
    let (anchored, pattern) = match pattern.strip_prefix('^') {
        Some(p) => (true, p),
        None => (false, pattern),
    };
    let parts: Vec<&str> = pattern.split('.').collect();
    if parts.len() > path.len() || (anchored && parts.len() != path.len()) {
        return false;
    }
    path[path.len() - parts.len()..]
        .iter()
        .zip(&parts)
        .all(|(a, b)| a == b)
}

fn kind_matches(rule_kind: Option<&str>, kind: Option<&str>) -> bool {
    match (rule_kind, kind) {
        (Some(r), Some(k)) => r == k,
        // Unknown kind: match on the path alone.
        _ => true,
    }
}

/// The schema of the Kubernetes built-in types, for an object of the given kind.
#[derive(Debug, Clone, Default)]
pub struct BuiltinSchema {
    kind: Option<String>,
}

impl BuiltinSchema {
    /// The table for objects of `kind` (`None`: match rules on paths alone).
    pub fn new(kind: Option<&str>) -> Self {
        BuiltinSchema {
            kind: kind.map(str::to_string),
        }
    }
}

impl Schema for BuiltinSchema {
    fn list_strategy(&self, path: &[String]) -> ListStrategy {
        LIST_RULES
            .iter()
            .find(|r| {
                kind_matches(r.kind, self.kind.as_deref()) && pattern_matches(r.pattern, path)
            })
            .map_or(ListStrategy::Replace, |r| r.strategy)
    }

    fn replaces_map(&self, path: &[String]) -> bool {
        MAP_REPLACE_RULES
            .iter()
            .any(|(k, p)| kind_matches(*k, self.kind.as_deref()) && pattern_matches(p, path))
    }
}

/// Applies a strategic merge patch to a built-in object, using [`BuiltinSchema`] for the
/// target's `kind` (or the patch's, if the target has none). On error `target` is unchanged.
pub fn apply(target: &mut Value, patch: &Value) -> Result<()> {
    let kind = target
        .get("kind")
        .and_then(Value::as_str)
        .or_else(|| patch.get("kind").and_then(Value::as_str))
        .map(str::to_string);
    apply_with_schema(target, patch, &BuiltinSchema::new(kind.as_deref()))
}

/// Applies a strategic merge patch with an explicit schema. On error `target` is unchanged.
pub fn apply_with_schema(target: &mut Value, patch: &Value, schema: &dyn Schema) -> Result<()> {
    let Value::Object(patch) = patch else {
        return Err(invalid(
            &[],
            "a strategic merge patch must be a JSON object",
        ));
    };
    let original = match target {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(invalid(&[], "the patched document must be a JSON object")),
    };
    let ctx = Ctx { schema };
    let mut merged = Value::Object(ctx.merge_map(original, patch.clone(), &[])?);
    strip_directives(&mut merged);
    *target = merged;
    Ok(())
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

fn path_string(path: &[String]) -> String {
    if path.is_empty() {
        ".".to_string()
    } else {
        path.join(".")
    }
}

fn invalid(path: &[String], reason: impl Into<String>) -> StrategicError {
    StrategicError::InvalidPatch {
        path: path_string(path),
        reason: reason.into(),
    }
}

fn child_path(path: &[String], field: &str) -> Vec<String> {
    let mut p = path.to_vec();
    p.push(field.to_string());
    p
}

/// Splits `$prefix/field` into `field`; errors if the slash is missing.
fn directive_field<'k>(key: &'k str, prefix: &str, path: &[String]) -> Result<&'k str> {
    match key.split_once('/') {
        Some((p, field)) if p == prefix => Ok(field),
        _ => Err(invalid(
            path,
            format!("{key:?} must have the form {prefix}/<field>"),
        )),
    }
}

/// The coarse type of a JSON value, for "same type" checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
    }
}

struct Ctx<'s> {
    schema: &'s dyn Schema,
}

impl Ctx<'_> {
    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
        path: &[String],
    ) -> Result<Map<String, Value>> {
        if let Some(directive) = patch.get(PATCH) {
            match directive.as_str() {
                Some("replace") => {
                    patch.shift_remove(PATCH);
                    return Ok(patch);
                }
                Some("delete") => return Ok(Map::new()),
                Some("merge") => {
                    patch.shift_remove(PATCH);
                }
                _ => {
                    return Err(StrategicError::BadDirective {
                        path: path_string(path),
                        directive: directive.to_string(),
                    })
                }
            }
        }

        apply_retain_keys(&mut original, &mut patch, path)?;
        self.merge_set_element_order(&mut original, &mut patch, path)?;

        for (key, patch_value) in patch {
            let (field, is_delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
                (
                    directive_field(&key, DELETE_FROM_PRIMITIVE_LIST, path)?.to_string(),
                    true,
                )
            } else {
                (key, false)
            };

            if patch_value.is_null() {
                original.shift_remove(&field);
                continue;
            }

            let Some(slot) = original.get_mut(&field) else {
                if !is_delete_list {
                    let mut v = patch_value;
                    discard_nulls(&mut v);
                    if let Some(v) = remove_directives(v) {
                        original.insert(field, v);
                    }
                }
                continue;
            };

            if kind_of(slot) != kind_of(&patch_value) {
                if !is_delete_list {
                    let mut v = patch_value;
                    discard_nulls(&mut v);
                    match remove_directives(v) {
                        Some(v) => *slot = v,
                        None => {
                            original.shift_remove(&field);
                        }
                    }
                }
                continue;
            }

            let sub = child_path(path, &field);
            match (std::mem::take(slot), patch_value) {
                (Value::Object(o), Value::Object(p)) => {
                    *slot = if self.schema.replaces_map(&sub) {
                        Value::Object(p)
                    } else {
                        Value::Object(self.merge_map(o, p, &sub)?)
                    };
                }
                (Value::Array(o), Value::Array(p)) => {
                    let strategy = self.schema.list_strategy(&sub);
                    *slot = Value::Array(self.merge_slice_handler(
                        o,
                        p,
                        strategy,
                        is_delete_list,
                        &sub,
                    )?);
                }
                (_, p) => match remove_directives(p) {
                    Some(v) => *slot = v,
                    None => {
                        original.shift_remove(&field);
                    }
                },
            }
        }
        Ok(original)
    }

    /// Handles every `$setElementOrder/<field>` in `patch`, merging that field's list now
    /// and removing both the directive and the list from `patch`.
    fn merge_set_element_order(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        path: &[String],
    ) -> Result<()> {
        let keys: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
            .cloned()
            .collect();
        for key in keys {
            let field = directive_field(&key, SET_ELEMENT_ORDER, path)?.to_string();
            let order = match patch.shift_remove(&key) {
                Some(Value::Array(a)) => a,
                _ => return Err(invalid(path, format!("{key} must be a list"))),
            };
            let sub = child_path(path, &field);
            let as_list = |v: Option<&Value>, what: &str| -> Result<Option<Vec<Value>>> {
                match v {
                    None => Ok(None),
                    Some(Value::Array(a)) => Ok(Some(a.clone())),
                    Some(_) => Err(invalid(
                        &sub,
                        format!("{what} value of {field:?} is not a list"),
                    )),
                }
            };
            let original_list = as_list(original.get(&field), "original")?;
            let patch_list = as_list(patch.get(&field), "patch")?;
            let strategy = self.schema.list_strategy(&sub);
            let merge_key = strategy.key();
            validate_against_order(
                patch_list.as_deref().unwrap_or(&[]),
                &order,
                merge_key,
                &sub,
            )?;

            let merged = match (&original_list, &patch_list) {
                (Some(o), None) => o.clone(),
                (None, Some(p)) => match remove_directives(Value::Array(p.clone())) {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                },
                (Some(o), Some(p)) => {
                    self.merge_slice_handler(o.clone(), p.clone(), strategy, false, &sub)?
                }
                (None, None) => continue,
            };

            let kind = element_kind(
                &[
                    original_list.as_deref().unwrap_or(&[]),
                    patch_list.as_deref().unwrap_or(&[]),
                ],
                &sub,
            )?;
            let server_order = match (original_list, &patch_list, merge_key) {
                (Some(o), Some(p), Some(k)) if strategy.merges() && kind == Some(Kind::Object) => {
                    upstream_server_view(&o, p, k)
                }
                (o, _, _) => o.unwrap_or_default(),
            };
            let ordered = match kind {
                None => merged,
                Some(kind) => {
                    let (in_order, server_only) = partition(merged, &order, merge_key, &sub)?;
                    normalize_element_order(
                        in_order,
                        server_only,
                        &order,
                        &server_order,
                        merge_key,
                        kind,
                        &sub,
                    )?
                }
            };
            original.insert(field.clone(), Value::Array(ordered));
            patch.shift_remove(&field);
        }
        Ok(())
    }

    fn merge_slice_handler(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        strategy: ListStrategy,
        is_delete_list: bool,
        path: &[String],
    ) -> Result<Vec<Value>> {
        // Deletion lists work the same whatever the field's strategy.
        if strategy.merges() || is_delete_list {
            self.merge_slice(original, patch, strategy.key(), is_delete_list, path)
        } else {
            Ok(patch)
        }
    }

    fn merge_slice(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        merge_key: Option<&str>,
        is_delete_list: bool,
        path: &[String],
    ) -> Result<Vec<Value>> {
        let Some(kind) = element_kind(&[&original, &patch], path)? else {
            return Ok(original);
        };
        let (merged, server_order, patch) = if kind != Kind::Object {
            if is_delete_list {
                return Ok(delete_from_slice(original, &patch));
            }
            let mut both = original.clone();
            both.extend(patch.iter().cloned());
            (dedup(both), original, patch)
        } else {
            let Some(key) = merge_key else {
                return Err(StrategicError::UnmergeableList {
                    path: path_string(path),
                    reason: "cannot merge lists of objects without a merge key".into(),
                });
            };
            let (original, patch) = merge_special_elements(original, patch, key, path)?;
            let merged = self.merge_items_by_key(original.clone(), patch.clone(), key, path)?;
            (merged, original, patch)
        };
        let (from_patch, server_only) = partition(merged, &patch, merge_key, path)?;
        normalize_element_order(
            from_patch,
            server_only,
            &patch,
            &server_order,
            merge_key,
            kind,
            path,
        )
    }

    fn merge_items_by_key(
        &self,
        mut original: Vec<Value>,
        patch: Vec<Value>,
        key: &str,
        path: &[String],
    ) -> Result<Vec<Value>> {
        for item in patch {
            let Value::Object(item) = item else {
                return Err(unmergeable(path, "list items must all be objects"));
            };
            let Some(key_value) = item.get(key) else {
                return Err(missing_key(path, key));
            };
            let found = original
                .iter()
                .position(|o| o.get(key).is_some_and(|v| json_eq(v, key_value)));
            match found {
                Some(i) => {
                    let current = match std::mem::take(&mut original[i]) {
                        Value::Object(m) => m,
                        _ => return Err(unmergeable(path, "list items must all be objects")),
                    };
                    original[i] = Value::Object(self.merge_map(current, item, path)?);
                }
                None => original.push(Value::Object(item)),
            }
        }
        Ok(original)
    }
}

fn unmergeable(path: &[String], reason: &str) -> StrategicError {
    StrategicError::UnmergeableList {
        path: path_string(path),
        reason: reason.to_string(),
    }
}

fn missing_key(path: &[String], key: &str) -> StrategicError {
    StrategicError::MissingMergeKey {
        path: path_string(path),
        key: key.to_string(),
    }
}

/// The common element kind of the lists (`None` if they are all empty).
fn element_kind(lists: &[&[Value]], path: &[String]) -> Result<Option<Kind>> {
    let mut seen: Option<Kind> = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let k = kind_of(v);
        if k == Kind::Array {
            return Err(unmergeable(path, "lists of lists cannot be merged"));
        }
        match seen {
            None => seen = Some(k),
            Some(s) if s != k => {
                return Err(unmergeable(path, "list element types are not identical"))
            }
            Some(_) => {}
        }
    }
    Ok(seen)
}

/// Applies `$patch` items of a list of objects: `delete` removes matching originals,
/// `replace` makes the rest of the patch the whole list. Returns the new original and the
/// patch without directive items.
fn merge_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    path: &[String],
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(PATCH) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(key_value) = item.get(key) else {
                    return Err(missing_key(path, key));
                };
                original.retain(|o| !o.get(key).is_some_and(|v| json_eq(v, key_value)));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(StrategicError::BadDirective {
                    path: path_string(path),
                    directive: "merge (merging lists cannot be specified in the patch)".into(),
                })
            }
            _ => {
                return Err(StrategicError::BadDirective {
                    path: path_string(path),
                    directive: directive.to_string(),
                })
            }
        }
    }
    if replace {
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// The server order the upstream implementation uses for `$setElementOrder` after merging
/// a list of objects.
///
/// Upstream deletes and appends list items in place, in the same backing array that still
/// serves as "the original list" when the merged list is ordered. So the order it consults
/// is the first `len(original)` slots of: the surviving items (compacted to the front),
/// then newly appended items, then stale slots left behind by the compaction. Reproducing
/// this keeps our list order identical to a real API server's.
fn upstream_server_view(original: &[Value], patch: &[Value], key: &str) -> Vec<Value> {
    let directive = |p: &Value| p.get(PATCH).and_then(Value::as_str).map(str::to_string);
    if patch
        .iter()
        .any(|p| directive(p).as_deref() == Some("replace"))
    {
        return original.to_vec();
    }
    let n = original.len();
    let mut slots = original.to_vec();
    let mut current = original.to_vec();
    for item in patch
        .iter()
        .filter(|p| directive(p).as_deref() == Some("delete"))
    {
        let Some(key_value) = item.get(key) else {
            return original.to_vec();
        };
        // Bounded: every iteration removes one item.
        while let Some(k) = current
            .iter()
            .position(|o| o.get(key).is_some_and(|v| json_eq(v, key_value)))
        {
            current.remove(k);
            for (i, slot) in slots.iter_mut().enumerate().take(current.len()).skip(k) {
                *slot = current[i].clone();
            }
        }
    }
    for item in patch.iter().filter(|p| directive(p).is_none()) {
        let Some(key_value) = item.get(key) else {
            return original.to_vec();
        };
        let found = current
            .iter()
            .any(|o| o.get(key).is_some_and(|v| json_eq(v, key_value)));
        if !found {
            if current.len() < n {
                slots[current.len()] = item.clone();
            }
            current.push(item.clone());
        }
    }
    slots
}

fn delete_from_slice(current: Vec<Value>, to_delete: &[Value]) -> Vec<Value> {
    current
        .into_iter()
        .filter(|v| !to_delete.iter().any(|d| json_eq(d, v)))
        .collect()
}

fn dedup(values: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(values.len());
    for v in values {
        if !out.iter().any(|o| json_eq(o, &v)) {
            out.push(v);
        }
    }
    out
}

/// The identity of a list item: its merge key value for objects, itself otherwise.
fn identity<'v>(item: &'v Value, merge_key: Option<&str>) -> Option<&'v Value> {
    match merge_key {
        Some(k) => item.get(k),
        None => Some(item),
    }
}

fn position_in(list: &[Value], item: &Value, merge_key: Option<&str>) -> Option<usize> {
    let id = identity(item, merge_key)?;
    list.iter()
        .position(|v| identity(v, merge_key).is_some_and(|w| json_eq(w, id)))
}

/// Splits `items` into those present in `by` (by identity) and the rest.
fn partition(
    items: Vec<Value>,
    by: &[Value],
    merge_key: Option<&str>,
    path: &[String],
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for item in items {
        if let Some(k) = merge_key {
            if item.get(k).is_none() {
                return Err(missing_key(path, k));
            }
        }
        if position_in(by, &item, merge_key).is_some() {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// Orders the patch items by `patch_order` and the server-only items by `server_order`,
/// then interleaves them.
fn normalize_element_order(
    from_patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    kind: Kind,
    path: &[String],
) -> Result<Vec<Value>> {
    let from_patch = normalize_slice_order(from_patch, patch_order, merge_key, kind, path)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, kind, path)?;
    Ok(merge_sorted(
        server_only,
        from_patch,
        server_order,
        merge_key,
    ))
}

fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
    kind: Kind,
    path: &[String],
) -> Result<Vec<Value>> {
    let mut to_delete = Vec::new();
    let mut to_sort = to_sort;
    if kind == Kind::Object {
        if let Some(k) = merge_key {
            if to_sort.iter().chain(order).any(|v| v.get(k).is_none()) {
                return Err(missing_key(path, k));
            }
            let (deleting, keep): (Vec<Value>, Vec<Value>) = to_sort
                .into_iter()
                .partition(|v| v.get(PATCH).and_then(Value::as_str) == Some("delete"));
            to_sort = keep;
            to_delete = deleting;
        }
    }
    // Stable: items not in `order` keep their relative order after those that are.
    let mut keyed: Vec<(usize, Value)> = to_sort
        .into_iter()
        .map(|v| (position_in(order, &v, merge_key).unwrap_or(usize::MAX), v))
        .collect();
    keyed.sort_by_key(|(i, _)| *i);
    let mut out: Vec<Value> = keyed.into_iter().map(|(_, v)| v).collect();
    out.extend(to_delete);
    Ok(out)
}

/// Inserts each `left` (server-only) item into `right` (patch items) before the first
/// right item that comes after it in `server_order`; items the server order does not know
/// are taken from `right` first. Relative order within each list is kept.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    // Each iteration moves one item to `out`, so this is bounded by the total length.
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (
                    position_in(server_order, l, merge_key),
                    position_in(server_order, r, merge_key),
                ) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some(v) = next {
            out.push(v);
        }
    }
    out
}

/// Checks that the non-deleting patch items appear in `order` in the same relative order.
fn validate_against_order(
    patch: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
    path: &[String],
) -> Result<()> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let items: Vec<&Value> = match merge_key {
        Some(_) => {
            if patch.iter().any(|v| !v.is_object()) {
                return Err(unmergeable(path, "list items must all be objects"));
            }
            patch
                .iter()
                .filter(|v| v.get(PATCH).and_then(Value::as_str) != Some("delete"))
                .collect()
        }
        None => patch.iter().collect(),
    };
    let (mut pi, mut oi) = (0, 0);
    while pi < items.len() && oi < order.len() {
        let item = items[pi];
        if item.get(PATCH).is_some() {
            pi += 1;
            continue;
        }
        let equal = match merge_key {
            None => json_eq(item, &order[oi]),
            Some(k) => {
                let a = item.get(k).ok_or_else(|| missing_key(path, k))?;
                let b = order[oi].get(k).ok_or_else(|| missing_key(path, k))?;
                json_eq(a, b)
            }
        };
        if equal {
            pi += 1;
        }
        oi += 1;
    }
    if pi < items.len() {
        return Err(invalid(
            path,
            format!("the order of the patch list does not match its {SET_ELEMENT_ORDER} list"),
        ));
    }
    Ok(())
}

fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    path: &[String],
) -> Result<()> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(invalid(
            path,
            format!("{RETAIN_KEYS} must be a list of field names"),
        ));
    };
    let keep = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !keep(k) {
            return Err(invalid(
                path,
                format!("field {k:?} is in the patch but not in {RETAIN_KEYS}"),
            ));
        }
    }
    original.retain(|k, _| keep(k));
    Ok(())
}

/// Removes `null` members everywhere in a value about to be inserted.
fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// Drops objects carrying `$patch` (returning `None` if `v` itself is one).
fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(PATCH) {
                return None;
            }
            Some(Value::Object(
                m.into_iter()
                    .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                    .collect(),
            ))
        }
        Value::Array(a) => Some(Value::Array(
            a.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

fn is_directive_key(k: &str) -> bool {
    k == PATCH
        || k == RETAIN_KEYS
        || k.starts_with(&format!("{SET_ELEMENT_ORDER}/"))
        || k.starts_with(&format!("{DELETE_FROM_PRIMITIVE_LIST}/"))
}

/// Removes every directive key left anywhere in the result.
fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !is_directive_key(k));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patched(target: Value, patch: Value) -> Value {
        let mut doc = target;
        apply(&mut doc, &patch).unwrap_or_else(|e| panic!("{patch}: {e}"));
        doc
    }

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_string).collect()
    }

    fn deployment(containers: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}}
        })
    }

    fn containers(doc: &Value) -> &Value {
        &doc["spec"]["template"]["spec"]["containers"]
    }

    #[test]
    fn builtin_table() {
        let dep = BuiltinSchema::new(Some("Deployment"));
        let svc = BuiltinSchema::new(Some("Service"));
        let cases: &[(&BuiltinSchema, &str, ListStrategy)] = &[
            (&dep, "spec.template.spec.containers", Key("name")),
            (&dep, "spec.template.spec.initContainers", Key("name")),
            (&dep, "spec.template.spec.volumes", Key("name")),
            (&dep, "spec.template.spec.imagePullSecrets", Key("name")),
            (&dep, "spec.template.spec.hostAliases", Key("ip")),
            (&dep, "spec.template.spec.containers.env", Key("name")),
            (
                &dep,
                "spec.template.spec.containers.ports",
                Key("containerPort"),
            ),
            (
                &dep,
                "spec.template.spec.containers.volumeMounts",
                Key("mountPath"),
            ),
            (
                &dep,
                "spec.template.spec.containers.volumeDevices",
                Key("devicePath"),
            ),
            (
                &dep,
                "spec.template.spec.containers.args",
                ListStrategy::Replace,
            ),
            (
                &dep,
                "spec.template.spec.tolerations",
                ListStrategy::Replace,
            ),
            (&dep, "spec.template.metadata.finalizers", Set),
            (&dep, "metadata.finalizers", Set),
            (&dep, "metadata.ownerReferences", Key("uid")),
            (&dep, "status.conditions", Key("type")),
            (&dep, "spec.ports", ListStrategy::Replace),
            (&svc, "spec.ports", Key("port")),
            (
                &svc,
                "status.loadBalancer.ingress.ports",
                ListStrategy::Replace,
            ),
            (&dep, "secrets", ListStrategy::Replace),
            (
                &BuiltinSchema::new(Some("ServiceAccount")),
                "secrets",
                Key("name"),
            ),
            (
                &BuiltinSchema::new(Some("ServiceAccount")),
                "imagePullSecrets",
                ListStrategy::Replace,
            ),
            (
                &BuiltinSchema::new(Some("Node")),
                "status.addresses",
                Key("type"),
            ),
            (
                &BuiltinSchema::new(Some("Endpoints")),
                "subsets.addresses",
                ListStrategy::Replace,
            ),
            (&BuiltinSchema::new(None), "spec.ports", Key("port")),
            (
                &BuiltinSchema::new(Some("CronJob")),
                "spec.jobTemplate.spec.template.spec.containers",
                Key("name"),
            ),
        ];
        for (schema, p, want) in cases {
            assert_eq!(
                schema.list_strategy(&path(p)),
                *want,
                "{p} for {:?}",
                schema.kind
            );
        }
        assert!(
            BuiltinSchema::new(Some("PodDisruptionBudget")).replaces_map(&path("spec.selector"))
        );
        assert!(!dep.replaces_map(&path("spec.selector")));
    }

    #[test]
    fn kubectl_apply_patch_with_set_element_order() {
        let original = deployment(json!([
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "sidecar", "image": "proxy:1"}
        ]));
        let patch = json!({"spec": {"replicas": 2, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}, {"name": "log"}],
            "containers": [{"name": "app", "image": "app:2"}, {"name": "log", "image": "busybox"}]
        }}}});
        let got = patched(original, patch);
        assert_eq!(got["spec"]["replicas"], 2);
        assert_eq!(
            containers(&got),
            &json!([
                {"name": "sidecar", "image": "proxy:1"},
                {"name": "app", "image": "app:2", "env": [{"name": "A", "value": "1"}]},
                {"name": "log", "image": "busybox"}
            ])
        );
        assert_eq!(
            got["metadata"],
            json!({"name": "web", "labels": {"app": "web"}})
        );
    }

    #[test]
    fn delete_directive_in_container_list() {
        let original = deployment(json!([
            {"name": "app", "image": "app:1"},
            {"name": "sidecar", "image": "proxy:1"}
        ]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [{"$patch": "delete", "name": "sidecar"}]
        }}}});
        let got = patched(original.clone(), patch);
        assert_eq!(
            containers(&got),
            &json!([{"name": "app", "image": "app:1"}])
        );

        // Without the ordering directive, and deleting an item that does not exist.
        let patch = json!({"spec": {"template": {"spec": {
            "containers": [{"$patch": "delete", "name": "app"}, {"$patch": "delete", "name": "ghost"}]
        }}}});
        let got = patched(original, patch);
        assert_eq!(
            containers(&got),
            &json!([{"name": "sidecar", "image": "proxy:1"}])
        );
    }

    #[test]
    fn delete_and_add_in_one_ordered_patch() {
        // The shape kubectl sends when one container is swapped for another.
        let original = deployment(json!([
            {"name": "a", "image": "a"},
            {"name": "b", "image": "b"},
            {"name": "c", "image": "c"}
        ]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "d"}, {"name": "c"}],
            "containers": [{"name": "d", "image": "d"}, {"$patch": "delete", "name": "b"}]
        }}}});
        let got = patched(original, patch);
        assert_eq!(
            containers(&got),
            &json!([{"name": "a", "image": "a"}, {"name": "d", "image": "d"}, {"name": "c", "image": "c"}])
        );
    }

    #[test]
    fn env_merges_by_name() {
        let original = deployment(json!([
            {"name": "app", "env": [{"name": "A", "value": "1"}, {"name": "KEEP", "value": "k"}, {"name": "GONE", "value": "g"}]}
        ]));
        let patch = json!({"spec": {"template": {"spec": {"containers": [{
            "name": "app",
            "env": [
                {"name": "B", "value": "2"},
                {"name": "A", "value": "10"},
                {"name": "GONE", "$patch": "delete"},
                {"name": "KEEP", "value": null, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            ]
        }]}}}});
        let got = patched(original, patch);
        assert_eq!(
            containers(&got)[0]["env"],
            json!([
                {"name": "B", "value": "2"},
                {"name": "A", "value": "10"},
                {"name": "KEEP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            ])
        );
    }

    #[test]
    fn finalizers_are_a_set() {
        let obj =
            |f: Value| json!({"kind": "ConfigMap", "metadata": {"name": "x", "finalizers": f}});
        let cases = [
            // Union; items only in the patch come first, as upstream orders them.
            (json!(["a"]), json!(["b"]), json!(["b", "a"])),
            (json!(["a", "b"]), json!(["b"]), json!(["a", "b"])),
            (json!(["a", "b"]), json!(["c", "a"]), json!(["c", "a", "b"])),
            (json!(["x"]), json!([]), json!(["x"])),
            (
                json!(["a", "b", "c"]),
                json!(["c", "a"]),
                json!(["b", "c", "a"]),
            ),
        ];
        for (orig, patch, want) in cases {
            let got = patched(
                obj(orig.clone()),
                json!({"metadata": {"finalizers": patch}}),
            );
            assert_eq!(got["metadata"]["finalizers"], want, "{orig} + {patch}");
        }
        // Removing with the parallel deletion list, and all of them with null.
        let got = patched(
            obj(json!(["a", "b", "c"])),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"], "$setElementOrder/finalizers": ["a", "c"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["a", "c"]));
        let got = patched(obj(json!(["a"])), json!({"metadata": {"finalizers": null}}));
        assert_eq!(got["metadata"], json!({"name": "x"}));
        // Adding to an object that has none.
        let got = patched(
            json!({"metadata": {"name": "x"}}),
            json!({"metadata": {"finalizers": ["f"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["f"]));
    }

    #[test]
    fn set_element_order_for_primitives() {
        let got = patched(
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["c", "b", "a"]));
    }

    #[test]
    fn retain_keys_switches_deployment_strategy() {
        let original = json!({"kind": "Deployment", "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let got = patched(
            original.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));

        let mut doc = original.clone();
        let err = apply(
            &mut doc,
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}}),
        )
        .unwrap_err();
        assert!(matches!(err, StrategicError::InvalidPatch { .. }), "{err}");
        assert_eq!(doc, original, "unchanged on error");
    }

    #[test]
    fn replace_and_delete_directives() {
        let original = deployment(json!([{"name": "a"}, {"name": "b"}]));
        let got = patched(
            original.clone(),
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}}}}),
        );
        assert_eq!(containers(&got), &json!([{"name": "only", "image": "x"}]));

        let got = patched(
            original.clone(),
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}]}}}}),
        );
        assert_eq!(containers(&got), &json!([]));

        let got = patched(
            original.clone(),
            json!({"metadata": {"labels": {"$patch": "replace", "x": "y"}}}),
        );
        assert_eq!(got["metadata"]["labels"], json!({"x": "y"}));

        let got = patched(
            original.clone(),
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
        );
        assert_eq!(got["metadata"]["labels"], json!({}));

        let got = patched(
            original.clone(),
            json!({"metadata": {"annotations": {"$patch": "delete"}}}),
        );
        assert_eq!(got["metadata"].get("annotations"), None);

        let got = patched(
            original.clone(),
            json!({"metadata": {"$patch": "merge", "labels": {"b": "2"}}}),
        );
        assert_eq!(got["metadata"]["labels"], json!({"app": "web", "b": "2"}));

        let got = patched(original, json!({"$patch": "delete"}));
        assert_eq!(got, json!({}));
    }

    #[test]
    fn ports_use_the_right_key_per_kind() {
        let svc = json!({"kind": "Service", "spec": {"ports": [{"port": 80, "targetPort": 8080, "name": "http"}]}});
        let got = patched(
            svc.clone(),
            json!({"spec": {"ports": [{"port": 443, "name": "https"}]}}),
        );
        assert_eq!(
            got["spec"]["ports"],
            json!([{"port": 443, "name": "https"}, {"port": 80, "targetPort": 8080, "name": "http"}])
        );
        let got = patched(
            svc,
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
        );
        assert_eq!(
            got["spec"]["ports"],
            json!([{"port": 80, "targetPort": 9090, "name": "http"}])
        );

        let original = deployment(
            json!([{"name": "app", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]),
        );
        let got = patched(
            original,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 80, "name": "http"}]}]}}}}),
        );
        assert_eq!(
            containers(&got)[0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}])
        );
    }

    #[test]
    fn owner_references_and_conditions() {
        let original = json!({
            "kind": "Pod",
            "metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Synced", "status": "True"}]}
        });
        let got = patched(
            original,
            json!({
                "metadata": {"ownerReferences": [{"uid": "1", "controller": true}]},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}
            }),
        );
        assert_eq!(
            got["metadata"]["ownerReferences"],
            json!([{"uid": "1", "name": "a", "controller": true}, {"uid": "2", "name": "b"}])
        );
        assert_eq!(
            got["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "True"}])
        );
    }

    #[test]
    fn merge_patch_semantics_elsewhere() {
        let original = deployment(json!([{"name": "app", "args": ["--a", "--b"]}]));
        let got = patched(
            original,
            json!({
                "metadata": {"labels": {"app": null, "new": "x"}},
                "spec": {"template": {"spec": {
                    "containers": [{"name": "app", "args": ["--c"]}],
                    "tolerations": [{"key": "k"}]
                }}}
            }),
        );
        assert_eq!(got["metadata"]["labels"], json!({"new": "x"}));
        assert_eq!(containers(&got)[0]["args"], json!(["--c"]));
        assert_eq!(
            got["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "k"}])
        );
    }

    #[test]
    fn new_fields_are_cleaned() {
        let got = patched(
            json!({"kind": "Pod"}),
            json!({
                "metadata": {"labels": {"a": "1", "b": null}},
                "spec": {
                    "$setElementOrder/containers": [{"name": "a"}],
                    "containers": [{"name": "a"}, {"name": "b", "$patch": "delete"}]
                }
            }),
        );
        assert_eq!(
            got,
            json!({"kind": "Pod", "metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "a"}]}})
        );
    }

    #[test]
    fn map_replace_strategy_for_pdb_selector() {
        let patch = json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}});
        let pdb = json!({"kind": "PodDisruptionBudget", "spec": {"selector": {"matchLabels": {"a": "1"}}}});
        assert_eq!(
            patched(pdb, patch.clone())["spec"]["selector"],
            json!({"matchLabels": {"b": "2"}})
        );
        let dep = json!({"kind": "Deployment", "spec": {"selector": {"matchLabels": {"a": "1"}}}});
        assert_eq!(
            patched(dep, patch)["spec"]["selector"],
            json!({"matchLabels": {"a": "1", "b": "2"}})
        );
    }

    #[test]
    fn errors_leave_target_unchanged() {
        let original = deployment(json!([{"name": "app"}]));
        let cases = [
            json!([]),
            json!("x"),
            json!({"$patch": "explode"}),
            json!({"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "merge", "name": "app"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [["nested"]]}}}}),
            json!({"spec": {"template": {"spec": {"containers": ["app"]}}}}),
            json!({"spec": {"$retainKeys": "replicas"}}),
            json!({"spec": {"$setElementOrder": []}}),
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": {"name": "x"}}}}}),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "a"}, {"name": "b"}]
            }}}}),
            json!({"metadata": {"$deleteFromPrimitiveList": ["x"]}}),
        ];
        for patch in cases {
            let mut doc = original.clone();
            let err = apply(&mut doc, &patch).expect_err(&patch.to_string());
            assert!(!err.to_string().is_empty());
            assert_eq!(doc, original, "{patch}");
        }
        let mut scalar = json!(5);
        assert!(apply(&mut scalar, &json!({})).is_err());
    }

    #[test]
    fn custom_schema() {
        struct Everything;
        impl Schema for Everything {
            fn list_strategy(&self, _path: &[String]) -> ListStrategy {
                ListStrategy::MergeByKey("id")
            }
        }
        let mut doc = json!({"items": [{"id": 1, "a": 1}]});
        apply_with_schema(
            &mut doc,
            &json!({"items": [{"id": 1, "b": 2}]}),
            &Everything,
        )
        .unwrap();
        assert_eq!(doc, json!({"items": [{"id": 1, "a": 1, "b": 2}]}));
    }

    /// Property: with no directives and no merging lists, a strategic merge patch behaves
    /// like a JSON merge patch.
    #[test]
    fn agrees_with_merge_patch_without_lists_to_merge() {
        let targets = [
            json!({}),
            json!({"kind": "ConfigMap", "data": {"a": "1"}, "metadata": {"labels": {"x": "y"}}}),
            json!({"kind": "ConfigMap", "spec": {"list": [1, 2], "obj": {"n": null}}}),
        ];
        let patches = [
            json!({}),
            json!({"data": {"a": null, "b": "2"}}),
            json!({"metadata": {"labels": null}, "spec": {"list": [3]}}),
            json!({"spec": {"obj": {"deep": {"x": 1, "gone": null}}, "list": {"now": "object"}}}),
        ];
        for t in &targets {
            for p in &patches {
                let mut smp = t.clone();
                apply(&mut smp, p).unwrap();
                let mut jmp = t.clone();
                crate::merge_patch::apply(&mut jmp, p);
                assert_eq!(smp, jmp, "{t} + {p}");
            }
        }
    }
}

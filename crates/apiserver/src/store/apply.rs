//! Server-side apply and `managedFields`.
//!
//! Field ownership is tracked per manager as a set of paths, serialized as `FieldsV1`
//! (`{"f:spec":{"f:replicas":{}}}`). Maps are merged key by key. Lists follow their schema's
//! `x-kubernetes-list-type` (built-in kinds: the strategic-merge table; custom resources:
//! their `openAPIV3Schema`): a `map` list owns each item by its keys
//! (`k:{"name":"web"}`, with `.` marking the item itself) and the item's fields below it, a
//! `set` owns each value (`v:"a"`), and an `atomic` list (the default) is one leaf.
//!
//! Apply of a configuration by manager M:
//! - a field in the configuration that another manager owns with a different value is a
//!   conflict (409 with `FieldManagerConflict` causes) unless `force`, which takes ownership;
//! - fields M owned before and no longer sends are removed unless another manager owns them;
//! - the configuration is merged into the object and M owns exactly the configuration's fields.
//!
//! Other writes (`operation: Update`) take ownership of the fields they change once an object
//! has managed fields or the request names a field manager.

use std::collections::BTreeSet;

use metacontroller_merge::strategic::{BuiltinSchema, ListStrategy, Schema as _};
use serde_json::{json, Map, Value};

use super::{meta, Obj, Store, Subresource, WriteOptions};
use crate::error::{ApiError, Result};
use crate::model::ResourceType;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Seg {
    /// A field of a map (`f:name`).
    F(String),
    /// An item of a `map` list, by the compact JSON of its keys (`k:{"name":"web"}`).
    K(String),
    /// An item of a `set` list, by its compact JSON (`v:"a"`).
    V(String),
}

impl Seg {
    fn f(s: &str) -> Seg {
        Seg::F(s.to_string())
    }

    fn render(&self) -> String {
        match self {
            Seg::F(s) => format!("f:{s}"),
            Seg::K(s) => format!("k:{s}"),
            Seg::V(s) => format!("v:{s}"),
        }
    }

    fn parse(s: &str) -> Option<Seg> {
        let (prefix, rest) = s.split_at_checked(2)?;
        match prefix {
            "f:" => Some(Seg::F(rest.to_string())),
            "k:" => Some(Seg::K(rest.to_string())),
            "v:" => Some(Seg::V(rest.to_string())),
            _ => None,
        }
    }

    /// Whether this step names a list item.
    fn is_item(&self) -> bool {
        !matches!(self, Seg::F(_))
    }
}

type Path = Vec<Seg>;
type FieldSet = BTreeSet<Path>;

/// A path as conflict messages show it: `.spec.containers[name="web"].image`.
fn display(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::F(f) => {
                s.push('.');
                s.push_str(f);
            }
            Seg::K(k) => {
                let keys: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                s.push('[');
                s.push_str(&keys.join(","));
                s.push(']');
            }
            Seg::V(v) => {
                s.push_str("[=");
                s.push_str(v);
                s.push(']');
            }
        }
    }
    s
}

/// How a list field is owned and merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// Where a type's list semantics come from.
pub(crate) enum Lists<'a> {
    Builtin(BuiltinSchema),
    Custom(Option<&'a Value>),
}

impl<'a> Lists<'a> {
    pub(crate) fn for_type(rt: &'a ResourceType) -> Lists<'a> {
        if rt.custom {
            Lists::Custom(rt.schema.as_ref())
        } else {
            Lists::Builtin(BuiltinSchema::new(Some(&rt.kind)))
        }
    }

    /// The list type at `names` (field names from the root; list items add no name).
    pub(crate) fn list_type(&self, names: &[String]) -> ListType {
        let builtin = |b: &BuiltinSchema| match b.list_strategy(names) {
            ListStrategy::MergeByKey(k) => ListType::Map(vec![k.to_string()]),
            ListStrategy::MergePrimitives => ListType::Set,
            ListStrategy::Replace => ListType::Atomic,
        };
        match self {
            Lists::Builtin(b) => builtin(b),
            Lists::Custom(_) if names.first().is_some_and(|n| n == "metadata") => {
                builtin(&BuiltinSchema::new(None))
            }
            Lists::Custom(None) => ListType::Atomic,
            Lists::Custom(Some(schema)) => custom_list_type(schema, names),
        }
    }
}

/// The list type a structural schema declares at `names`.
fn custom_list_type(schema: &Value, names: &[String]) -> ListType {
    let mut cur = schema;
    for name in names {
        while cur.get("type").and_then(Value::as_str) == Some("array") {
            match cur.get("items") {
                Some(i) => cur = i,
                None => return ListType::Atomic,
            }
        }
        let next = cur
            .get("properties")
            .and_then(|p| p.get(name))
            .or_else(|| cur.get("additionalProperties").filter(|a| a.is_object()));
        match next {
            Some(n) => cur = n,
            None => return ListType::Atomic,
        }
    }
    match cur.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListType::Set,
        Some("map") => ListType::Map(
            cur.get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => ListType::Atomic,
    }
}

/// Metadata fields that are never owned.
const UNOWNED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// The paths of an object that ownership applies to.
fn field_set(obj: &Value, status_only: Option<bool>, lists: &Lists) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for (k, v) in map {
        if k == "apiVersion" || k == "kind" {
            continue;
        }
        match status_only {
            Some(true) if k != "status" => continue,
            Some(false) if k == "status" => continue,
            _ => {}
        }
        if k == "metadata" {
            if let Some(m) = v.as_object() {
                for (mk, mv) in m {
                    if !UNOWNED_META.contains(&mk.as_str()) {
                        let mut names = vec!["metadata".to_string(), mk.clone()];
                        collect(
                            mv,
                            &mut vec![Seg::f("metadata"), Seg::f(mk)],
                            &mut names,
                            lists,
                            &mut out,
                        );
                    }
                }
            }
            continue;
        }
        collect(
            v,
            &mut vec![Seg::f(k)],
            &mut vec![k.clone()],
            lists,
            &mut out,
        );
    }
    out
}

/// The compact JSON of an object's key fields, in key order, or None when it has none.
fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let obj = item.as_object()?;
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    let mut m = Map::new();
    for k in sorted {
        if let Some(v) = obj.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    (!m.is_empty()).then(|| serde_json::to_string(&Value::Object(m)).unwrap_or_default())
}

fn collect(v: &Value, path: &mut Path, names: &mut Vec<String>, lists: &Lists, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(Seg::f(k));
                names.push(k.clone());
                collect(child, path, names, lists, out);
                names.pop();
                path.pop();
            }
        }
        Value::Array(items) if items.is_empty() => {
            // An empty associative list owns nothing; an empty atomic list is a value.
            if lists.list_type(names) == ListType::Atomic {
                out.insert(path.clone());
            }
        }
        Value::Array(items) => match lists.list_type(names) {
            ListType::Set if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
                for item in items {
                    path.push(Seg::V(serde_json::to_string(item).unwrap_or_default()));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListType::Map(keys)
                if items.iter().all(|i| item_key(i, &keys).is_some()) && !keys.is_empty() =>
            {
                for item in items {
                    let key = item_key(item, &keys).unwrap_or_default();
                    path.push(Seg::K(key));
                    out.insert(path.clone());
                    if let Value::Object(fields) = item {
                        for (k, child) in fields {
                            path.push(Seg::f(k));
                            names.push(k.clone());
                            collect(child, path, names, lists, out);
                            names.pop();
                            path.pop();
                        }
                    }
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

fn to_fields_v1(set: &FieldSet) -> Value {
    // The set is sorted, so the paths below one step are next to each other: each node is
    // built from its run of paths, and each step's key rendered once.
    fn build(paths: &[&[Seg]]) -> Map<String, Value> {
        let mut out = Map::new();
        let mut i = 0;
        while i < paths.len() {
            let Some(head) = paths[i].first() else {
                i += 1;
                continue;
            };
            let mut j = i + 1;
            while j < paths.len() && paths[j].first() == Some(head) {
                j += 1;
            }
            let below: Vec<&[Seg]> = paths[i..j].iter().map(|p| &p[1..]).collect();
            let children = build(&below);
            // A path that is owned and has owned paths below it is marked with `.`, first,
            // as kube-apiserver writes it.
            let node = if below.iter().any(|p| p.is_empty()) && !children.is_empty() {
                let mut node = Map::with_capacity(children.len() + 1);
                node.insert(".".into(), Value::Object(Map::new()));
                node.extend(children);
                node
            } else {
                children
            };
            out.insert(head.render(), Value::Object(node));
            i = j;
        }
        out
    }
    let paths: Vec<&[Seg]> = set.iter().map(Vec::as_slice).collect();
    Value::Object(build(&paths))
}

fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut Path, out: &mut FieldSet) {
        let Some(m) = v.as_object() else {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            return;
        };
        let children: Vec<(Seg, &Value)> = m
            .iter()
            .filter_map(|(k, c)| Seg::parse(k).map(|s| (s, c)))
            .collect();
        if (children.is_empty() || m.contains_key(".")) && !path.is_empty() {
            out.insert(path.clone());
        }
        for (seg, child) in children {
            path.push(seg);
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// Whether a list item matches a `k:` or `v:` step.
fn item_matches(item: &Value, seg: &Seg) -> bool {
    match seg {
        Seg::K(k) => {
            let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(k) else {
                return false;
            };
            item.as_object()
                .is_some_and(|o| keys.iter().all(|(kk, kv)| o.get(kk) == Some(kv)))
        }
        Seg::V(v) => serde_json::from_str::<Value>(v).is_ok_and(|val| *item == val),
        Seg::F(_) => false,
    }
}

fn step<'a>(v: &'a Value, seg: &Seg) -> Option<&'a Value> {
    match seg {
        Seg::F(f) => v.get(f),
        _ => v.as_array()?.iter().find(|i| item_matches(i, seg)),
    }
}

fn step_mut<'a>(v: &'a mut Value, seg: &Seg) -> Option<&'a mut Value> {
    match seg {
        Seg::F(f) => v.get_mut(f),
        _ => v.as_array_mut()?.iter_mut().find(|i| item_matches(i, seg)),
    }
}

fn lookup<'a>(obj: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(obj, step)
}

fn lookup_mut<'a>(obj: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(obj, step_mut)
}

/// Whether `a` is `b` or an ancestor/descendant of it (the two overlap).
fn overlaps(a: &[Seg], b: &[Seg]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// Whether a path names a `map` list item itself (its fields are owned separately).
fn is_item_marker(p: &[Seg]) -> bool {
    matches!(p.last(), Some(Seg::K(_)))
}

/// Whether a path is a key field of a `map` list item: it goes only with the item.
fn is_item_key_field(p: &[Seg]) -> bool {
    let [.., Seg::K(keys), Seg::F(field)] = p else {
        return false;
    };
    serde_json::from_str::<Map<String, Value>>(keys).is_ok_and(|k| k.contains_key(field))
}

/// Removes one step from its parent.
fn remove_step(parent: &mut Value, seg: &Seg) {
    match (parent, seg) {
        (Value::Object(m), Seg::F(f)) => {
            m.remove(f);
        }
        (Value::Array(a), seg) if seg.is_item() => a.retain(|i| !item_matches(i, seg)),
        _ => {}
    }
}

/// Removes a field or list item, and any maps and associative lists left empty above it.
fn remove_path(obj: &mut Value, path: &[Seg]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    match lookup_mut(obj, parents) {
        Some(parent) => remove_step(parent, last),
        None => return,
    }
    for depth in (1..path.len()).rev() {
        let empty = lookup(obj, &path[..depth]).is_some_and(|v| match v {
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty() && path[depth].is_item(),
            _ => false,
        });
        if !empty {
            break;
        }
        if let Some(parent) = lookup_mut(obj, &path[..depth - 1]) {
            remove_step(parent, &path[depth - 1]);
        }
    }
}

/// Merges an apply configuration into an object: maps key by key, `map` and `set` lists item
/// by item, everything else replaced; `null` removes a field.
fn merge_config(target: &mut Value, config: &Value, names: &mut Vec<String>, lists: &Lists) {
    match (target, config) {
        (Value::Object(t), Value::Object(c)) => {
            for (k, v) in c {
                if v.is_null() {
                    t.remove(k);
                    continue;
                }
                names.push(k.clone());
                match t.get_mut(k) {
                    Some(existing)
                        if existing.is_object() && v.is_object()
                            || existing.is_array() && v.is_array() =>
                    {
                        merge_config(existing, v, names, lists);
                    }
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
                names.pop();
            }
        }
        (Value::Array(t), Value::Array(c)) => match lists.list_type(names) {
            ListType::Set => {
                for item in c {
                    if !t.contains(item) {
                        t.push(item.clone());
                    }
                }
            }
            ListType::Map(keys)
                if !keys.is_empty()
                    && c.iter()
                        .chain(t.iter())
                        .all(|i| item_key(i, &keys).is_some()) =>
            {
                for item in c {
                    let key = item_key(item, &keys);
                    match t.iter_mut().find(|i| item_key(i, &keys) == key) {
                        Some(existing) => merge_config(existing, item, names, lists),
                        None => t.push(item.clone()),
                    }
                }
            }
            _ => *t = c.clone(),
        },
        (t, c) => *t = c.clone(),
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: FieldSet,
}

fn parse_entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| {
                    let s = |f: &str| e.get(f).and_then(Value::as_str).unwrap_or("").to_string();
                    Entry {
                        manager: s("manager"),
                        operation: s("operation"),
                        api_version: s("apiVersion"),
                        time: s("time"),
                        subresource: e
                            .get("subresource")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `managedFields` as kube-apiserver orders them: Apply before Update, then oldest first, then
/// by manager, apiVersion and subresource.
fn render_entries(entries: &[Entry]) -> Value {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|p, q| {
        (
            &p.operation,
            &p.time,
            &p.manager,
            &p.api_version,
            &p.subresource,
        )
            .cmp(&(
                &q.operation,
                &q.time,
                &q.manager,
                &q.api_version,
                &q.subresource,
            ))
    });
    Value::Array(
        sorted
            .into_iter()
            .filter(|e| !e.fields.is_empty())
            .map(|e| {
                let mut v = json!({
                    "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                    "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.fields),
                });
                if e.manager.is_empty() {
                    // `manager` is omitted when empty (a request with no fieldManager and no
                    // User-Agent).
                    if let Some(m) = v.as_object_mut() {
                        m.remove("manager");
                    }
                }
                if let Some(s) = &e.subresource {
                    v["subresource"] = Value::String(s.clone());
                }
                v
            })
            .collect(),
    )
}

/// Records a non-apply write in `managedFields`, as kube-apiserver's field manager does: the
/// writer (one entry per manager, apiVersion and subresource) owns the fields it changed and
/// the others lose them. The entries the request carries are the starting point, so a client
/// can rewrite `managedFields` (as kubectl does when it moves client-side apply ownership to
/// server-side apply); without any, the stored object's. Returns the new `managedFields`, or
/// None when nothing is tracked or nothing changed. Apply writes set their own entries and
/// return None here.
pub(super) fn update_managed_fields(
    rt: &ResourceType,
    old: Option<&Value>,
    new: &Value,
    manager: Option<&str>,
    operation: &str,
    api_version: &str,
    subresource: Option<&str>,
) -> Option<Value> {
    if operation == "Apply" {
        return None;
    }
    let requested = new
        .pointer("/metadata/managedFields")
        .filter(|m| m.as_array().is_some_and(|a| !a.is_empty()));
    let from_request =
        requested.is_some() && requested != old.and_then(|o| o.pointer("/metadata/managedFields"));
    let mut entries = if from_request {
        parse_entries(new)
    } else {
        old.map(parse_entries).unwrap_or_default()
    };
    let lists = Lists::for_type(rt);
    // A write through the status subresource changes nothing but `.status` (the rest is the
    // stored object), so only status fields can change hands.
    let scope = (subresource == Some("status")).then_some(true);
    let before = old.map(|o| field_set(o, scope, &lists)).unwrap_or_default();
    let after = field_set(new, scope, &lists);
    let Some(manager) = manager else {
        // The server's own writes (the garbage collector, the create of a server-side apply
        // that carries its entry already) own nothing: the fields they remove leave their
        // owners, the rest stays as it is.
        let removed: FieldSet = before.difference(&after).cloned().collect();
        if removed.is_empty() || entries.is_empty() {
            return None;
        }
        for e in &mut entries {
            e.fields.retain(|p| !removed.contains(p));
        }
        entries.retain(|e| !e.fields.is_empty());
        return Some(render_entries(&entries));
    };
    // A `map` list item itself changes hands only when it is new; its fields are compared
    // one by one.
    let removed: FieldSet = before.difference(&after).cloned().collect();
    let changed: FieldSet = after
        .into_iter()
        .filter(|p| {
            let was = old.and_then(|o| lookup(o, p));
            if is_item_marker(p) {
                was.is_none()
            } else {
                was != lookup(new, p)
            }
        })
        .collect();
    if changed.is_empty() && removed.is_empty() && !from_request {
        return None;
    }
    for e in &mut entries {
        e.fields.retain(|p| {
            !removed.contains(p)
                && (e.manager == manager && e.subresource.as_deref() == subresource
                    || !changed.contains(p))
        });
    }
    let time = meta::now_rfc3339();
    let mine = |e: &Entry| {
        e.manager == manager
            && e.operation == "Update"
            && e.api_version == api_version
            && e.subresource.as_deref() == subresource
    };
    match entries.iter_mut().find(|e| mine(e)) {
        Some(e) => {
            if !changed.is_empty() {
                e.fields.extend(changed);
                e.time = time;
            }
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version: api_version.to_string(),
            time,
            subresource: subresource.map(str::to_string),
            fields: changed,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
    Some(render_entries(&entries))
}

/// The annotation kubectl's client-side apply records the configuration it applied in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The field manager of `kubectl apply --server-side`, the one manager kube-apiserver lets
/// take over client-side applied fields.
const KUBECTL: &str = "kubectl";

/// The configuration the last client-side apply recorded on an object, if any.
fn last_applied(obj: &Value) -> Option<Value> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .filter(Value::is_object)
}

/// An apply configuration as the last-applied-configuration annotation records it: compact
/// JSON with sorted keys and a final newline, without the annotation itself.
fn last_applied_value(config: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    let mut cfg = config.clone();
    if let Some(Value::Object(md)) = cfg.get_mut("metadata") {
        if let Some(Value::Object(a)) = md.get_mut("annotations") {
            a.remove(LAST_APPLIED);
            if a.is_empty() {
                md.remove("annotations");
            }
        }
    }
    let mut s = serde_json::to_string(&sorted(&cfg)).unwrap_or_default();
    s.push('\n');
    s
}

/// The result of applying a configuration to an object: the new object (with its
/// `managedFields`), or the conflicts.
pub(super) fn apply_config(
    rt: &ResourceType,
    current: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    status: Option<bool>,
) -> std::result::Result<Value, Vec<(String, String)>> {
    let subresource = (status == Some(true)).then(|| "status".to_string());
    let mut entries = parse_entries(current);
    let lists = Lists::for_type(rt);
    let applied = field_set(config, status, &lists);
    let mine =
        |e: &Entry| e.manager == manager && e.operation == "Apply" && e.subresource == subresource;

    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| !mine(e)) {
        // Values are compared leaf by leaf: a `map` list item conflicts through its fields.
        for p in applied.iter().filter(|p| !is_item_marker(p)) {
            for q in e
                .fields
                .iter()
                .filter(|q| !is_item_marker(q) && overlaps(p, q))
            {
                if lookup(current, q) != lookup(config, q) {
                    conflicts.push((e.manager.clone(), e.api_version.clone(), q.clone()));
                }
            }
        }
    }
    conflicts.sort();
    conflicts.dedup();
    // kubectl's server-side apply may take over what its client-side apply last applied
    // (the fields of the last-applied-configuration annotation), as kube-apiserver allows
    // so that users can move from one to the other.
    let force = force
        || manager == KUBECTL
            && !conflicts.is_empty()
            && last_applied(current).is_some_and(|last| {
                let allowed = field_set(&last, status, &lists);
                conflicts.iter().all(|(_, _, q)| allowed.contains(q))
            });
    if !conflicts.is_empty() && !force {
        return Err(conflicts
            .into_iter()
            .map(|(m, av, q)| (format!("conflict with {m:?} using {av}"), display(&q)))
            .collect());
    }

    let previous: FieldSet = entries
        .iter()
        .filter(|e| mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut out = current.clone();
    for p in previous.difference(&applied) {
        if !others.iter().any(|q| overlaps(p, q)) && !is_item_key_field(p) {
            remove_path(&mut out, p);
        }
    }
    let mut cfg = config.clone();
    if let Some(m) = cfg.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        if let Some(Value::Object(md)) = m.get_mut("metadata") {
            for f in UNOWNED_META.iter().filter(|f| **f != "resourceVersion") {
                md.remove(*f);
            }
        }
    }
    merge_config(&mut out, &cfg, &mut Vec::new(), &lists);
    if manager == KUBECTL && last_applied(current).is_some() {
        // Keep client-side apply's record in step, so a later `kubectl apply` without
        // --server-side computes its patch from this configuration.
        let value = last_applied_value(config);
        if let Some(Value::Object(annotations)) = meta::meta_mut(&mut out).get_mut("annotations") {
            annotations.insert(LAST_APPLIED.into(), Value::String(value));
        }
    }

    if force {
        for e in entries.iter_mut().filter(|e| !mine(e)) {
            let lost: Vec<Path> = e
                .fields
                .iter()
                .filter(|q| {
                    !is_item_marker(q)
                        && applied.iter().any(|p| overlaps(p, q))
                        && lookup(current, q) != lookup(config, q)
                })
                .cloned()
                .collect();
            for q in lost {
                e.fields.remove(&q);
            }
        }
    }
    let time = meta::now_rfc3339();
    match entries.iter_mut().find(|e| mine(e)) {
        Some(e) => {
            if e.fields != applied {
                e.time = time;
            }
            e.fields = applied;
            e.api_version = api_version.to_string();
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Apply".into(),
            api_version: api_version.to_string(),
            time,
            subresource,
            fields: applied,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
    meta::meta_mut(&mut out).insert("managedFields".into(), render_entries(&entries));
    Ok(out)
}

fn conflict_error(rt: &ResourceType, name: &str, conflicts: Vec<(String, String)>) -> ApiError {
    let n = conflicts.len();
    let lines: Vec<String> = conflicts
        .iter()
        .map(|(m, f)| format!("- {m}: {f}"))
        .collect();
    let message = if n == 1 {
        format!(
            "Apply failed with 1 conflict: {}: {}",
            conflicts[0].0, conflicts[0].1
        )
    } else {
        format!("Apply failed with {n} conflicts: {}", lines.join("\n"))
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": m, "field": f}))
        .collect();
    ApiError::new(409, "Conflict", message)
        .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": causes}))
}

impl Store {
    /// Server-side apply (`application/apply-patch+yaml`, already parsed by the caller).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        config: &Value,
        force: bool,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<(Obj, bool)> {
        let manager = opts
            .field_manager
            .clone()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                )
                .with_details(json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
                    {"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}
                ]}))
            })?;
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "the apply configuration must be a YAML or JSON object",
            ));
        }
        for f in ["apiVersion", "kind"] {
            if config
                .get(f)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(ApiError::bad_request(format!(
                    "invalid object type: {f} must be set in an apply configuration"
                )));
            }
        }
        if let Some(n) = meta::meta_str(config, "name").filter(|n| !n.is_empty() && *n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let status = match sub {
            Subresource::Status => Some(true),
            Subresource::Main if rt.status_subresource => Some(false),
            Subresource::Main => None,
        };
        let av = rt.api_version();
        for _ in 0..8 {
            match self.get(rt, namespace, name) {
                Err(e) if e.code == 404 => {
                    if sub == Subresource::Status {
                        return Err(e);
                    }
                    let mut obj =
                        apply_config(rt, &json!({}), config, &manager, force, &av, status)
                            .map_err(|c| conflict_error(rt, name, c))?;
                    let m = meta::meta_mut(&mut obj);
                    m.insert("name".into(), Value::String(name.to_string()));
                    for (k, v) in [("apiVersion", av.clone()), ("kind", rt.kind.clone())] {
                        if let Value::Object(o) = &mut obj {
                            o.insert(k.into(), Value::String(v));
                        }
                    }
                    // The apply configuration already carries its entry.
                    let create_opts = WriteOptions {
                        field_manager: None,
                        user_agent_manager: None,
                        ..opts.clone()
                    };
                    match self.create(rt, namespace, obj, &create_opts) {
                        Err(e) if e.code == 409 && e.reason == "AlreadyExists" => continue,
                        other => return other.map(|o| (o, true)),
                    }
                }
                Err(e) => return Err(e),
                Ok(_) => {
                    let result =
                        self.guaranteed_update(rt, namespace, name, sub, opts, "Apply", |cur| {
                            apply_config(rt, &cur, config, &manager, force, &av, status)
                                .map_err(|c| conflict_error(rt, name, c))
                        });
                    match result {
                        Err(e) if e.code == 404 => continue,
                        other => return other.map(|o| (o, false)),
                    }
                }
            }
        }
        Err(ApiError::conflict(
            &rt.group,
            &rt.plural,
            name,
            "the object changed too often during apply; please retry",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(paths: &[&str]) -> FieldSet {
        paths
            .iter()
            .map(|p| p.split('.').map(Seg::f).collect())
            .collect()
    }

    fn cm() -> ResourceType {
        let rt = crate::registry::Registry::with_builtins()
            .lookup("", "v1", "configmaps")
            .expect("cm");
        (*rt).clone()
    }

    #[test]
    fn field_sets_round_trip_through_fields_v1() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"a": "1"}, "resourceVersion": "3"},
            "data": {"k": "v", "e": {}}, "list": [1, 2]});
        let fs = field_set(&obj, None, &Lists::Builtin(BuiltinSchema::new(None)));
        assert_eq!(fs, set(&["metadata.labels.a", "data.k", "data.e", "list"]));
        let v1 = to_fields_v1(&fs);
        assert_eq!(v1["f:metadata"]["f:labels"]["f:a"], json!({}));
        assert_eq!(from_fields_v1(&v1), fs);

        // An owned list item with owned fields: `.` comes first, as kube-apiserver writes it.
        let item = vec![
            Seg::f("spec"),
            Seg::f("c"),
            Seg::K(r#"{"name":"x"}"#.into()),
        ];
        let mut fs = FieldSet::new();
        fs.insert(item.clone());
        fs.insert([item.clone(), vec![Seg::f("image")]].concat());
        fs.insert([item.clone(), vec![Seg::f("args")]].concat());
        fs.insert(vec![Seg::f("spec"), Seg::f("a")]);
        let v1 = to_fields_v1(&fs);
        assert_eq!(
            serde_json::to_string(&v1).expect("json"),
            r#"{"f:spec":{"f:a":{},"f:c":{"k:{\"name\":\"x\"}":{".":{},"f:args":{},"f:image":{}}}}}"#
        );
        assert_eq!(from_fields_v1(&v1), fs);
    }

    #[test]
    fn apply_creates_ownership_and_removes_dropped_fields() {
        let cfg1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let obj = apply_config(
            &cm(),
            &json!({"metadata": {"name": "c"}}),
            &cfg1,
            "m1",
            false,
            "v1",
            None,
        )
        .expect("apply");
        assert_eq!(obj["data"], json!({"a": "1", "b": "2"}));
        assert_eq!(obj["metadata"]["managedFields"][0]["manager"], "m1");
        assert_eq!(obj["metadata"]["managedFields"][0]["operation"], "Apply");
        // m1 stops sending b: it is removed.
        let cfg2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let obj2 = apply_config(&cm(), &obj, &cfg2, "m1", false, "v1", None).expect("apply");
        assert_eq!(obj2["data"], json!({"a": "1"}));
        // Stop sending everything under data: data goes away too.
        let cfg3 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let obj3 = apply_config(&cm(), &obj2, &cfg3, "m1", false, "v1", None).expect("apply");
        assert!(obj3.get("data").is_none(), "{obj3}");
    }

    #[test]
    fn conflicts_force_and_shared_ownership() {
        let base = json!({"metadata": {"name": "c"}});
        let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"x": "1", "shared": "s"}});
        let obj = apply_config(&cm(), &base, &a, "alice", false, "v1", None).expect("alice");
        // Bob sets the same value: no conflict, shared ownership.
        let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"shared": "s", "y": "2"}});
        let obj = apply_config(&cm(), &obj, &b, "bob", false, "v1", None).expect("bob");
        // Alice drops `shared`: Bob still owns it, so it stays.
        let a2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"x": "1"}});
        let obj = apply_config(&cm(), &obj, &a2, "alice", false, "v1", None).expect("alice2");
        assert_eq!(obj["data"]["shared"], "s");
        // Bob changes Alice's x: conflict.
        let b2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"shared": "s", "y": "2", "x": "9"}});
        let err = apply_config(&cm(), &obj, &b2, "bob", false, "v1", None).expect_err("conflict");
        assert_eq!(
            err,
            [(
                "conflict with \"alice\" using v1".to_string(),
                ".data.x".to_string()
            )]
        );
        let e = conflict_error(
            &crate::registry::Registry::with_builtins()
                .lookup("", "v1", "configmaps")
                .expect("cm"),
            "c",
            err,
        );
        assert_eq!(e.code, 409);
        assert_eq!(
            e.details.as_ref().map(|d| d["causes"][0]["reason"].clone()),
            Some(json!("FieldManagerConflict"))
        );
        // With force Bob takes it over; Alice no longer owns x.
        let obj = apply_config(&cm(), &obj, &b2, "bob", true, "v1", None).expect("force");
        assert_eq!(obj["data"]["x"], "9");
        let entries = parse_entries(&obj);
        let alice = entries.iter().find(|e| e.manager == "alice");
        assert!(alice.is_none(), "{entries:?}");
    }

    #[test]
    fn updates_take_ownership_of_changed_fields() {
        let base = json!({"metadata": {"name": "c"}});
        let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"x": "1"}});
        let obj = apply_config(&cm(), &base, &a, "alice", false, "v1", None).expect("alice");
        let mut edited = obj.clone();
        edited["data"]["x"] = json!("2");
        let mf = update_managed_fields(
            &cm(),
            Some(&obj),
            &edited,
            Some("kubectl-edit"),
            "Update",
            "v1",
            None,
        )
        .expect("tracked");
        edited["metadata"]["managedFields"] = mf;
        let entries = parse_entries(&edited);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].manager, "kubectl-edit");
        // Re-applying the old value now conflicts with the editor.
        assert!(apply_config(&cm(), &edited, &a, "alice", false, "v1", None).is_err());
        // Nothing tracked without a manager or existing entries.
        assert!(update_managed_fields(&cm(), None, &base, None, "Update", "v1", None).is_none());
    }

    #[test]
    fn update_entries_per_subresource_and_from_the_request() {
        let obj = json!({"metadata": {"name": "c"}, "spec": {"a": 1}});
        let mf = update_managed_fields(&cm(), None, &obj, Some(""), "Update", "x/v1", None)
            .expect("tracked");
        // No fieldManager and no User-Agent: an entry without a manager.
        assert!(mf[0].get("manager").is_none(), "{mf}");
        let mut old = obj.clone();
        old["metadata"]["managedFields"] = mf;
        let mut new = old.clone();
        new["status"] = json!({"ready": true});
        let mf = update_managed_fields(
            &cm(),
            Some(&old),
            &new,
            Some("ctl"),
            "Update",
            "x/v1",
            Some("status"),
        )
        .expect("tracked");
        assert_eq!(mf[1]["manager"], "ctl");
        assert_eq!(mf[1]["subresource"], "status");
        assert_eq!(mf[1]["fieldsV1"], json!({"f:status": {"f:ready": {}}}));
        // The status write leaves the other fields' owners as they were.
        assert_eq!(mf[0], old["metadata"]["managedFields"][0]);
        // A later status write that drops a field and takes another over from its owner.
        let mut older = new.clone();
        older["metadata"]["managedFields"] = mf;
        let mut newer = older.clone();
        newer["status"] = json!({"phase": "Up"});
        let mf = update_managed_fields(
            &cm(),
            Some(&older),
            &newer,
            Some("other"),
            "Update",
            "x/v1",
            Some("status"),
        )
        .expect("tracked");
        assert_eq!(mf[0], old["metadata"]["managedFields"][0], "{mf}");
        assert_eq!(mf.as_array().map(Vec::len), Some(2), "{mf}");
        assert_eq!(mf[1]["manager"], "other");
        assert_eq!(mf[1]["fieldsV1"], json!({"f:status": {"f:phase": {}}}));
        // Entries the request carries replace the stored ones (kubectl moving ownership).
        let mut new = old.clone();
        new["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Apply",
            "apiVersion": "x/v1", "time": "2020-01-01T00:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:a": {}}}}]);
        let mf = update_managed_fields(
            &cm(),
            Some(&old),
            &new,
            Some("kubectl"),
            "Update",
            "x/v1",
            None,
        )
        .expect("tracked");
        assert_eq!(mf.as_array().map(Vec::len), Some(1), "{mf}");
        assert_eq!(mf[0]["manager"], "kubectl");
        // Apply entries come first.
        let e = |m: &str, op: &str, t: &str| Entry {
            manager: m.into(),
            operation: op.into(),
            api_version: "v1".into(),
            time: t.into(),
            subresource: None,
            fields: set(&["data.k"]),
        };
        let r = render_entries(&[
            e("b", "Update", "2020-01-01T00:00:00Z"),
            e("a", "Update", "2020-01-01T00:00:01Z"),
            e("z", "Apply", "2020-01-01T00:00:09Z"),
        ]);
        let order: Vec<&str> = r
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["manager"].as_str())
            .collect();
        assert_eq!(order, ["z", "b", "a"]);
    }

    #[test]
    fn kubectl_takes_over_client_side_applied_fields() {
        let last = r#"{"apiVersion":"v1","data":{"a":"1"},"kind":"ConfigMap","metadata":{"annotations":{},"name":"c"}}"#;
        let obj = json!({"metadata": {"name": "c", "annotations": {LAST_APPLIED: last},
            "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update",
                "apiVersion": "v1", "time": "2020-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {"f:a": {}, "f:b": {}}}}]},
            "data": {"a": "1", "b": "1"}});
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}});
        // Another manager conflicts; kubectl may take over what client-side apply applied.
        assert!(apply_config(&cm(), &obj, &cfg, "other", false, "v1", None).is_err());
        let out = apply_config(&cm(), &obj, &cfg, KUBECTL, false, "v1", None).expect("takeover");
        assert_eq!(out["data"]["a"], "2");
        assert_eq!(
            out["metadata"]["annotations"][LAST_APPLIED],
            "{\"apiVersion\":\"v1\",\"data\":{\"a\":\"2\"},\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"}}\n"
        );
        // Fields client-side apply never applied still conflict.
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "2"}});
        assert!(apply_config(&cm(), &obj, &cfg, KUBECTL, false, "v1", None).is_err());
    }

    #[test]
    fn status_applies_own_only_status() {
        let base = json!({"metadata": {"name": "c"}, "spec": {"a": 1}});
        let cfg =
            json!({"apiVersion": "x/v1", "kind": "W", "spec": {"a": 2}, "status": {"ready": true}});
        let main = apply_config(&cm(), &base, &cfg, "m", false, "x/v1", Some(false)).expect("main");
        let e = parse_entries(&main);
        assert_eq!(e[0].fields, set(&["spec.a"]));
        let st = apply_config(&cm(), &base, &cfg, "m", false, "x/v1", Some(true)).expect("status");
        let e = parse_entries(&st);
        assert_eq!(e[0].fields, set(&["status.ready"]));
        assert_eq!(e[0].subresource.as_deref(), Some("status"));
    }
    fn deployments() -> ResourceType {
        let rt = crate::registry::Registry::with_builtins()
            .lookup("apps", "v1", "deployments")
            .expect("deployments");
        (*rt).clone()
    }

    fn deployment(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn map_lists_are_owned_item_by_item() {
        let rt = deployments();
        let base = json!({"metadata": {"name": "d"}});
        let a = deployment(json!([{"name": "web", "image": "nginx"}]));
        let obj = apply_config(&rt, &base, &a, "alice", false, "apps/v1", Some(false)).expect("a");
        let fields = &obj["metadata"]["managedFields"][0]["fieldsV1"];
        assert_eq!(
            fields["f:spec"]["f:template"]["f:spec"]["f:containers"],
            json!({"k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {}}})
        );
        // Bob adds a sidecar: no conflict, both containers kept.
        let b = deployment(json!([{"name": "log", "image": "busybox"}]));
        let obj = apply_config(&rt, &obj, &b, "bob", false, "apps/v1", Some(false)).expect("b");
        let names: Vec<&str> = obj["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["web", "log"]);
        // Bob changing Alice's image conflicts, naming the item.
        let b2 = deployment(
            json!([{"name": "log", "image": "busybox"}, {"name": "web", "image": "httpd"}]),
        );
        let err = apply_config(&rt, &obj, &b2, "bob", false, "apps/v1", Some(false))
            .expect_err("conflict");
        assert_eq!(
            err[0].1,
            ".spec.template.spec.containers[name=\"web\"].image"
        );
        // Alice drops her container: only it goes; Bob's stays.
        let a2 = deployment(json!([]));
        let obj = apply_config(&rt, &obj, &a2, "alice", false, "apps/v1", Some(false)).expect("a2");
        assert_eq!(
            obj["spec"]["template"]["spec"]["containers"],
            json!([{"name": "log", "image": "busybox"}])
        );
        // An update to one field of an applied item takes only that field.
        let mut edited = obj.clone();
        edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("alpine");
        let mf = update_managed_fields(
            &rt,
            Some(&obj),
            &edited,
            Some("editor"),
            "Update",
            "apps/v1",
            None,
        )
        .expect("tracked");
        edited["metadata"]["managedFields"] = mf;
        let entries = parse_entries(&edited);
        let bob = entries.iter().find(|e| e.manager == "bob").expect("bob");
        assert!(bob.fields.iter().any(|p| is_item_marker(p)), "{bob:?}");
        assert!(
            !bob.fields
                .iter()
                .any(|p| p.last() == Some(&Seg::f("image"))),
            "{bob:?}"
        );
    }

    #[test]
    fn sets_and_custom_list_types() {
        let rt = cm();
        let base = json!({"metadata": {"name": "c"}});
        let a =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"finalizers": ["a/x"]}});
        let b =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"finalizers": ["b/y"]}});
        let obj = apply_config(&rt, &base, &a, "alice", false, "v1", None).expect("a");
        let obj = apply_config(&rt, &obj, &b, "bob", false, "v1", None).expect("b");
        assert_eq!(obj["metadata"]["finalizers"], json!(["a/x", "b/y"]));
        assert_eq!(
            obj["metadata"]["managedFields"][1]["fieldsV1"],
            json!({"f:metadata": {"f:finalizers": {"v:\"b/y\"": {}}}})
        );
        let none = json!({"apiVersion": "v1", "kind": "ConfigMap"});
        let obj = apply_config(&rt, &obj, &none, "alice", false, "v1", None).expect("a2");
        assert_eq!(obj["metadata"]["finalizers"], json!(["b/y"]));

        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "ports": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["port", "protocol"],
                "items": {"type": "object", "properties": {"port": {"type": "integer"},
                    "protocol": {"type": "string"}, "name": {"type": "string"}}}},
            "args": {"type": "array", "items": {"type": "string"}}}}}});
        let lists = Lists::Custom(Some(&schema));
        assert_eq!(
            lists.list_type(&["spec".into(), "ports".into()]),
            ListType::Map(vec!["port".into(), "protocol".into()])
        );
        assert_eq!(
            lists.list_type(&["spec".into(), "args".into()]),
            ListType::Atomic
        );
        let obj = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "name": "http"}]}});
        let fs = field_set(&obj, None, &lists);
        let v1 = to_fields_v1(&fs);
        assert_eq!(
            v1["f:spec"]["f:ports"]["k:{\"port\":80,\"protocol\":\"TCP\"}"]["f:name"],
            json!({})
        );
        assert_eq!(from_fields_v1(&v1), fs);
    }
}

//! Rendering of `meta.k8s.io/v1` Table responses for `kubectl get`.
//!
//! kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the columns the
//! server chooses. Three column sources, as in kube-apiserver:
//!
//! ```text
//! custom resource  -> NAME + the CRD version's additionalPrinterColumns (AGE when it has none)
//! known built-in   -> the columns of kube-apiserver's printers (see `builtin`)
//! anything else    -> NAME + CREATED AT (the default table convertor), or NAME + AGE when the
//!                     resource is unknown here
//! ```
//!
//! Servers always generate the wide (`-o wide`, priority 1) cells; kubectl hides them.

mod builtin;
mod jsonpath;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

pub use jsonpath::PathError;

/// What each row's `object` holds, from the `includeObject` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

/// An `includeObject` value the server does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("includeObject must be one of None, Metadata or Object, not {0:?}")]
pub struct InvalidIncludeObject(pub String);

impl IncludeObject {
    /// Parses the `includeObject` query parameter; an empty value means the default.
    pub fn from_query(value: &str) -> Result<Self, InvalidIncludeObject> {
        match value {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => Err(InvalidIncludeObject(other.to_string())),
        }
    }
}

/// How to render a table.
#[derive(Debug, Clone)]
pub struct TableOptions {
    pub include_object: IncludeObject,
    /// The moment ages are measured from.
    pub now: DateTime<Utc>,
}

impl TableOptions {
    /// Default options with ages measured from `now`.
    pub fn at(now: DateTime<Utc>) -> Self {
        TableOptions {
            include_object: IncludeObject::Metadata,
            now,
        }
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) ty: String,
    pub(crate) format: String,
    pub(crate) description: String,
    pub(crate) priority: i64,
}

impl Column {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// The cells of one row, plus optional row conditions (pods report `Completed`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Row {
    pub(crate) cells: Vec<Value>,
    pub(crate) conditions: Option<Value>,
}

impl From<Vec<Value>> for Row {
    fn from(cells: Vec<Value>) -> Self {
        Row {
            cells,
            conditions: None,
        }
    }
}

const NAME_DESCRIPTION: &str = "Name of the object, unique within its namespace.";
const AGE_DESCRIPTION: &str = "Time since the object was created.";

/// Renders `objects` (items of one resource) as a full `meta.k8s.io/v1` Table.
///
/// `printer_columns`: the CRD version's `additionalPrinterColumns` array if the resource is a
/// custom resource, else `None`. The caller fills `metadata.resourceVersion` / `continue`.
pub fn render(
    group: &str,
    resource: &str,
    printer_columns: Option<&Value>,
    objects: &[Value],
    opts: &TableOptions,
) -> Value {
    let (columns, rows): (Vec<Column>, Vec<Row>) = match printer_columns {
        Some(spec) => custom_resource(spec, objects, opts.now),
        None => match builtin::lookup(group, resource) {
            Some(printer) => (
                printer.columns(),
                objects.iter().map(|o| printer.row(o, opts.now)).collect(),
            ),
            None if builtin::uses_default_convertor(group, resource) => default_convertor(objects),
            None => custom_resource(&Value::Array(Vec::new()), objects, opts.now),
        },
    };
    let rows: Vec<Value> = objects
        .iter()
        .zip(rows)
        .map(|(object, row)| {
            let mut out = Map::new();
            out.insert("cells".into(), Value::Array(row.cells));
            if let Some(conditions) = row.conditions {
                out.insert("conditions".into(), conditions);
            }
            if let Some(obj) = row_object(object, opts.include_object) {
                out.insert("object".into(), obj);
            }
            Value::Object(out)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns.iter().map(Column::to_json).collect::<Vec<_>>(),
        "rows": rows,
    })
}

/// The `object` of a row for the requested `includeObject`.
fn row_object(object: &Value, include: IncludeObject) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Object => Some(object.clone()),
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })),
    }
}

fn name_column() -> Column {
    Column {
        name: "Name".into(),
        ty: "string".into(),
        format: "name".into(),
        description: NAME_DESCRIPTION.into(),
        priority: 0,
    }
}

/// kube-apiserver's default table convertor: NAME and CREATED AT (an RFC 3339 time).
fn default_convertor(objects: &[Value]) -> (Vec<Column>, Vec<Row>) {
    let columns = vec![
        name_column(),
        Column {
            name: "Created At".into(),
            ty: "date".into(),
            format: String::new(),
            description: "Time the object was created.".into(),
            priority: 0,
        },
    ];
    let rows = objects
        .iter()
        .map(|o| {
            let created = created_at(o)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
            Row::from(vec![json!(name(o)), json!(created)])
        })
        .collect();
    (columns, rows)
}

/// A custom resource's table: NAME, then the printer columns (an AGE column when there are
/// none, as kube-apiserver serves).
fn custom_resource(spec: &Value, objects: &[Value], now: DateTime<Utc>) -> (Vec<Column>, Vec<Row>) {
    let mut defs: Vec<(Column, Option<Vec<jsonpath::Step>>)> = spec
        .as_array()
        .map(|cols| {
            cols.iter()
                .map(|c| {
                    let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    let path_text = text("jsonPath");
                    let description = match text("description") {
                        d if d.is_empty() => format!("Column from the JSONPath {path_text}"),
                        d => d,
                    };
                    let column = Column {
                        name: text("name"),
                        ty: text("type"),
                        format: text("format"),
                        description,
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    };
                    // CRD validation rejects bad paths; a bad one here renders empty cells.
                    let path = jsonpath::parse(&path_text).ok();
                    (column, path)
                })
                .collect()
        })
        .unwrap_or_default();
    if defs.is_empty() {
        defs.push((
            Column {
                name: "Age".into(),
                ty: "date".into(),
                format: String::new(),
                description: AGE_DESCRIPTION.into(),
                priority: 0,
            },
            jsonpath::parse(".metadata.creationTimestamp").ok(),
        ));
    }
    let rows = objects
        .iter()
        .map(|o| {
            let mut cells = vec![json!(name(o))];
            cells.extend(
                defs.iter()
                    .map(|(col, path)| printer_cell(&col.ty, path.as_deref(), o, now)),
            );
            Row::from(cells)
        })
        .collect();
    let mut columns = vec![name_column()];
    columns.extend(defs.into_iter().map(|(c, _)| c));
    (columns, rows)
}

/// The cell of one printer column: the first value the path selects, typed like the column.
fn printer_cell(
    ty: &str,
    path: Option<&[jsonpath::Step]>,
    object: &Value,
    now: DateTime<Utc>,
) -> Value {
    let Some(path) = path else {
        return Value::Null;
    };
    let Some(value) = jsonpath::find(object, path).into_iter().next() else {
        return Value::Null;
    };
    if value.is_null() {
        return Value::Null;
    }
    match ty {
        "string" => Value::String(jsonpath::go_text(value)),
        "integer" => match value {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map(Value::from)
                .unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "number" => value
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        "boolean" => value.as_bool().map(Value::Bool).unwrap_or(Value::Null),
        "date" => match value.as_str() {
            Some(text) => match parse_time(text) {
                Some(t) => Value::String(human_duration(now - t)),
                None => Value::String("<invalid>".into()),
            },
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

/// `metadata.name`, or "".
pub(crate) fn name(o: &Value) -> &str {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn created_at(o: &Value) -> Option<DateTime<Utc>> {
    o.pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(parse_time)
}

/// The AGE cell: time since `metadata.creationTimestamp`, `<unknown>` without one.
pub(crate) fn age(o: &Value, now: DateTime<Utc>) -> String {
    since(o.pointer("/metadata/creationTimestamp"), now)
}

/// Time since an RFC 3339 timestamp value, `<unknown>` when absent or unparsable.
pub(crate) fn since(timestamp: Option<&Value>, now: DateTime<Utc>) -> String {
    match timestamp.and_then(Value::as_str).and_then(parse_time) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

/// Parses an RFC 3339 timestamp (`metav1.Time` or `MicroTime`).
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Checks a printer column's `jsonPath` against the supported subset (for CRD validation).
pub fn validate_json_path(path: &str) -> Result<(), PathError> {
    jsonpath::parse(path).map(|_| ())
}

/// A duration the way Kubernetes prints ages: `45s`, `3m12s`, `15m`, `5h3m`, `20h`, `2d3h`,
/// `45d`, `2y30d`, `9y`.
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// Renders objects as a Table for this type.
pub fn of_type(
    rt: &crate::model::ResourceType,
    objects: &[Value],
    include: IncludeObject,
) -> Value {
    let opts = TableOptions {
        include_object: include,
        now: chrono::Utc::now(),
    };
    let columns = if rt.custom {
        Some(rt.printer_columns.clone().unwrap_or_else(|| json!([])))
    } else {
        None
    };
    render(&rt.group, &rt.plural, columns.as_ref(), objects, &opts)
}

#[cfg(test)]
mod tests;

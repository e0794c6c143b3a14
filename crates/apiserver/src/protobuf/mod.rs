//! Decoding of Kubernetes protobuf request bodies into JSON.
//!
//! kubectl's imperative commands (`kubectl create namespace|configmap|secret|deployment|...`)
//! send `Content-Type: application/vnd.kubernetes.protobuf` bodies and do not fall back to JSON.
//! Such a body is the magic prefix `k8s\0` followed by a `runtime.Unknown` message:
//!
//! ```text
//! Unknown { 1: typeMeta { 1: apiVersion, 2: kind }, 2: raw (the object), 3: contentEncoding, 4: contentType }
//! ```
//!
//! [`decode`] turns it into the JSON object kubectl would have sent as JSON, using the message
//! descriptions in `schema` (field numbers from Kubernetes' `generated.proto`, JSON names and
//! empty-value rules from the Go types). Unknown fields are skipped.

mod schema;
pub(crate) mod wire;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use schema::{Card, Field, Message, Ty};
use wire::{malformed, Reader, WireValue};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\x00";

/// Nesting limit for messages; Kubernetes objects stay far below it.
const MAX_DEPTH: usize = 64;

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtobufError {
    /// The body holds a kind this decoder has no description of.
    #[error(
        "protobuf request bodies for {kind} ({api_version}) are not supported by this server; \
         send the object as application/json"
    )]
    UnsupportedKind { api_version: String, kind: String },
    /// The body is not a valid Kubernetes protobuf encoding.
    #[error("malformed protobuf body: {0}")]
    Malformed(String),
}

/// Whether a `Content-Type` header names the Kubernetes protobuf media type (parameters ignored).
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .map(str::trim)
        .is_some_and(|t| t.eq_ignore_ascii_case(MEDIA_TYPE))
}

/// Every `(apiVersion, kind)` whose protobuf bodies [`decode`] understands.
pub fn supported_kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    schema::kinds()
}

/// Decodes a `k8s\0`-prefixed protobuf body into the equivalent JSON object, `kind` and
/// `apiVersion` first.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| malformed("body does not start with the k8s\\0 magic prefix"))?;
    let unknown = Unknown::parse(rest)?;
    if !unknown.content_encoding.is_empty() {
        return Err(malformed(format!(
            "unsupported content encoding {:?}",
            unknown.content_encoding
        )));
    }
    if unknown.kind.is_empty() {
        return Err(malformed("the runtime.Unknown envelope names no kind"));
    }
    let message = schema::lookup(&unknown.api_version, &unknown.kind).ok_or_else(|| {
        ProtobufError::UnsupportedKind {
            api_version: unknown.api_version.clone(),
            kind: unknown.kind.clone(),
        }
    })?;
    let mut object = Map::new();
    object.insert("kind".into(), Value::String(unknown.kind));
    object.insert("apiVersion".into(), Value::String(unknown.api_version));
    decode_into(message, unknown.raw, 0, &mut object)?;
    Ok(Value::Object(object))
}

/// The `runtime.Unknown` envelope.
struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

impl<'a> Unknown<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, ProtobufError> {
        let mut out = Unknown {
            api_version: String::new(),
            kind: String::new(),
            raw: &[],
            content_encoding: String::new(),
        };
        let mut reader = Reader::new(buf);
        while let Some((number, value)) = reader.next_field()? {
            match (number, value) {
                (1, WireValue::Len(type_meta)) => {
                    let mut tm = Reader::new(type_meta);
                    while let Some((n, v)) = tm.next_field()? {
                        match (n, v) {
                            (1, WireValue::Len(b)) => out.api_version = utf8(b, "apiVersion")?,
                            (2, WireValue::Len(b)) => out.kind = utf8(b, "kind")?,
                            _ => {}
                        }
                    }
                }
                (2, WireValue::Len(raw)) => out.raw = raw,
                (3, WireValue::Len(b)) => out.content_encoding = utf8(b, "contentEncoding")?,
                // contentType: empty for the protobuf-within-protobuf bodies kubectl sends.
                (4, WireValue::Len(_)) => {}
                (1..=4, other) => {
                    return Err(malformed(format!(
                        "runtime.Unknown field {number} has wire type {}",
                        other.type_name()
                    )))
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// What has been read for one field of a message.
enum Slot {
    Empty,
    One(Value),
    /// Raw bytes of a singular message field; repeated occurrences are concatenated, which
    /// is how protobuf merges them.
    Nested(Vec<u8>),
    Many(Vec<Value>),
    Entries(Map<String, Value>),
}

/// Decodes `buf` as `message`, appending its JSON fields to `out` in Go struct order.
fn decode_into(
    message: &Message,
    buf: &[u8],
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(malformed("messages nested too deeply"));
    }
    let mut slots: Vec<Slot> = message.fields.iter().map(|_| Slot::Empty).collect();
    let mut reader = Reader::new(buf);
    while let Some((number, value)) = reader.next_field()? {
        let Some(index) = message.fields.iter().position(|f| f.number == number) else {
            continue;
        };
        let field = &message.fields[index];
        read_field(message, field, value, depth, &mut slots[index])?;
    }
    for (field, slot) in message.fields.iter().zip(slots) {
        emit(message, field, slot, depth, out)?;
    }
    Ok(())
}

/// Stores one occurrence of `field` into its slot.
fn read_field(
    message: &Message,
    field: &Field,
    value: WireValue<'_>,
    depth: usize,
    slot: &mut Slot,
) -> Result<(), ProtobufError> {
    let context = || format!("{}.{}", message.name, json_name(field));
    match &field.ty {
        Ty::Msg(_) | Ty::Inline(_) if !field.card.is_repeated() => {
            let bytes = len_bytes(value, &context)?;
            match slot {
                Slot::Nested(acc) => acc.extend_from_slice(bytes),
                _ => *slot = Slot::Nested(bytes.to_vec()),
            }
        }
        Ty::MapStr | Ty::MapBytes | Ty::MapQuantity | Ty::MapTime | Ty::MapStrList => {
            let (key, value) = map_entry(&field.ty, len_bytes(value, &context)?, &context)?;
            if !matches!(slot, Slot::Entries(_)) {
                *slot = Slot::Entries(Map::new());
            }
            if let Slot::Entries(entries) = slot {
                entries.insert(key, value);
            }
        }
        ty if field.card.is_repeated() => {
            if !matches!(slot, Slot::Many(_)) {
                *slot = Slot::Many(Vec::new());
            }
            let Slot::Many(items) = slot else {
                return Ok(());
            };
            match (ty, value) {
                // Packed repeated scalars.
                (Ty::Bool | Ty::I32 | Ty::I64, WireValue::Len(bytes)) => {
                    let mut packed = Reader::new(bytes);
                    while !packed.is_empty() {
                        let v = packed.varint()?;
                        items.push(scalar(ty, WireValue::Varint(v), &context)?);
                    }
                }
                (Ty::Msg(m), value) => {
                    let mut obj = Map::new();
                    decode_into(m, len_bytes(value, &context)?, depth + 1, &mut obj)?;
                    items.push(Value::Object(obj));
                }
                (ty, value) => {
                    if let Some(v) = special(ty, value, depth, &context)? {
                        items.push(v);
                    }
                }
            }
        }
        ty => {
            if let Some(v) = special(ty, value, depth, &context)? {
                *slot = Slot::One(v);
            } else {
                *slot = Slot::Empty;
            }
        }
    }
    Ok(())
}

/// Renders the slot of `field` into `out` following Go's JSON rules for the field.
fn emit(
    message: &Message,
    field: &Field,
    slot: Slot,
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    let name = field.json.to_string();
    match (&field.ty, slot) {
        (Ty::Inline(m), Slot::Nested(bytes)) => decode_into(m, &bytes, depth + 1, out)?,
        (Ty::Inline(m), Slot::Empty) => decode_into(m, &[], depth + 1, out)?,
        (Ty::Msg(m), Slot::Nested(bytes)) => {
            let mut obj = Map::new();
            decode_into(m, &bytes, depth + 1, &mut obj)?;
            out.insert(name, Value::Object(obj));
        }
        // A value (non-pointer) struct is always part of Go's JSON encoding.
        (Ty::Msg(m), Slot::Empty) if field.card == Card::Req || field.card == Card::Omit => {
            let mut obj = Map::new();
            decode_into(m, &[], depth + 1, &mut obj)?;
            out.insert(name, Value::Object(obj));
        }
        (_, Slot::Many(items)) if !items.is_empty() => {
            out.insert(name, Value::Array(items));
        }
        (_, Slot::Entries(entries)) if !entries.is_empty() => {
            out.insert(name, Value::Object(entries));
        }
        (ty, Slot::One(v)) => match field.card {
            // Go's omitempty never drops structs such as Quantity or IntOrString.
            Card::Omit if matches!(ty, Ty::Str | Ty::Bool | Ty::I32 | Ty::I64) && is_zero(&v) => {}
            _ => {
                out.insert(name, v);
            }
        },
        // Go renders a nil slice or map without omitempty as null.
        (_, Slot::Empty | Slot::Many(_) | Slot::Entries(_)) if field.card == Card::RepNull => {
            out.insert(name, Value::Null);
        }
        (ty, Slot::Empty) if field.card == Card::Req => {
            if let Some(zero) = zero_value(ty) {
                out.insert(name, zero);
            }
        }
        (_, Slot::Nested(_)) => {
            return Err(malformed(format!(
                "{}.{} is not a message",
                message.name,
                json_name(field)
            )))
        }
        _ => {}
    }
    Ok(())
}

fn json_name(field: &Field) -> &str {
    if field.json.is_empty() {
        "(inline)"
    } else {
        field.json
    }
}

/// Whether Go's `omitempty` drops this value.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0) || n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

/// The JSON rendering of a Go zero value, for fields without `omitempty`.
fn zero_value(ty: &Ty) -> Option<Value> {
    match ty {
        Ty::Str => Some(Value::String(String::new())),
        Ty::Bool => Some(Value::Bool(false)),
        Ty::I32 | Ty::I64 => Some(Value::from(0)),
        Ty::Quantity => Some(Value::String("0".into())),
        Ty::IntOrString => Some(Value::from(0)),
        _ => None,
    }
}

fn len_bytes<'a>(
    value: WireValue<'a>,
    context: &dyn Fn() -> String,
) -> Result<&'a [u8], ProtobufError> {
    match value {
        WireValue::Len(b) => Ok(b),
        other => Err(malformed(format!(
            "{} expects a length-delimited value, got {}",
            context(),
            other.type_name()
        ))),
    }
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, ProtobufError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed(format!("{what} is not UTF-8")))
}

/// Decodes a scalar (string, bool, integer) value.
fn scalar(
    ty: &Ty,
    value: WireValue<'_>,
    context: &dyn Fn() -> String,
) -> Result<Value, ProtobufError> {
    match (ty, value) {
        (Ty::Str, WireValue::Len(b)) => Ok(Value::String(utf8(b, &context())?)),
        (Ty::Bool, WireValue::Varint(v)) => Ok(Value::Bool(v != 0)),
        // Negative int32 values are sign-extended to ten-byte varints.
        (Ty::I32, WireValue::Varint(v)) => Ok(Value::from(i64::from(v as i64 as i32))),
        (Ty::I64, WireValue::Varint(v)) => Ok(Value::from(v as i64)),
        (ty, value) => Err(malformed(format!(
            "{} ({ty:?}) cannot be a {} value",
            context(),
            value.type_name()
        ))),
    }
}

/// Decodes a singular non-message value, including the apimachinery types with their own JSON
/// form. `None` means "renders as nothing" (a zero time).
fn special(
    ty: &Ty,
    value: WireValue<'_>,
    depth: usize,
    context: &dyn Fn() -> String,
) -> Result<Option<Value>, ProtobufError> {
    match ty {
        Ty::Time => time(len_bytes(value, context)?, false),
        Ty::MicroTime => time(len_bytes(value, context)?, true),
        Ty::Quantity => quantity(len_bytes(value, context)?).map(Some),
        Ty::IntOrString => int_or_string(len_bytes(value, context)?).map(Some),
        Ty::FieldsV1 => fields_v1(len_bytes(value, context)?),
        Ty::Msg(m) | Ty::Inline(m) => {
            let mut obj = Map::new();
            decode_into(m, len_bytes(value, context)?, depth + 1, &mut obj)?;
            Ok(Some(Value::Object(obj)))
        }
        ty => scalar(ty, value, context).map(Some),
    }
}

/// `metav1.Time` / `MicroTime` `{1: seconds, 2: nanos}`; the zero time renders as nothing.
fn time(bytes: &[u8], micro: bool) -> Result<Option<Value>, ProtobufError> {
    let (mut seconds, mut nanos) = (0i64, 0i64);
    let mut reader = Reader::new(bytes);
    while let Some((number, value)) = reader.next_field()? {
        match (number, value) {
            (1, WireValue::Varint(v)) => seconds = v as i64,
            (2, WireValue::Varint(v)) => nanos = i64::from(v as i64 as i32),
            (1 | 2, other) => {
                return Err(malformed(format!(
                    "time field {number} has wire type {}",
                    other.type_name()
                )))
            }
            _ => {}
        }
    }
    if seconds == 0 && nanos == 0 {
        return Ok(None);
    }
    let nanos = u32::try_from(nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| malformed(format!("time nanos {nanos} out of range")))?;
    let at: DateTime<Utc> = DateTime::from_timestamp(seconds, nanos)
        .ok_or_else(|| malformed(format!("time {seconds}s out of range")))?;
    let text = if micro {
        at.to_rfc3339_opts(SecondsFormat::Micros, true)
    } else {
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    };
    Ok(Some(Value::String(text)))
}

/// `resource.Quantity {1: string}`.
fn quantity(bytes: &[u8]) -> Result<Value, ProtobufError> {
    let mut out = String::new();
    let mut reader = Reader::new(bytes);
    while let Some((number, value)) = reader.next_field()? {
        if let (1, WireValue::Len(b)) = (number, value) {
            out = utf8(b, "quantity")?;
        }
    }
    if out.is_empty() {
        out.push('0');
    }
    Ok(Value::String(out))
}

/// `intstr.IntOrString {1: type (0 int, 1 string), 2: intVal, 3: strVal}`.
fn int_or_string(bytes: &[u8]) -> Result<Value, ProtobufError> {
    let (mut kind, mut int_val, mut str_val) = (0u64, 0i64, String::new());
    let mut reader = Reader::new(bytes);
    while let Some((number, value)) = reader.next_field()? {
        match (number, value) {
            (1, WireValue::Varint(v)) => kind = v,
            (2, WireValue::Varint(v)) => int_val = i64::from(v as i64 as i32),
            (3, WireValue::Len(b)) => str_val = utf8(b, "IntOrString")?,
            (1..=3, other) => {
                return Err(malformed(format!(
                    "IntOrString field {number} has wire type {}",
                    other.type_name()
                )))
            }
            _ => {}
        }
    }
    match kind {
        0 => Ok(Value::from(int_val)),
        1 => Ok(Value::String(str_val)),
        other => Err(malformed(format!("IntOrString type {other}"))),
    }
}

/// `metav1.FieldsV1 {1: Raw}`, raw JSON.
fn fields_v1(bytes: &[u8]) -> Result<Option<Value>, ProtobufError> {
    let mut raw: &[u8] = &[];
    let mut reader = Reader::new(bytes);
    while let Some((number, value)) = reader.next_field()? {
        if let (1, WireValue::Len(b)) = (number, value) {
            raw = b;
        }
    }
    if raw.is_empty() {
        return Ok(Some(Value::Object(Map::new())));
    }
    serde_json::from_slice(raw)
        .map(Some)
        .map_err(|e| malformed(format!("fieldsV1 is not JSON: {e}")))
}

/// One `map<string, V>` entry `{1: key, 2: value}`.
fn map_entry(
    ty: &Ty,
    bytes: &[u8],
    context: &dyn Fn() -> String,
) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut value: Option<Value> = None;
    let mut reader = Reader::new(bytes);
    while let Some((number, v)) = reader.next_field()? {
        match number {
            1 => key = utf8(len_bytes(v, context)?, &context())?,
            2 => {
                let b = len_bytes(v, context)?;
                value = match ty {
                    Ty::MapStr => Some(Value::String(utf8(b, &context())?)),
                    Ty::MapBytes => Some(Value::String(
                        base64::engine::general_purpose::STANDARD.encode(b),
                    )),
                    Ty::MapQuantity => Some(quantity(b)?),
                    Ty::MapTime => Some(time(b, false)?.unwrap_or(Value::Null)),
                    Ty::MapStrList => Some(string_list(b, context)?),
                    _ => None,
                };
            }
            _ => {}
        }
    }
    let value = value.unwrap_or_else(|| match ty {
        Ty::MapStr | Ty::MapBytes => Value::String(String::new()),
        Ty::MapQuantity => Value::String("0".into()),
        Ty::MapStrList => Value::Array(Vec::new()),
        _ => Value::Null,
    });
    Ok((key, value))
}

/// A `{1: repeated string items}` message, such as `ExtraValue`.
fn string_list(bytes: &[u8], context: &dyn Fn() -> String) -> Result<Value, ProtobufError> {
    let mut items = Vec::new();
    let mut reader = Reader::new(bytes);
    while let Some((number, v)) = reader.next_field()? {
        if number == 1 {
            items.push(Value::String(utf8(len_bytes(v, context)?, &context())?));
        }
    }
    Ok(Value::Array(items))
}

#[cfg(test)]
mod tests;

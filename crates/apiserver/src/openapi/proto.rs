//! The protobuf encoding of a Swagger 2.0 document as gnostic's `openapi.v2` messages, which
//! client-go requests from `/openapi/v2` (kubectl's client-side validation reads it).
//!
//! Only what the server's documents contain is encoded: the document's version, info, paths
//! with their PATCH operations, and the definitions. Extensions (`x-…`), defaults, enums and
//! examples are `Any` values carrying their YAML (JSON) text, as gnostic writes them.

use serde_json::{Map, Value};

/// A protobuf message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    fn bytes(&mut self, field: u32, data: &[u8]) {
        self.key(field, 2);
        self.varint(data.len() as u64);
        self.0.extend_from_slice(data);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn message(&mut self, field: u32, m: Msg) {
        self.bytes(field, &m.0);
    }

    fn boolean(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, 0);
            self.varint(1);
        }
    }

    fn int64(&mut self, field: u32, i: i64) {
        self.key(field, 0);
        self.varint(i as u64);
    }

    fn double(&mut self, field: u32, f: f64) {
        self.key(field, 1);
        self.0.extend_from_slice(&f.to_le_bytes());
    }
}

/// `openapi.v2.Any`: the value's YAML text.
fn any(v: &Value) -> Msg {
    let mut m = Msg::default();
    let mut text = serde_json::to_string(v).unwrap_or_default();
    text.push('\n');
    m.string(2, &text);
    m
}

/// `NamedAny` entries for the `x-` keys of an object.
fn extensions(out: &mut Msg, field: u32, obj: &Map<String, Value>) {
    for (k, v) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
        let mut named = Msg::default();
        named.string(1, k);
        named.message(2, any(v));
        out.message(field, named);
    }
}

fn str_of<'a>(obj: &'a Map<String, Value>, k: &str) -> &'a str {
    obj.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `openapi.v2.Schema`.
fn schema(v: &Value) -> Msg {
    let mut m = Msg::default();
    let Value::Object(o) = v else {
        return m;
    };
    m.string(1, str_of(o, "$ref"));
    m.string(2, str_of(o, "format"));
    m.string(3, str_of(o, "title"));
    m.string(4, str_of(o, "description"));
    if let Some(d) = o.get("default") {
        m.message(5, any(d));
    }
    for (k, field) in [("multipleOf", 6), ("maximum", 7), ("minimum", 9)] {
        if let Some(f) = o.get(k).and_then(Value::as_f64) {
            m.double(field, f);
        }
    }
    m.boolean(
        8,
        o.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true),
    );
    m.boolean(
        10,
        o.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true),
    );
    for (k, field) in [
        ("maxLength", 11),
        ("minLength", 12),
        ("maxItems", 14),
        ("minItems", 15),
        ("maxProperties", 17),
        ("minProperties", 18),
    ] {
        if let Some(i) = o.get(k).and_then(Value::as_i64) {
            m.int64(field, i);
        }
    }
    m.string(13, str_of(o, "pattern"));
    m.boolean(
        16,
        o.get("uniqueItems").and_then(Value::as_bool) == Some(true),
    );
    for r in o
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.string(19, r.as_str().unwrap_or(""));
    }
    for e in o
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(20, any(e));
    }
    match o.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut item = Msg::default();
            item.key(2, 0);
            item.varint(u64::from(*b));
            m.message(21, item);
        }
        Some(s @ Value::Object(_)) => {
            let mut item = Msg::default();
            item.message(1, schema(s));
            m.message(21, item);
        }
        _ => {}
    }
    let types: Vec<&str> = match o.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        let mut t = Msg::default();
        for ty in types {
            t.string(1, ty);
        }
        m.message(22, t);
    }
    match o.get("items") {
        Some(s @ Value::Object(_)) => {
            let mut items = Msg::default();
            items.message(1, schema(s));
            m.message(23, items);
        }
        Some(Value::Array(a)) => {
            let mut items = Msg::default();
            for s in a {
                items.message(1, schema(s));
            }
            m.message(23, items);
        }
        _ => {}
    }
    for s in o
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(24, schema(s));
    }
    if let Some(Value::Object(props)) = o.get("properties") {
        let mut p = Msg::default();
        for (name, s) in props {
            let mut named = Msg::default();
            named.string(1, name);
            named.message(2, schema(s));
            p.message(1, named);
        }
        m.message(25, p);
    }
    m.boolean(27, o.get("readOnly").and_then(Value::as_bool) == Some(true));
    if let Some(e) = o.get("example") {
        m.message(30, any(e));
    }
    extensions(&mut m, 31, o);
    m
}

/// `openapi.v2.Operation`: query parameters, responses and extensions.
fn operation(v: &Value) -> Msg {
    let mut m = Msg::default();
    let Value::Object(o) = v else {
        return m;
    };
    for p in o
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Value::Object(p) = p else { continue };
        let mut query = Msg::default();
        query.boolean(1, p.get("required").and_then(Value::as_bool) == Some(true));
        query.string(2, str_of(p, "in"));
        query.string(3, str_of(p, "description"));
        query.string(4, str_of(p, "name"));
        query.string(6, str_of(p, "type"));
        query.boolean(
            20,
            p.get("uniqueItems").and_then(Value::as_bool) == Some(true),
        );
        let mut non_body = Msg::default();
        non_body.message(3, query);
        let mut parameter = Msg::default();
        parameter.message(2, non_body);
        let mut item = Msg::default();
        item.message(1, parameter);
        m.message(8, item);
    }
    if let Some(Value::Object(responses)) = o.get("responses") {
        let mut rs = Msg::default();
        for (code, r) in responses {
            let mut response = Msg::default();
            response.string(
                1,
                r.get("description").and_then(Value::as_str).unwrap_or(""),
            );
            let mut value = Msg::default();
            value.message(1, response);
            let mut named = Msg::default();
            named.string(1, code);
            named.message(2, value);
            rs.message(1, named);
        }
        m.message(9, rs);
    }
    extensions(&mut m, 13, o);
    m
}

/// `openapi.v2.Document`.
pub fn document(doc: &Value) -> Vec<u8> {
    let mut m = Msg::default();
    m.string(
        1,
        doc.get("swagger").and_then(Value::as_str).unwrap_or("2.0"),
    );
    if let Some(Value::Object(info)) = doc.get("info") {
        let mut i = Msg::default();
        i.string(1, str_of(info, "title"));
        i.string(2, str_of(info, "version"));
        m.message(2, i);
    }
    if let Some(Value::Object(paths)) = doc.get("paths") {
        let mut p = Msg::default();
        for (path, item) in paths {
            let mut pi = Msg::default();
            for (verb, field) in [
                ("get", 2),
                ("put", 3),
                ("post", 4),
                ("delete", 5),
                ("patch", 8),
            ] {
                if let Some(op) = item.get(verb) {
                    pi.message(field, operation(op));
                }
            }
            let mut named = Msg::default();
            named.string(1, path);
            named.message(2, pi);
            p.message(2, named);
        }
        m.message(8, p);
    }
    if let Some(Value::Object(defs)) = doc.get("definitions") {
        let mut d = Msg::default();
        for (name, s) in defs {
            let mut named = Msg::default();
            named.string(1, name);
            named.message(2, schema(s));
            d.message(1, named);
        }
        m.message(9, d);
    }
    m.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protobuf::wire::{Reader, WireValue};
    use serde_json::json;

    fn fields(buf: &[u8]) -> Vec<(u32, WireValue<'_>)> {
        let mut r = Reader::new(buf);
        let mut out = Vec::new();
        while let Some(f) = r.next_field().expect("well formed") {
            out.push(f);
        }
        out
    }

    fn len(v: &WireValue<'_>) -> Vec<u8> {
        match v {
            WireValue::Len(b) => b.to_vec(),
            other => panic!("not length-delimited: {other:?}"),
        }
    }

    #[test]
    fn encodes_definitions_with_refs_types_and_extensions() {
        let doc = json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": {},
            "definitions": {"a.B": {"type": "object", "description": "d",
                "properties": {"n": {"$ref": "#/definitions/a.C"}},
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "B", "version": "v1"}]}}});
        let buf = document(&doc);
        let top = fields(&buf);
        assert_eq!(top[0], (1, WireValue::Len(b"2.0")));
        let defs = top.iter().find(|(f, _)| *f == 9).expect("definitions");
        let defs = len(&defs.1);
        let named = fields(&defs);
        let named = len(&named[0].1);
        let named = fields(&named);
        assert_eq!(named[0], (1, WireValue::Len(b"a.B")));
        let schema = len(&named[1].1);
        let schema = fields(&schema);
        assert!(schema.contains(&(4, WireValue::Len(b"d"))));
        let ty = schema.iter().find(|(f, _)| *f == 22).expect("type");
        let ty = len(&ty.1);
        assert_eq!(fields(&ty), [(1, WireValue::Len(b"object"))]);
        let ext = schema.iter().find(|(f, _)| *f == 31).expect("extension");
        let ext = len(&ext.1);
        let ext = fields(&ext);
        assert_eq!(
            ext[0],
            (1, WireValue::Len(b"x-kubernetes-group-version-kind"))
        );
        let any = len(&ext[1].1);
        let yaml = fields(&any);
        assert_eq!(
            yaml,
            [(
                2,
                WireValue::Len(b"[{\"group\":\"\",\"kind\":\"B\",\"version\":\"v1\"}]\n")
            )]
        );
    }
}

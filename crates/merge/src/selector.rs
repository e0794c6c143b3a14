//! Kubernetes label selectors.
//!
//! Two input forms produce the same [`LabelSelector`]:
//!
//! - the string syntax used by `?labelSelector=` and `kubectl -l`
//!   (`a=b,c!=d,e in (f,g),h notin (i),j,!k,l>5`), parsed by [`LabelSelector::parse`];
//! - the `metav1.LabelSelector` JSON object (`matchLabels` + `matchExpressions`), read by
//!   [`LabelSelector::from_json`]; [`LabelSelector::from_json_with_key`] reads the same
//!   shape with another map key (a DecoratorController's `matchAnnotations`).
//!
//! Keys must be qualified names and values valid label values, as Kubernetes enforces.
//! Requirements are kept sorted by key so [`Display`](std::fmt::Display) is canonical.

use std::fmt;

use serde_json::{Map, Value};

/// Why a selector could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The string form has a syntax error.
    #[error("unable to parse label selector {selector:?}: {reason}")]
    Syntax { selector: String, reason: String },
    /// A key is not a valid qualified name.
    #[error("invalid label key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    /// A value is not a valid label value.
    #[error("invalid label value {value:?} for key {key:?}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    /// The operator and its values do not fit together.
    #[error("invalid requirement for key {key:?}: {reason}")]
    InvalidRequirement { key: String, reason: String },
    /// The JSON form is not shaped like a `metav1.LabelSelector`.
    #[error("invalid label selector object: {reason}")]
    InvalidJson { reason: String },
}

/// Result alias for this module.
pub type Result<T, E = SelectorError> = std::result::Result<T, E>;

/// A selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key=value`
    Equals,
    /// `key==value`
    DoubleEquals,
    /// `key!=value` (also matches when the key is absent)
    NotEquals,
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)` (also matches when the key is absent)
    NotIn,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>5` (integer comparison)
    GreaterThan,
    /// `key<5` (integer comparison)
    LessThan,
}

/// One `key operator values` clause; a selector is the AND of its requirements.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and de-duplicated.
    values: Vec<String>,
}

impl Requirement {
    /// Builds a validated requirement.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self> {
        validate_key(key)?;
        let bad = |reason: &str| {
            Err(SelectorError::InvalidRequirement {
                key: key.to_string(),
                reason: reason.to_string(),
            })
        };
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return bad("for 'in', 'notin' operators, values set can't be empty");
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                return bad("exact-match compatibility requires one single value");
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return bad("values set must be empty for exists and does not exist");
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return bad("for 'Gt', 'Lt' operators, exactly one value is required");
                }
                if values[0].parse::<i64>().is_err() {
                    return bad("for 'Gt', 'Lt' operators, the value must be an integer");
                }
            }
            _ => {}
        }
        for v in &values {
            validate_value(key, v)?;
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    /// The label key this requirement is about.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted and de-duplicated.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether the given label set satisfies this requirement. A label whose JSON value is
    /// not a string counts as present but equal to nothing.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.matches_lookup(labels.and_then(|l| l.get(&self.key)).map(Value::as_str))
    }

    /// Like [`matches`](Requirement::matches), for labels held in any string map.
    pub fn matches_with<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.matches_lookup(lookup(&self.key).map(Some))
    }

    /// `actual`: `None` if the label is absent, `Some(None)` if present but not a string.
    fn matches_lookup(&self, actual: Option<Option<&str>>) -> bool {
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                actual.flatten().is_some_and(has)
            }
            Operator::NotEquals | Operator::NotIn => match actual {
                None => true,
                Some(v) => !v.is_some_and(has),
            },
            Operator::Exists => actual.is_some(),
            Operator::DoesNotExist => actual.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = actual.flatten().and_then(|s| s.parse::<i64>().ok()) else {
                    return false;
                };
                let Some(bound) = self.values.first().and_then(|s| s.parse::<i64>().ok()) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            return write!(f, "!{}", self.key);
        }
        f.write_str(&self.key)?;
        let single = self.values.first().map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::Equals => write!(f, "={single}"),
            Operator::DoubleEquals => write!(f, "=={single}"),
            Operator::NotEquals => write!(f, "!={single}"),
            Operator::GreaterThan => write!(f, ">{single}"),
            Operator::LessThan => write!(f, "<{single}"),
            Operator::In => write!(f, " in ({})", self.values.join(",")),
            Operator::NotIn => write!(f, " notin ({})", self.values.join(",")),
            Operator::Exists | Operator::DoesNotExist => Ok(()),
        }
    }
}

/// A label selector: the conjunction of its requirements. Empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    /// Sorted by key (stable), as Kubernetes keeps them.
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// Builds a selector from requirements (sorted by key).
    pub fn from_requirements(requirements: Vec<Requirement>) -> Self {
        let mut requirements = requirements;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements }
    }

    /// A selector requiring exactly the given `key=value` pairs (like `matchLabels`).
    pub fn from_map(labels: &Map<String, Value>) -> Result<Self> {
        let mut reqs = Vec::with_capacity(labels.len());
        for (k, v) in labels {
            let v = v.as_str().ok_or_else(|| SelectorError::InvalidValue {
                key: k.clone(),
                value: v.to_string(),
                reason: "label values must be strings".into(),
            })?;
            reqs.push(Requirement::new(k, Operator::Equals, vec![v.to_string()])?);
        }
        Ok(Self::from_requirements(reqs))
    }

    /// Parses the Kubernetes string syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
    /// `a notin (x)`, `a`, `!a`, `a>1`, `a<1`; commas separate requirements (AND).
    /// An empty (or all-whitespace) string selects everything.
    pub fn parse(s: &str) -> Result<Self> {
        let tokens = lex(s).map_err(|reason| SelectorError::Syntax {
            selector: s.to_string(),
            reason,
        })?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            input: s,
        };
        let reqs = parser.parse()?;
        Ok(Self::from_requirements(reqs))
    }

    /// Reads a `metav1.LabelSelector` object. `null`, an absent value and `{}` select
    /// everything; callers that want "empty selects nothing" check [`is_everything`].
    ///
    /// [`is_everything`]: LabelSelector::is_everything
    pub fn from_json(v: &Value) -> Result<Self> {
        Self::from_json_with_key(v, "matchLabels")
    }

    /// Like [`from_json`](LabelSelector::from_json) but the exact-match map is read from
    /// `map_key` (for example `matchAnnotations`).
    pub fn from_json_with_key(v: &Value, map_key: &str) -> Result<Self> {
        let bad = |reason: String| SelectorError::InvalidJson { reason };
        let obj = match v {
            Value::Null => return Ok(Self::everything()),
            Value::Object(o) => o,
            other => return Err(bad(format!("expected an object, found {other}"))),
        };
        let mut reqs = Vec::new();
        match obj.get(map_key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => reqs.extend(Self::from_map(m)?.requirements),
            Some(other) => return Err(bad(format!("{map_key} must be an object, found {other}"))),
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, e) in exprs.iter().enumerate() {
                    reqs.push(parse_expression(i, e)?);
                }
            }
            Some(other) => {
                return Err(bad(format!(
                    "matchExpressions must be an array, found {other}"
                )))
            }
        }
        Ok(Self::from_requirements(reqs))
    }

    /// Whether objects with these labels are selected. `None` means "no labels".
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Like [`matches`](LabelSelector::matches), for labels held in any string map, e.g.
    /// `sel.matches_with(|k| labels.get(k).map(String::as_str))`.
    pub fn matches_with<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| r.matches_with(&lookup))
    }

    /// Whether this selector has no requirements (selects everything).
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// The exact `key=value` pairs this selector requires (from `=`, `==`, or `in` with a
    /// single value), for use as index lookups.
    pub fn required_equalities(&self) -> Vec<(String, String)> {
        self.requirements
            .iter()
            .filter(|r| {
                matches!(
                    r.operator,
                    Operator::Equals | Operator::DoubleEquals | Operator::In
                ) && r.values.len() == 1
            })
            .map(|r| (r.key.clone(), r.values[0].clone()))
            .collect()
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

fn parse_expression(index: usize, e: &Value) -> Result<Requirement> {
    let bad = |reason: String| SelectorError::InvalidJson {
        reason: format!("matchExpressions[{index}]: {reason}"),
    };
    let obj = e
        .as_object()
        .ok_or_else(|| bad("must be an object".into()))?;
    let key = obj
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing string field \"key\"".into()))?;
    let op = obj
        .get("operator")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing string field \"operator\"".into()))?;
    let operator = match op {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(bad(format!(
                "{other:?} is not a valid label selector operator"
            )))
        }
    };
    let values = match obj.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vs)) => vs
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("value {v} is not a string")))
            })
            .collect::<Result<Vec<_>>>()?,
        Some(other) => return Err(bad(format!("values must be an array, found {other}"))),
    };
    Requirement::new(key, operator, values)
}

// ---------------------------------------------------------------------------------------
// Validation (qualified names and label values)

const NAME_RULE: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
                && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// Validates a label key: an optional DNS subdomain prefix and `/`, then a name of at
/// most 63 characters.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = |reason: String| {
        Err(SelectorError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return bad("prefix part must be non-empty".into());
        }
        if !is_dns1123_subdomain(prefix) {
            return bad(format!(
                "prefix part {prefix:?} must be a lowercase RFC 1123 subdomain of at most 253 characters"
            ));
        }
    }
    if name.is_empty() {
        return bad("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return bad("name part must be no more than 63 characters".into());
    }
    if !is_name_part(name) {
        return bad(format!("name part {NAME_RULE}"));
    }
    Ok(())
}

/// Validates a label value: empty, or at most 63 name characters.
pub fn validate_value(key: &str, value: &str) -> Result<()> {
    let bad = |reason: String| {
        Err(SelectorError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        })
    };
    if value.len() > 63 {
        return bad("must be no more than 63 characters".into());
    }
    if !value.is_empty() && !is_name_part(value) {
        return bad(format!("a valid label value {NAME_RULE}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Lexer and parser for the string syntax

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    In,
    NotIn,
    Bang,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(s) => s.clone(),
            Token::In => "in".into(),
            Token::NotIn => "notin".into(),
            Token::Bang => "!".into(),
            Token::Eq => "=".into(),
            Token::DoubleEq => "==".into(),
            Token::NotEq => "!=".into(),
            Token::Gt => ">".into(),
            Token::Lt => "<".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Comma => ",".into(),
            Token::End => "end of string".into(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(s: &str) -> std::result::Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if is_special(c) {
            chars.next();
            let next = chars.peek().copied();
            let tok = match (c, next) {
                ('=', Some('=')) => {
                    chars.next();
                    Token::DoubleEq
                }
                ('!', Some('=')) => {
                    chars.next();
                    Token::NotEq
                }
                ('=', _) => Token::Eq,
                ('!', _) => Token::Bang,
                ('(', _) => Token::Open,
                (')', _) => Token::Close,
                (',', _) => Token::Comma,
                ('>', _) => Token::Gt,
                ('<', _) => Token::Lt,
                _ => return Err(format!("unexpected character {c:?}")),
            };
            out.push(tok);
            continue;
        }
        let mut ident = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || is_special(c) {
                break;
            }
            ident.push(c);
            chars.next();
        }
        out.push(match ident.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Ident(ident),
        });
    }
    out.push(Token::End);
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    input: &'a str,
}

impl Parser<'_> {
    fn syntax(&self, reason: String) -> SelectorError {
        SelectorError::Syntax {
            selector: self.input.to_string(),
            reason,
        }
    }

    /// Peeks at the next token; in value position the keywords are plain identifiers.
    fn peek(&self, values: bool) -> Token {
        let t = self.tokens.get(self.pos).cloned().unwrap_or(Token::End);
        if values {
            match t {
                Token::In => return Token::Ident("in".into()),
                Token::NotIn => return Token::Ident("notin".into()),
                _ => {}
            }
        }
        t
    }

    fn next(&mut self, values: bool) -> Token {
        let t = self.peek(values);
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn parse(&mut self) -> Result<Vec<Requirement>> {
        let mut reqs = Vec::new();
        // Each iteration consumes at least one token, so this loop is bounded.
        loop {
            match self.peek(true) {
                Token::Ident(_) | Token::Bang => {
                    reqs.push(self.requirement()?);
                    match self.next(true) {
                        Token::End => return Ok(reqs),
                        Token::Comma => match self.peek(true) {
                            Token::Ident(_) | Token::Bang => {}
                            t => {
                                return Err(self.syntax(format!(
                                    "found '{}', expected: identifier after ','",
                                    t.describe()
                                )))
                            }
                        },
                        t => {
                            return Err(self.syntax(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                t.describe()
                            )))
                        }
                    }
                }
                Token::End => return Ok(reqs),
                t => {
                    return Err(self.syntax(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.describe()
                    )))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement> {
        let mut negated = false;
        let mut tok = self.next(false);
        if tok == Token::Bang {
            negated = true;
            tok = self.next(false);
        }
        let Token::Ident(key) = tok else {
            return Err(self.syntax(format!("found '{}', expected: identifier", tok.describe())));
        };
        validate_key(&key)?;
        if negated {
            return Requirement::new(&key, Operator::DoesNotExist, Vec::new());
        }
        if matches!(self.peek(true), Token::End | Token::Comma) {
            return Requirement::new(&key, Operator::Exists, Vec::new());
        }
        let op_tok = self.next(false);
        let operator = match op_tok {
            Token::Eq => Operator::Equals,
            Token::DoubleEq => Operator::DoubleEquals,
            Token::NotEq => Operator::NotEquals,
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Gt => Operator::GreaterThan,
            Token::Lt => Operator::LessThan,
            t => {
                return Err(self.syntax(format!(
                    "found '{}', expected: '=', '!=', '==', 'in', 'notin', '>' or '<'",
                    t.describe()
                )))
            }
        };
        let values = match operator {
            Operator::In | Operator::NotIn => self.set_values()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, operator, values)
    }

    fn exact_value(&mut self) -> Result<Vec<String>> {
        match self.peek(true) {
            Token::End | Token::Comma => Ok(vec![String::new()]),
            _ => match self.next(true) {
                Token::Ident(v) => Ok(vec![v]),
                t => Err(self.syntax(format!("found '{}', expected: identifier", t.describe()))),
            },
        }
    }

    /// `( v1, v2 )`; empty entries (`()`, `(a,)`, `(,a)`) stand for the empty value.
    fn set_values(&mut self) -> Result<Vec<String>> {
        let open = self.next(true);
        if open != Token::Open {
            return Err(self.syntax(format!("found '{}', expected: '('", open.describe())));
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        // Each iteration consumes one token; bounded by the token count.
        loop {
            match self.next(true) {
                Token::Ident(v) if expect_value => {
                    values.push(v);
                    expect_value = false;
                }
                Token::Comma => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Token::Close => {
                    if expect_value {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                t if expect_value => {
                    return Err(self.syntax(format!(
                        "found '{}', expected: ',', ')' or identifier",
                        t.describe()
                    )))
                }
                t => {
                    return Err(
                        self.syntax(format!("found '{}', expected: ',' or ')'", t.describe()))
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn every_operator_matches() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "7", "empty": ""}));
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("missing in (x)", false),
            ("app notin (db)", true),
            ("app notin (web,db)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("n>5", true),
            ("n>7", false),
            ("n<8", true),
            ("n<7", false),
            ("app>1", false),
            ("missing<1", false),
            ("empty=", true),
            ("empty in ()", true),
            ("app in ()", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("app=web, !missing, tier in (front)", true),
        ];
        for (s, want) in cases {
            assert_eq!(sel(s).matches(Some(&l)), *want, "{s}");
        }
    }

    #[test]
    fn matches_with_any_string_map() {
        let mut l = std::collections::BTreeMap::new();
        l.insert("app".to_string(), "web".to_string());
        l.insert("n".to_string(), "3".to_string());
        let lookup = |k: &str| l.get(k).map(String::as_str);
        let json: Map<String, Value> = l
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        for (s, want) in [
            ("app=web", true),
            ("app in (db)", false),
            ("!x,app", true),
            ("x notin (a)", true),
            ("n<4", true),
            ("n>4", false),
        ] {
            assert_eq!(sel(s).matches_with(lookup), want, "{s}");
            assert_eq!(sel(s).matches(Some(&json)), want, "{s} (json)");
        }
    }

    #[test]
    fn no_labels() {
        assert!(sel("").matches(None));
        assert!(sel("!a").matches(None));
        assert!(sel("a!=b").matches(None));
        assert!(!sel("a").matches(None));
        assert!(!sel("a=b").matches(None));
    }

    #[test]
    fn non_string_label_values_do_not_match_equality() {
        let l = labels(json!({"a": 1}));
        assert!(!sel("a=1").matches(Some(&l)));
        assert!(sel("a!=1").matches(Some(&l)));
        assert!(sel("a").matches(Some(&l)));
    }

    #[test]
    fn invalid_syntax_is_rejected() {
        let cases = [
            "a=b=c",
            "a in b",
            "a in (b",
            "a in (b c)",
            "a notin",
            "=b",
            "a,",
            ",a",
            "a,,b",
            "!a=b",
            "!",
            "a b",
            "in=b",
            "a=(b)",
            "a>b",
            "a<",
            "a in (b))",
            "a!",
            "a=b)",
        ];
        for s in cases {
            let e = LabelSelector::parse(s).expect_err(s);
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn invalid_keys_and_values_are_rejected() {
        for s in [
            "-a=b",
            "a-=b",
            "Example.com/a=b",
            "/a=b",
            "a/=b",
            "a/b/c=d",
            "a=-b",
            "a=b_",
            "a=b c",
            "a in (ok,-bad)",
        ] {
            assert!(LabelSelector::parse(s).is_err(), "{s}");
        }
        let long = "x".repeat(64);
        assert!(LabelSelector::parse(&format!("{long}=a")).is_err());
        assert!(LabelSelector::parse(&format!("a={long}")).is_err());
        assert!(LabelSelector::parse(&format!("a={}", "x".repeat(63))).is_ok());
        let e = LabelSelector::parse("a=-b").unwrap_err();
        assert!(matches!(e, SelectorError::InvalidValue { .. }), "{e}");
        let e = LabelSelector::parse("-a").unwrap_err();
        assert!(matches!(e, SelectorError::InvalidKey { .. }), "{e}");
    }

    #[test]
    fn valid_keys() {
        for s in [
            "app.kubernetes.io/name=x",
            "a_b.c-d=E_f.G-h",
            "x9",
            "controller-uid=0b5f8c2e-1b1a-4c1e-9d6a-3f2f0f0b3a1c",
            "in-place=true",
            "a in (in,notin)",
        ] {
            assert!(LabelSelector::parse(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        let cases = [
            ("", ""),
            ("b=2,a=1", "a=1,b=2"),
            ("a==1", "a==1"),
            ("a != 1", "a!=1"),
            ("a in ( z , y )", "a in (y,z)"),
            ("a in (x,x)", "a in (x)"),
            ("a notin (b)", "a notin (b)"),
            ("  a  ", "a"),
            ("!a", "!a"),
            ("a>5,a<9", "a>5,a<9"),
            ("a=", "a="),
            ("a in (,b)", "a in (,b)"),
            ("a in ()", "a in ()"),
        ];
        for (input, want) in cases {
            let s = sel(input);
            assert_eq!(s.to_string(), want, "{input}");
            assert_eq!(sel(&s.to_string()), s, "round trip of {input}");
        }
    }

    #[test]
    fn from_json_forms() {
        assert!(LabelSelector::from_json(&json!(null))
            .unwrap()
            .is_everything());
        assert!(LabelSelector::from_json(&json!({}))
            .unwrap()
            .is_everything());
        assert!(
            LabelSelector::from_json(&json!({"matchLabels": {}, "matchExpressions": []}))
                .unwrap()
                .is_everything()
        );

        let s = LabelSelector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "owner", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist", "values": []}
            ]
        }))
        .unwrap();
        assert_eq!(
            s.to_string(),
            "app=web,env notin (prod),!legacy,owner,tier in (edge,front)"
        );
        assert!(s.matches(Some(&labels(
            json!({"app":"web","tier":"edge","owner":"me"})
        ))));
        assert!(!s.matches(Some(&labels(
            json!({"app":"web","tier":"edge","owner":"me","env":"prod"})
        ))));
        assert!(!s.matches(Some(&labels(json!({"app":"web","tier":"edge"})))));
        assert!(!s.matches(Some(&labels(
            json!({"app":"web","tier":"edge","owner":"me","legacy":""})
        ))));
        assert_eq!(LabelSelector::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn from_json_errors() {
        let cases = [
            json!("app=web"),
            json!({"matchLabels": ["a"]}),
            json!({"matchLabels": {"a": 1}}),
            json!({"matchLabels": {"-a": "b"}}),
            json!({"matchExpressions": {}}),
            json!({"matchExpressions": [{"key": "a", "operator": "in", "values": ["b"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]}),
            json!({"matchExpressions": [{"operator": "Exists"}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}),
            json!({"matchExpressions": ["a"]}),
        ];
        for c in cases {
            assert!(LabelSelector::from_json(&c).is_err(), "{c}");
        }
    }

    #[test]
    fn annotation_selector_key() {
        let v = json!({
            "matchAnnotations": {"team": "blue"},
            "matchLabels": {"ignored": "here"},
            "matchExpressions": [{"key": "x", "operator": "Exists"}]
        });
        let s = LabelSelector::from_json_with_key(&v, "matchAnnotations").unwrap();
        assert_eq!(s.to_string(), "team=blue,x");
        assert!(s.matches(Some(&labels(json!({"team": "blue", "x": "1"})))));
        assert!(!s.matches(Some(&labels(json!({"ignored": "here", "x": "1"})))));
    }

    #[test]
    fn required_equalities_for_indexes() {
        let s = sel("a=1,b==2,c in (3),d in (4,5),e!=6,f,!g");
        assert_eq!(
            s.required_equalities(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("c".into(), "3".into())
            ]
        );
        assert!(LabelSelector::everything().required_equalities().is_empty());
    }

    /// Property: every selector matches the label set it was built from via `from_map`.
    #[test]
    fn from_map_matches_its_own_labels() {
        let sets = [
            json!({}),
            json!({"a": "1"}),
            json!({"app.kubernetes.io/name": "x", "tier": ""}),
            json!({"a": "1", "b": "2", "c": "3"}),
        ];
        for set in &sets {
            let m = labels(set.clone());
            let s = LabelSelector::from_map(&m).unwrap();
            assert!(s.matches(Some(&m)), "{set}");
            assert_eq!(s.required_equalities().len(), m.len());
            assert_eq!(sel(&s.to_string()), s);
        }
    }
}

//! The language of windsock's `/api/search`, evaluated in memory over one event at a time, so
//! a service that sees events on the bus (the alerter's `query` rules) can tell whether an
//! event matches a search without asking the indexer.
//!
//! The grammar is tantivy's own (`tantivy-query-grammar`, the crate tantivy's parser uses), and
//! the meaning follows the indexer's (`indexer/src/query.rs`, `schema.rs`):
//!
//! - bare words and `"phrases"` search `message`; words without an operator must all match
//!   (`fetch failed` is `fetch AND failed`); text is split on anything but letters and digits
//!   and lowercased, as tantivy's default tokenizer does (tokens of 40 bytes or more dropped);
//! - `kind`, `region`, `level`, `service`, `source`: exact values (`region:Dakar`);
//! - the metrics (`temperature_c`, ...) and `timestamp`: a value or a range
//!   (`temperature_c:[30 TO *]`, `timestamp:[2026-11-25T00:00:00Z TO *]`);
//! - `fields.<attribute>`: an event attribute by path (`fields.status:failed`, a log's own
//!   `fields` hoisted to the top), its words, numbers, booleans or times, and ranges of
//!   numbers or times (`fields.status:[500 TO 599]`); `fields.region` is read as `region` too;
//! - `AND`, `OR`, `NOT`, `+term`, `-term`, `( )`, `*`, `field:*` (on the fields above but
//!   `message` and attributes), `field: IN [a b]` (on exact fields and metrics).
//!
//! Refused at parse time, with a message and a position: regular expressions, prefixes
//! (`"fail"*`), phrase slop (`"a b"~2`), sets on text, `id`, unknown fields, a query of
//! exclusions alone, and queries longer than [`MAX_QUERY_BYTES`] or nested deeper than
//! [`MAX_OPENINGS`]. Boosts (`^2`) are accepted and change nothing (there is no score).

use chrono::DateTime;
use serde_json::{Map, Value};
use std::ops::Bound;
use tantivy_query_grammar::{
    self as grammar, Occur, UserInputAst, UserInputBound, UserInputLeaf, UserInputLiteral,
};

/// The metrics of an observation, each a field of its own (a copy of
/// `windsock_core::event::Observation::METRICS`, which core's tests compare with this one).
pub const METRICS: &[&str] = &[
    "temperature_c",
    "feels_like_c",
    "humidity_pct",
    "pressure_hpa",
    "dew_point_c",
    "wind_speed_ms",
    "wind_deg",
    "wind_gust_ms",
    "clouds_pct",
    "visibility_m",
    "uvi",
];

/// The fields of exact values (tantivy's `raw` tokenizer in the index).
const EXACT_FIELDS: [&str; 5] = ["kind", "region", "level", "service", "source"];

/// (kind, attribute) for the attribute of each kind of event that `timestamp` holds (the
/// indexer's `schema::TIME_ATTRIBUTES`).
const TIME_ATTRIBUTES: [(&str, &str); 5] = [
    ("observation", "observed_at"),
    ("log", "timestamp"),
    ("forecast", "generated_at"),
    ("alert", "at"),
    ("dead_letter", "at"),
];

/// The longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 2000;
/// The most `(` and `NOT` a query may hold: each is a level of recursion in the parser and here.
pub const MAX_OPENINGS: usize = 32;
/// tantivy's default tokenizer drops tokens this long or longer (bytes).
const MAX_TOKEN_BYTES: usize = 40;

/// Why a query cannot be used: `message` for people, `position` the byte offset in the query
/// it is about (0 when about the whole query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    pub message: String,
    pub position: usize,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.position)
    }
}

impl std::error::Error for QueryError {}

/// A parsed query, ready to test events against.
#[derive(Clone, Debug)]
pub struct Matcher {
    root: Node,
}

#[derive(Clone, Debug)]
enum Node {
    All,
    Nothing,
    /// tantivy's boolean query: every `must`, no `not`, and (with no `must`) one `should`.
    Bool {
        must: Vec<Node>,
        should: Vec<Node>,
        not: Vec<Node>,
    },
    Any(Vec<Node>),
    Exact(&'static str, String),
    Present(&'static str),
    Message(Vec<String>),
    Metric(&'static str, Bound<f64>, Bound<f64>),
    /// Microseconds since the epoch (the index's precision).
    Time(Bound<i64>, Bound<i64>),
    Attribute(String, Literal),
    AttributeRange(String, Bound<Scalar>, Bound<Scalar>),
}

/// A value as written for an attribute: matched as words, a number, a boolean or a time.
#[derive(Clone, Debug)]
struct Literal {
    words: Vec<String>,
    number: Option<f64>,
    boolean: Option<bool>,
    second: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
enum Scalar {
    Number(f64),
    /// Seconds since the epoch (attributes' times are indexed to the second).
    Second(i64),
}

/// One event as the index sees it: its own fields and its attributes.
#[derive(Clone, Debug, Default)]
pub struct Document {
    pub kind: String,
    pub region: Option<String>,
    pub level: String,
    pub service: String,
    /// Empty: none.
    pub source: String,
    pub message: String,
    /// Microseconds since the epoch.
    pub timestamp: i64,
    pub metrics: Vec<(&'static str, f64)>,
    /// (path, value) of every attribute leaf, arrays spread.
    attributes: Vec<(String, Leaf)>,
}

#[derive(Clone, Debug)]
enum Leaf {
    Words(Vec<String>),
    Number(f64),
    Bool(bool),
    Second(i64),
}

/// A log event, as [`Document::log`] reads it.
pub struct LogRecord<'a> {
    pub timestamp: DateTime<chrono::Utc>,
    pub service: &'a str,
    pub level: &'a str,
    pub message: &'a str,
    pub region: Option<&'a str>,
    pub target: Option<&'a str>,
    pub fields: &'a Map<String, Value>,
}

impl Document {
    /// A log event as the indexer makes its document (`schema::attributes`): its `target` is
    /// `source` and an attribute; its own `fields` hoisted to the top, except names already
    /// taken (`kind`, `timestamp`, `service`, `level`, `message`, `region` when it has one,
    /// `target` when it has one), which stay under `fields.fields`.
    pub fn log(log: &LogRecord<'_>) -> Self {
        let mut taken = vec!["kind", "timestamp", "service", "level", "message"];
        taken.extend(log.region.map(|_| "region"));
        let mut top = Map::new();
        if let Some(target) = log.target {
            taken.push("target");
            top.insert("target".into(), Value::String(target.into()));
        }
        let mut clashing = Map::new();
        for (key, value) in log.fields {
            if taken.contains(&key.as_str()) {
                clashing.insert(key.clone(), value.clone());
            } else {
                top.insert(key.clone(), value.clone());
            }
        }
        if !clashing.is_empty() {
            top.insert("fields".into(), Value::Object(clashing));
        }
        let mut document = Self {
            kind: "log".into(),
            region: log.region.map(str::to_string),
            level: log.level.into(),
            service: log.service.into(),
            source: log.target.unwrap_or_default().into(),
            message: log.message.into(),
            timestamp: log.timestamp.timestamp_micros(),
            metrics: Vec::new(),
            attributes: Vec::new(),
        };
        document.set_attributes(&top);
        document
    }

    /// Replaces the attributes with those of `attributes` (the indexer's `fields` object).
    pub fn set_attributes(&mut self, attributes: &Map<String, Value>) {
        self.attributes.clear();
        flatten("", attributes, &mut self.attributes);
    }

    fn exact(&self, field: &str) -> Option<&str> {
        match field {
            "kind" => Some(&self.kind),
            "region" => self.region.as_deref(),
            "level" => Some(&self.level),
            "service" => Some(&self.service),
            "source" => (!self.source.is_empty()).then_some(self.source.as_str()),
            _ => None,
        }
    }

    fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(m, v)| *m == name && v.is_finite())
            .map(|(_, v)| *v)
    }

    fn leaves<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a Leaf> + 'a {
        self.attributes
            .iter()
            .filter(move |(p, _)| p == path)
            .map(|(_, leaf)| leaf)
    }
}

fn flatten(prefix: &str, object: &Map<String, Value>, out: &mut Vec<(String, Leaf)>) {
    for (key, value) in object {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        leaf(&path, value, out);
    }
}

fn leaf(path: &str, value: &Value, out: &mut Vec<(String, Leaf)>) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push((path.into(), Leaf::Bool(*b))),
        Value::Number(n) => {
            if let Some(n) = n.as_f64() {
                out.push((path.into(), Leaf::Number(n)))
            }
        }
        Value::String(s) => out.push((
            path.into(),
            match second_of(s) {
                Some(second) => Leaf::Second(second),
                None => Leaf::Words(words(s)),
            },
        )),
        Value::Array(items) => items.iter().for_each(|item| leaf(path, item, out)),
        Value::Object(object) => flatten(path, object, out),
    }
}

fn second_of(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.timestamp())
}

fn micros_of(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.timestamp_micros())
}

/// tantivy's default tokenizer: runs of alphanumeric characters, lowercased, long ones dropped.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.len() < MAX_TOKEN_BYTES)
        .map(str::to_lowercase)
        .collect()
}

fn contains_phrase(haystack: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && haystack.windows(phrase.len()).any(|w| w == phrase)
}

fn within<T: PartialOrd>(value: T, lower: &Bound<T>, upper: &Bound<T>) -> bool {
    let above = match lower {
        Bound::Included(l) => value >= *l,
        Bound::Excluded(l) => value > *l,
        Bound::Unbounded => true,
    };
    let below = match upper {
        Bound::Included(u) => value <= *u,
        Bound::Excluded(u) => value < *u,
        Bound::Unbounded => true,
    };
    above && below
}

impl Matcher {
    /// Whether `document` matches the query.
    pub fn matches(&self, document: &Document) -> bool {
        self.root.matches(document)
    }
}

impl Node {
    fn matches(&self, d: &Document) -> bool {
        match self {
            Node::All => true,
            Node::Nothing => false,
            Node::Bool { must, should, not } => {
                if must.is_empty() && should.is_empty() {
                    return false;
                }
                must.iter().all(|n| n.matches(d))
                    && !not.iter().any(|n| n.matches(d))
                    && (!must.is_empty() || should.iter().any(|n| n.matches(d)))
            }
            Node::Any(nodes) => nodes.iter().any(|n| n.matches(d)),
            Node::Exact(field, value) => d.exact(field) == Some(value.as_str()),
            Node::Present(field) => match *field {
                "timestamp" => true,
                f if METRICS.contains(&f) => d.metric(f).is_some(),
                f => d.exact(f).is_some(),
            },
            Node::Message(phrase) => contains_phrase(&words(&d.message), phrase),
            Node::Metric(name, lower, upper) => {
                d.metric(name).is_some_and(|v| within(v, lower, upper))
            }
            Node::Time(lower, upper) => within(d.timestamp, lower, upper),
            Node::Attribute(path, literal) => d.leaves(path).any(|leaf| match leaf {
                Leaf::Words(words) => contains_phrase(words, &literal.words),
                Leaf::Number(n) => literal.number == Some(*n),
                Leaf::Bool(b) => literal.boolean == Some(*b),
                Leaf::Second(s) => literal.second == Some(*s),
            }),
            Node::AttributeRange(path, lower, upper) => d.leaves(path).any(|leaf| {
                let value = match leaf {
                    Leaf::Number(n) => Scalar::Number(*n),
                    Leaf::Second(s) => Scalar::Second(*s),
                    _ => return false,
                };
                let same_kind = |b: &Bound<Scalar>| match b {
                    Bound::Included(s) | Bound::Excluded(s) => {
                        std::mem::discriminant(s) == std::mem::discriminant(&value)
                    }
                    Bound::Unbounded => true,
                };
                same_kind(lower) && same_kind(upper) && within(value, lower, upper)
            }),
        }
    }
}

/// Parses `q` (the `q` of `/api/search`): an empty query or `*` matches everything.
pub fn parse(q: &str) -> Result<Matcher, QueryError> {
    let trimmed = q.trim();
    if trimmed.is_empty() || trimmed == "*" {
        return Ok(Matcher { root: Node::All });
    }
    if q.len() > MAX_QUERY_BYTES {
        return Err(QueryError {
            message: format!(
                "the query is {} bytes long; the limit is {MAX_QUERY_BYTES}",
                q.len()
            ),
            position: MAX_QUERY_BYTES,
        });
    }
    check_openings(q)?;
    let ast = grammar::parse_query(trimmed).map_err(|_| {
        let (_, errors) = grammar::parse_query_lenient(trimmed);
        let offset = trimmed.as_ptr() as usize - q.as_ptr() as usize;
        match errors.first() {
            Some(e) => QueryError {
                message: format!("query syntax error: {}", e.message),
                position: offset + e.pos,
            },
            None => QueryError {
                message: "query syntax error: the query does not parse".into(),
                position: offset,
            },
        }
    })?;
    let builder = Builder { q };
    let root = match builder.build(lift_negations(ast))? {
        None => Node::Nothing,
        Some(Node::Bool { must, should, not }) if must.is_empty() && should.is_empty() => {
            let _ = not;
            return Err(QueryError {
                message: "a query of exclusions alone matches nothing: add something to \
                          match, such as `* -level:info` or `kind:log -level:info`"
                    .into(),
                position: 0,
            });
        }
        Some(node) => node,
    };
    Ok(Matcher { root })
}

/// Counts `(` and `NOT` outside quotes, before any recursive parser reads the query.
fn check_openings(q: &str) -> Result<(), QueryError> {
    let mut openings = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in q.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '(' if !quoted => openings += 1,
            'N' if !quoted && q[i..].starts_with("NOT") => openings += 1,
            _ => {}
        }
        if openings > MAX_OPENINGS {
            return Err(QueryError {
                message: format!("the query holds more than {MAX_OPENINGS} `(` and `NOT`"),
                position: i,
            });
        }
    }
    Ok(())
}

/// `a AND NOT b` parses as `+a +(-b)`, and a clause of exclusions alone matches nothing;
/// lifting the exclusion into its parent (`+a -b`) gives what the words say. The indexer
/// calls this same function before building its tantivy query, so both read a query alike.
pub fn lift_negations(ast: UserInputAst) -> UserInputAst {
    let UserInputAst::Clause(children) = ast else {
        return ast;
    };
    let mut lifted = Vec::with_capacity(children.len());
    for (occur, child) in children {
        match lift_negations(child) {
            UserInputAst::Clause(inner)
                if occur == Some(Occur::Must)
                    && !inner.is_empty()
                    && inner.iter().all(|(o, _)| *o == Some(Occur::MustNot)) =>
            {
                lifted.extend(inner)
            }
            child => lifted.push((occur, child)),
        }
    }
    UserInputAst::Clause(lifted)
}

struct Builder<'a> {
    q: &'a str,
}

impl Builder<'_> {
    fn error(&self, field: Option<&str>, message: String) -> QueryError {
        let position = field
            .and_then(|f| self.q.find(&format!("{f}:")))
            .unwrap_or(0);
        QueryError { message, position }
    }

    /// The node of `ast`; `None` when nothing is left of it (a word of punctuation only),
    /// which its clause drops, as tantivy does.
    fn build(&self, ast: UserInputAst) -> Result<Option<Node>, QueryError> {
        Ok(match ast {
            UserInputAst::Clause(children) => {
                let (mut must, mut should, mut not) = (Vec::new(), Vec::new(), Vec::new());
                for (occur, child) in children {
                    let Some(node) = self.build(child)? else {
                        continue;
                    };
                    match occur {
                        Some(Occur::Should) => should.push(node),
                        Some(Occur::MustNot) => not.push(node),
                        Some(Occur::Must) | None => must.push(node),
                    }
                }
                (!(must.is_empty() && should.is_empty() && not.is_empty())).then_some(Node::Bool {
                    must,
                    should,
                    not,
                })
            }
            UserInputAst::Boost(inner, _) => self.build(*inner)?,
            UserInputAst::Leaf(leaf) => self.leaf(*leaf)?,
        })
    }

    fn leaf(&self, leaf: UserInputLeaf) -> Result<Option<Node>, QueryError> {
        match leaf {
            UserInputLeaf::All => Ok(Some(Node::All)),
            UserInputLeaf::Regex { field, .. } => Err(self.error(
                field.as_deref(),
                "regular expressions are not supported in query rules".into(),
            )),
            UserInputLeaf::Literal(literal) => self.literal(literal),
            UserInputLeaf::Exists { field } => self.exists(&field).map(Some),
            UserInputLeaf::Range {
                field,
                lower,
                upper,
            } => {
                let Some(field) = field else {
                    return Err(self.error(None, "a range needs a field".into()));
                };
                self.range(&field, &lower, &upper).map(Some)
            }
            UserInputLeaf::Set { field, elements } => {
                let Some(field) = field else {
                    return Err(self.error(None, "`IN [...]` needs a field".into()));
                };
                let nodes = elements
                    .into_iter()
                    .map(|value| self.value(&field, &value))
                    .filter_map(Result::transpose)
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(path) = field.strip_prefix("fields.") {
                    if !is_own_field(path) {
                        return Err(self.error(
                            Some(&field),
                            format!("`{field}: IN [...]` is not supported in query rules"),
                        ));
                    }
                }
                if field == "message" {
                    return Err(self.error(
                        Some(&field),
                        "`message: IN [...]` is not supported in query rules".into(),
                    ));
                }
                Ok(Some(Node::Any(nodes)))
            }
        }
    }

    fn literal(&self, literal: UserInputLiteral) -> Result<Option<Node>, QueryError> {
        let field = literal
            .field_name
            .clone()
            .unwrap_or_else(|| "message".into());
        if literal.prefix {
            return Err(self.error(
                literal.field_name.as_deref(),
                format!(
                    "prefix searches (`{}*`) are not supported in query rules",
                    literal.phrase
                ),
            ));
        }
        if literal.slop > 0 {
            return Err(self.error(
                literal.field_name.as_deref(),
                "phrase slop (`\"...\"~N`) is not supported in query rules".into(),
            ));
        }
        self.value(&field, &literal.phrase)
    }

    /// `field:value`.
    fn value(&self, field: &str, value: &str) -> Result<Option<Node>, QueryError> {
        if field == "message" {
            let words = words(value);
            return Ok((!words.is_empty()).then_some(Node::Message(words)));
        }
        if let Some(exact) = EXACT_FIELDS.iter().find(|f| **f == field) {
            return Ok(Some(Node::Exact(exact, value.to_string())));
        }
        if let Some(metric) = METRICS.iter().find(|m| **m == field) {
            let n = self.number(field, value)?;
            return Ok(Some(Node::Metric(
                metric,
                Bound::Included(n),
                Bound::Included(n),
            )));
        }
        if field == "timestamp" {
            let at = self.time(field, value)?;
            return Ok(Some(Node::Time(Bound::Included(at), Bound::Included(at))));
        }
        let Some(path) = self.attribute_path(field)? else {
            return Err(self.unknown(field));
        };
        if let Some(node) = self.time_attribute(path, |this| {
            let second = this.time(field, value)? / 1_000_000 * 1_000_000;
            Ok(Node::Time(
                Bound::Included(second),
                Bound::Excluded(second + 1_000_000),
            ))
        })? {
            return Ok(Some(node));
        }
        let literal = Literal {
            words: words(value),
            number: value.parse::<f64>().ok().filter(|n| n.is_finite()),
            boolean: value.parse::<bool>().ok(),
            second: second_of(value),
        };
        let attribute = Node::Attribute(path.to_string(), literal);
        if is_own_field(path) {
            let own = self.value(path, value)?;
            return Ok(Some(Node::Any(
                own.into_iter().chain([attribute]).collect(),
            )));
        }
        Ok(Some(attribute))
    }

    fn exists(&self, field: &str) -> Result<Node, QueryError> {
        let own = field.strip_prefix("fields.").unwrap_or(field);
        if let Some(f) = EXACT_FIELDS
            .iter()
            .chain(METRICS)
            .chain(&["timestamp"])
            .find(|f| **f == own)
        {
            return Ok(Node::Present(f));
        }
        if field.starts_with("fields.") {
            if let Some(node) =
                self.time_attribute(own, |_| Ok(Node::Time(Bound::Unbounded, Bound::Unbounded)))?
            {
                return Ok(node);
            }
        }
        if field == "message" || field.starts_with("fields.") {
            return Err(self.error(
                Some(field),
                format!(
                    "`{field}:*` is not supported: only kind, region, level, service, source, \
                     timestamp and the metrics can be tested for presence"
                ),
            ));
        }
        Err(self.unknown(field))
    }

    fn range(
        &self,
        field: &str,
        lower: &UserInputBound,
        upper: &UserInputBound,
    ) -> Result<Node, QueryError> {
        let field = match field.strip_prefix("fields.") {
            Some(own) if METRICS.contains(&own) || own == "timestamp" => own,
            _ => field,
        };
        if let Some(metric) = METRICS.iter().find(|m| **m == field) {
            let n = |b: &UserInputBound| self.bound(b, |v| self.number(field, v));
            return Ok(Node::Metric(metric, n(lower)?, n(upper)?));
        }
        if field == "timestamp" {
            let t = |b: &UserInputBound| self.bound(b, |v| self.time(field, v));
            return Ok(Node::Time(t(lower)?, t(upper)?));
        }
        if field == "message" || EXACT_FIELDS.contains(&field) {
            return Err(self.error(
                Some(field),
                format!("ranges on `{field}` are not supported in query rules"),
            ));
        }
        let Some(path) = self.attribute_path(field)? else {
            return Err(self.unknown(field));
        };
        if EXACT_FIELDS.contains(&path) || path == "message" {
            return Err(self.error(
                Some(field),
                format!("ranges on `{field}` are not supported in query rules"),
            ));
        }
        if let Some(node) = self.time_attribute(path, |this| {
            let t = |b: &UserInputBound| {
                this.bound(b, |v| Ok(this.time(field, v)? / 1_000_000 * 1_000_000))
            };
            Ok(Node::Time(t(lower)?, t(upper)?))
        })? {
            return Ok(node);
        }
        let scalar = |v: &str| -> Result<Scalar, QueryError> {
            if let Some(n) = v.parse::<f64>().ok().filter(|n| n.is_finite()) {
                return Ok(Scalar::Number(n));
            }
            second_of(v).map(Scalar::Second).ok_or_else(|| {
                self.error(
                    Some(field),
                    format!("ranges on attributes take numbers or RFC 3339 times, not {v:?}"),
                )
            })
        };
        let (lower, upper) = (self.bound(lower, scalar)?, self.bound(upper, scalar)?);
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (&lower, &upper)
        {
            if std::mem::discriminant(a) != std::mem::discriminant(b) {
                return Err(self.error(
                    Some(field),
                    format!("a range on `{field}` mixes a number and a time"),
                ));
            }
        }
        Ok(Node::AttributeRange(path.to_string(), lower, upper))
    }

    /// `fields.observed_at` and the like: the `timestamp` of the kinds it names.
    fn time_attribute(
        &self,
        path: &str,
        time: impl FnOnce(&Self) -> Result<Node, QueryError>,
    ) -> Result<Option<Node>, QueryError> {
        let kinds: Vec<Node> = TIME_ATTRIBUTES
            .iter()
            .filter(|(_, attribute)| *attribute == path)
            .map(|(kind, _)| Node::Exact("kind", kind.to_string()))
            .collect();
        if kinds.is_empty() {
            return Ok(None);
        }
        Ok(Some(Node::Bool {
            must: vec![Node::Any(kinds), time(self)?],
            should: Vec::new(),
            not: Vec::new(),
        }))
    }

    fn bound<T>(
        &self,
        bound: &UserInputBound,
        value: impl Fn(&str) -> Result<T, QueryError>,
    ) -> Result<Bound<T>, QueryError> {
        Ok(match bound {
            UserInputBound::Inclusive(v) if v == "*" => Bound::Unbounded,
            UserInputBound::Inclusive(v) => Bound::Included(value(v)?),
            UserInputBound::Exclusive(v) if v == "*" => Bound::Unbounded,
            UserInputBound::Exclusive(v) => Bound::Excluded(value(v)?),
            UserInputBound::Unbounded => Bound::Unbounded,
        })
    }

    fn number(&self, field: &str, value: &str) -> Result<f64, QueryError> {
        value
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| {
                self.error(
                    Some(field),
                    format!("`{field}` takes numbers, not {value:?}: {field}:[30 TO *]"),
                )
            })
    }

    fn time(&self, field: &str, value: &str) -> Result<i64, QueryError> {
        micros_of(value).ok_or_else(|| {
            self.error(
                Some(field),
                format!("{value:?} is not an RFC 3339 time: timestamp:[2026-11-25T00:00:00Z TO *]"),
            )
        })
    }

    /// The attribute path of `fields.<path>`; `None` for a field that is not one.
    fn attribute_path<'f>(&self, field: &'f str) -> Result<Option<&'f str>, QueryError> {
        if field == "id" {
            return Err(self.error(
                Some(field),
                "`id` is not supported in query rules (an event is counted once anyway)".into(),
            ));
        }
        match field.strip_prefix("fields.") {
            Some("") => Err(self.unknown(field)),
            other => Ok(other),
        }
    }

    fn unknown(&self, field: &str) -> QueryError {
        self.error(
            Some(field),
            format!(
                "unknown field `{field}`: fields are kind, region, level, service, source, \
                 message, timestamp, {}; event attributes are under fields.<attribute>",
                METRICS.join(", ")
            ),
        )
    }
}

/// Whether the attribute `name` has a field of its own in the index.
fn is_own_field(name: &str) -> bool {
    EXACT_FIELDS.contains(&name) || name == "message" || METRICS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log(message: &str, fields: Value) -> Document {
        let Value::Object(fields) = fields else {
            panic!()
        };
        Document::log(&LogRecord {
            timestamp: "2026-11-25T12:00:00.250Z".parse().unwrap(),
            service: "collector",
            level: "warn",
            message,
            region: Some("Dakar"),
            target: Some("windsock_collector::fetch"),
            fields: &fields,
        })
    }

    fn matches(q: &str, d: &Document) -> bool {
        parse(q).unwrap_or_else(|e| panic!("{q}: {e}")).matches(d)
    }

    #[test]
    fn the_language_of_search_over_one_log() {
        let d = log(
            "Fetch failed: timeout after 3 tries",
            json!({"status": "failed", "attempt": 3, "region": "Thiès", "retry": true}),
        );
        for (q, expected) in [
            ("fetch failed", true),
            ("fetch succeeded", false),
            ("fetch OR succeeded", true),
            ("\"fetch failed\"", true),
            ("\"failed fetch\"", false),
            ("service:collector AND fields.status:failed", true),
            ("service:Collector", false),
            ("fields.status:FAILED", true),
            ("fields.attempt:3", true),
            ("fields.attempt:[2 TO 3]", true),
            ("fields.attempt:{3 TO *]", false),
            ("fields.retry:true", true),
            ("region:Dakar", true),
            ("fields.region:Dakar", true),
            // The log's own `region` field is taken: it stays under fields.fields.
            ("fields.fields.region:thiès", true),
            ("kind:log -level:warn", false),
            ("kind:log AND NOT level:error", true),
            ("level:(warn OR error)", true),
            ("source:windsock_collector\\:\\:fetch", true),
            ("fields.target:fetch", true),
            (
                "timestamp:[2026-11-25T12:00:00Z TO 2026-11-25T12:00:01Z}",
                true,
            ),
            ("fields.timestamp:\"2026-11-25T12:00:00Z\"", true),
            ("temperature_c:[30 TO *]", false),
            ("region:*", true),
            ("*", true),
            ("fetch !!", true),
        ] {
            assert_eq!(matches(q, &d), expected, "{q}");
        }
    }

    #[test]
    fn what_is_not_supported_is_refused_with_a_position() {
        for (q, says, position) in [
            ("\"fetch fail\"*", "prefix", 0),
            ("kind:log AND fields.x:/a.*/", "regular expressions", 13),
            ("\"a b\"~2", "slop", 0),
            ("kind:log AND regoin:Dakar", "unknown field `regoin`", 13),
            ("-kind:log", "exclusions alone", 0),
            ("temperature_c:hot", "takes numbers", 0),
            ("kind:log AND (", "syntax error", 0),
            ("message:*", "not supported", 0),
            ("fields.status:[a TO b]", "numbers or RFC 3339", 0),
        ] {
            let error = parse(q).err().unwrap_or_else(|| panic!("{q} parsed"));
            assert!(error.message.contains(says), "{q}: {error}");
            if position > 0 {
                assert_eq!(error.position, position, "{q}: {error}");
            }
        }
        assert!(parse(&"(".repeat(MAX_OPENINGS + 1)).is_err());
        assert!(parse(&"a ".repeat(MAX_QUERY_BYTES)).is_err());
    }
}

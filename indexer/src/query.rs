//! Turning the `q` of a search into a tantivy query, with errors that say what is wrong and
//! where.
//!
//! The language is tantivy's (Lucene-like): bare words and `"phrases"` search `message`;
//! `field:value`, `AND`/`OR`/`NOT`/`-term`, ranges `temperature_c:[30 TO *]`, and event
//! attributes by path `fields.condition:rain`, ranges of them too (`fields.status:[500 TO
//! 599]`, see [`attribute_range`]). Words without an operator must all match
//! (`fetch failed` is `fetch AND failed`), as people searching logs expect.

mod attribute_range;
pub mod limits;

use crate::schema::kinds_timed_by;
use crate::store::EventIndex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, EmptyQuery, Query, QueryParser, QueryParserError,
};
use tantivy::query_grammar::{
    self, Delimiter, Occur, UserInputAst, UserInputBound, UserInputLeaf, UserInputLiteral,
};
use utoipa::ToSchema;

/// A query that cannot run: `message` for people, `detail` says where.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryError {
    pub message: String,
    pub detail: Value,
}

/// The fields a query may name, for the hint of an unknown-field error.
fn known_fields(index: &EventIndex) -> Vec<String> {
    let schema = index.index.schema();
    let mut names: Vec<String> = schema
        .fields()
        .map(|(_, entry)| entry.name().to_string())
        .filter(|name| name != "event")
        .map(|name| {
            if name == "fields" {
                "fields.<attribute>".into()
            } else {
                name
            }
        })
        .collect();
    names.sort();
    names
}

/// A query longer than `max` bytes: refused before it is read any further.
fn check_length(q: &str, max: usize) -> Result<(), QueryError> {
    if q.len() <= max {
        return Ok(());
    }
    Err(QueryError {
        message: format!(
            "query is {} bytes long; the limit is {max} (indexer.max_query_length)",
            q.len()
        ),
        detail: json!({
            "parameter": "q",
            "reason": "too_long",
            "length": q.len(),
            "limit": max,
        }),
    })
}

/// Every bound on a query's text, before any parser reads it: its nesting (see [`limits`]),
/// then its length.
pub fn check_limits(q: &str, max_length: usize) -> Result<(), QueryError> {
    check_depth(q)?;
    check_length(q, max_length)
}

/// A query that nests deeper than the parsers may recurse (see [`limits`]).
fn check_depth(q: &str) -> Result<(), QueryError> {
    let shape = limits::shape(q);
    if shape.depth > limits::MAX_DEPTH {
        return Err(QueryError {
            message: format!(
                "query nests {} levels deep; the limit is {}",
                shape.depth,
                limits::MAX_DEPTH
            ),
            detail: json!({
                "parameter": "q",
                "reason": "too_deep",
                "depth": shape.depth,
                "limit": limits::MAX_DEPTH,
                "hint": "each group `( )` and each NOT is a level; write `a OR b OR c` rather than `(a OR (b OR c))`",
            }),
        });
    }
    if shape.openings > limits::MAX_OPENINGS {
        return Err(QueryError {
            message: format!(
                "query holds {} `(` and `NOT`; the limit is {}, quoted or not",
                shape.openings,
                limits::MAX_OPENINGS
            ),
            detail: json!({
                "parameter": "q",
                "reason": "too_many_groups",
                "openings": shape.openings,
                "limit": limits::MAX_OPENINGS,
            }),
        });
    }
    Ok(())
}

pub fn parse_query(index: &EventIndex, q: &str) -> Result<Box<dyn Query>, QueryError> {
    let q = q.trim();
    if q.is_empty() || q == "*" {
        return Ok(Box::new(AllQuery));
    }
    // Before any parser: they recurse once a level (and so do the passes below).
    check_depth(q)?;
    parse_checked(index, q)
}

/// [`parse_query`] once the query's depth is known to be safe.
fn parse_checked(index: &EventIndex, q: &str) -> Result<Box<dyn Query>, QueryError> {
    let ast = query_grammar::parse_query(q).map_err(|_| syntax_error(q))?;
    let mut parser = QueryParser::for_index(&index.index, vec![index.fields.message]);
    parser.set_conjunction_by_default();
    let ast = rewrite(index, q, windsock_query::lift_negations(ast))?;
    if !has_attribute_range(&ast) {
        return parser
            .build_query_from_user_input_ast(ast)
            .map_err(|e| semantic_error(index, q, e));
    }
    let query = Builder { index, q, parser }.build(ast)?;
    // The parser refuses a query of exclusions alone (it would match nothing): so does this.
    match query {
        Some(query) if !is_exclusions_only(query.as_ref()) => Ok(query),
        Some(_) => Err(semantic_error(
            index,
            q,
            QueryParserError::AllButQueryForbidden,
        )),
        None => Ok(Box::new(EmptyQuery)),
    }
}

/// A range over an attribute without a field of its own, left so by [`rewrite`]: tantivy's
/// parser cannot build it (see [`attribute_range`]).
fn attribute_range_path(leaf: &UserInputLeaf) -> Option<&str> {
    match leaf {
        UserInputLeaf::Range {
            field: Some(field), ..
        } => field.strip_prefix("fields."),
        _ => None,
    }
}

fn has_attribute_range(ast: &UserInputAst) -> bool {
    match ast {
        UserInputAst::Clause(children) => children.iter().any(|(_, c)| has_attribute_range(c)),
        UserInputAst::Boost(inner, _) => has_attribute_range(inner),
        UserInputAst::Leaf(leaf) => attribute_range_path(leaf).is_some(),
    }
}

fn is_exclusions_only(query: &dyn Query) -> bool {
    query.downcast_ref::<BooleanQuery>().is_some_and(|b| {
        b.clauses()
            .iter()
            .all(|(occur, _)| *occur == tantivy::query::Occur::MustNot)
    })
}

/// Builds a query that holds attribute ranges: clauses as tantivy's parser builds them
/// (no operator means must, empty clauses are dropped), each leaf by the parser but for
/// attribute ranges.
struct Builder<'a> {
    index: &'a EventIndex,
    q: &'a str,
    parser: QueryParser,
}

impl Builder<'_> {
    /// The query of `ast`; `None` when nothing is left of it (a word of punctuation only),
    /// which the parser drops from its clause.
    fn build(&self, ast: UserInputAst) -> Result<Option<Box<dyn Query>>, QueryError> {
        use tantivy::query::Occur as Tantivy;
        Ok(match ast {
            UserInputAst::Clause(children) => {
                let mut clauses = Vec::with_capacity(children.len());
                for (occur, child) in children {
                    let occur = match occur {
                        Some(Occur::Should) => Tantivy::Should,
                        Some(Occur::MustNot) => Tantivy::MustNot,
                        Some(Occur::Must) | None => Tantivy::Must,
                    };
                    if let Some(query) = self.build(child)? {
                        clauses.push((occur, query));
                    }
                }
                (!clauses.is_empty())
                    .then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
            }
            UserInputAst::Boost(inner, boost) => self
                .build(*inner)?
                .map(|q| Box::new(BoostQuery::new(q, boost.into_inner() as f32)) as _),
            UserInputAst::Leaf(leaf) => match (attribute_range_path(&leaf), &*leaf) {
                (Some(path), UserInputLeaf::Range { lower, upper, .. }) => Some(
                    attribute_range::query(self.index.fields.attributes, path, lower, upper)
                        .map_err(|e| attribute_range_error(self.q, path, e))?,
                ),
                _ => {
                    let query = self
                        .parser
                        .build_query_from_user_input_ast(UserInputAst::Leaf(leaf))
                        .map_err(|e| semantic_error(self.index, self.q, e))?;
                    (!query.is::<EmptyQuery>()).then_some(query)
                }
            },
        })
    }
}

/// The query as the index can answer it: each leaf through [`rewrite_leaf`].
fn rewrite(index: &EventIndex, q: &str, ast: UserInputAst) -> Result<UserInputAst, QueryError> {
    Ok(match ast {
        UserInputAst::Clause(children) => UserInputAst::Clause(
            children
                .into_iter()
                .map(|(occur, child)| Ok((occur, rewrite(index, q, child)?)))
                .collect::<Result<_, QueryError>>()?,
        ),
        UserInputAst::Boost(inner, boost) => {
            UserInputAst::Boost(Box::new(rewrite(index, q, *inner)?), boost)
        }
        UserInputAst::Leaf(leaf) => rewrite_leaf(index, q, *leaf)?,
    })
}

/// Three things people write that the schema stores otherwise:
///
/// - `fields.region:Dakar`: an attribute with a field of its own is indexed there, not again
///   under `fields` (see `schema::attributes`), yet people who read `"region": "Dakar"` in an
///   event will write `fields.region`. Such a clause becomes `(region:Dakar OR
///   fields.region:Dakar)`; the second still finds an attribute whose value differs from its
///   field's (a forecast's `level` of 0.95). A range goes to the own field alone (the
///   metrics' ranges run on their fast fields); a range on any other attribute is left for
///   `parse_query`, which walks the terms of `fields` (see [`attribute_range`]).
/// - `fields.observed_at:"2026-11-25T12:00:03Z"`: an event's own time is its `timestamp`
///   only (see [`time_attribute`]).
/// - `temperature_c:27.5`, `timestamp:2026-11-25T12:00:00Z`: the metrics and the timestamp
///   are fast fields only (ranges, sorting and the histogram read them there; a term per
///   value was a large share of indexing), so an exact value becomes the range `[v TO v]`.
fn rewrite_leaf(
    index: &EventIndex,
    q: &str,
    leaf: UserInputLeaf,
) -> Result<UserInputAst, QueryError> {
    let field = leaf_field(&leaf).map(str::to_string);
    let Some(field) = field else {
        return Ok(UserInputAst::Leaf(Box::new(leaf)));
    };
    if let Some(attribute) = field.strip_prefix("fields.") {
        let kinds = kinds_timed_by(attribute);
        if !kinds.is_empty() {
            return time_attribute(q, &kinds, leaf);
        }
        let is_range = matches!(leaf, UserInputLeaf::Range { .. });
        let is_exists = matches!(leaf, UserInputLeaf::Exists { .. });
        if !index.fields.has_own_field(attribute) {
            if is_exists {
                return Err(exists_error(index, q, &field));
            }
            // A range stays as it is: `parse_query` builds it over the terms of `fields`.
            return Ok(UserInputAst::Leaf(Box::new(leaf)));
        }
        let mut own = leaf.clone();
        set_leaf_field(&mut own, attribute.to_string());
        let own = rewrite_leaf(index, q, own)?;
        // `fields` holds no copy of an attribute with a field of its own to test for.
        return Ok(if is_range || is_exists {
            own
        } else {
            UserInputAst::Clause(vec![
                (Some(Occur::Should), own),
                (Some(Occur::Should), UserInputAst::Leaf(Box::new(leaf))),
            ])
        });
    }
    if matches!(leaf, UserInputLeaf::Exists { .. }) && !is_fast(index, &field) {
        return Err(exists_error(index, q, &field));
    }
    if !index.fields.is_fast_only(&field) {
        return Ok(UserInputAst::Leaf(Box::new(leaf)));
    }
    let exactly = |value: String| {
        UserInputAst::Leaf(Box::new(UserInputLeaf::Range {
            field: Some(field.clone()),
            lower: UserInputBound::Inclusive(value.clone()),
            upper: UserInputBound::Inclusive(value),
        }))
    };
    Ok(match leaf {
        UserInputLeaf::Literal(literal) => exactly(literal.phrase),
        // `temperature_c: IN [27.5 30]`: any of the values.
        UserInputLeaf::Set { elements, .. } => UserInputAst::Clause(
            elements
                .into_iter()
                .map(|value| (Some(Occur::Should), exactly(value)))
                .collect(),
        ),
        other => UserInputAst::Leaf(Box::new(other)),
    })
}

/// `fields.observed_at:"2026-11-25T12:00:03Z"` (or `fields.at`, `fields.timestamp`...): the
/// attribute is the `timestamp` of the `kinds` it names, which holds it alone (see
/// `schema::TIME_ATTRIBUTES`). A time matches its whole second, as a date term of an
/// attribute does; a range is a range of `timestamp`, which attributes do not otherwise
/// have. Both are limited to those kinds.
fn time_attribute(
    q: &str,
    kinds: &[&str],
    leaf: UserInputLeaf,
) -> Result<UserInputAst, QueryError> {
    let timestamp = |lower, upper| {
        UserInputAst::Leaf(Box::new(UserInputLeaf::Range {
            field: Some("timestamp".into()),
            lower,
            upper,
        }))
    };
    let second = |value: &str| -> Result<UserInputAst, QueryError> {
        let at = chrono::DateTime::parse_from_rfc3339(value).map_err(|_| QueryError {
            message: format!("invalid query: {value:?} is not an RFC 3339 time"),
            detail: json!({
                "query": q,
                "reason": "not_a_date",
                "hint": "times are RFC 3339: fields.observed_at:\"2026-11-25T12:00:00Z\"",
            }),
        })?;
        let start = at.timestamp();
        let text = |seconds: i64| {
            chrono::DateTime::from_timestamp(seconds, 0)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        Ok(timestamp(
            UserInputBound::Inclusive(text(start)),
            UserInputBound::Exclusive(text(start + 1)),
        ))
    };
    let when = match leaf {
        UserInputLeaf::Literal(literal) => second(&literal.phrase)?,
        UserInputLeaf::Set { elements, .. } => UserInputAst::Clause(
            elements
                .iter()
                .map(|value| Ok((Some(Occur::Should), second(value)?)))
                .collect::<Result<_, QueryError>>()?,
        ),
        UserInputLeaf::Range { lower, upper, .. } => timestamp(lower, upper),
        // `fields.observed_at:*`: every event of those kinds has one.
        UserInputLeaf::Exists { .. } => UserInputAst::Leaf(Box::new(UserInputLeaf::All)),
        other => return Ok(UserInputAst::Leaf(Box::new(other))),
    };
    let kind = |kind: &str| {
        UserInputAst::Leaf(Box::new(UserInputLeaf::Literal(UserInputLiteral {
            field_name: Some("kind".into()),
            phrase: kind.into(),
            delimiter: Delimiter::None,
            slop: 0,
            prefix: false,
        })))
    };
    let of_kinds = match kinds {
        [one] => kind(one),
        many => UserInputAst::Clause(
            many.iter()
                .map(|k| (Some(Occur::Should), kind(k)))
                .collect(),
        ),
    };
    Ok(UserInputAst::Clause(vec![
        (Some(Occur::Must), of_kinds),
        (Some(Occur::Must), when),
    ]))
}

/// Whether `field` is a fast field: only those answer `field:*` (tantivy's exists query
/// reads their columns). An unknown field counts as fast, so the parser names it as unknown.
fn is_fast(index: &EventIndex, field: &str) -> bool {
    let schema = index.index.schema();
    match schema.get_field(field) {
        Ok(handle) => schema.get_field_entry(handle).is_fast(),
        Err(_) => true,
    }
}

/// `id:*`, `message:*`, `fields.status:*`: an exists query on a field without a column, which
/// tantivy refuses only once the search runs. Said as what to write instead.
fn exists_error(index: &EventIndex, q: &str, field: &str) -> QueryError {
    let why_and_instead = match field {
        "id" => "every event has an id, and `id` has no column to list them from; `*` matches \
                 every event, `id:<id>` one"
            .to_string(),
        "message" => "every event has a message, and `message` is full text with no column to \
                      list them from; `*` matches every event, `message:word` or \
                      `message:\"some words\"` searches it"
            .to_string(),
        attribute if attribute.starts_with("fields.") => format!(
            "attributes have no column to list them from; `{attribute}:[* TO *]` finds the \
             events where it is a number or a time, `{attribute}:value` a value"
        ),
        other => {
            let fast: Vec<String> = known_fields(index)
                .into_iter()
                .filter(|name| is_fast(index, name) && !name.contains('<'))
                .collect();
            format!(
                "`{other}` has no column to list its values from; `field:*` works on {}",
                fast.join(", ")
            )
        }
    };
    at_field(
        q,
        field,
        QueryError {
            message: format!("invalid query: `{field}:*` is not supported: {why_and_instead}"),
            detail: json!({
                "query": q,
                "reason": "exists_not_supported",
                "field": field,
            }),
        },
    )
}

fn attribute_range_error(q: &str, path: &str, error: attribute_range::BoundError) -> QueryError {
    at_field(
        q,
        &format!("fields.{path}"),
        QueryError {
            message: format!("invalid query: fields.{path}: {error}"),
            detail: json!({
                "query": q,
                "reason": "range_on_attribute",
                "field": format!("fields.{path}"),
                "hint": format!(
                    "fields.{path}:[500 TO 599], fields.{path}:>=1.5 or fields.{path}:[2026-11-25T00:00:00Z TO *]"
                ),
            }),
        },
    )
}

/// `error`, about `field`, placed where `q` first names it (`field:` outside quotes, at the
/// start of a term): `invalid query at column N: ...` and `detail.position`. As it was when
/// `q` does not name it so (a field the rewrites named).
fn at_field(q: &str, field: &str, mut error: QueryError) -> QueryError {
    let Some(offset) = field_offset(q, field) else {
        return error;
    };
    let position = QueryPosition::at(q, offset);
    if let Some(rest) = error.message.strip_prefix("invalid query: ") {
        error.message = format!("invalid query at column {}: {rest}", position.column);
    }
    error.detail["position"] = json!(position);
    error
}

/// The byte offset where `q` first names `field` as `field:`, outside quotes, at the start
/// of a term (after a space, `(`, `+` or `-`, or at the start).
fn field_offset(q: &str, field: &str) -> Option<usize> {
    let named = format!("{field}:");
    let mut quoted = false;
    let mut escaped = false;
    let mut term_start = true;
    for (i, c) in q.char_indices() {
        if !quoted && term_start && q[i..].starts_with(&named) {
            return Some(i);
        }
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            _ => {}
        }
        term_start = c.is_whitespace() || matches!(c, '(' | '+' | '-');
    }
    None
}

fn leaf_field(leaf: &UserInputLeaf) -> Option<&str> {
    match leaf {
        UserInputLeaf::Literal(literal) => literal.field_name.as_deref(),
        UserInputLeaf::Range { field, .. }
        | UserInputLeaf::Set { field, .. }
        | UserInputLeaf::Regex { field, .. } => field.as_deref(),
        UserInputLeaf::Exists { field } => Some(field),
        UserInputLeaf::All => None,
    }
}

fn set_leaf_field(leaf: &mut UserInputLeaf, name: String) {
    match leaf {
        UserInputLeaf::Literal(literal) => literal.field_name = Some(name),
        UserInputLeaf::Range { field, .. }
        | UserInputLeaf::Set { field, .. }
        | UserInputLeaf::Regex { field, .. } => *field = Some(name),
        UserInputLeaf::Exists { field } => *field = name,
        UserInputLeaf::All => {}
    }
}

/// Where in `q` a query error is: `detail.position` of a syntax error's 400.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QueryPosition {
    /// Byte offset in `q`, from 0 (`q`'s length: at its end).
    pub offset: usize,
    /// Column in `q`, counting characters from 1: the one the message names.
    pub column: usize,
    /// Up to 20 characters of `q` from there; empty at its end.
    pub near: String,
}

impl QueryPosition {
    /// The position of byte `offset` of `q` (brought back to a character boundary).
    pub fn at(q: &str, offset: usize) -> Self {
        let mut offset = offset.min(q.len());
        while !q.is_char_boundary(offset) {
            offset -= 1;
        }
        Self {
            offset,
            column: q[..offset].chars().count() + 1,
            near: near(q, offset),
        }
    }
}

/// The grammar refused the query: one problem, said in words, at one position (the lenient
/// parser finds where; its own words are kept in `detail.errors`).
fn syntax_error(q: &str) -> QueryError {
    let (_, errors) = query_grammar::parse_query_lenient(q);
    let problems: Vec<Value> = errors
        .iter()
        .map(|e| json!({"position": e.pos, "message": e.message, "near": near(q, e.pos)}))
        .collect();
    let (offset, what) = explain(q, &errors);
    let position = QueryPosition::at(q, offset);
    QueryError {
        message: format!("query syntax error: {what} at column {}", position.column),
        detail: json!({
            "query": q,
            "reason": "syntax",
            "position": position,
            "errors": problems,
        }),
    }
}

/// What is wrong with a query the grammar refused, and the byte offset to point at.
fn explain(q: &str, errors: &[query_grammar::LenientError]) -> (usize, String) {
    let found = |offset: usize| q[offset.min(q.len())..].chars().next();
    // The lenient parser lists a range's problems in order; its last says what is missing.
    if let Some(e) = errors
        .iter()
        .find(|e| e.message == "missing range delimiter")
    {
        return (
            e.pos,
            "unfinished range (a range ends with `]` or `}`)".into(),
        );
    }
    let Some(first) = errors.first() else {
        return dangling_operator(q).unwrap_or((0, "the query does not parse".into()));
    };
    match first.message.as_str() {
        "unparsed end of query" => match found(first.pos) {
            Some(')') => (first.pos, "unexpected `)` (no `(` opens it)".into()),
            Some(c) => (first.pos, format!("unexpected `{c}`")),
            None => (first.pos, "unexpected end of the query".into()),
        },
        "expected ')'" => match unclosed_paren(q) {
            Some(open) => (open, "`(` is never closed".into()),
            None => (first.pos, "missing `)`".into()),
        },
        message if message.starts_with("missing delimiter") => {
            match q[..first.pos.min(q.len())].rfind('"') {
                Some(open) => (open, "`\"` opens a phrase that is never closed".into()),
                None => (first.pos, "a phrase is never closed".into()),
            }
        }
        "expected word" => match found(first.pos) {
            None => (first.pos, "a value is missing at the end".into()),
            Some(c) => (first.pos, format!("a value was expected, not `{c}`")),
        },
        other => dangling_operator(q).unwrap_or_else(|| (first.pos, other.to_string())),
    }
}

/// The byte offset of the first `(` outside quotes that no `)` closes.
fn unclosed_paren(q: &str) -> Option<usize> {
    let mut open = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in q.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '(' if !quoted => open.push(i),
            ')' if !quoted => {
                open.pop();
            }
            _ => {}
        }
    }
    open.first().copied()
}

/// `a AND`, `OR b`, `a AND OR b`: an operator missing a side, which the lenient parser takes
/// as a word without a complaint.
fn dangling_operator(q: &str) -> Option<(usize, String)> {
    let words: Vec<(usize, &str)> = q
        .split_whitespace()
        .map(|word| (word.as_ptr() as usize - q.as_ptr() as usize, word))
        .collect();
    let is_operator = |w: &str| matches!(w, "AND" | "OR" | "NOT" | "&&" | "||");
    let (last_at, last) = *words.last()?;
    if is_operator(last) {
        return Some((last_at, format!("`{last}` has nothing after it")));
    }
    if let Some(&(at, first)) = words.first().filter(|(_, w)| matches!(*w, "AND" | "OR")) {
        return Some((at, format!("`{first}` has nothing before it")));
    }
    words.windows(2).find_map(|pair| {
        let [(_, a), (at, b)] = pair else { return None };
        (is_operator(a) && matches!(*b, "AND" | "OR"))
            .then(|| (*at, format!("`{b}` right after `{a}`")))
    })
}

/// Up to 20 characters of the query from `pos`, to point at the spot.
fn near(q: &str, pos: usize) -> String {
    q.char_indices()
        .skip_while(|(i, _)| *i < pos)
        .take(20)
        .map(|(_, c)| c)
        .collect()
}

fn semantic_error(index: &EventIndex, q: &str, error: QueryParserError) -> QueryError {
    use QueryParserError as E;
    let (reason, field, hint): (&str, Option<String>, Option<String>) = match &error {
        E::FieldDoesNotExist(field) => (
            "unknown_field",
            Some(field.clone()),
            Some(format!(
                "fields are {}; event attributes are under fields.<attribute>",
                known_fields(index).join(", ")
            )),
        ),
        E::ExpectedFloat(_) | E::ExpectedInt(_) => (
            "not_a_number",
            None,
            Some("metric fields take numbers: temperature_c:[30 TO *]".into()),
        ),
        E::DateFormatError(_) => (
            "not_a_date",
            None,
            // tantivy's dates are nanoseconds in an i64: its parser refuses a valid RFC 3339
            // time beyond them with the same words as a malformed one.
            Some(
                "timestamps are RFC 3339, from 1677-09-21 to 2262-04-11: \
                 timestamp:[2026-11-25T00:00:00Z TO *]"
                    .into(),
            ),
        ),
        E::AllButQueryForbidden => (
            "only_exclusions",
            None,
            Some(
                "add something to match, such as `* -level:info` or `kind:log -level:info`".into(),
            ),
        ),
        E::RangeMustNotHavePhrase => ("range_with_phrase", None, None),
        E::FieldNotIndexed(field) => ("field_not_searchable", Some(field.clone()), None),
        E::FieldDoesNotHavePositionsIndexed(field) => (
            "no_phrases_on_field",
            Some(field.clone()),
            Some("phrases work on message and fields.<attribute>".into()),
        ),
        E::UnsupportedQuery(_) => ("unsupported", None, None),
        _ => ("invalid", None, None),
    };
    let mut detail = json!({"query": q, "reason": reason});
    if let Some(field) = field {
        detail["field"] = field.into();
    }
    if let Some(hint) = hint {
        detail["hint"] = hint.into();
    }
    let error = QueryError {
        message: format!("invalid query: {error}"),
        detail,
    };
    match error.detail["field"].as_str().map(str::to_string) {
        Some(field) => at_field(q, &field, error),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::collector::Count;

    /// The passes after the grammar (tantivy's query building, this module's rewrites,
    /// weights and scorers) at the depth the openings bound allows, should the depth scan
    /// ever misjudge a query: on a thread with half the 2 MiB stack of tokio's threads, in
    /// an unoptimised build of this crate, where frames are largest.
    #[test]
    fn every_pass_survives_the_most_openings_a_query_may_hold() {
        let index = EventIndex::in_ram().unwrap();
        std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || {
                let n = limits::MAX_OPENINGS;
                for q in [
                    format!("{}kind:log{}", "(".repeat(n), ")".repeat(n)),
                    format!("{}fields.region:Dakar{}", "+(".repeat(n), ")".repeat(n)),
                    format!("{}fields.status:[1 TO 2]{}", "(a ".repeat(n), ")".repeat(n)),
                    format!("{}fields.observed_at:*", "NOT ".repeat(n)),
                    format!("{}a", "kind:(".repeat(n)),
                ] {
                    if let Ok(query) = parse_checked(&index, &q) {
                        index.reader.searcher().search(&query, &Count).unwrap();
                    }
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }

    fn syntax(q: &str) -> (String, QueryPosition) {
        let index = EventIndex::in_ram().unwrap();
        let error = parse_query(&index, q)
            .err()
            .unwrap_or_else(|| panic!("{q} parsed"));
        assert_eq!(error.detail["reason"], "syntax", "{q}: {error:?}");
        let position = serde_json::from_value(error.detail["position"].clone()).unwrap();
        (error.message, position)
    }

    #[test]
    fn an_error_about_a_field_says_where_the_query_names_it() {
        let index = EventIndex::in_ram().unwrap();
        for (q, column, says) in [
            ("kind:log AND regoin:Dakar", 14, "regoin"),
            (
                "\"regoin:x\" OR (message:*)",
                16,
                "`message:*` is not supported",
            ),
            (
                "kind:log fields.condition:[clear TO rain]",
                10,
                "fields.condition",
            ),
        ] {
            let error = parse_query(&index, q)
                .err()
                .unwrap_or_else(|| panic!("{q}"));
            assert!(
                error
                    .message
                    .starts_with(&format!("invalid query at column {column}: ")),
                "{q}: {}",
                error.message
            );
            assert!(error.message.contains(says), "{q}: {}", error.message);
            assert_eq!(error.detail["position"]["column"], column, "{q}");
        }
    }

    #[test]
    fn a_syntax_error_says_what_is_wrong_at_which_column() {
        for (q, says, column) in [
            ("(region:Dakar))", "unexpected `)`", 15),
            ("region:Dakar AND (kind:log", "`(` is never closed", 18),
            ("temperature_c:[30 TO", "unfinished range", 21),
            ("region:\"Dak", "never closed", 8),
            ("kind:log AND", "`AND` has nothing after it", 10),
            ("OR kind:log", "`OR` has nothing before it", 1),
            ("a AND OR b", "`OR` right after `AND`", 7),
            // Columns count characters, not bytes.
            ("région:Thiès )", "unexpected `)`", 14),
        ] {
            let (message, position) = syntax(q);
            assert!(
                message.starts_with("query syntax error: "),
                "{q}: {message}"
            );
            assert!(message.contains(says), "{q}: {message}");
            assert!(
                message.ends_with(&format!("at column {column}")),
                "{q}: {message}"
            );
            assert_eq!(position.column, column, "{q}");
            assert_eq!(
                q[position.offset..]
                    .chars()
                    .next()
                    .map(String::from)
                    .unwrap_or_default(),
                position
                    .near
                    .chars()
                    .next()
                    .map(String::from)
                    .unwrap_or_default(),
                "{q}"
            );
            // One line: the message is said once, nothing repeats it.
            assert!(!message.contains('\n'), "{q}: {message}");
        }
    }
}

//! Ranges over an event's attributes: `fields.status:[500 TO 599]`, `fields.attempt:>1`,
//! `fields.fetched_at:[2026-11-25T00:00:00Z TO *]`.
//!
//! tantivy runs a range on a JSON field only when the field is fast, and `fields` is not
//! (a column per attribute path would cost more to index than the rest of the event). Its
//! terms are sorted, though, so a range is a walk over the term dictionary between two terms
//! of the same path and type. An attribute's numbers are indexed under the type their value
//! normalizes to: integers as `i64` (or `u64` above `i64::MAX`) and everything else as `f64`,
//! so a range of numbers is the union of up to three such walks, each with bounds in that
//! type. Times are indexed as dates to the second, and their bounds are cut to the second.

use crate::schema::to_tantivy;
use std::ops::Bound;
use tantivy::query::{BooleanQuery, InvertedIndexRangeQuery, Occur, Query};
use tantivy::query_grammar::UserInputBound;
use tantivy::schema::{Field, DATE_TIME_PRECISION_INDEXED};
use tantivy::{DateTime, Term};

/// What a range bound may be: both bounds of one range are of one kind (or `*`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    Integer(i64),
    Float(f64),
    Time(DateTime),
}

/// Why a range cannot run: its bounds are neither numbers nor RFC 3339 times, or one is a
/// number and the other a time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ranges on attributes take numbers or RFC 3339 times, not {found}")]
pub struct BoundError {
    pub found: String,
}

/// The query for `fields.<path>` within `lower` and `upper`, on the JSON field `fields`.
pub fn query(
    fields: Field,
    path: &str,
    lower: &UserInputBound,
    upper: &UserInputBound,
) -> Result<Box<dyn Query>, BoundError> {
    let lower = bound(lower)?;
    let upper = bound(upper)?;
    let base = Term::from_field_json_path(fields, path, true);
    let walk = |lower: Bound<Term>, upper: Bound<Term>| -> Box<dyn Query> {
        Box::new(InvertedIndexRangeQuery::new(lower, upper))
    };
    let term = |value: Value| {
        let mut term = base.clone();
        match value {
            Value::Integer(v) => term.append_type_and_fast_value(v),
            Value::Float(v) => term.append_type_and_fast_value(v),
            Value::Time(v) => term.append_type_and_fast_value(v),
        }
        term
    };
    match (is_time(&lower), is_time(&upper)) {
        (Some(a), Some(b)) if a != b => {
            return Err(BoundError {
                found: "a number and a time in one range".into(),
            })
        }
        (Some(true), _) | (_, Some(true)) => {
            let lower = or_else(lower, Value::Time(DateTime::MIN));
            let upper = or_else(upper, Value::Time(DateTime::MAX));
            return Ok(walk(lower.map(term), upper.map(term)));
        }
        _ => {}
    }
    // Each type's walk only meets that type's values: integers are never `f64` terms, so the
    // float walk may keep the bounds as written, and the integer walk rounds them inward.
    let mut walks = vec![
        walk(
            integer_lower(&lower).map(|v| term(Value::Integer(v))),
            integer_upper(&upper).map(|v| term(Value::Integer(v))),
        ),
        walk(
            or_else(lower.map(as_float), Value::Float(f64::NEG_INFINITY)).map(term),
            or_else(upper.map(as_float), Value::Float(f64::INFINITY)).map(term),
        ),
    ];
    if let Some((low, high)) = beyond_i64(&lower, &upper) {
        let term = |v: u64| {
            let mut term = base.clone();
            term.append_type_and_fast_value(v);
            term
        };
        walks.push(walk(low.map(term), high.map(term)));
    }
    Ok(Box::new(BooleanQuery::new(
        walks.into_iter().map(|w| (Occur::Should, w)).collect(),
    )))
}

fn bound(bound: &UserInputBound) -> Result<Bound<Value>, BoundError> {
    Ok(match bound {
        UserInputBound::Inclusive(text) => Bound::Included(value(text)?),
        UserInputBound::Exclusive(text) => Bound::Excluded(value(text)?),
        UserInputBound::Unbounded => Bound::Unbounded,
    })
}

fn value(text: &str) -> Result<Value, BoundError> {
    if let Ok(v) = text.parse::<i64>() {
        return Ok(Value::Integer(v));
    }
    match text.parse::<f64>() {
        Ok(v) if !v.is_nan() => return Ok(Value::Float(v)),
        _ => {}
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|at| {
            Value::Time(
                to_tantivy(at.with_timezone(&chrono::Utc)).truncate(DATE_TIME_PRECISION_INDEXED),
            )
        })
        .map_err(|_| BoundError {
            found: format!("{text:?}"),
        })
}

/// Whether a bound is a time (`None` for `*`).
fn is_time(bound: &Bound<Value>) -> Option<bool> {
    match bound {
        Bound::Included(v) | Bound::Excluded(v) => Some(matches!(v, Value::Time(_))),
        Bound::Unbounded => None,
    }
}

fn or_else(bound: Bound<Value>, unbounded: Value) -> Bound<Value> {
    match bound {
        Bound::Unbounded => Bound::Included(unbounded),
        bound => bound,
    }
}

fn as_float(value: Value) -> Value {
    match value {
        Value::Integer(v) => Value::Float(v as f64),
        other => other,
    }
}

/// 2^63: the first number above every `i64`.
const BEYOND_I64: f64 = 9_223_372_036_854_775_808.0;

/// The lower bound of the integer walk: a fraction rounds up (`> 2.5` is `>= 3`).
fn integer_lower(bound: &Bound<Value>) -> Bound<i64> {
    match *bound {
        Bound::Included(Value::Integer(v)) => Bound::Included(v),
        Bound::Excluded(Value::Integer(v)) => Bound::Excluded(v),
        Bound::Included(Value::Float(v)) | Bound::Excluded(Value::Float(v)) => {
            if v >= BEYOND_I64 {
                // Above every i64: nothing.
                Bound::Excluded(i64::MAX)
            } else if v < -BEYOND_I64 {
                Bound::Included(i64::MIN)
            } else if v.fract() != 0.0 {
                Bound::Included(v.ceil() as i64)
            } else {
                same_side(bound, v as i64)
            }
        }
        _ => Bound::Included(i64::MIN),
    }
}

/// The upper bound of the integer walk: a fraction rounds down (`< 2.5` is `<= 2`).
fn integer_upper(bound: &Bound<Value>) -> Bound<i64> {
    match *bound {
        Bound::Included(Value::Integer(v)) => Bound::Included(v),
        Bound::Excluded(Value::Integer(v)) => Bound::Excluded(v),
        Bound::Included(Value::Float(v)) | Bound::Excluded(Value::Float(v)) => {
            if v < -BEYOND_I64 {
                // Below every i64: nothing.
                Bound::Excluded(i64::MIN)
            } else if v >= BEYOND_I64 {
                Bound::Included(i64::MAX)
            } else if v.fract() != 0.0 {
                Bound::Included(v.floor() as i64)
            } else {
                same_side(bound, v as i64)
            }
        }
        _ => Bound::Included(i64::MAX),
    }
}

/// `value`, included or excluded as `bound` is.
fn same_side(bound: &Bound<Value>, value: i64) -> Bound<i64> {
    match bound {
        Bound::Excluded(_) => Bound::Excluded(value),
        _ => Bound::Included(value),
    }
}

/// The `u64` walk, for integers above `i64::MAX` (only those are indexed as `u64`), when the
/// range reaches that far.
fn beyond_i64(lower: &Bound<Value>, upper: &Bound<Value>) -> Option<(Bound<u64>, Bound<u64>)> {
    // Floats this large are whole numbers; `as` saturates at u64::MAX.
    let high = match *upper {
        Bound::Unbounded => Bound::Included(u64::MAX),
        Bound::Included(Value::Float(v)) if v >= BEYOND_I64 => Bound::Included(v as u64),
        Bound::Excluded(Value::Float(v)) if v > BEYOND_I64 => Bound::Excluded(v as u64),
        _ => return None,
    };
    let low = match *lower {
        Bound::Included(Value::Float(v)) if v > BEYOND_I64 => Bound::Included(v as u64),
        Bound::Excluded(Value::Float(v)) if v >= BEYOND_I64 => Bound::Excluded(v as u64),
        _ => Bound::Included(BEYOND_I64 as u64),
    };
    Some((low, high))
}

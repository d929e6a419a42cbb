//! The one way every windsock API reads its parameters.
//!
//! - [`Params<T>`]: the query string into a typed struct (derive `Deserialize` and
//!   `utoipa::IntoParams`). A missing, repeated, unknown (with `deny_unknown_fields`) or
//!   malformed parameter is a JSON 400 that names it: `invalid query parameter `limit`:
//!   invalid digit found in string`. Bound what a parameter may be in the handler (or in a
//!   `deserialize_with`) before using it.
//! - [`Body<T>`]: a JSON body, with axum's rejections mapped to the same error shape (413 over
//!   the size limit, 415 without a JSON content type, 400 otherwise).

use super::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// Typed query parameters; see the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned> Params<T> {
    /// Reads `query` (the part of a URI after `?`, without it).
    pub fn parse(query: &str) -> Result<T, ApiError> {
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let mut parameter = err.path().to_string();
            let inner = err.into_inner().to_string();
            if parameter.is_empty() || parameter == "." {
                // serde refuses a repeated, unknown or missing field before it reaches a
                // value, so the path is empty: the name is only in serde's message.
                parameter = named_field(&inner).unwrap_or_default();
            }
            if parameter.is_empty() {
                ApiError::bad_request(format!("invalid query string: {inner}"))
            } else {
                ApiError::bad_request(format!("invalid query parameter `{parameter}`: {inner}"))
                    .with_detail(serde_json::json!({ "parameter": parameter }))
            }
        })
    }
}

/// The field serde's own errors name: "duplicate field `q`", "unknown field `qq`, expected
/// ...", "missing field `id`".
fn named_field(message: &str) -> Option<String> {
    ["duplicate field `", "unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_string())
        .filter(|name| !name.is_empty())
}

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::parse(parts.uri.query().unwrap_or_default()).map(Params)
    }
}

/// A JSON request body; see the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Body<T>(pub T);

impl<T, S> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Body(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Search {
        q: Option<String>,
        limit: Option<u32>,
    }

    #[test]
    fn a_bad_parameter_is_named() {
        let err = Params::<Search>::parse("q=a&limit=ten").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message().contains("`limit`"), "{}", err.message());
        assert_eq!(err.body.detail.unwrap()["parameter"], "limit");
    }

    #[test]
    fn repeated_and_unknown_parameters_are_400s() {
        let repeated = Params::<Search>::parse("q=a&q=b").unwrap_err();
        assert!(
            repeated.message().contains("duplicate field `q`"),
            "{}",
            repeated.message()
        );
        assert_eq!(repeated.body.detail.unwrap()["parameter"], "q");
        let unknown = Params::<Search>::parse("qq=a").unwrap_err();
        assert!(
            unknown.message().contains("unknown field `qq`"),
            "{}",
            unknown.message()
        );
        assert_eq!(unknown.body.detail.unwrap()["parameter"], "qq");
    }

    #[test]
    fn good_parameters_are_read() {
        assert_eq!(
            Params::<Search>::parse("q=region%3ADakar&limit=5").unwrap(),
            Search {
                q: Some("region:Dakar".into()),
                limit: Some(5)
            }
        );
        assert_eq!(
            Params::<Search>::parse("").unwrap(),
            Search {
                q: None,
                limit: None
            }
        );
    }
}

//! The one check of changing requests: `Authorization: Bearer <token>` when `http.api_token`
//! is set. Every service's writing routes call it, so the rule is the same everywhere.

use super::ApiError;
use crate::config::HttpConfig;
use axum::http::{header, HeaderMap};
use subtle::ConstantTimeEq;

/// Ok when no token is configured, or when the request carries it; else a 401. The comparison
/// takes the same time whatever the token given (it must not tell how much of it was right).
pub fn authorize(http: &HttpConfig, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = http.api_token.as_ref().filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use axum::http::HeaderValue;

    fn with(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn without_a_token_configured_everything_passes() {
        let http = HttpConfig::default();
        assert!(authorize(&http, &with(None)).is_ok());
        assert!(authorize(&http, &with(Some("Bearer anything"))).is_ok());
    }

    #[test]
    fn with_a_token_only_the_bearer_of_it_passes() {
        let http = HttpConfig {
            api_token: Some(Secret::new("s3cret")),
            ..HttpConfig::default()
        };
        assert!(authorize(&http, &with(Some("Bearer s3cret"))).is_ok());
        for wrong in [
            None,
            Some("Bearer s3cre"),
            Some("s3cret"),
            Some("Bearer s3cret2"),
        ] {
            let err = authorize(&http, &with(wrong)).unwrap_err();
            assert_eq!(
                err.status,
                axum::http::StatusCode::UNAUTHORIZED,
                "{wrong:?}"
            );
        }
    }
}

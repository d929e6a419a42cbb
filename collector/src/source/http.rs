//! The HTTP side of the API sources: one GET that yields a decoded body or a [`FetchError`]
//! saying what went wrong, with no URL (and so no key) in it.

use super::{FetchError, SourceError};
use serde::de::DeserializeOwned;
use std::time::{Duration, SystemTime};

/// The longest slice of an unrecognised error body kept in an error message.
const BODY_EXCERPT: usize = 200;

pub(crate) struct Http {
    client: reqwest::Client,
    timeout: Duration,
}

impl Http {
    pub(crate) fn new(timeout: Duration) -> Result<Self, SourceError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("windsock/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| SourceError::Client(err.without_url().to_string()))?;
        Ok(Self { client, timeout })
    }

    /// GETs `url` and decodes a success body as `T`. `api_error` reads the API's own error
    /// shape from a body, so its message (rather than raw JSON) ends up in the error.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        url: &url::Url,
        api_error: fn(&[u8]) -> Option<ApiError>,
    ) -> Result<T, FetchError> {
        let response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| self.request_error(e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            // Against the wall clock, not the service's: the wait is slept in real time.
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = response.bytes().await.map_err(|e| self.request_error(e))?;
        let message = || match api_error(&body) {
            Some(err) => err.message,
            None => excerpt(&body),
        };
        if status.as_u16() == 429 {
            return Err(FetchError::RateLimited {
                retry_after,
                message: message(),
            });
        }
        if !status.is_success() {
            return Err(FetchError::Api {
                status: status.as_u16(),
                message: message(),
            });
        }
        serde_json::from_slice(&body).map_err(|err| match api_error(&body) {
            // Some APIs answer an error with 200 and an error body: believe the body.
            Some(ApiError {
                status: Some(status),
                message,
            }) if status != 200 => FetchError::Api { status, message },
            _ => FetchError::Malformed(format!("{err} (body starts: {})", excerpt(&body))),
        })
    }

    fn request_error(&self, err: reqwest::Error) -> FetchError {
        if err.is_timeout() {
            return FetchError::Timeout(self.timeout);
        }
        // reqwest's errors carry the URL, key and all: drop it before it goes anywhere.
        let err = err.without_url();
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        FetchError::Request(message)
    }
}

/// An API's own error body, decoded.
pub(crate) struct ApiError {
    pub status: Option<u16>,
    pub message: String,
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    let mut cut: String = text.chars().take(BODY_EXCERPT).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// `Retry-After` as a wait: either delay-seconds or an HTTP date (RFC 9110 §10.2.3).
/// A date in the past means no wait. One parser for every windsock client (core's).
pub use windsock_core::http::retry_after as parse_retry_after;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_784_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn long_bodies_are_cut() {
        let long = "x".repeat(1000);
        assert_eq!(excerpt(long.as_bytes()).chars().count(), BODY_EXCERPT + 1);
        assert_eq!(excerpt(b"  "), "(empty body)");
    }
}

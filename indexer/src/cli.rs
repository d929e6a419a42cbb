//! `windsock search QUERY --from now-1h`: the search API, printed as a table for people who
//! live in a terminal. Given several URLs (the indexer's replicas), the first that answers
//! does.

use crate::api::SearchResponse;
use crate::search::Hit;
use serde_json::Value;
use std::time::Duration;
use windsock_core::secret::redact_url;

/// The arguments of `windsock search`.
#[derive(Clone, Debug, clap::Args)]
pub struct SearchArgs {
    /// The query, in tantivy's query language: `region:Dakar AND temperature_c:[30 TO *]`.
    #[arg(default_value = "*")]
    pub query: String,
    /// Start of the time range: RFC 3339 or relative (now-15m, now-24h, now-7d).
    #[arg(long, default_value = "now-1h")]
    pub from: String,
    /// End of the time range.
    #[arg(long, default_value = "now")]
    pub to: String,
    /// The most hits to print.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No URL answered (each with why, its credentials redacted).
    #[error("cannot reach the search API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The API refused the search (a malformed query or time): its message and where.
    #[error("{message}{}", .detail.as_ref().map(|d| format!("\n{d}")).unwrap_or_default())]
    Refused {
        status: u16,
        message: String,
        detail: Option<String>,
    },
    #[error("unexpected answer from the search API: {0}")]
    Unexpected(String),
}

/// The longest a search may take at one replica before the next one is asked.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait for a connection to one replica (a host that is gone does not refuse).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the search against `base_url` (such as `http://127.0.0.1:8080`) and returns the text
/// to print.
pub async fn search(base_url: &str, args: SearchArgs) -> Result<String, CliError> {
    search_replicas(&[base_url.to_string()], args).await
}

/// Runs the search against the first of `base_urls` (the indexer's replicas) that answers:
/// one that cannot be reached, times out or answers 5xx is passed over for the next; a 4xx
/// (a malformed query) is the answer. When none answers, the error names each (redacted)
/// with why.
pub async fn search_replicas(base_urls: &[String], args: SearchArgs) -> Result<String, CliError> {
    let query = [
        ("q", args.query),
        ("from", args.from),
        ("to", args.to),
        ("limit", args.limit.to_string()),
    ];
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| CliError::Unexpected(e.without_url().to_string()))?;
    let mut failures: Vec<(String, String)> = Vec::new();
    for base in base_urls {
        let url = format!("{}/api/search", base.trim().trim_end_matches('/'));
        match ask(&client, &url, &query).await {
            Ok(answer) => return Ok(render(&answer)),
            Err(Attempt::Failed(reason)) => failures.push((redact_url(&url), reason)),
            Err(Attempt::Answered(err)) => return Err(err),
        }
    }
    Err(match failures.as_slice() {
        [(url, reason)] => CliError::Unreachable {
            url: url.clone(),
            reason: reason.clone(),
        },
        [] => CliError::Unexpected("no indexer URL given".into()),
        several => CliError::Unreachable {
            url: format!("any of its {} URLs", several.len()),
            reason: several
                .iter()
                .map(|(url, reason)| format!("\n  {url}: {reason}"))
                .collect(),
        },
    })
}

/// What went wrong, with its causes (`error sending request` alone does not say that the
/// connection was refused), and without the URL (it may carry credentials; the error message
/// names it redacted).
fn reason(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut reason = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(error) = cause {
        let text = error.to_string();
        if !reason.ends_with(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        cause = error.source();
    }
    reason
}

/// How one replica's attempt ended, when it gave no hits.
enum Attempt {
    /// No answer, or a 5xx: the next replica may do better.
    Failed(String),
    /// The answer (a refusal, say): the same at every replica.
    Answered(CliError),
}

async fn ask(
    client: &reqwest::Client,
    url: &str,
    query: &[(&str, String)],
) -> Result<SearchResponse, Attempt> {
    let failed = |e: reqwest::Error| Attempt::Failed(reason(e));
    let response = client.get(url).query(query).send().await.map_err(failed)?;
    let status = response.status();
    let text = response.text().await.map_err(failed)?;
    let body: Result<Value, _> = serde_json::from_str(&text);
    if status.is_server_error() {
        let message = body
            .ok()
            .and_then(|b| b["error"].as_str().map(str::to_string));
        return Err(Attempt::Failed(format!(
            "{status}{}",
            message.map(|m| format!(": {m}")).unwrap_or_default()
        )));
    }
    let body = body.map_err(|e| Attempt::Answered(CliError::Unexpected(e.to_string())))?;
    if !status.is_success() {
        return Err(Attempt::Answered(CliError::Refused {
            status: status.as_u16(),
            message: body["error"]
                .as_str()
                .unwrap_or("search failed")
                .to_string(),
            detail: body.get("detail").map(describe_detail),
        }));
    }
    serde_json::from_value(body).map_err(|e| Attempt::Answered(CliError::Unexpected(e.to_string())))
}

/// An error's detail as `key: value` lines.
fn describe_detail(detail: &Value) -> String {
    match detail {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                format!(
                    "  {k}: {}",
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => format!("  {other}"),
    }
}

/// The hits as a table (time, kind, region, level, message), then the total and time taken.
pub fn render(answer: &SearchResponse) -> String {
    let header = ["TIME", "KIND", "REGION", "LEVEL", "MESSAGE"];
    let rows: Vec<[String; 5]> = answer.results.hits.iter().map(row).collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == 4 {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = vec![line(header)];
    out.extend(
        rows.iter()
            .map(|r| line([&r[0], &r[1], &r[2], &r[3], &r[4]])),
    );
    let shown = answer.results.hits.len();
    let mut footer = format!(
        "{} hits ({} shown) from {} to {}, took {:.1} ms",
        answer.results.total,
        shown,
        answer
            .from
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        answer.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        answer.took_ms
    );
    if let Some(clamped) = &answer.limit_clamped {
        footer.push_str(&format!(
            " (limit {} lowered to the maximum {})",
            clamped.requested, clamped.max
        ));
    }
    out.push(String::new());
    out.push(footer);
    out.join("\n") + "\n"
}

fn row(hit: &Hit) -> [String; 5] {
    [
        hit.timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        hit.kind.clone(),
        hit.region.clone().unwrap_or_else(|| "-".into()),
        hit.level.clone(),
        hit.message.replace('\n', " "),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    /// A fake indexer answering every request with `status` and an error body, counting them.
    async fn answering(
        status: StatusCode,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = seen.clone();
        let app = axum::Router::new().fallback(move || {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                let body =
                    serde_json::json!({"error": "query syntax error", "detail": {"position": 7}});
                (status, axum::Json(body)).into_response()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, seen)
    }

    fn closed_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://reader:hunter2@{}", listener.local_addr().unwrap())
    }

    fn args() -> SearchArgs {
        SearchArgs {
            query: "*".into(),
            from: "now-1h".into(),
            to: "now".into(),
            limit: 5,
        }
    }

    #[tokio::test]
    async fn replicas_that_fail_are_passed_over_and_a_refusal_is_the_answer() {
        let (failing, failing_seen) = answering(StatusCode::INTERNAL_SERVER_ERROR).await;
        let (refusing, _) = answering(StatusCode::BAD_REQUEST).await;
        let (after, after_seen) = answering(StatusCode::INTERNAL_SERVER_ERROR).await;

        // Down, then 5xx, then a 400: the 400 is the answer; the one after is not asked.
        let urls = [closed_url(), failing.clone(), refusing, after];
        let err = search_replicas(&urls, args()).await.unwrap_err();
        assert!(
            matches!(&err, CliError::Refused { status: 400, message, .. } if message == "query syntax error"),
            "{err}"
        );
        assert_eq!(failing_seen.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(after_seen.load(std::sync::atomic::Ordering::SeqCst), 0);

        // None answers: each is named (without credentials) with why.
        let err = search_replicas(&[closed_url(), failing], args())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("cannot reach the search API at any of its 2 URLs"),
            "{text}"
        );
        assert!(
            text.contains("500 Internal Server Error: query syntax error"),
            "{text}"
        );
        assert!(text.contains("[redacted]@127.0.0.1"), "{text}");
        assert!(text.contains("Connection refused"), "says why: {text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}

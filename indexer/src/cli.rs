//! `windsock search QUERY --from now-1h`: the search API, printed as a table for people who
//! live in a terminal.

use crate::api::SearchResponse;
use crate::search::Hit;
use serde_json::Value;

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

/// Runs the search against `base_url` (such as `http://127.0.0.1:8080`) and returns the text
/// to print.
pub async fn search(base_url: &str, args: SearchArgs) -> Result<String, CliError> {
    let url = format!("{}/api/search", base_url.trim_end_matches('/'));
    let query = [
        ("q", args.query),
        ("from", args.from),
        ("to", args.to),
        ("limit", args.limit.to_string()),
    ];
    let unreachable = |e: reqwest::Error| CliError::Unreachable {
        url: url.clone(),
        reason: e.without_url().to_string(),
    };
    let response = reqwest::Client::new()
        .get(&url)
        .query(&query)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| CliError::Unexpected(e.without_url().to_string()))?;
    if !status.is_success() {
        return Err(CliError::Refused {
            status: status.as_u16(),
            message: body["error"]
                .as_str()
                .unwrap_or("search failed")
                .to_string(),
            detail: body.get("detail").map(describe_detail),
        });
    }
    let answer: SearchResponse =
        serde_json::from_value(body).map_err(|e| CliError::Unexpected(e.to_string()))?;
    Ok(render(&answer))
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

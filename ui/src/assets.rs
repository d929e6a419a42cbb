//! The UI's files, embedded in the binary, and how they are served.
//!
//! Assets live under `/assets/<version>/<file>`, where the version is a hash of every
//! embedded file: a page always loads the scripts it was built with, the browser may cache
//! them forever (`immutable`), and the ES modules' relative imports (`./dom.js`) resolve to
//! the same version without any build step. The page itself is never cached without
//! revalidation, so a new binary is picked up on the next load.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! embed {
    ($($name:literal),* $(,)?) => {
        &[$(Asset { name: $name, bytes: include_bytes!(concat!("../assets/", $name)) }),*]
    };
}

/// Every file under `/assets/<version>/`.
pub static ASSETS: &[Asset] = embed![
    "app.css",
    "main.js",
    "dom.js",
    "api.js",
    "time.js",
    "charts.js",
    "search.js",
    "aggregate.js",
    "fields.js",
    "saved.js",
    "alert_rule.js",
    "daily.js",
    "regions.js",
    "alerts.js",
    "health.js",
    "apidocs.js",
    "overview.js",
    "alert.js",
    "map.js",
    "world.js",
    "favicon.svg",
];

/// The page shell; `{{title}}`, `{{version}}`, `{{live_interval}}` and `{{result_window}}` are
/// filled in once at start.
const INDEX_TEMPLATE: &str = include_str!("../assets/index.html");

/// The hash of every embedded file and the page template, as 16 hex digits.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut hasher = blake3::Hasher::new();
        hasher.update(INDEX_TEMPLATE.as_bytes());
        for asset in ASSETS {
            hasher.update(asset.name.as_bytes());
            hasher.update(&(asset.bytes.len() as u64).to_le_bytes());
            hasher.update(asset.bytes);
        }
        hasher.finalize().to_hex()[..16].to_string()
    })
}

pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The content type of an embedded file, from its extension.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// The page shell with the title (HTML-escaped), the asset version, the live-mode refresh
/// interval and the search API's result window (`indexer.max_result_window`: where the search
/// page stops paging by offset) filled in.
pub fn render_index(title: &str, live_interval_secs: u64, result_window: usize) -> String {
    INDEX_TEMPLATE
        .replace("{{title}}", &escape_html(title))
        .replace("{{version}}", version())
        .replace("{{live_interval}}", &live_interval_secs.to_string())
        .replace("{{result_window}}", &result_window.to_string())
}

pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How long the browser may keep a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// Versioned assets: the URL changes whenever the content does.
    Immutable,
    /// The page, and assets asked for under an old version: revalidate every time.
    Revalidate,
}

/// A response for embedded bytes, with content type, ETag and cache headers; 304 when the
/// request already holds this exact content.
pub fn respond(
    request_headers: &HeaderMap,
    content_type: &'static str,
    body: impl Into<bytes::Bytes>,
    caching: Caching,
) -> Response {
    let body: bytes::Bytes = body.into();
    // Weak: the same content may leave gzipped or not, byte-different but equivalent.
    let etag = format!("W/\"{}\"", &blake3::hash(&body).to_hex()[..20]);
    let cache_control = match caching {
        Caching::Immutable => "public, max-age=31536000, immutable",
        Caching::Revalidate => "no-cache",
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex is a valid header"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    security_headers(&mut headers);
    let fresh = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (headers, body).into_response()
}

/// Defence in depth beside escaping every piece of data: scripts only from this origin,
/// no inline script, no framing, no sniffing.
fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_known_content_type_and_is_not_empty() {
        for asset in ASSETS {
            assert_ne!(
                content_type(asset.name),
                "application/octet-stream",
                "{}",
                asset.name
            );
            assert!(!asset.bytes.is_empty(), "{} is empty", asset.name);
        }
        assert_eq!(content_type("main.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("app.css"), "text/css; charset=utf-8");
    }

    #[test]
    fn the_index_references_versioned_assets_and_escapes_the_title() {
        let page = render_index("<b>ops & co</b>", 7, 250);
        assert!(
            page.contains("name=\"windsock-live-interval\" content=\"7\""),
            "the live interval is in the page"
        );
        assert!(
            page.contains("name=\"windsock-result-window\" content=\"250\""),
            "the result window is in the page"
        );
        assert!(page.contains("&lt;b&gt;ops &amp; co&lt;/b&gt;"), "{page}");
        assert!(!page.contains("<b>ops"));
        assert!(page.contains(&format!("/assets/{}/main.js", version())));
        assert!(!page.contains("{{"), "every placeholder is filled");
        assert_eq!(version().len(), 16);
    }

    #[test]
    fn module_imports_only_name_embedded_files() {
        // A typo in an import would only show in a browser; catch it here.
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).unwrap();
            for line in text
                .lines()
                .filter(|l| l.trim_start().starts_with("import "))
            {
                let target = line.rsplit("from").next().unwrap();
                let target = target
                    .trim()
                    .trim_end_matches(';')
                    .trim_matches(|c| c == '"' || c == '\'');
                let name = target
                    .strip_prefix("./")
                    .unwrap_or_else(|| panic!("{}: relative imports only: {line}", asset.name));
                assert!(
                    find(name).is_some(),
                    "{} imports {name}, which is not embedded",
                    asset.name
                );
            }
        }
    }

    #[test]
    fn no_script_guesses_between_field_names() {
        // The UI reads the API's documented field names (/api/openapi.json), once each: a
        // chain like `b.start ?? b.key` hides a renamed field instead of failing on it. A
        // `??` that gives a real default (`x.y ?? ""`, `?? 0`) is fine.
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).unwrap();
            let found = field_fallbacks(text);
            assert!(
                found.is_empty(),
                "{} tries several field names for one value: {found:?}",
                asset.name
            );
        }
    }

    #[test]
    fn the_fallback_check_finds_chains_and_lets_defaults_through() {
        for chain in [
            "b.start ?? b.key",
            "x = silence.status ?? silence.state ?? \"active\";",
            "f(r.name??r.rule)",
            "a.b ?? (hit.event || {}).level",
            "hit[name] ?? event[name]",
            "a.b ?? c?.d",
        ] {
            assert_eq!(field_fallbacks(chain).len(), 1, "{chain}");
        }
        for default in [
            "x.y ?? \"\"",
            "String(alert.state ?? \"?\")",
            "p.count ?? 0",
            "state.limit ?? PAGE_SIZE",
            "v ?? other.field",
            "// a comment: a.b ?? c.d is what not to write",
        ] {
            assert_eq!(field_fallbacks(default), Vec::<String>::new(), "{default}");
        }
    }

    #[test]
    fn no_script_writes_markup_from_strings() {
        // Every piece of data reaches the page through textContent or attributes set one by
        // one; markup parsing from strings is where injection starts, so none is allowed.
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).unwrap();
            for forbidden in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!text.contains(forbidden), "{} uses {forbidden}", asset.name);
            }
        }
    }

    /// Every `??` between two field reads in `text` (`a.b ?? c.d`, `a[k] ?? (c.d || e)`),
    /// outside `//` comments, as the line it is on.
    fn field_fallbacks(text: &str) -> Vec<String> {
        let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
        let mut found = Vec::new();
        for line in text.lines() {
            let code = line.split(" //").next().unwrap_or(line);
            if code.trim_start().starts_with("//") {
                continue;
            }
            let mut rest = code;
            while let Some(at) = rest.find("??") {
                let (left, right) = (rest[..at].trim_end(), &rest[at + 2..]);
                // Left: `.name` or `[...]` just before the `??`.
                let name_start = left.trim_end_matches(ident);
                let left_is_field = left.ends_with(']')
                    || (name_start.len() < left.len() && name_start.ends_with('.'));
                // Right: an identifier (possibly in parentheses) followed by `.`, `?.` or `[`.
                let right = right.trim_start().trim_start_matches('(').trim_start();
                let after_name = right.trim_start_matches(ident);
                let right_is_field = after_name.len() < right.len()
                    && !right.starts_with(|c: char| c.is_ascii_digit())
                    && {
                        let next = after_name.trim_start();
                        next.starts_with('.') || next.starts_with('[') || next.starts_with("?.")
                    };
                if left_is_field && right_is_field {
                    found.push(line.trim().to_string());
                    break;
                }
                rest = &rest[at + 2..];
            }
        }
        found
    }
}

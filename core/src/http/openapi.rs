//! The one OpenAPI document of a windsock process, and the route that serves it.
//!
//! Each service crate describes its own routes with utoipa, from the handlers it really
//! mounts (`pub fn openapi()`); [`document`] merges those parts with the base routes
//! ([`super::base_openapi`]) and this route into one OpenAPI 3.1 document, which
//! [`openapi_routes`] serves at `GET /api/openapi.json`. The binary merges exactly the parts
//! of the services it runs (or, for `windsock ui`, proxies to), so the document describes
//! what the process answers, no more.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::BTreeSet;
use std::sync::Arc;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
pub use utoipa::openapi::OpenApi;
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApiBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The name of the security scheme of changing routes (`Authorization: Bearer <token>` when
/// `http.api_token` is set): `security(("bearer" = []))` in a `#[utoipa::path]`.
pub const BEARER: &str = "bearer";

/// Where the document is served.
pub const PATH: &str = "/api/openapi.json";

/// Each tag the services use, with what it groups. The document lists those its operations
/// use, in this order.
const TAGS: &[(&str, &str)] = &[
    (
        "indexer",
        "Search every event (observations, the pipeline's logs, forecasts, alerts, dead \
         letters), an event and its neighbours, each region's last observation.",
    ),
    (
        "forecaster",
        "Per-region temperature forecasts, their backtest, and `/predict`, the drop-in for \
         the FastAPI/Prophet service.",
    ),
    (
        "alerter",
        "Alerts, their history, silences, rules and Slack deliveries.",
    ),
    (
        "collector",
        "The collector's rounds and each region's last fetch.",
    ),
    ("ui", "What the web UI reads besides the services' APIs."),
    (
        "windsock",
        "What every windsock process serves: health, Prometheus metrics, this document.",
    ),
];

const DESCRIPTION: &str = "Weather observability and alerting: search, forecasts, alerts.\n\n\
Every error, from any route and at any status, is `{\"error\": \"<what is wrong>\", \
\"detail\": {...}}` (the `ErrorBody` schema): `detail`, when present, has particulars a \
program can use (the parameter, the value, the limit).\n\n\
Routes that change state need `Authorization: Bearer <token>` when the process has \
`http.api_token` (`WINDSOCK_API_TOKEN`) set; reads never do.";

/// The merged document: the base routes' part, each of `parts`, and the document's own
/// route, with windsock's title, version, description, tags and bearer security scheme.
///
/// Parts are merged in order; a path, method or schema name that two parts both define
/// keeps the first (see [`conflicts`], which the binary's tests run over every service).
pub fn document(parts: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    let mut merged = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("windsock")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION))
                .build(),
        )
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(BEARER, bearer_scheme())
                .build(),
        ))
        .build();
    merged.merge(super::base_openapi());
    merged.merge(router().split_for_parts().1);
    for part in parts {
        merged.merge(part);
    }
    let used = used_tags(&merged);
    let mut tags: Vec<_> = TAGS
        .iter()
        .filter(|(name, _)| used.contains(*name))
        .map(|(name, description)| {
            TagBuilder::new()
                .name(*name)
                .description(Some(*description))
                .build()
        })
        .collect();
    // A tag a part uses that is not known here keeps the part's own description, if any.
    let known = |name: &str| TAGS.iter().any(|(known, _)| *known == name);
    let described = merged.tags.take().unwrap_or_default();
    for name in used.iter().filter(|name| !known(name)) {
        let tag = described.iter().find(|t| &t.name == name).cloned();
        tags.push(tag.unwrap_or_else(|| TagBuilder::new().name(name).build()));
    }
    merged.tags = (!tags.is_empty()).then_some(tags);
    merged
}

/// What merging `parts` would silently drop or make invalid: an operation (method and path)
/// two parts define, a schema name two parts define differently, an `operationId` (a
/// handler's name, which OpenAPI wants unique) two parts use. Empty when the parts fit.
pub fn conflicts(parts: &[OpenApi]) -> Vec<String> {
    let mut found = Vec::new();
    for (i, later) in parts.iter().enumerate() {
        for earlier in &parts[..i] {
            for (path, item) in &later.paths.paths {
                let Some(other) = earlier.paths.paths.get(path) else {
                    continue;
                };
                let (a, b) = (json(item), json(other));
                for method in METHODS {
                    if a.get(method).is_some() && b.get(method).is_some() {
                        found.push(format!("{} {path} is defined twice", method.to_uppercase()));
                    }
                }
            }
            let earlier_ids = operation_ids(earlier);
            for id in operation_ids(later) {
                if earlier_ids.contains(&id) {
                    found.push(format!("operationId `{id}` is used twice"));
                }
            }
            let schemas = |doc: &OpenApi| doc.components.as_ref().map(|c| c.schemas.clone());
            if let (Some(later), Some(earlier)) = (schemas(later), schemas(earlier)) {
                for (name, schema) in &later {
                    if earlier
                        .get(name)
                        .is_some_and(|other| json(other) != json(schema))
                    {
                        found.push(format!("schema `{name}` is defined twice, differently"));
                    }
                }
            }
        }
    }
    found
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

fn operation_ids(doc: &OpenApi) -> BTreeSet<String> {
    let paths = json(&doc.paths);
    let items = paths.as_object().into_iter().flat_map(|p| p.values());
    items
        .flat_map(|item| METHODS.iter().filter_map(move |m| item.get(m)))
        .filter_map(|operation| operation["operationId"].as_str().map(String::from))
        .collect()
}

fn bearer_scheme() -> SecurityScheme {
    let mut http = Http::new(HttpAuthScheme::Bearer);
    http.description = Some(
        "The value of `http.api_token` (`WINDSOCK_API_TOKEN`). Needed by routes that change \
         state, and only when the process has a token set."
            .to_string(),
    );
    SecurityScheme::Http(http)
}

fn used_tags(doc: &OpenApi) -> BTreeSet<String> {
    let paths = json(&doc.paths);
    let mut used = BTreeSet::new();
    for item in paths.as_object().into_iter().flat_map(|p| p.values()) {
        for method in METHODS {
            let tags = item.get(method).and_then(|op| op.get("tags"));
            for tag in tags.and_then(|t| t.as_array()).into_iter().flatten() {
                if let Some(tag) = tag.as_str() {
                    used.insert(tag.to_string());
                }
            }
        }
    }
    used
}

/// `GET /api/openapi.json`, answering `document` (serialised once, here).
pub fn openapi_routes(document: OpenApi) -> Router {
    // The document is plain data; failing to serialise it would be a bug in a schema, which
    // the route then reports as a 500 rather than taking the process down.
    let body = serde_json::to_vec(&document).map_err(|err| err.to_string());
    let (routes, _) = router().split_for_parts();
    routes.with_state(Arc::new(body))
}

type Document = Arc<Result<Vec<u8>, String>>;

fn router() -> OpenApiRouter<Document> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// This document: every route this process serves, OpenAPI 3.1.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    responses(
        (
            status = 200,
            description = "The OpenAPI 3.1 document of every route this process serves",
            body = Object,
            content_type = "application/json",
        ),
        (status = 500, description = "The document could not be built", body = super::ErrorBody),
    ),
    tag = "windsock",
)]
async fn openapi_json(State(document): State<Document>) -> Response {
    match document.as_ref() {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response(),
        Err(err) => {
            super::ApiError::internal(format!("the OpenAPI document: {err}")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};

    fn part(path: &str, method: HttpMethod, tag: &str) -> OpenApi {
        let id = format!("{tag}{path}");
        let operation = OperationBuilder::new()
            .tag(tag)
            .operation_id(Some(id))
            .build();
        OpenApiBuilder::new()
            .paths(PathsBuilder::new().path(path, PathItem::new(method, operation)))
            .build()
    }

    #[test]
    fn the_document_is_3_1_with_windsocks_info_base_routes_and_the_parts() {
        let doc = json(&document([part("/api/search", HttpMethod::Get, "indexer")]));
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "windsock");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        for path in ["/healthz", "/metrics", PATH, "/api/search"] {
            assert!(doc["paths"][path]["get"].is_object(), "{path}: {doc}");
        }
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER],
            serde_json::json!({
                "type": "http",
                "scheme": "bearer",
                "description": bearer_scheme_description(),
            })
        );
        // Only the tags in use: no alerter here.
        let tags: Vec<&str> = doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(tags, ["indexer", "windsock"]);
        let other = json(&document([part("/api/x", HttpMethod::Get, "other")]));
        assert_eq!(other["tags"][0]["name"], "windsock", "{other}");
        assert_eq!(other["tags"][1]["name"], "other", "{other}");
        let health = &doc["paths"]["/healthz"]["get"]["responses"];
        for status in ["200", "503"] {
            assert_eq!(
                health[status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ProcessHealth",
                "{health}"
            );
        }
        assert!(
            doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"]
                .is_object()
        );
        assert!(doc["components"]["schemas"]["ServiceHealth"].is_object());
    }

    fn bearer_scheme_description() -> serde_json::Value {
        match bearer_scheme() {
            SecurityScheme::Http(http) => serde_json::json!(http.description),
            _ => unreachable!(),
        }
    }

    #[test]
    fn conflicts_name_a_route_or_schema_two_parts_define() {
        let a = part("/api/x", HttpMethod::Get, "indexer");
        let b = part("/api/x", HttpMethod::Post, "alerter");
        assert!(conflicts(&[a.clone(), b.clone()]).is_empty());
        let found = conflicts(&[a.clone(), b, a]);
        assert_eq!(
            found,
            [
                "GET /api/x is defined twice",
                "operationId `indexer/api/x` is used twice"
            ]
        );
        let same_name = |path: &str| {
            let operation = OperationBuilder::new().operation_id(Some("status")).build();
            OpenApiBuilder::new()
                .paths(PathsBuilder::new().path(path, PathItem::new(HttpMethod::Get, operation)))
                .build()
        };
        assert_eq!(
            conflicts(&[same_name("/api/a/status"), same_name("/api/b/status")]),
            ["operationId `status` is used twice"]
        );

        let with_schema = |schema: utoipa::openapi::schema::Object| {
            OpenApiBuilder::new()
                .components(Some(
                    ComponentsBuilder::new().schema("Region", schema).build(),
                ))
                .build()
        };
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let string = ObjectBuilder::new().schema_type(Type::String).build();
        let number = ObjectBuilder::new().schema_type(Type::Number).build();
        assert!(conflicts(&[with_schema(string.clone()), with_schema(string.clone())]).is_empty());
        assert_eq!(
            conflicts(&[with_schema(string), with_schema(number)]),
            ["schema `Region` is defined twice, differently"]
        );
    }

    #[tokio::test]
    async fn the_route_serves_the_document_it_is_given() {
        use tower::ServiceExt;
        let doc = document([]);
        let response = openapi_routes(doc.clone())
            .oneshot(
                axum::http::Request::get(PATH)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let served: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(served, json(&doc));
    }
}

//! The proxy in front of the indexer's analysis routes: `/api/export` flows through as the
//! replica sends it (the browser has its first lines while the rest is still being written)
//! with the headers that name the file and say how much matched; a DELETE of a saved search
//! that reached a replica is not sent to another.

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::Router;
use futures::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use windsock_core::config::Config;
use windsock_ui::proxy::{Service, Upstreams};

fn serve(app: Router) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn upstreams(urls: &[String]) -> Upstreams {
    let mut config = Config::default();
    config.indexer.url = urls.to_vec();
    Upstreams::from_config(&config).unwrap()
}

/// Waits for the next data frame of a body. A guard against hanging forever when the proxy
/// buffers (the fake replica holds its second line until the first was seen), not a timing.
async fn next_chunk(body: &mut BodyDataStream) -> Option<Bytes> {
    let chunk = tokio::time::timeout(Duration::from_secs(30), body.next())
        .await
        .expect("no chunk came: the proxy waits for the whole body")?;
    Some(chunk.unwrap())
}

#[tokio::test]
async fn an_export_is_streamed_through_with_its_headers() {
    let (release, held) = oneshot::channel::<()>();
    let held = Arc::new(tokio::sync::Mutex::new(Some(held)));
    let app = Router::new().route(
        "/api/export",
        get(move || {
            let held = held.clone();
            async move {
                let held = held.lock().await.take().unwrap();
                let first = futures::stream::once(async {
                    Ok::<_, std::io::Error>(Bytes::from_static(b"{\"id\":\"1\"}\n"))
                });
                // The second line only once the test has the first through the proxy.
                let second = futures::stream::once(async move {
                    held.await.unwrap();
                    Ok(Bytes::from_static(b"{\"id\":\"2\"}\n"))
                });
                (
                    [
                        (header::CONTENT_TYPE, "application/x-ndjson"),
                        (
                            header::CONTENT_DISPOSITION,
                            "attachment; filename=\"windsock-export.ndjson\"",
                        ),
                        (
                            header::HeaderName::from_static("x-windsock-export-total"),
                            "2",
                        ),
                        (
                            header::HeaderName::from_static("x-windsock-export-truncated"),
                            "false",
                        ),
                    ],
                    Body::from_stream(first.chain(second)),
                )
                    .into_response()
            }
        }),
    );
    let upstreams = upstreams(&[serve(app)]);
    let request = Request::get("/api/export?q=*&format=ndjson")
        .body(Body::empty())
        .unwrap();
    let response = upstreams.forward(Service::Indexer, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-ndjson");
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"windsock-export.ndjson\""
    );
    assert_eq!(headers["x-windsock-export-total"], "2");
    assert_eq!(headers["x-windsock-export-truncated"], "false");
    let mut body = response.into_body().into_data_stream();
    let mut received = next_chunk(&mut body).await.unwrap().to_vec();
    assert_eq!(received, b"{\"id\":\"1\"}\n");
    release.send(()).unwrap();
    while let Some(chunk) = next_chunk(&mut body).await {
        received.extend_from_slice(&chunk);
    }
    assert_eq!(received, b"{\"id\":\"1\"}\n{\"id\":\"2\"}\n");
}

#[tokio::test]
async fn a_delete_that_reached_a_replica_is_not_sent_to_another() {
    let replica = |status: StatusCode, seen: Arc<AtomicUsize>| {
        Router::new().fallback(any(move || {
            seen.fetch_add(1, Ordering::SeqCst);
            async move { status }
        }))
    };
    let (seen_a, seen_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let a = serve(replica(StatusCode::INTERNAL_SERVER_ERROR, seen_a.clone()));
    let b = serve(replica(StatusCode::NO_CONTENT, seen_b.clone()));
    let upstreams = upstreams(&[a, b]);
    let request = Request::delete("/api/saved-searches/3")
        .body(Body::empty())
        .unwrap();
    let response = upstreams.forward(Service::Indexer, request).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(seen_a.load(Ordering::SeqCst), 1);
    assert_eq!(seen_b.load(Ordering::SeqCst), 0, "not deleted twice");
}

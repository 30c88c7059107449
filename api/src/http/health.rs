//! Probes: `/healthz` says the process is alive; `/readyz` says whether it can
//! serve (database and queue reachable), with the reason when it cannot.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use super::routes::Routes;
use crate::state::AppState;

pub fn table() -> Routes {
    Routes::new("", "operations")
        .public()
        .add(Method::GET, "/healthz", "Liveness", healthz)
        .add(
            Method::GET,
            "/readyz",
            "Readiness (database and queue)",
            readyz,
        )
        .add(Method::GET, "/metrics", "Prometheus metrics", metrics)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    table().register(cfg);
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let results = futures::future::join_all(state.health.iter().map(|check| async move {
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(3), check.check())
            .await
            .unwrap_or_else(|_| Err("timed out after 3s".into()));
        (check.component(), outcome)
    }))
    .await;
    let ready = results.iter().all(|(_, r)| r.is_ok());
    let checks: Map<String, Value> = results
        .into_iter()
        .map(|(name, outcome)| {
            let value = match outcome {
                Ok(()) => json!({ "status": "ok" }),
                Err(reason) => json!({ "status": "unavailable", "reason": reason }),
            };
            (name.to_owned(), value)
        })
        .collect();
    let body = json!({ "status": if ready { "ready" } else { "unavailable" }, "checks": checks });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text exposition. Unauthenticated, like the probes: expose it
/// to your scraper's network only.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let body = state.metrics.render(&state.db, &state.queue).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}

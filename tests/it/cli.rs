//! The `orgsync sync start` command against a real server process.

use reqwest::Method;
use serde_json::json;

use crate::support::{binary, settings, Server, TestDb, Tokens, SECRET};

#[tokio::test]
async fn sync_start_waits_for_the_run_and_reports_how_it_ended() {
    let db = TestDb::create().await;
    let settings = settings(&db.url);
    let server = Server::start(&Server::env_for(&settings)).await;
    let token = Tokens::new(&settings).platform();
    let (_, org) = server
        .request(
            Method::POST,
            "/api/v1/orgs",
            Some(&token),
            Some(json!({"name": "Cli", "slug": "cli"})),
        )
        .await;
    let org = org["id"].as_str().unwrap();

    let output = std::process::Command::new(binary())
        .args([
            "sync",
            "start",
            "--org",
            org,
            "--wait",
            "--url",
            &server.base,
        ])
        .env("ORGSYNC__AUTH__JWT_SECRET", SECRET)
        .env("ORGSYNC__DATABASE__URL", settings.database_url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("queued for 1 organization"), "{stdout}");
    let (_, runs) = server
        .request(
            Method::GET,
            &format!("/api/v1/orgs/{org}/syncs"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(runs["data"][0]["status"], "succeeded", "{runs}");

    // An org the token cannot reach: a clear error and a failing exit code.
    let output = std::process::Command::new(binary())
        .args([
            "sync",
            "start",
            "--org",
            &uuid::Uuid::now_v7().to_string(),
            "--url",
            &server.base,
        ])
        .env("ORGSYNC__AUTH__JWT_SECRET", SECRET)
        .env("ORGSYNC__DATABASE__URL", settings.database_url())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("404"));
    drop(server);
    db.drop_db().await;
}

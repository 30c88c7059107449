//! The `orgsync sync start` command against a real server process.

use std::process::Output;

use orgsync_api::config::Settings;

use crate::support::{binary, settings, Server, TestDb, Tokens, SECRET};

/// Runs `orgsync sync start` with `args`, as an operator holding the server's key.
fn sync_start(settings: &Settings, args: &[&str]) -> Output {
    std::process::Command::new(binary())
        .args(["sync", "start"])
        .args(args)
        .env("ORGSYNC__AUTH__JWT_SECRET", SECRET)
        .env("ORGSYNC__DATABASE__URL", settings.database_url())
        .output()
        .unwrap()
}

#[tokio::test]
async fn sync_start_waits_for_the_run_and_reports_how_it_ended() {
    let db = TestDb::create().await;
    let settings = settings(&db.url);
    let server = Server::start(&Server::env_for(&settings)).await;
    let token = Tokens::new(&settings).platform();
    let org = server.create_root(&token, "Cli", "cli").await;

    let output = sync_start(&settings, &["--org", &org, "--wait", "--url", &server.base]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("queued for 1 organization"), "{stdout}");
    let (_, runs) = server
        .get(&format!("/api/v1/orgs/{org}/syncs"), Some(&token))
        .await;
    assert_eq!(runs["data"][0]["status"], "succeeded", "{runs}");

    // An org the token cannot reach: a clear error and a failing exit code.
    let elsewhere = uuid::Uuid::now_v7().to_string();
    let output = sync_start(&settings, &["--org", &elsewhere, "--url", &server.base]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("404"));
    drop(server);
    db.drop_db().await;
}

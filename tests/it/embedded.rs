//! The embedded mode: no configuration at all, a SQLite file and the
//! in-process queue, exactly what a newcomer gets from `orgsync serve`.

use reqwest::Method;
use serde_json::json;

use crate::support::{binary, Server};

#[tokio::test]
async fn serve_with_no_configuration_runs_on_sqlite_and_mints_matching_tokens() {
    let dir = std::env::temp_dir().join(format!("orgsync-embedded-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let data_dir = dir.join("data");
    let env = [("ORGSYNC__DATA_DIR", data_dir.display().to_string())];
    let server = Server::start(&env).await;

    let (status, ready) = server.get("/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    assert!(data_dir.join("orgsync.db").exists());

    // `orgsync token` reads the same development key as the server, and prints only the token.
    let output = std::process::Command::new(binary())
        .args(["token", "--platform"])
        .env("ORGSYNC__DATA_DIR", &data_dir)
        .output()
        .unwrap();
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap();
    let token = token.trim();
    assert_eq!(token.matches('.').count(), 2, "a bare JWT: {token}");

    let root = server.create_root(token, "Acme", "acme").await;
    for (slug, kind) in [("acme-eu", "standard"), ("acme-test", "sandbox")] {
        let child = json!({"name": slug, "slug": slug, "kind": kind});
        let (status, body) = server.create_child(token, &root, child).await;
        assert_eq!(status, 201, "{body}");
    }
    let dup = json!({"name": "dup", "slug": "acme-eu"});
    let (status, dup) = server.create_child(token, &root, dup).await;
    assert_eq!(status, 409, "{dup}");
    let (status, problem) = server
        .request(
            Method::DELETE,
            &format!("/api/v1/orgs/{root}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    let (status, tree) = server
        .get(&format!("/api/v1/orgs/{root}/tree"), Some(token))
        .await;
    assert_eq!(status, 200);
    assert_eq!(tree["children"].as_array().map(Vec::len), Some(2));

    // An export reads SQLite's one connection page by page, not held for the download.
    let member = json!({"email": "ada@example.com", "role": "admin"});
    let members = format!("/api/v1/orgs/{root}/members");
    let (status, body) = server
        .request(Method::POST, &members, Some(token), Some(member))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, csv) = server.get(&format!("{members}.csv"), Some(token)).await;
    assert_eq!(status, 200, "{csv}");
    let rows: Vec<&str> = csv.as_str().unwrap().lines().collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows[1].contains("ada@example.com,,admin"), "{csv}");

    // A sync: its job goes through the in-process queue's sync lane and is
    // claimed on SQLite (the tenant's fair share checked in the claim).
    let syncs = format!("/api/v1/orgs/{root}/syncs");
    let (status, run) = server
        .request(Method::POST, &syncs, Some(token), None)
        .await;
    assert_eq!(status, 202, "{run}");
    let run = format!("{syncs}/{}", run["id"].as_str().unwrap());
    let finished = crate::support::poll(200, std::time::Duration::from_millis(50), async || {
        let (_, current) = server.get(&run, Some(token)).await;
        (current["status"] == "succeeded").then_some(current)
    })
    .await;
    assert!(finished.is_some(), "the sync never finished on SQLite");
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_bad_setting_stops_the_process_with_the_key_named() {
    let output = std::process::Command::new(binary())
        .arg("serve")
        .env("ORGSYNC__LOG__FORMAT", "xml")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("log.format"), "{stderr}");
}

//! Tenant isolation, proven from outside: a real `orgsync serve` process on
//! PostgreSQL and Redis, called over HTTP with tokens of different orgs.

use orgsync_domain::auth::AdminRole;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{settings, Server, TestDb, Tokens};

async fn create(server: &Server, token: &str, parent: Option<&str>, slug: &str) -> String {
    let path = match parent {
        None => "/api/v1/orgs".to_owned(),
        Some(p) => format!("/api/v1/orgs/{p}/children"),
    };
    let (status, body) = server
        .request(
            Method::POST,
            &path,
            Some(token),
            Some(json!({"name": slug, "slug": slug})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Every way to touch `org` with `token` answers 404, and nothing changes.
async fn assert_unreachable(server: &Server, token: &str, org: &str) {
    let attempts: [(Method, String, Option<Value>); 6] = [
        (Method::GET, format!("/api/v1/orgs/{org}"), None),
        (Method::GET, format!("/api/v1/orgs/{org}/children"), None),
        (Method::GET, format!("/api/v1/orgs/{org}/tree"), None),
        (
            Method::PATCH,
            format!("/api/v1/orgs/{org}"),
            Some(json!({"name": "pwned"})),
        ),
        (
            Method::POST,
            format!("/api/v1/orgs/{org}/children"),
            Some(json!({"name": "x", "slug": "intruder"})),
        ),
        (Method::DELETE, format!("/api/v1/orgs/{org}"), None),
    ];
    for (method, path, body) in attempts {
        let (status, problem) = server
            .request(method.clone(), &path, Some(token), body)
            .await;
        assert_eq!(status, 404, "{method} {path} → {problem}");
        assert_eq!(problem["type"], "https://orgsync.dev/problems/not-found");
    }
}

#[tokio::test]
async fn a_token_reaches_its_org_and_descendants_and_nothing_else() {
    let db = TestDb::create().await;
    let settings = settings(&db.url);
    let tokens = Tokens::new(&settings);
    let server = Server::start(&Server::env_for(&settings)).await;
    let platform = tokens.platform();

    // Tenant A: root → {a1 → a1x, a2 (sibling of a1)}; tenant B: root → b1.
    let a = create(&server, &platform, None, "tenant-a").await;
    let a1 = create(&server, &platform, Some(&a), "a1").await;
    let a1x = create(&server, &platform, Some(&a1), "a1x").await;
    let a2 = create(&server, &platform, Some(&a), "a2").await;
    let b = create(&server, &platform, None, "tenant-b").await;
    let b1 = create(&server, &platform, Some(&b), "b1").await;

    let a1_owner = tokens.org(a1.parse().unwrap(), AdminRole::Owner);
    // Its own org and its descendant are in reach...
    for org in [&a1, &a1x] {
        let (status, _) = server
            .get(&format!("/api/v1/orgs/{org}"), Some(&a1_owner))
            .await;
        assert_eq!(status, 200);
    }
    let (status, tree) = server
        .get(&format!("/api/v1/orgs/{a1}/tree"), Some(&a1_owner))
        .await;
    assert_eq!(status, 200);
    assert_eq!(tree["children"].as_array().map(Vec::len), Some(1));
    // ...its parent, its sibling and the other tenant are not, whatever the verb.
    for org in [&a, &a2, &b, &b1] {
        assert_unreachable(&server, &a1_owner, org).await;
    }

    // A tenant's root token reaches its whole tree and nothing of the other tenant.
    let a_owner = tokens.org(a.parse().unwrap(), AdminRole::Owner);
    let (status, tree) = server
        .get(&format!("/api/v1/orgs/{a}/tree"), Some(&a_owner))
        .await;
    assert_eq!(status, 200);
    assert_eq!(tree["children"].as_array().map(Vec::len), Some(2));
    for org in [&b, &b1] {
        assert_unreachable(&server, &a_owner, org).await;
    }
    // A token for an org that does not exist reaches nothing.
    let ghost = tokens.org(uuid::Uuid::now_v7(), AdminRole::Owner);
    for org in [&a, &a1, &b] {
        assert_unreachable(&server, &ghost, org).await;
    }

    // Nothing the intruders tried changed anything.
    let (_, b_tree) = server
        .get(&format!("/api/v1/orgs/{b}/tree"), Some(&platform))
        .await;
    assert_eq!(b_tree["name"], "tenant-b");
    assert_eq!(b_tree["children"].as_array().map(Vec::len), Some(1));
    drop(server);
    db.drop_db().await;
}

#[tokio::test]
async fn requests_without_a_valid_token_are_unauthorized() {
    let db = TestDb::create().await;
    let settings = settings(&db.url);
    let server = Server::start(&Server::env_for(&settings)).await;

    let mut other = settings.clone();
    other.auth.jwt_secret = Some("a-different-secret-a-different-secret".into());
    let forged = Tokens::new(&other).platform();
    // Expired long ago (beyond the verifier's leeway), but correctly signed.
    let expired = sign_hs256(
        &json!({"sub": "x", "exp": 1_000_000, "platform": true}),
        crate::support::SECRET,
    );
    let none_alg = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4IiwiZXhwIjo5OTk5OTk5OTk5LCJwbGF0Zm9ybSI6dHJ1ZX0.";

    for token in [
        None,
        Some("garbage"),
        Some(forged.as_str()),
        Some(expired.as_str()),
        Some(none_alg),
    ] {
        let (status, problem) = server
            .request(
                Method::POST,
                "/api/v1/orgs",
                token,
                Some(json!({"name": "x", "slug": "x"})),
            )
            .await;
        assert_eq!(status, 401, "{token:?} → {problem}");
        assert_eq!(problem["type"], "https://orgsync.dev/problems/unauthorized");
    }
    drop(server);
    db.drop_db().await;
}

/// Signs claims with HS256 by hand, without going through orgsync's minter.
fn sign_hs256(claims: &Value, secret: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64.encode(claims.to_string());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = b64.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

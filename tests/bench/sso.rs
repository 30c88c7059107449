//! Single sign-on, measured: whole OIDC round trips (authorize → IdP →
//! callback → token) against the test suite's OIDC provider on loopback,
//! and SAML ones (authorize → the test SAML IdP's signed response → ACS →
//! token),
//! one user at a time, for first sign-ins (a JIT member is created) and
//! returning users (nothing changes). orgsync's share is the three requests
//! it answers, as the client times them, minus the IdP's own handling of
//! the token request it makes during the callback (timed inside the IdP;
//! mostly RS256 signing).

#[path = "../it/sso/idp.rs"]
#[allow(dead_code)]
mod idp;
#[path = "../it/sso/saml_idp.rs"]
#[allow(dead_code)]
mod saml_idp;

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{Stats, Target};
use idp::{TestIdp, CLIENT_ID, CLIENT_SECRET};
use saml_idp::{SamlForge, SamlIdp};

/// The product's callback the server allows (`sso.redirect_uris`).
pub const PRODUCT: &str = "http://127.0.0.1:3000/auth/callback";

struct Timings {
    authorize: Duration,
    callback: Duration,
    token: Duration,
    idp_token: Duration,
    /// The server's own time for its three requests (`Server-Timing`).
    server: Duration,
}

/// Each benchmark signs the same users in twice: first through JIT, then again.
const PHASES: [&str; 2] = [
    "first sign-in (JIT creates the member)",
    "returning user (no change)",
];

/// The server's time for one response, from its `Server-Timing: app;dur=`.
fn server_timing(response: &reqwest::Response) -> Duration {
    let ms = response
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("dur=").nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("a Server-Timing header");
    Duration::from_secs_f64(ms / 1000.0)
}

fn location(response: &reqwest::Response) -> String {
    assert_eq!(response.status().as_u16(), 302, "expected a redirect");
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// Redeems the code the product's callback URL carries: how long it took,
/// for the client and for the server.
async fn redeem_code(
    browser: &reqwest::Client,
    base: &str,
    token: &str,
    product: &str,
) -> (Duration, Duration) {
    let product = url::Url::parse(product).unwrap();
    let code = product
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("the sign-in failed: {product}"));
    let t = Instant::now();
    let redeemed = browser
        .post(format!("{base}/sso/token"))
        .bearer_auth(token)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(redeemed.status().as_u16(), 200, "the code was not redeemed");
    (took, server_timing(&redeemed))
}

async fn sign_in(
    browser: &reqwest::Client,
    base: &str,
    org: &str,
    token: &str,
    idp: &TestIdp,
) -> Timings {
    let start = format!(
        "{base}/sso/authorize?organization={org}&redirect_uri={}&state=bench",
        url::form_urlencoded::byte_serialize(PRODUCT.as_bytes()).collect::<String>()
    );
    let t = Instant::now();
    let at_orgsync = browser.get(&start).send().await.unwrap();
    let authorize = t.elapsed();
    let to_idp = location(&at_orgsync);
    let callback = location(&browser.get(&to_idp).send().await.unwrap());
    let t = Instant::now();
    let back = browser.get(&callback).send().await.unwrap();
    let callback = t.elapsed();
    let (token, token_server) = redeem_code(browser, base, token, &location(&back)).await;
    let idp_token = idp.take_token_times().into_iter().sum();
    Timings {
        authorize,
        callback,
        token,
        idp_token,
        server: server_timing(&at_orgsync) + server_timing(&back) + token_server,
    }
}

pub async fn sso_benchmark(admin: &Target, base: &str, org: &str, conn: uuid::Uuid, n: usize) {
    let idp = TestIdp::start();
    let (status, body) = admin
        .send(
            reqwest::Method::PUT,
            &format!("/orgs/{org}/connections/{conn}/sso"),
            Some(json!({
                "protocol": "oidc", "issuer": idp.issuer,
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin
        .send(
            reqwest::Method::PUT,
            &format!("/orgs/{org}/provisioning"),
            Some(json!({"mode": "jit"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let user = |i: usize| {
        json!({"sub": format!("bench-{i}"), "email": format!("sso-{i}@example.com"),
               "given_name": "Bench", "family_name": format!("User {i}")})
    };
    // Warm-up: connections, discovery and key caches.
    for i in 0..20 {
        idp.sign_in_as(user(n + i));
        sign_in(&browser, base, org, &admin.token, &idp).await;
    }
    println!(
        "\nSSO (OIDC, RS256 ID tokens, PKCE): {n} sign-ins per phase, one at a time; \
         orgsync time = authorize + callback + token as the client times them \
         (and as the server's Server-Timing says), minus the IdP's own token handling"
    );
    for phase in PHASES {
        let mut steps: [Vec<Duration>; 6] = Default::default();
        let started = Instant::now();
        for i in 0..n {
            idp.sign_in_as(user(i));
            let t = sign_in(&browser, base, org, &admin.token, &idp).await;
            let total = t.authorize + t.callback + t.token;
            let orgsync = total.saturating_sub(t.idp_token);
            let server = t.server.saturating_sub(t.idp_token);
            let took = [
                t.authorize,
                t.callback,
                t.token,
                t.idp_token,
                orgsync,
                server,
            ];
            for (step, d) in steps.iter_mut().zip(took) {
                step.push(d);
            }
        }
        let names = [
            "GET /sso/authorize",
            "GET /sso/oidc/callback (incl. the IdP's token endpoint)",
            "POST /sso/token",
            "  the IdP's token endpoint (its own handling)",
            "orgsync time per round trip",
            "server time per round trip (Server-Timing, minus the IdP's)",
        ];
        print_steps(phase, started.elapsed(), names, steps);
    }
}

/// SAML round trips through a second connection of `org`: one at a time,
/// first sign-ins then returning users; the IdP's signing happens in the
/// client, so orgsync's time is its three requests.
pub async fn saml_benchmark(admin: &Target, base: &str, org: &str, n: usize) {
    let idp = SamlIdp::new();
    let (status, conn) = admin
        .post(&format!("/orgs/{org}/connections"), json!({"name": "saml"}))
        .await;
    assert_eq!(status, 201, "{conn}");
    let conn = conn["id"].as_str().unwrap().to_owned();
    let (status, body) = admin
        .send(
            reqwest::Method::PUT,
            &format!("/orgs/{org}/connections/{conn}/sso"),
            Some(json!({"protocol": "saml", "idp_metadata_xml": idp.metadata_xml()})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sp_entity_id = body["sp_entity_id"].as_str().unwrap().to_owned();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = format!(
        "{base}/sso/authorize?connection={conn}&redirect_uri={}&state=bench",
        url::form_urlencoded::byte_serialize(PRODUCT.as_bytes()).collect::<String>()
    );
    let one = |i: usize| {
        let (browser, start, idp, sp_entity_id) = (&browser, &start, &idp, &sp_entity_id);
        async move {
            let t = Instant::now();
            let at_orgsync = browser.get(start).send().await.unwrap();
            let authorize = t.elapsed();
            let to_idp = location(&at_orgsync);
            let email = format!("saml-{i}@example.com");
            let (response, relay) = idp.answer(
                &to_idp,
                sp_entity_id,
                &email,
                &[("firstName", "Bench"), ("lastName", "User")],
                SamlForge::Honest,
            );
            let acs = SamlIdp::request_in(&to_idp)
                .assertion_consumer_service_url
                .unwrap();
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("SAMLResponse", &response);
            if let Some(relay) = &relay {
                form.append_pair("RelayState", relay);
            }
            let t = Instant::now();
            let back = browser
                .post(&acs)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.finish())
                .send()
                .await
                .unwrap();
            let acs_time = t.elapsed();
            assert_eq!(back.status().as_u16(), 303, "the ACS did not redirect");
            let product = back.headers()["location"].to_str().unwrap().to_owned();
            let (token, token_server) = redeem_code(browser, base, &admin.token, &product).await;
            let server = server_timing(&at_orgsync) + server_timing(&back) + token_server;
            [authorize, acs_time, token, server]
        }
    };
    for i in 0..20 {
        one(n + i).await;
    }
    println!(
        "\nSSO (SAML 2.0, RSA-SHA256 signed responses): {n} sign-ins per phase, one at a time"
    );
    for phase in PHASES {
        let mut steps: [Vec<Duration>; 5] = Default::default();
        let started = Instant::now();
        for i in 0..n {
            let t = one(i).await;
            for (k, d) in t.into_iter().enumerate() {
                steps[k].push(d);
            }
            steps[4].push(t[..3].iter().sum());
        }
        let names = [
            "GET /sso/authorize",
            "POST /sso/saml/{conn}/acs",
            "POST /sso/token",
            "server time per round trip (Server-Timing)",
            "orgsync time per round trip",
        ];
        print_steps(&format!("SAML {phase}"), started.elapsed(), names, steps);
    }
}

/// One [`Stats`] line per step of a round trip, `{phase}: {name}`: the
/// round trips of a phase took `elapsed` in all.
fn print_steps<const N: usize>(
    phase: &str,
    elapsed: Duration,
    names: [&str; N],
    steps: [Vec<Duration>; N],
) {
    for (name, latencies) in names.into_iter().zip(steps) {
        Stats::new(format!("{phase}: {name}"), elapsed, latencies).print();
    }
}

//! Single sign-on end to end against a real OIDC provider on loopback
//! ([`idp::TestIdp`]): the browser's hops are followed by hand (orgsync →
//! IdP → orgsync → product), the product redeems the code, and every
//! forgery the IdP can be made to produce is refused without creating
//! anything.

mod idp;
mod saml_idp;

use actix_web::test;
use serde_json::{json, Value};

use crate::fixtures::{create_root, members_by_email, preview_provisioning, set_provisioning};
use crate::json::strings;
use crate::scim::Directory;
use crate::support::{request, TestApp};
use idp::{Forge, TestIdp, CLIENT_ID, CLIENT_SECRET};
use saml_idp::{SamlForge, SamlIdp, SSO_URL};

const PRODUCT: &str = "http://127.0.0.1:3000/auth/callback";

async fn app() -> TestApp {
    TestApp::spawn_with(|s| {
        s.sso.allow_insecure_loopback = true;
        s.sso.redirect_uris = vec![PRODUCT.into()];
    })
    .await
}

/// A tenant with a SCIM directory (connection `dir.conn`) and OIDC SSO on it.
async fn tenant_with_sso(idp: &TestIdp) -> Directory {
    let dir = Directory::on(app().await).await;
    let (status, settings) = configure(&dir, idp).await;
    assert_eq!(status, 200, "{settings}");
    dir
}

/// A tenant signing in with SSO whose members JIT provisioning creates.
async fn jit_tenant_with_sso(idp: &TestIdp) -> Directory {
    let dir = tenant_with_sso(idp).await;
    set_mode(&dir, "jit").await;
    dir
}

async fn configure(dir: &Directory, idp: &TestIdp) -> (u16, Value) {
    dir.admin(
        "PUT",
        &format!("/connections/{}/sso", dir.conn),
        Some(json!({
            "protocol": "oidc", "issuer": idp.issuer, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "groups_claim": "groups"
        })),
    )
    .await
}

/// Members' `department` metadata comes from the sign-in's `claim`.
async fn map_department_from(dir: &Directory, claim: &str) {
    let attributes = json!({"attributes": [{"key": "department", "sso_claim": claim}]});
    let path = format!("/connections/{}/attributes", dir.conn);
    let (status, saved) = dir.admin("PUT", &path, Some(attributes)).await;
    assert_eq!(status, 200, "{saved}");
}

async fn set_mode(dir: &Directory, mode: &str) {
    let (status, body) = set_provisioning(dir, &dir.org, mode).await;
    assert_eq!(status, 200, "{body}");
}

/// Asks for `role` as the role JIT gives new members: the answer.
async fn set_jit_default_role(dir: &Directory, role: &str) -> (u16, Value) {
    let body = json!({"default_role": role});
    dir.admin("PUT", "/provisioning/jit", Some(body)).await
}

/// Where a response redirects to.
fn location<B>(response: &actix_web::dev::ServiceResponse<B>) -> String {
    assert_eq!(response.status().as_u16(), 302, "expected a redirect");
    response
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

fn params(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// A GET to orgsync of the path and query of `url` (the browser following a redirect).
async fn follow(
    app: &TestApp,
    url: &str,
) -> actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody> {
    let url = url::Url::parse(url).unwrap();
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    app.send(request("GET", &path, None, None)).await
}

/// Where the product sends the browser to sign in through `target`
/// (`organization=…` or `connection=…`), back to [`PRODUCT`].
fn authorize_path(target: &str) -> String {
    format!(
        "/sso/authorize?{target}&redirect_uri={}&state=product-state",
        url::form_urlencoded::byte_serialize(PRODUCT.as_bytes()).collect::<String>()
    )
}

/// The browser's whole journey from the product's link to its callback:
/// the product callback's query (`code` and `state`, or `error`).
async fn sign_in(app: &TestApp, target: &str) -> std::collections::HashMap<String, String> {
    let start = authorize_path(target);
    let at_orgsync = app.send(request("GET", &start, None, None)).await;
    let to_idp = location(&at_orgsync);
    if to_idp.starts_with(PRODUCT) {
        return params(&to_idp);
    }
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let at_idp = browser.get(&to_idp).send().await.unwrap();
    assert_eq!(
        at_idp.status().as_u16(),
        302,
        "{}",
        at_idp.text().await.unwrap()
    );
    let callback = at_idp.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.contains("/sso/oidc/callback?"), "{callback}");
    let back = follow(app, &callback).await;
    let product = location(&back);
    assert!(product.starts_with(PRODUCT), "{product}");
    let query = params(&product);
    assert_eq!(
        query["state"], "product-state",
        "the product's state comes back"
    );
    query
}

/// [`sign_in`] through the directory's own org.
async fn sign_in_to_org(dir: &Directory) -> std::collections::HashMap<String, String> {
    sign_in(&dir.app, &format!("organization={}", dir.org)).await
}

async fn redeem(app: &TestApp, code: &str) -> (u16, Value) {
    let platform = app.tokens.platform();
    app.call(
        "POST",
        "/sso/token",
        Some(&platform),
        Some(json!({"code": code})),
    )
    .await
}

#[actix_web::test]
async fn jit_creates_the_member_on_first_sign_in_and_updates_it_in_place_after() {
    let idp = TestIdp::start();
    let dir = jit_tenant_with_sso(&idp).await;
    map_department_from(&dir, "dept").await;
    idp.sign_in_as(json!({
        "sub": "00u-ada", "email": "ada@example.com", "given_name": "Ada",
        "family_name": "Lovelace", "groups": ["eng"], "dept": "R&D"
    }));

    let back = sign_in_to_org(&dir).await;
    let code = back.get("code").unwrap_or_else(|| panic!("{back:?}"));
    let (status, signed_in) = redeem(&dir.app, code).await;
    assert_eq!(status, 200, "{signed_in}");
    assert_eq!(signed_in["organization_id"], dir.org.as_str());
    assert_eq!(signed_in["connection_id"], dir.conn.as_str());
    assert_eq!(signed_in["profile"]["id"], "00u-ada");
    assert_eq!(signed_in["profile"]["groups"], json!(["eng"]));
    assert_eq!(signed_in["profile"]["raw_attributes"]["dept"], "R&D");
    let member = &signed_in["member"];
    assert_eq!(member["role"], "user");
    assert_eq!(member["source"], "jit");
    assert_eq!(member["name"], "Ada Lovelace");
    assert_eq!(member["public_metadata"], json!({"department": "R&D"}));

    // A code works once.
    let (status, again) = redeem(&dir.app, code).await;
    assert_eq!(status, 400, "{again}");
    assert_eq!(again["error"], "invalid_grant");

    // The IdP changes her email and department: the same member, updated.
    idp.sign_in_as(json!({
        "sub": "00u-ada", "email": "ada.lovelace@example.com", "name": "Ada L.", "dept": "Ops"
    }));
    let back = sign_in_to_org(&dir).await;
    let (status, second) = redeem(&dir.app, &back["code"]).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        second["member"]["id"], member["id"],
        "an email change keeps the member"
    );
    let members = members_by_email(&dir, &dir.org).await;
    assert_eq!(members.len(), 1, "{members:?}");
    let stored = &members["ada.lovelace@example.com"];
    assert_eq!(stored["name"], "Ada L.");
    assert_eq!(stored["public_metadata"]["department"], "Ops");

    let (status, audit) = dir.admin("GET", "/audit-log?action=sso.", None).await;
    assert_eq!(status, 200, "{audit}");
    let actions: Vec<&str> = strings(&audit["data"], "action");
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "sso.sign_in.succeeded")
            .count(),
        2,
        "{actions:?}"
    );
    dir.app.finish().await;
}

/// Someone new signs in from four tabs at once: each sign-in succeeds,
/// and all four are one member (a JIT create racing itself neither fails
/// nor makes twins); likewise four sign-ins updating her at once.
#[actix_web::test]
async fn four_sign_ins_at_once_make_and_update_one_member() {
    let idp = TestIdp::start();
    let dir = jit_tenant_with_sso(&idp).await;
    let mut member_ids = Vec::new();
    // The first wave creates her; the second, after the IdP changed her
    // email and name, updates her from four tabs at once.
    for (email, name) in [
        ("grace@example.com", "Grace"),
        ("grace.h@example.com", "Grace H."),
    ] {
        idp.sign_in_as(json!({"sub": "00u-grace", "email": email, "name": name}));
        let tabs = futures::future::join_all((0..4).map(|_| sign_in_to_org(&dir))).await;
        for back in &tabs {
            let code = back
                .get("code")
                .unwrap_or_else(|| panic!("{email}: {back:?}"));
            let (status, signed_in) = redeem(&dir.app, code).await;
            assert_eq!(status, 200, "{signed_in}");
            member_ids.push(signed_in["member"]["id"].clone());
        }
    }
    member_ids.dedup();
    assert_eq!(member_ids.len(), 1, "{member_ids:?}");
    let members = members_by_email(&dir, &dir.org).await;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members["grace.h@example.com"]["name"], "Grace H.");
    dir.app.finish().await;
}

/// Someone new signs in (JIT) just as an admin switches the org to SCIM:
/// never a JIT member left in a SCIM org. Either the sign-in went first
/// (the switch's confirmed preview is then stale, and it is refused) or the
/// switch did (and the sign-in is refused: members come from the directory).
#[actix_web::test]
async fn a_first_sign_in_during_a_switch_to_scim_never_leaves_a_jit_member_behind() {
    let idp = TestIdp::start();
    let dir = tenant_with_sso(&idp).await;
    dir.users_named(["dana@example.com"]).await;
    set_mode(&dir, "jit").await;
    for round in 0..6 {
        let email = format!("late{round}@example.com");
        idp.sign_in_as(json!({"sub": format!("00u-{round}"), "email": email}));
        let (status, preview) = preview_provisioning(&dir, &dir.org, "scim").await;
        assert_eq!(status, 200, "{preview}");
        let switch = json!({"mode": "scim", "confirm": preview["confirmation"]});
        let delay = std::time::Duration::from_millis(3 * round);
        let (switched, _) = futures::join!(
            async {
                tokio::time::sleep(delay).await;
                dir.admin("PUT", "/provisioning", Some(switch)).await
            },
            sign_in_to_org(&dir),
        );
        let members = members_by_email(&dir, &dir.org).await;
        let (_, org) = dir.app.admin("GET", &dir.org, "", None).await;
        if org["provisioning_mode"] == "scim" {
            assert!(
                members.values().all(|m| m["source"] != "jit"),
                "round {round}: a JIT member in a SCIM org (switch {switched:?}): {members:?}"
            );
        }
        // Back to JIT with no one but the directory's member.
        set_mode(&dir, "jit").await;
        for member in members.values().filter(|m| m["source"] == "jit") {
            let id = member["id"].as_str().expect("an id");
            let (status, _) = dir.admin("DELETE", &format!("/members/{id}"), None).await;
            assert_eq!(status, 204);
        }
    }
    dir.app.finish().await;
}

#[actix_web::test]
async fn a_scim_org_admits_its_active_directory_members_and_no_one_else() {
    let idp = TestIdp::start();
    let dir = tenant_with_sso(&idp).await;
    let user = dir.user("grace@example.com").await;
    crate::fixtures::switch_to_scim(&dir, &dir.org).await;
    crate::fixtures::wait_for_members(&dir, &dir.org, 1).await;

    // Okta sends its user id as the SCIM externalId and the OIDC subject.
    idp.sign_in_as(json!({"sub": "ext-grace@example.com", "email": "grace.h@example.com"}));
    let back = sign_in(&dir.app, &format!("connection={}", dir.conn)).await;
    let (status, signed_in) = redeem(&dir.app, &back["code"]).await;
    assert_eq!(status, 200, "{signed_in}");
    assert_eq!(signed_in["member"]["directory_user_id"], user.as_str());
    assert_eq!(
        signed_in["member"]["email"], "grace@example.com",
        "what the directory owns is not overwritten by a sign-in"
    );

    idp.sign_in_as(json!({"sub": "stranger", "email": "stranger@example.com"}));
    let back = sign_in_to_org(&dir).await;
    assert_eq!(back["error"], "access_denied", "{back:?}");
    assert!(back["error_description"].contains("directory"), "{back:?}");
    assert!(!back.contains_key("code"));

    // Deactivated in the IdP: deprovisioned here (removed, by default), and
    // refused at sign-in even though the IdP still vouches for the subject.
    let (status, _) = dir.set_active(&user, false).await;
    assert_eq!(status, 200);
    crate::fixtures::wait_for_members(&dir, &dir.org, 0).await;
    idp.sign_in_as(json!({"sub": "ext-grace@example.com", "email": "grace@example.com"}));
    let back = sign_in_to_org(&dir).await;
    assert_eq!(back["error"], "access_denied", "{back:?}");
    assert!(members_by_email(&dir, &dir.org).await.is_empty());

    let audit = dir.get("/audit-log?action=sso.sign_in.refused").await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 2, "{audit}");
    dir.app.finish().await;
}

#[actix_web::test]
async fn a_manual_org_admits_existing_members_only() {
    let idp = TestIdp::start();
    let dir = tenant_with_sso(&idp).await;
    let (status, added) = dir
        .add_member(json!({"email": "Linus@Example.com", "role": "admin"}))
        .await;
    assert_eq!(status, 201, "{added}");

    idp.sign_in_as(json!({"sub": "u-linus", "email": "linus@example.com"}));
    let back = sign_in_to_org(&dir).await;
    let (status, signed_in) = redeem(&dir.app, &back["code"]).await;
    assert_eq!(status, 200, "{signed_in}");
    assert_eq!(signed_in["member"]["id"], added["id"]);
    assert_eq!(signed_in["member"]["role"], "admin");

    // Another subject claiming the same email does not get the linked member.
    idp.sign_in_as(json!({"sub": "u-impostor", "email": "linus@example.com"}));
    let back = sign_in_to_org(&dir).await;
    assert_eq!(back["error"], "access_denied", "{back:?}");

    idp.sign_in_as(json!({"sub": "u-new", "email": "new@example.com"}));
    let back = sign_in_to_org(&dir).await;
    assert_eq!(back["error"], "access_denied", "{back:?}");
    assert_eq!(members_by_email(&dir, &dir.org).await.len(), 1);
    dir.app.finish().await;
}

#[actix_web::test]
async fn forged_tokens_are_refused_and_create_nothing() {
    let idp = TestIdp::start();
    let dir = jit_tenant_with_sso(&idp).await;
    for (forge, reason) in [
        (Forge::WrongIssuer, "InvalidIssuer"),
        (Forge::WrongAudience, "InvalidAudience"),
        (Forge::Expired, "ExpiredSignature"),
        (Forge::NotYetValid, "ImmatureSignature"),
        (Forge::IssuedInTheFuture, "issued in the future"),
        (Forge::WrongNonce, "nonce"),
        (Forge::Unsigned, "unsigned"),
        (Forge::HmacWithPublicKey, "HS256, which is never accepted"),
        (Forge::ForeignKeySameKid, "InvalidSignature"),
        (
            Forge::UnknownKid,
            "key the identity provider does not publish",
        ),
        (Forge::SeveralAudiences, "several audiences"),
        (Forge::TamperedSignature, "InvalidSignature"),
    ] {
        idp.forge(forge);
        idp.sign_in_as(json!({"sub": format!("{forge:?}"), "email": "mallory@example.com"}));
        let back = sign_in_to_org(&dir).await;
        assert_eq!(
            back.get("error").map(String::as_str),
            Some("access_denied"),
            "{forge:?}: {back:?}"
        );
        assert!(
            back["error_description"].contains(reason),
            "{forge:?}: {back:?}"
        );
        assert!(!back.contains_key("code"), "{forge:?}");
    }
    // The IdP itself refusing is passed on, as is an unverified email.
    idp.forge(Forge::Honest);
    idp.refuse(Some("access_denied"));
    let back = sign_in_to_org(&dir).await;
    assert_eq!(back["error"], "access_denied");
    assert!(
        back["error_description"].contains("not assigned"),
        "{back:?}"
    );
    idp.refuse(None);
    idp.sign_in_as(json!({"sub": "u-1", "email": "eve@example.com", "email_verified": false}));
    let back = sign_in_to_org(&dir).await;
    assert_eq!(back["error"], "access_denied");

    assert!(members_by_email(&dir, &dir.org).await.is_empty());
    let audit = dir
        .get("/audit-log?action=sso.sign_in.refused&limit=100")
        .await;
    assert_eq!(
        audit["data"].as_array().unwrap().len(),
        14,
        "every refusal is audited"
    );

    // An honest sign-in still works after all that.
    idp.sign_in_as(json!({"sub": "u-2", "email": "honest@example.com"}));
    let back = sign_in_to_org(&dir).await;
    assert!(back.contains_key("code"), "{back:?}");
    dir.app.finish().await;
}

#[actix_web::test]
async fn a_sign_in_state_works_once_and_redirect_uris_are_allow_listed() {
    let idp = TestIdp::start();
    let dir = jit_tenant_with_sso(&idp).await;
    let app = &dir.app;

    for bad in [
        "https://evil.example.com/cb",
        "http://127.0.0.1:3000/auth/callback/",
        "http://127.0.0.1:3000/auth/callback?x=1",
    ] {
        let path = format!(
            "/sso/authorize?organization={}&redirect_uri={}",
            dir.org,
            url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>()
        );
        let response = app.send(request("GET", &path, None, None)).await;
        assert_eq!(response.status().as_u16(), 400, "{bad}");
    }
    // An org without SSO goes back to the product with an error.
    let other = create_root(app, "Other", "other").await;
    let back = sign_in(app, &format!("organization={other}")).await;
    assert_eq!(back["error"], "invalid_request", "{back:?}");

    // The IdP's answer can be used once: a replayed callback is refused.
    let start = authorize_path(&format!("organization={}", dir.org));
    let to_idp = location(&app.send(request("GET", &start, None, None)).await);
    let sent = params(&to_idp);
    assert_eq!(sent["code_challenge_method"], "S256");
    assert_eq!(
        sent["redirect_uri"],
        "http://127.0.0.1:8080/sso/oidc/callback"
    );
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let at_idp = browser.get(&to_idp).send().await.unwrap();
    let callback = at_idp.headers()["location"].to_str().unwrap().to_owned();
    let first = follow(app, &callback).await;
    assert!(params(&location(&first)).contains_key("code"));
    let replay = follow(app, &callback).await;
    assert_eq!(replay.status().as_u16(), 400);
    assert_eq!(
        idp.token_calls(),
        1,
        "a replayed callback never reaches the IdP"
    );
    let unknown = follow(app, "http://x/sso/oidc/callback?state=forged&code=abc").await;
    assert_eq!(unknown.status().as_u16(), 400);
    dir.app.finish().await;
}

#[actix_web::test]
async fn a_key_rotation_at_the_idp_needs_no_restart() {
    let idp = TestIdp::start();
    let dir = jit_tenant_with_sso(&idp).await;
    let back = sign_in_to_org(&dir).await;
    assert!(back.contains_key("code"), "{back:?}");
    let fetches = idp.jwks_fetches();

    idp.rotate_key();
    let back = sign_in_to_org(&dir).await;
    assert!(back.contains_key("code"), "{back:?}");
    assert_eq!(
        idp.jwks_fetches(),
        fetches + 1,
        "the new key was fetched once"
    );
    let back = sign_in_to_org(&dir).await;
    assert!(back.contains_key("code"), "{back:?}");
    assert_eq!(
        idp.jwks_fetches(),
        fetches + 1,
        "and then served from the cache"
    );
    dir.app.finish().await;
}

#[actix_web::test]
async fn settings_are_checked_never_show_the_secret_and_stay_in_their_tenant() {
    let idp = TestIdp::start();
    let dir = tenant_with_sso(&idp).await;
    let path = format!("/connections/{}/sso", dir.conn);

    let (status, shown) = dir.admin("GET", &path, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        shown["redirect_uri"],
        "http://127.0.0.1:8080/sso/oidc/callback"
    );
    assert_eq!(shown["scopes"], json!(["openid", "email", "profile"]));
    assert!(!shown.to_string().contains(CLIENT_SECRET), "{shown}");

    for (body, field) in [
        (
            json!({"protocol": "oidc", "issuer": "http://idp.example.com", "client_id": "c"}),
            "issuer",
        ),
        (
            json!({"protocol": "oidc", "issuer": "https://10.0.0.1", "client_id": "c"}),
            "issuer",
        ),
        (
            json!({"protocol": "oidc", "issuer": idp.issuer, "client_id": "c", "scopes": ["email"]}),
            "scopes",
        ),
        (
            json!({"protocol": "oidc", "issuer": format!("{}/elsewhere", idp.issuer), "client_id": "c"}),
            "issuer",
        ),
        (
            json!({"protocol": "ws-fed", "issuer": idp.issuer, "client_id": "c"}),
            "protocol",
        ),
        (json!({"protocol": "oidc", "client_id": "c"}), "issuer"),
    ] {
        let (status, problem) = dir.admin("PUT", &path, Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(
            problem["invalid_params"][0]["name"], field,
            "{body}: {problem}"
        );
    }
    // Unchanged by the refusals; the secret may be left out to keep it.
    let (status, kept) = dir
        .admin(
            "PUT",
            &path,
            Some(json!({"protocol": "oidc", "issuer": idp.issuer, "client_id": CLIENT_ID, "scopes": ["openid", "email"]})),
        )
        .await;
    assert_eq!(status, 200, "{kept}");
    set_mode(&dir, "jit").await;
    let back = sign_in_to_org(&dir).await;
    assert!(
        back.contains_key("code"),
        "the kept secret still works: {back:?}"
    );

    // Another tenant's admin neither sees nor changes it, nor redeems its codes.
    let other = create_root(&dir.app, "Other", "other").await;
    let outsider = dir.app.tokens.org(
        other.parse().unwrap(),
        orgsync_domain::auth::AdminRole::Owner,
    );
    let url = format!("/api/v1/orgs/{}{path}", dir.org);
    let (status, _) = dir.app.call("GET", &url, Some(&outsider), None).await;
    assert_eq!(status, 404);
    let (status, _) = dir.app.call("DELETE", &url, Some(&outsider), None).await;
    assert_eq!(status, 404);
    let back = sign_in_to_org(&dir).await;
    let (status, refused) = dir
        .app
        .call(
            "POST",
            "/sso/token",
            Some(&outsider),
            Some(json!({"code": back["code"]})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");

    let (status, _) = dir.admin("DELETE", &path, None).await;
    assert_eq!(status, 204);
    let (status, _) = dir.admin("GET", &path, None).await;
    assert_eq!(status, 404);
    let back = sign_in_to_org(&dir).await;
    assert_eq!(back["error"], "invalid_request", "{back:?}");
    dir.app.finish().await;
}

#[actix_web::test]
async fn one_address_gets_a_budget_of_sign_in_requests() {
    let app = TestApp::spawn_with(|s| {
        s.sso.redirect_uris = vec!["https://app.example.com/cb".into()];
        s.sso.sign_ins_per_second = 1;
    })
    .await;
    let org = create_root(&app, "Acme", "acme").await;
    let path = format!(
        "/sso/authorize?organization={org}&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb"
    );
    let from = |ip: &str| {
        request("GET", &path, None, None).peer_addr(format!("{ip}:40000").parse().unwrap())
    };
    // A burst of two, then the address waits; another address does not.
    // The budget refills one request a second, so on a loaded machine a
    // request may find a new one: what must hold is that a few requests in
    // a row run out of it.
    for _ in 0..2 {
        assert_eq!(app.send(from("203.0.113.7")).await.status().as_u16(), 302);
    }
    let mut limited = None;
    for _ in 0..5 {
        let answer = app.send(from("203.0.113.7")).await;
        if answer.status().as_u16() == 429 {
            limited = Some(answer);
            break;
        }
        assert_eq!(answer.status().as_u16(), 302);
    }
    let limited = limited.expect("the address ran out of sign-in requests");
    assert!(limited.headers().get("retry-after").is_some());
    assert_eq!(app.send(from("203.0.113.8")).await.status().as_u16(), 302);
    // The callback draws on the same budget.
    let mut callback_limited = false;
    for _ in 0..5 {
        let callback = request("GET", "/sso/oidc/callback?state=x&code=y", None, None)
            .peer_addr("203.0.113.7:40001".parse().unwrap());
        if app.send(callback).await.status().as_u16() == 429 {
            callback_limited = true;
            break;
        }
    }
    assert!(callback_limited, "callbacks share the address's budget");
    app.finish().await;
}

/// The connection's SAML service provider metadata, as an IdP fetches it.
async fn sp_metadata(
    dir: &Directory,
) -> actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody> {
    let path = format!("/sso/saml/{}/metadata", dir.conn);
    dir.app.send(request("GET", &path, None, None)).await
}

async fn configure_saml(dir: &Directory, body: Value) -> (u16, Value) {
    dir.admin("PUT", &format!("/connections/{}/sso", dir.conn), Some(body))
        .await
}

/// The browser through a SAML sign-in: orgsync → IdP (which answers as
/// `forge` says) → the ACS. The ACS's answer.
async fn saml_sign_in(
    dir: &Directory,
    idp: &SamlIdp,
    name_id: &str,
    attributes: &[(&str, &str)],
    forge: SamlForge,
) -> std::collections::HashMap<String, String> {
    let start = authorize_path(&format!("organization={}", dir.org));
    let to_idp = location(&dir.app.send(request("GET", &start, None, None)).await);
    assert!(to_idp.starts_with(SSO_URL), "{to_idp}");
    let sp = format!("http://127.0.0.1:8080/sso/saml/{}/metadata", dir.conn);
    let (response, relay) = idp.answer(&to_idp, &sp, name_id, attributes, forge);
    let back = post_acs(dir, &response, relay.as_deref()).await;
    assert_eq!(back.0, 303, "{:?}", back.1);
    let product = back.1.unwrap();
    assert!(product.starts_with(PRODUCT), "{product}");
    params(&product)
}

/// Posts a SAMLResponse to the connection's ACS: the status and where it redirects.
async fn post_acs(dir: &Directory, response: &str, relay: Option<&str>) -> (u16, Option<String>) {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("SAMLResponse", response);
    if let Some(relay) = relay {
        form.append_pair("RelayState", relay);
    }
    let posted = dir
        .app
        .send(
            request("POST", &format!("/sso/saml/{}/acs", dir.conn), None, None)
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload(form.finish()),
        )
        .await;
    let status = posted.status().as_u16();
    let to = posted
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (status, to)
}

#[actix_web::test]
async fn saml_signs_a_jit_user_in_from_the_idps_metadata() {
    let idp = SamlIdp::new();
    let dir = Directory::on(app().await).await;
    let (status, shown) = configure_saml(
        &dir,
        json!({"protocol": "saml", "idp_metadata_xml": idp.metadata_xml()}),
    )
    .await;
    assert_eq!(status, 200, "{shown}");
    let base = format!("http://127.0.0.1:8080/sso/saml/{}", dir.conn);
    assert_eq!(shown["acs_url"], format!("{base}/acs"));
    assert_eq!(shown["sp_entity_id"], format!("{base}/metadata"));
    assert_eq!(shown["idp_entity_id"], idp.entity_id);
    assert_eq!(
        shown["idp_sso_url"], SSO_URL,
        "the HTTP-Redirect endpoint, not the POST one"
    );
    assert_eq!(shown["allow_idp_initiated"], false);

    let metadata = sp_metadata(&dir).await;
    assert_eq!(metadata.status().as_u16(), 200);
    let xml = String::from_utf8(test::read_body(metadata).await.to_vec()).unwrap();
    assert!(
        xml.contains(&format!("entityID=\"{base}/metadata\"")),
        "{xml}"
    );
    assert!(xml.contains(&format!("Location=\"{base}/acs\"")), "{xml}");

    set_mode(&dir, "jit").await;
    map_department_from(&dir, "department").await;
    let back = saml_sign_in(
        &dir,
        &idp,
        "ada@example.com",
        &[
            ("firstName", "Ada"),
            ("lastName", "Lovelace"),
            ("department", "R and D"),
        ],
        SamlForge::Honest,
    )
    .await;
    assert_eq!(back["state"], "product-state");
    let code = back.get("code").unwrap_or_else(|| panic!("{back:?}"));
    let (status, signed_in) = redeem(&dir.app, code).await;
    assert_eq!(status, 200, "{signed_in}");
    assert_eq!(signed_in["profile"]["id"], "ada@example.com");
    assert_eq!(signed_in["profile"]["first_name"], "Ada");
    assert_eq!(signed_in["member"]["name"], "Ada Lovelace");
    assert_eq!(signed_in["member"]["source"], "jit");
    assert_eq!(
        signed_in["member"]["public_metadata"],
        json!({"department": "R and D"})
    );
    dir.app.finish().await;
}

#[actix_web::test]
async fn forged_or_replayed_saml_responses_are_refused_and_create_nothing() {
    let idp = SamlIdp::new();
    let dir = Directory::on(app().await).await;
    let (status, body) = configure_saml(
        &dir,
        json!({"protocol": "saml", "idp_entity_id": idp.entity_id, "idp_sso_url": SSO_URL,
               "idp_certificate": idp.certificate_pem()}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    set_mode(&dir, "jit").await;
    for (forge, reason) in [
        (SamlForge::Unsigned, "must be signed"),
        (SamlForge::ForeignKey, "must be signed"),
        (SamlForge::WrongAudience, "AudienceRequirement"),
        (SamlForge::WrongRecipient, "destination does not match"),
        (SamlForge::WrongIssuer, "Issuer does not match"),
        (SamlForge::WrongInResponseTo, "InResponseTo"),
        (SamlForge::Expired, "expired"),
        (SamlForge::Wrapped, "must be signed"),
        (SamlForge::Sha1Digest, "must be signed"),
    ] {
        let back = saml_sign_in(&dir, &idp, "mallory@example.com", &[], forge).await;
        assert_eq!(
            back.get("error").map(String::as_str),
            Some("access_denied"),
            "{forge:?}: {back:?}"
        );
        assert!(
            back["error_description"].contains(reason),
            "{forge:?}: {back:?}"
        );
        assert!(!back.contains_key("code"), "{forge:?}");
    }
    assert!(members_by_email(&dir, &dir.org).await.is_empty());

    // An honest response works once: its sign-in is then finished.
    let start = authorize_path(&format!("organization={}", dir.org));
    let to_idp = location(&dir.app.send(request("GET", &start, None, None)).await);
    let sp = format!("http://127.0.0.1:8080/sso/saml/{}/metadata", dir.conn);
    let (response, relay) = idp.answer(&to_idp, &sp, "ada@example.com", &[], SamlForge::Honest);
    let first = post_acs(&dir, &response, relay.as_deref()).await;
    assert!(first.1.unwrap().contains("code="));
    let replay = post_acs(&dir, &response, relay.as_deref()).await;
    assert_eq!(replay.0, 400, "a replayed response finds no sign-in");

    // A form larger than any response is refused unread, as a problem.
    let oversized = dir
        .app
        .send(
            request("POST", &format!("/sso/saml/{}/acs", dir.conn), None, None)
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload(format!("SAMLResponse={}", "A".repeat(300 * 1024))),
        )
        .await;
    assert_eq!(oversized.status(), 413);
    let kind = oversized.headers().get("content-type").unwrap();
    assert_eq!(kind, "application/problem+json");

    // IdP-initiated sign-in is off by default...
    let acs = format!("http://127.0.0.1:8080/sso/saml/{}/acs", dir.conn);
    let unsolicited = idp.respond(&acs, &sp, None, "grace@example.com", &[], SamlForge::Honest);
    assert_eq!(post_acs(&dir, &unsolicited, None).await.0, 400);
    // ...and when the admin turns it on, each assertion still works once.
    let (status, body) = configure_saml(
        &dir,
        json!({"protocol": "saml", "idp_metadata_xml": idp.metadata_xml(), "allow_idp_initiated": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let unsolicited = idp.respond(&acs, &sp, None, "grace@example.com", &[], SamlForge::Honest);
    let (status, to) = post_acs(&dir, &unsolicited, None).await;
    assert_eq!(status, 303);
    assert!(to.unwrap().contains("code="));
    let (status, to) = post_acs(&dir, &unsolicited, None).await;
    assert_eq!(status, 303);
    let again = params(&to.unwrap());
    assert_eq!(again["error"], "access_denied");
    assert!(
        again["error_description"].contains("already used"),
        "{again:?}"
    );
    dir.app.finish().await;
}

#[actix_web::test]
async fn saml_settings_are_checked() {
    let idp = SamlIdp::new();
    let dir = Directory::on(app().await).await;
    let no_cert = idp
        .metadata_xml()
        .replace(&idp.certificate_base64(), "")
        .replace("<ds:X509Certificate></ds:X509Certificate>", "");
    for (body, field) in [
        (json!({"protocol": "saml"}), "idp_metadata_xml"),
        (
            json!({"protocol": "saml", "idp_metadata_xml": "<not-xml"}),
            "idp_metadata_xml",
        ),
        (
            json!({"protocol": "saml", "idp_metadata_xml": no_cert}),
            "idp_metadata_xml",
        ),
        (
            json!({"protocol": "saml", "idp_metadata_xml": idp.metadata_xml(),
                "idp_metadata_url": "https://idp.example.com/md"}),
            "idp_metadata_xml",
        ),
        (
            json!({"protocol": "saml", "idp_entity_id": "x", "idp_sso_url": SSO_URL,
                "idp_certificate": "not a certificate"}),
            "idp_certificate",
        ),
        (
            json!({"protocol": "saml", "idp_entity_id": "x", "idp_sso_url": "http://10.0.0.1/sso",
                "idp_certificate": idp.certificate_pem()}),
            "idp_sso_url",
        ),
        (
            json!({"protocol": "saml", "idp_metadata_url": "http://10.0.0.1/md"}),
            "idp_metadata_url",
        ),
    ] {
        let (status, problem) = configure_saml(&dir, body.clone()).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(
            problem["invalid_params"][0]["name"], field,
            "{body}: {problem}"
        );
    }
    let missing = sp_metadata(&dir).await;
    assert_eq!(
        missing.status().as_u16(),
        404,
        "no SAML settings, no SP metadata"
    );
    dir.app.finish().await;
}

#[actix_web::test]
async fn jit_members_get_the_orgs_default_role_never_owner() {
    let idp = TestIdp::start();
    let dir = jit_tenant_with_sso(&idp).await;
    let (status, shown) = dir.admin("GET", "/provisioning/jit", None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        shown,
        json!({"default_role": null, "effective_role": "user"})
    );
    for (role, status) in [("owner", 422), ("auditor", 422), ("admin", 200)] {
        let (got, body) = set_jit_default_role(&dir, role).await;
        assert_eq!(got, status, "{role}: {body}");
    }
    let (status, _) = dir
        .admin(
            "PUT",
            "/roles",
            Some(json!({"roles": [{"name": "auditor", "capabilities": ["audit:read"]}]})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, set) = set_jit_default_role(&dir, "auditor").await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["effective_role"], "auditor");

    idp.sign_in_as(json!({"sub": "u-9", "email": "new@example.com"}));
    let back = sign_in_to_org(&dir).await;
    let (status, signed_in) = redeem(&dir.app, &back["code"]).await;
    assert_eq!(status, 200, "{signed_in}");
    assert_eq!(signed_in["member"]["role"], "auditor");

    // The default is in use like a mapped or held role: not removed from
    // under the next sign-in.
    let (status, _) = dir
        .admin(
            "DELETE",
            &format!("/members/{}", signed_in["member"]["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let no_roles = json!({"roles": []});
    let (status, refused) = dir.admin("PUT", "/roles", Some(no_roles.clone())).await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["invalid_params"][0]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("first sign-in")),
        "{refused}"
    );
    assert_eq!(set_jit_default_role(&dir, "user").await.0, 200);
    let (status, saved) = dir.admin("PUT", "/roles", Some(no_roles)).await;
    assert_eq!(status, 200, "{saved}");
    dir.app.finish().await;
}

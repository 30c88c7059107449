use super::*;

fn policy(loopback: bool) -> SsoPolicy {
    SsoPolicy::new(
        vec!["https://app.example.com/callback".into()],
        loopback,
        Duration::from_secs(600),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn input(issuer: &str) -> OidcInput {
    OidcInput {
        issuer: issuer.into(),
        client_id: "client".into(),
        client_secret: Some("secret".into()),
        ..OidcInput::default()
    }
}

fn field_of(result: Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::Invalid { field, .. }) => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn issuers_must_be_https_and_outside_the_network_unless_loopback_is_allowed() {
    for bad in [
        "http://idp.example.com",
        "ftp://idp.example.com",
        "https://10.0.0.5",
        "https://169.254.169.254/latest",
        "https://user:pw@idp.example.com",
        "https://idp.example.com/#frag",
        "http://127.0.0.1:8080",
        "not a url",
    ] {
        assert_eq!(
            field_of(input(bad).validate(&policy(false), None)),
            "issuer"
        );
    }
    assert!(input("http://127.0.0.1:8080")
        .validate(&policy(true), None)
        .is_ok());
    assert!(input("http://[::1]:8080/tenant")
        .validate(&policy(true), None)
        .is_ok());
    assert_eq!(
        field_of(input("http://10.1.2.3").validate(&policy(true), None)),
        "issuer"
    );
    assert_eq!(
        field_of(input("http://localhost:8080").validate(&policy(true), None)),
        "issuer",
        "only loopback addresses, never a name that could resolve elsewhere"
    );
    let (settings, _) = input("https://login.example.com/tenant/v2.0")
        .validate(&policy(false), None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(settings.issuer, "https://login.example.com/tenant/v2.0");
    assert_eq!(settings.scopes, ["openid", "email", "profile"]);
}

#[test]
fn an_issuer_keeps_its_exact_form_since_tokens_must_match_it() {
    let (settings, _) = input("https://idp.example.com/")
        .validate(&policy(false), None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(settings.issuer, "https://idp.example.com/");
    let (settings, _) = input("https://idp.example.com")
        .validate(&policy(false), None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(settings.issuer, "https://idp.example.com");
}

#[test]
fn scopes_need_openid_and_follow_the_oauth_grammar() {
    let with = |scopes: &[&str]| OidcInput {
        scopes: Some(scopes.iter().map(|s| (*s).to_owned()).collect()),
        ..input("https://idp.example.com")
    };
    assert_eq!(
        field_of(with(&["email"]).validate(&policy(false), None)),
        "scopes"
    );
    assert_eq!(
        field_of(with(&["openid", "a b"]).validate(&policy(false), None)),
        "scopes[1]"
    );
    assert_eq!(
        field_of(with(&["openid", "openid"]).validate(&policy(false), None)),
        "scopes[1]"
    );
    let many: Vec<String> = (0..21).map(|i| format!("s{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(
        field_of(with(&refs).validate(&policy(false), None)),
        "scopes"
    );
    assert!(with(&["openid", "groups", "offline_access"])
        .validate(&policy(false), None)
        .is_ok());
}

#[test]
fn a_secret_is_needed_once_and_kept_when_left_out() {
    let no_secret = OidcInput {
        client_secret: None,
        ..input("https://idp.example.com")
    };
    assert_eq!(
        field_of(no_secret.clone().validate(&policy(false), None)),
        "client_secret"
    );
    let (_, secret) = no_secret
        .validate(&policy(false), Some("kept"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(secret, "kept");
}

#[test]
fn redirect_uris_match_exactly_and_must_be_safe_to_configure() {
    let policy = policy(false);
    assert!(policy
        .check_redirect_uri("https://app.example.com/callback")
        .is_ok());
    for near_miss in [
        "https://app.example.com/callback/",
        "https://app.example.com/callback?x=1",
        "https://APP.example.com/callback",
        "https://app.example.com.evil.com/callback",
    ] {
        assert!(policy.check_redirect_uri(near_miss).is_err(), "{near_miss}");
    }
    let ttl = Duration::from_secs(600);
    assert!(SsoPolicy::new(vec!["http://app.example.com/cb".into()], true, ttl).is_err());
    assert!(SsoPolicy::new(vec!["http://127.0.0.1:3000/cb".into()], false, ttl).is_err());
    assert!(SsoPolicy::new(vec!["http://127.0.0.1:3000/cb".into()], true, ttl).is_ok());
}

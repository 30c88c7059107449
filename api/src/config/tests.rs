//! Loading from a given environment (no process variables, no file), and
//! the refusals: each names the key at fault.

use super::*;

fn load_env(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let source = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<std::collections::HashMap<_, _>>();
    Settings::load_with(
        None,
        config::Environment::with_prefix("ORGSYNC")
            .prefix_separator("__")
            .separator("__")
            .source(Some(source)),
    )
}

#[test]
fn no_configuration_at_all_means_the_embedded_mode() {
    let settings = load_env(&[]).map_err(|e| e.to_string());
    let settings = settings.as_ref().map_err(String::as_str);
    assert!(settings.is_ok(), "{settings:?}");
    if let Ok(s) = settings {
        assert!(s.is_embedded());
        assert!(s.redis.url.is_none());
        assert_eq!(s.server.bind, "127.0.0.1:8080");
        assert!(s.database_url().starts_with("sqlite://"));
    }
}

#[test]
fn environment_overrides_reach_nested_keys() {
    let s = load_env(&[
        ("ORGSYNC__DATABASE__URL", "postgres://localhost/x"),
        (
            "ORGSYNC__AUTH__JWT_SECRET",
            "0123456789abcdef0123456789abcdef",
        ),
        ("ORGSYNC__LOG__FORMAT", "json"),
    ]);
    assert!(matches!(s, Ok(ref s) if s.log.format == LogFormat::Json && !s.is_embedded()));
}

#[test]
fn a_bad_value_is_reported_with_its_key() {
    let cases = [
        (("ORGSYNC__SERVER__BIND", "nowhere"), "server.bind"),
        (("ORGSYNC__LOG__FORMAT", "xml"), "log.format"),
        (("ORGSYNC__DATABASE__URL", "mysql://x"), "database.url"),
        (("ORGSYNC__AUTH__JWT_SECRET", "short"), "auth.jwt_secret"),
        (
            ("ORGSYNC__AUTH__JWT_ALGORITHM", "RS256"),
            "auth.jwt_public_key",
        ),
        (("ORGSYNC__REDIS__URL", "http://x"), "redis.url"),
        (
            ("ORGSYNC__SSO__REDIRECT_URIS", "http://app.example.com/cb"),
            "sso.redirect_uris",
        ),
        (("ORGSYNC__SSO__LOGIN_TTL", "5"), "sso.login_ttl"),
    ];
    for ((key, value), named) in cases {
        let message = load_env(&[(key, value)])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains(named), "{key}={value}: {message}");
    }
}

#[test]
fn placeholder_and_low_entropy_secrets_are_refused_by_name() {
    for weak in [
        "CHANGE-ME-insecure-placeholder-jwt-secret",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "abababababababababababababababababab",
        "your-example-secret-goes-here-0123456789",
    ] {
        let message = load_env(&[
            ("ORGSYNC__DATABASE__URL", "postgres://localhost/x"),
            ("ORGSYNC__AUTH__JWT_SECRET", weak),
        ])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(message.contains("auth.jwt_secret"), "{weak}: {message}");
    }
    for strong in [
        "0123456789abcdef0123456789abcdef",
        "kX3v9QpZ0s8LwN2mB7cR4tY6uJ1hG5fD-aE_iO8pW3qS0zV",
    ] {
        assert_eq!(weak_secret(strong), None, "{strong}");
    }
}

#[test]
fn a_server_database_requires_an_explicit_signing_key() {
    let message = load_env(&[("ORGSYNC__DATABASE__URL", "postgres://localhost/x")])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(message.contains("auth.jwt_secret"), "{message}");
}

#[test]
fn sso_redirect_uris_come_comma_separated_from_the_environment() {
    let s = load_env(&[
        (
            "ORGSYNC__SSO__REDIRECT_URIS",
            "https://app.example.com/cb, http://127.0.0.1:3000/cb",
        ),
        ("ORGSYNC__SSO__ALLOW_INSECURE_LOOPBACK", "true"),
    ])
    .map_err(|e| e.to_string());
    let uris = s.map(|s| s.sso.redirect_uris);
    assert_eq!(
        uris.as_deref().map_err(String::as_str),
        Ok(&[
            "https://app.example.com/cb".to_owned(),
            "http://127.0.0.1:3000/cb".to_owned()
        ][..])
    );
    let defaults = load_env(&[]).map(|s| s.sso.redirect_uris.len());
    assert_eq!(defaults.ok(), Some(0));
}

#[test]
fn exports_may_hold_at_most_half_of_a_postgres_pool() {
    let server = [
        ("ORGSYNC__DATABASE__URL", "postgres://localhost/x"),
        (
            "ORGSYNC__AUTH__JWT_SECRET",
            "0123456789abcdef0123456789abcdef",
        ),
    ];
    let with = |pool: &'static str, exports: &'static str| {
        let mut vars = server.to_vec();
        vars.push(("ORGSYNC__DATABASE__MAX_CONNECTIONS", pool));
        vars.push(("ORGSYNC__LIMITS__EXPORTS_AT_ONCE", exports));
        load_env(&vars).err().map(|e| e.to_string())
    };
    assert_eq!(with("10", "2"), None, "the shipped defaults hold");
    assert_eq!(with("4", "1"), None);
    let refused = with("10", "3").unwrap_or_default();
    assert!(
        refused.contains("limits.exports_at_once") && refused.contains("to 12"),
        "{refused}"
    );
    assert!(
        with("3", "1").is_some(),
        "one export would take two of three"
    );
    // The embedded database holds no connection for an export.
    let embedded = load_env(&[
        ("ORGSYNC__DATABASE__MAX_CONNECTIONS", "1"),
        ("ORGSYNC__LIMITS__EXPORTS_AT_ONCE", "4"),
    ]);
    assert!(
        embedded.is_ok(),
        "{:?}",
        embedded.err().map(|e| e.to_string())
    );
}

use super::*;
use orgsync_domain::membership::{MemberId, MemberSource, MemberStatus, Role};
use orgsync_domain::sso::SsoProfile;
use uuid::Uuid;

/// The embedded adapter (SQLite) takes a login and a code out once, and
/// never an expired one; PostgreSQL is covered by the integration tests.
#[tokio::test]
async fn on_sqlite_logins_and_codes_are_taken_out_once_and_never_expired() {
    let dir = std::env::temp_dir().join(format!("orgsync-sso-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a scratch dir");
    let url = format!("sqlite://{}?mode=rwc", dir.join("sso.db").display());
    let db = Database::connect(&url, 1).await.expect("sqlite");
    db.migrate().await.expect("migrations run on SQLite");
    let repo = SqlSsoRepository::new(db);
    let now = OffsetDateTime::now_utc();
    let login = |handle: &str, expires_at| PendingLogin {
        handle: TokenHash::of(handle),
        connection_id: ConnectionId::new(),
        org_id: OrgId::new(),
        redirect_uri: "https://app.example.com/cb".into(),
        client_state: Some("s".into()),
        nonce: "n".into(),
        pkce_verifier: "v".into(),
        expires_at,
    };
    let fresh = login("fresh", now + time::Duration::minutes(5));
    repo.insert_login(&fresh).await.expect("inserted");
    repo.insert_login(&login("stale", now - time::Duration::seconds(1)))
        .await
        .expect("inserted");
    let taken = repo.take_login(&fresh.handle, now).await.expect("read");
    assert_eq!(taken, Some((fresh.clone(), None)));
    assert_eq!(repo.take_login(&fresh.handle, now).await.ok(), Some(None));
    let stale = repo.take_login(&TokenHash::of("stale"), now).await;
    assert_eq!(stale.ok(), Some(None));

    let issued = IssuedCode {
        org_id: fresh.org_id,
        connection_id: fresh.connection_id,
        profile: SsoProfile {
            id: "sub".into(),
            email: "a@example.com".into(),
            first_name: None,
            last_name: None,
            groups: vec![],
            raw_attributes: serde_json::Map::new(),
        },
        member: Member {
            id: MemberId::new(),
            org_id: fresh.org_id,
            directory_user_id: None,
            email: "a@example.com".into(),
            name: None,
            role: Role::User,
            seat_tier: None,
            spend_limit: None,
            public_metadata: serde_json::Map::new(),
            status: MemberStatus::Active,
            source: MemberSource::Jit,
            created_at: now,
            updated_at: now,
        },
        expires_at: now + time::Duration::seconds(60),
    };
    let code = TokenHash::of("code");
    repo.insert_code(&code, &issued).await.expect("inserted");
    let redeemed = repo.take_code(&code, now).await.expect("read");
    assert_eq!(redeemed.map(|c| c.member.id), Some(issued.member.id));
    assert!(repo.take_code(&code, now).await.expect("read").is_none());
    assert_eq!(repo.purge_expired(now).await.ok(), Some(0));
    std::fs::remove_dir_all(&dir).ok();
}

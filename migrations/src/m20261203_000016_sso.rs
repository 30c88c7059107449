//! Single sign-on. A connection's OIDC settings (the client secret in its
//! own column, never returned); sign-ins waiting at the IdP and codes
//! waiting for the product, each keyed by the SHA-256 (hex) of the value
//! handed out and taken out once; and which member an IdP subject is, per
//! connection and org, so an email change at the IdP keeps the member.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    "CREATE TABLE sso_connections (
        connection_id UUID PRIMARY KEY REFERENCES enterprise_connections (id) ON DELETE CASCADE,
        org_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
        protocol TEXT NOT NULL,
        settings TEXT NOT NULL,
        client_secret TEXT NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL
    )",
    "CREATE INDEX sso_connections_org_idx ON sso_connections (org_id, created_at)",
    "CREATE TABLE sso_logins (
        handle TEXT PRIMARY KEY,
        connection_id UUID NOT NULL,
        org_id UUID NOT NULL,
        redirect_uri TEXT NOT NULL,
        client_state TEXT,
        nonce TEXT NOT NULL,
        pkce_verifier TEXT NOT NULL,
        expires_at TIMESTAMP WITH TIME ZONE NOT NULL
    )",
    "CREATE INDEX sso_logins_expiry_idx ON sso_logins (expires_at)",
    "CREATE TABLE sso_codes (
        code TEXT PRIMARY KEY,
        org_id UUID NOT NULL,
        data TEXT NOT NULL,
        expires_at TIMESTAMP WITH TIME ZONE NOT NULL
    )",
    "CREATE INDEX sso_codes_expiry_idx ON sso_codes (expires_at)",
    "CREATE TABLE sso_identities (
        connection_id UUID NOT NULL REFERENCES enterprise_connections (id) ON DELETE CASCADE,
        subject TEXT NOT NULL,
        org_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
        member_id UUID NOT NULL REFERENCES members (id) ON DELETE CASCADE,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        last_sign_in_at TIMESTAMP WITH TIME ZONE NOT NULL,
        PRIMARY KEY (connection_id, subject, org_id)
    )",
    "CREATE INDEX sso_identities_member_idx ON sso_identities (member_id)",
];

const DOWN: &[&str] = &[
    "DROP TABLE sso_identities",
    "DROP TABLE sso_codes",
    "DROP TABLE sso_logins",
    "DROP TABLE sso_connections",
];

sql_migration!(UP, DOWN);

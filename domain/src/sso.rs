//! Single sign-on through an enterprise connection (OpenID Connect or SAML 2.0).
//!
//! A connection's SSO settings name the customer's IdP; a sign-in runs the
//! authorization code flow with PKCE and a nonce (OIDC), or sends an
//! AuthnRequest and verifies the signed response it answers (SAML), then
//! provisions by the org's mode and hands the product's backend a one-time code it redeems
//! for the profile. The rules here are pure: which URLs may be used, what a
//! profile is made of, and who may come in.

mod config;
mod flow;
mod profile;
mod provision;

pub use config::{
    check_endpoint, OidcInput, OidcSettings, SamlInput, SamlSettings, SamlSource, SsoConfig,
    SsoPolicy, SsoProtocol, MAX_METADATA_BYTES,
};
pub use flow::{
    AuthorizeRequest, CallbackOutcome, CallbackParams, IssuedCode, OidcEndpoints, PendingLogin,
    Redemption, SignInError, SignInErrorKind, SignInResult, Target,
};
pub use profile::{claim_metadata, SamlAssertion, SsoProfile};
pub use provision::{decide, SignIn};

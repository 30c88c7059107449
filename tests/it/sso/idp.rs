//! A small OpenID Connect provider on loopback, with RSA keys generated at
//! test time: discovery, JWKS, an authorization endpoint that signs in
//! whoever the test says (no login page), and a token endpoint that checks
//! the client's secret, the redirect URI and the PKCE verifier as a real
//! IdP does. It can also misbehave in every way an attacker or a broken IdP
//! might ([`Forge`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "orgsync-client";
pub const CLIENT_SECRET: &str = "s3cret-of-the-client";

/// How the ID token the IdP returns is spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    Honest,
    WrongIssuer,
    WrongAudience,
    Expired,
    NotYetValid,
    IssuedInTheFuture,
    WrongNonce,
    /// `alg: none`, no signature.
    Unsigned,
    /// HS256 with the IdP's public key as the HMAC secret (the RS/HS confusion).
    HmacWithPublicKey,
    /// Signed by a key the IdP does not publish, under a published key's `kid`.
    ForeignKeySameKid,
    /// Signed by a key the IdP does not publish, under a `kid` of its own.
    UnknownKid,
    /// Audiences `[client, other]` and no `azp`.
    SeveralAudiences,
    /// The signature's last bytes flipped.
    TamperedSignature,
}

struct Key {
    kid: String,
    encoding: EncodingKey,
    public_pem: String,
    jwk: Value,
}

fn generate(kid: &str) -> Key {
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = private.to_pkcs1_pem(LineEnding::LF).unwrap();
    let public = private.to_public_key();
    Key {
        kid: kid.to_owned(),
        encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        public_pem: public.to_pkcs1_pem(LineEnding::LF).unwrap(),
        jwk: json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }),
    }
}

struct Grant {
    redirect_uri: String,
    nonce: String,
    challenge: String,
    claims: Value,
}

struct State {
    issuer: String,
    /// Who signs in next: the claims of their ID token.
    user: Value,
    forge: Forge,
    /// When set, the IdP refuses the sign-in with this OAuth error.
    refuse: Option<&'static str>,
    keys: Vec<Key>,
    /// Which keys the JWKS publishes, and which one signs.
    published: Vec<usize>,
    signing: usize,
    /// A key never published, for forgeries.
    foreign: Key,
    grants: HashMap<String, Grant>,
    jwks_fetches: usize,
    token_calls: usize,
    /// How long each token request took the IdP (mostly RS256 signing).
    token_time: Vec<std::time::Duration>,
}

#[derive(Clone)]
pub struct TestIdp {
    pub issuer: String,
    state: Arc<Mutex<State>>,
}

impl TestIdp {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            issuer: issuer.clone(),
            user: json!({"sub": "user-1", "email": "ada@example.com"}),
            forge: Forge::Honest,
            refuse: None,
            keys: vec![generate("key-1")],
            published: vec![0],
            signing: 0,
            foreign: generate("key-1"),
            grants: HashMap::new(),
            jwks_fetches: 0,
            token_calls: 0,
            token_time: Vec::new(),
        }));
        let shared = web::Data::new(state.clone());
        // Its own thread and actix system, so it serves whatever runtime the
        // caller runs on (the tests' actix runtime, the benchmark's tokio one).
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                HttpServer::new(move || {
                    App::new()
                        .app_data(shared.clone())
                        .route(
                            "/.well-known/openid-configuration",
                            web::get().to(discovery),
                        )
                        .route("/jwks", web::get().to(jwks))
                        .route("/authorize", web::get().to(authorize))
                        .route("/token", web::post().to(token))
                })
                .workers(1)
                .listen(listener)
                .unwrap()
                .run()
                .await
            })
        });
        Self { issuer, state }
    }

    /// The next sign-in is this user (ID token claims besides iss, aud, nonce, times).
    pub fn sign_in_as(&self, claims: Value) {
        self.state.lock().unwrap().user = claims;
    }

    pub fn forge(&self, forge: Forge) {
        self.state.lock().unwrap().forge = forge;
    }

    pub fn refuse(&self, error: Option<&'static str>) {
        self.state.lock().unwrap().refuse = error;
    }

    /// Rotates to a new signing key, published from now on.
    pub fn rotate_key(&self) {
        let mut state = self.state.lock().unwrap();
        let kid = format!("key-{}", state.keys.len() + 1);
        state.keys.push(generate(&kid));
        let newest = state.keys.len() - 1;
        state.published.push(newest);
        state.signing = newest;
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.lock().unwrap().jwks_fetches
    }

    pub fn token_calls(&self) -> usize {
        self.state.lock().unwrap().token_calls
    }

    /// The IdP's own handling time of each token request so far (drained).
    #[allow(dead_code)]
    pub fn take_token_times(&self) -> Vec<std::time::Duration> {
        std::mem::take(&mut self.state.lock().unwrap().token_time)
    }
}

type Shared = web::Data<Arc<Mutex<State>>>;

async fn discovery(state: Shared) -> HttpResponse {
    let issuer = state.lock().unwrap().issuer.clone();
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(state: Shared) -> HttpResponse {
    let mut state = state.lock().unwrap();
    state.jwks_fetches += 1;
    let keys: Vec<Value> = state
        .published
        .iter()
        .map(|i| state.keys[*i].jwk.clone())
        .collect();
    HttpResponse::Ok().json(json!({ "keys": keys }))
}

fn query(req: &HttpRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

fn back_to(redirect_uri: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    let mut url = url::Url::parse(redirect_uri).unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    HttpResponse::Found()
        .insert_header(("location", url.to_string()))
        .finish()
}

async fn authorize(state: Shared, req: HttpRequest) -> HttpResponse {
    let q = query(&req);
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let ok = get("response_type") == "code"
        && get("client_id") == CLIENT_ID
        && get("code_challenge_method") == "S256"
        && !get("code_challenge").is_empty()
        && !get("nonce").is_empty()
        && get("scope").split(' ').any(|s| s == "openid");
    if !ok {
        return HttpResponse::BadRequest().body(format!("bad authorization request: {q:?}"));
    }
    let mut state = state.lock().unwrap();
    if let Some(error) = state.refuse {
        return back_to(
            &get("redirect_uri"),
            &[
                ("error", error),
                ("error_description", "the user is not assigned to this app"),
                ("state", &get("state")),
            ],
        );
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    let claims = state.user.clone();
    state.grants.insert(
        code.clone(),
        Grant {
            redirect_uri: get("redirect_uri"),
            nonce: get("nonce"),
            challenge: get("code_challenge"),
            claims,
        },
    );
    back_to(
        &get("redirect_uri"),
        &[("code", &code), ("state", &get("state"))],
    )
}

fn invalid_grant(why: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": "invalid_grant", "error_description": why}))
}

async fn token(state: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let started = std::time::Instant::now();
    let response = token_response(&state, &req, &body);
    state.lock().unwrap().token_time.push(started.elapsed());
    response
}

fn token_response(state: &Shared, req: &HttpRequest, body: &web::Bytes) -> HttpResponse {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let expected_auth = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if auth != Some(expected_auth.as_str()) {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_client"}));
    }
    let mut state = state.lock().unwrap();
    state.token_calls += 1;
    if get("grant_type") != "authorization_code" {
        return invalid_grant("grant_type");
    }
    let Some(grant) = state.grants.remove(&get("code")) else {
        return invalid_grant("unknown or used code");
    };
    if grant.redirect_uri != get("redirect_uri") {
        return invalid_grant("redirect_uri differs from the authorization request's");
    }
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
    if challenge != grant.challenge {
        return invalid_grant("PKCE verification failed");
    }
    let id_token = sign(&state, &grant);
    HttpResponse::Ok().json(json!({
        "access_token": "opaque", "token_type": "Bearer", "expires_in": 300, "id_token": id_token
    }))
}

fn sign(state: &State, grant: &Grant) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = grant.claims.clone();
    let fields = claims.as_object_mut().unwrap();
    for (k, v) in [
        ("iss", json!(state.issuer)),
        ("aud", json!(CLIENT_ID)),
        ("nonce", json!(grant.nonce)),
        ("iat", json!(now)),
        ("exp", json!(now + 300)),
    ] {
        fields.insert(k.into(), v);
    }
    match state.forge {
        Forge::WrongIssuer => {
            fields.insert("iss".into(), json!("https://evil.example.com"));
        }
        Forge::WrongAudience => {
            fields.insert("aud".into(), json!("another-client"));
        }
        Forge::Expired => {
            fields.insert("iat".into(), json!(now - 900));
            fields.insert("exp".into(), json!(now - 600));
        }
        Forge::NotYetValid => {
            fields.insert("nbf".into(), json!(now + 600));
        }
        Forge::IssuedInTheFuture => {
            fields.insert("iat".into(), json!(now + 3600));
            fields.insert("exp".into(), json!(now + 7200));
        }
        Forge::WrongNonce => {
            fields.insert("nonce".into(), json!("a-nonce-from-another-sign-in"));
        }
        Forge::SeveralAudiences => {
            fields.insert("aud".into(), json!([CLIENT_ID, "another-client"]));
        }
        _ => {}
    }
    let key = &state.keys[state.signing];
    let rs256 = |key: &Key, kid: &str| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
    };
    match state.forge {
        Forge::Unsigned => {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
            let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
            format!("{header}.{payload}.")
        }
        Forge::HmacWithPublicKey => {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(key.kid.clone());
            let secret = EncodingKey::from_secret(key.public_pem.as_bytes());
            jsonwebtoken::encode(&header, &claims, &secret).unwrap()
        }
        Forge::ForeignKeySameKid => rs256(&state.foreign, &key.kid),
        Forge::UnknownKid => rs256(&state.foreign, "never-published"),
        Forge::TamperedSignature => {
            let token = rs256(key, &key.kid);
            let (rest, signature) = token.rsplit_once('.').unwrap();
            let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            format!("{rest}.{}", URL_SAFE_NO_PAD.encode(bytes))
        }
        _ => rs256(key, &key.kid),
    }
}

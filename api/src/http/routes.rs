//! The route table: every admin route is registered through it with its
//! summary, so the OpenAPI document is generated from the very entries that
//! register the routes and cannot drift from what the server serves.

use actix_web::dev::Handler;
use actix_web::http::Method;
use actix_web::{web, FromRequest, Responder};

/// What the OpenAPI document says about one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDoc {
    pub method: Method,
    /// The full path, with `{param}` segments.
    pub path: String,
    pub summary: &'static str,
    pub tag: &'static str,
    /// Whether the route needs an admin bearer token.
    pub authenticated: bool,
}

type Register = Box<dyn Fn(&mut web::ServiceConfig)>;

/// A module's routes: registered into a scope, and described for the document.
pub struct Routes {
    prefix: &'static str,
    tag: &'static str,
    authenticated: bool,
    entries: Vec<(RouteDoc, Register)>,
}

impl Routes {
    /// Routes under `prefix` (the scope they are mounted in), grouped under `tag`.
    pub fn new(prefix: &'static str, tag: &'static str) -> Self {
        Self {
            prefix,
            tag,
            authenticated: true,
            entries: Vec::new(),
        }
    }

    /// Routes that need no token (probes, metrics).
    #[must_use]
    pub fn public(mut self) -> Self {
        self.authenticated = false;
        self
    }

    #[must_use]
    pub fn add<F, Args>(
        mut self,
        method: Method,
        path: &str,
        summary: &'static str,
        handler: F,
    ) -> Self
    where
        F: Handler<Args> + Clone + 'static,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let doc = RouteDoc {
            method: method.clone(),
            path: format!("{}{path}", self.prefix),
            summary,
            tag: self.tag,
            authenticated: self.authenticated,
        };
        let path = path.to_owned();
        let register: Register = Box::new(move |cfg: &mut web::ServiceConfig| {
            cfg.route(&path, web::method(method.clone()).to(handler.clone()));
        });
        self.entries.push((doc, register));
        self
    }

    pub fn register(&self, cfg: &mut web::ServiceConfig) {
        for (_, register) in &self.entries {
            register(cfg);
        }
    }

    pub fn docs(&self) -> Vec<RouteDoc> {
        self.entries.iter().map(|(doc, _)| doc.clone()).collect()
    }
}

//! SCIM with the shipped rate limits (100 requests/s per connection, bursts
//! of 200; ten times that per tenant) against the same database served with
//! the limits off. Spread over many tenants' connections, each inside its
//! budget, the two show what the limiter costs on every request; one
//! connection pushed past its budget, and one tenant's many connections
//! pushed past the tenant's, show the limits holding.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use serde_json::json;

use crate::{drive, seed_users, Target};

/// Connections the spread phases use (each of a tenant of its own), and
/// directory users each one holds.
const TENANTS: usize = 128;
const USERS_PER_TENANT: usize = 1_000;

/// `unlimited` and `limited` are admin APIs of two servers on one database,
/// the first with `scim.rate_limit_per_second=0`, the second with the shipped
/// limit.
pub async fn rate_limit_benchmark(
    unlimited: &Target,
    limited: &Target,
    db: &DatabaseConnection,
    clients: usize,
    run: Duration,
) {
    println!(
        "SCIM rate limit: shipped (100/s, burst 200 per connection; 10x per tenant) against off, \
         {TENANTS} connections of {USERS_PER_TENANT} users, {clients} clients"
    );
    let mut tenants = Vec::with_capacity(TENANTS);
    for n in 0..TENANTS {
        // A tenant of its own for each: the shipped limit also caps what
        // one tenant's connections send together.
        let root = create_org(unlimited, "/orgs", &format!("limits-tenant-{n}")).await;
        let (conn_id, token) =
            crate::directory_sync_connection(unlimited, &root, &format!("tenant {n}")).await;
        seed_users(db, conn_id, 0, USERS_PER_TENANT).await;
        tenants.push((conn_id, token));
    }
    // The phases before deleted a group of ~78,000 members. Until autovacuum
    // comes by (within a minute in production) the dead index entries make
    // the planner's choice for a user's groups cost milliseconds; this does
    // now what autovacuum would do then.
    crate::exec(db, "VACUUM ANALYZE", vec![]).await;
    let ids = Arc::new(first_user_ids(db, &tenants).await);
    for (label, api) in [("off", unlimited), ("shipped", limited)] {
        let targets: Arc<Vec<Target>> = Arc::new(
            tenants
                .iter()
                .map(|(conn, token)| Target {
                    http: api.http.clone(),
                    base: api.base.replace("/api/v1", &format!("/scim/v2/{conn}")),
                    token: token.clone(),
                })
                .collect(),
        );
        for phase in [Spread::Filter, Spread::Patch] {
            let refused = Arc::new(AtomicUsize::new(0));
            let (t, r, ids) = (targets.clone(), refused.clone(), ids.clone());
            let stats = drive(
                &format!("{} over {TENANTS} connections, limit {label}", phase.name()),
                Arc::new(api.clone()),
                clients,
                None,
                run,
                move |_, i| {
                    let (t, r, ids) = (t.clone(), r.clone(), ids.clone());
                    async move {
                        let tenant = &t[i % TENANTS];
                        let status = match phase {
                            Spread::Filter => {
                                let n = (i * 7919) % USERS_PER_TENANT;
                                let path = format!(
                                    "/Users?filter=userName%20eq%20%22user-{n}@bench.example%22"
                                );
                                tenant.get(&path).await.0
                            }
                            Spread::Patch => {
                                let ops = json!([{"op": "replace", "path": "displayName", "value": format!("Limited {i}")}]);
                                let path = format!("/Users/{}", ids[i % TENANTS]);
                                tenant.patch(&path, ops).await.0
                            }
                        };
                        counted(status, &r)
                    }
                },
            )
            .await;
            print_served(stats, &refused);
        }
    }
    // One connection asking for more than its budget: what it is served.
    let one = Arc::new(Target {
        http: limited.http.clone(),
        base: limited
            .base
            .replace("/api/v1", &format!("/scim/v2/{}", tenants[0].0)),
        token: tenants[0].1.clone(),
    });
    let refused = Arc::new(AtomicUsize::new(0));
    let r = refused.clone();
    let stats = drive(
        "GET /Users?count=1, one connection, shipped limit",
        one,
        clients,
        None,
        Duration::from_secs(5),
        move |t, _| {
            let r = r.clone();
            async move { counted(t.get("/Users?count=1").await.0, &r) }
        },
    )
    .await;
    print_served(stats, &refused);
    // One tenant's many connections, one per child org, each asking within
    // its own budget (32 x 100/s is over three times the tenant's 1,000/s):
    // what the tenant is served together.
    let crowd = Arc::new(crowd_of_connections(unlimited, limited).await);
    let refused = Arc::new(AtomicUsize::new(0));
    let (t, r) = (crowd.clone(), refused.clone());
    let stats = drive(
        &format!("GET /Users?count=1, one tenant's {CROWD} connections, shipped limit"),
        Arc::new(limited.clone()),
        clients,
        None,
        Duration::from_secs(5),
        move |_, i| {
            let (t, r) = (t.clone(), r.clone());
            async move { counted(t[i % CROWD].get("/Users?count=1").await.0, &r) }
        },
    )
    .await;
    print_served(stats, &refused);
}

/// Connections of the crowd phase, all in one tenant.
const CROWD: usize = 32;

/// A tenant with [`CROWD`] child orgs, each with a connection of its own:
/// their SCIM targets on `limited`.
async fn crowd_of_connections(admin: &Target, limited: &Target) -> Vec<Target> {
    let root = create_org(admin, "/orgs", "limits-crowd").await;
    let mut targets = Vec::with_capacity(CROWD);
    for n in 0..CROWD {
        let child = create_org(
            admin,
            &format!("/orgs/{root}/children"),
            &format!("crowd-{n}"),
        )
        .await;
        let (conn, token) =
            crate::directory_sync_connection(admin, &child, &format!("crowd {n}")).await;
        targets.push(Target {
            http: limited.http.clone(),
            base: limited.base.replace("/api/v1", &format!("/scim/v2/{conn}")),
            token,
        });
    }
    targets
}

/// Creates an org named and slugged `slug` by POSTing to `path` (`/orgs`
/// for a tenant, `/orgs/{id}/children` for a child): its id.
async fn create_org(admin: &Target, path: &str, slug: &str) -> String {
    let (status, org) = admin.post(path, json!({"name": slug, "slug": slug})).await;
    assert_eq!(status, 201, "{org}");
    org["id"].as_str().unwrap_or_default().to_owned()
}

/// Prints a phase's figures (every answer, 429s included), then how many
/// requests per second were served and how many were refused.
fn print_served(mut stats: crate::Stats, refused: &AtomicUsize) {
    let refused = refused.load(Ordering::Relaxed);
    let served = stats.count - refused;
    let rate = served as f64 / stats.elapsed.as_secs_f64();
    stats.print();
    println!(
        "{:<58} {:>8.0} req/s served, {refused} answered 429",
        "  of which", rate
    );
}

/// The requests the spread phases send, each to connection `i % TENANTS`.
#[derive(Clone, Copy)]
enum Spread {
    Filter,
    Patch,
}

impl Spread {
    fn name(self) -> &'static str {
        match self {
            Self::Filter => "GET /Users?filter",
            Self::Patch => "PATCH /Users/{id}",
        }
    }
}

/// Counts a 429 (reported beside the figures) so the phase goes on.
fn counted(status: u16, limited: &AtomicUsize) -> u16 {
    if status == 429 {
        limited.fetch_add(1, Ordering::Relaxed);
        200
    } else {
        status
    }
}

/// The first directory user of each connection, in `tenants` order.
async fn first_user_ids(
    db: &DatabaseConnection,
    tenants: &[(uuid::Uuid, String)],
) -> Vec<uuid::Uuid> {
    let mut ids = Vec::with_capacity(tenants.len());
    for (conn, _) in tenants {
        let found = crate::query_ids(
            db,
            "SELECT id FROM directory_users WHERE connection_id = $1 ORDER BY id LIMIT 1",
            *conn,
        )
        .await;
        ids.push(found[0]);
    }
    ids
}

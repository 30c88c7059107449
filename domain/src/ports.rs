//! The ports: what the domain needs from the outside world. `infra` implements
//! them; every method that touches tenant data takes the org (or connection) first.

mod clock;
mod health;
mod org_repository;
mod queue;

pub use clock::{Clock, SystemClock};
pub use health::HealthCheck;
pub use org_repository::OrgRepository;
pub use queue::{Delivery, Job, JobQueue};

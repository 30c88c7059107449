/// A dependency whose reachability decides readiness.
#[async_trait::async_trait]
pub trait HealthCheck: Send + Sync {
    /// A short name for reports (`database`, `queue`).
    fn component(&self) -> &'static str;

    /// # Errors
    /// A human-readable reason when the dependency cannot serve requests now.
    async fn check(&self) -> Result<(), String>;
}

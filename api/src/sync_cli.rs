//! `orgsync sync start`: asks a running orgsync (over its admin API) for a
//! sync and, with `--wait`, follows it with a live progress bar.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::config::Settings;
use crate::runtime::minter;

#[derive(Debug, Args)]
pub struct SyncStart {
    /// The organization to sync (with its children and sandboxes, unless told otherwise).
    #[arg(long)]
    org: Uuid,
    /// `members`, `groups` or `both`.
    #[arg(long, default_value = "both")]
    scope: String,
    /// Only this organization, not every org drawing on the same directory.
    #[arg(long)]
    no_cascade: bool,
    /// Leave sandbox organizations out of the cascade.
    #[arg(long)]
    no_sandboxes: bool,
    /// Follow the run until it ends; exit non-zero if it failed.
    #[arg(long)]
    wait: bool,
    /// The server's base URL (default: server.public_url).
    #[arg(long)]
    url: Option<String>,
    /// An admin token (default: a platform token minted from the configured key).
    #[arg(long, env = "ORGSYNC_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

pub async fn start(settings: &Settings, args: SyncStart) -> anyhow::Result<()> {
    let base = args.url.clone().unwrap_or_else(|| settings.public_url());
    let token = match args.token.clone() {
        Some(token) => token,
        None => minter(settings)?
            .mint("orgsync-cli", None)
            .context("signing a token")?,
    };
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{base}/api/v1/orgs/{}/syncs", args.org))
        .bearer_auth(&token)
        .json(&json!({
            "scope": args.scope,
            "cascade": !args.no_cascade,
            "include_sandboxes": !args.no_sandboxes,
        }))
        .send()
        .await
        .with_context(|| format!("reaching {base}"))?;
    let status = response.status();
    let run: Value = response.json().await.context("reading the answer")?;
    if !status.is_success() {
        bail!(
            "{}: {}",
            status,
            run["detail"].as_str().unwrap_or("request refused")
        );
    }
    let id = run["id"].as_str().unwrap_or_default().to_owned();
    println!(
        "sync run {id} queued for {} organization(s)",
        run["progress"]["total"]
    );
    if !args.wait {
        return Ok(());
    }
    let total = run["progress"]["total"].as_u64().unwrap_or(1);
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} orgs  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    loop {
        let current: Value = http
            .get(format!("{base}/api/v1/orgs/{}/syncs/{id}", args.org))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        bar.set_position(current["progress"]["processed"].as_u64().unwrap_or(0));
        let counts = &current["counts"];
        bar.set_message(format!(
            "+{} ~{} -{}",
            counts["adds"], counts["updates"], counts["removals"]
        ));
        match current["status"].as_str() {
            Some("succeeded") => {
                bar.finish_with_message(format!(
                    "succeeded: +{} ~{} -{}",
                    counts["adds"], counts["updates"], counts["removals"]
                ));
                return Ok(());
            }
            Some("failed") => {
                bar.abandon_with_message("failed");
                bail!(
                    "sync run {id} failed: {}",
                    current["error"].as_str().unwrap_or("see GET /syncs/{run}")
                );
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

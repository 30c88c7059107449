//! Shapes shared by the admin API's answers: list pages with opaque cursors,
//! previews of changes a window at a time, and timestamps.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use orgsync_domain::page::{Page, PageRequest};
use orgsync_domain::sync::PreviewPage;
use orgsync_domain::Error;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// RFC 3339, as every timestamp of the admin API.
pub fn timestamp(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A page of a list and the opaque cursor of the next one.
#[derive(Debug, Serialize)]
pub struct ListView<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> ListView<T> {
    pub fn from_page<S>(page: Page<S>, view: impl Fn(&S) -> T) -> Self {
        Self {
            data: page.items.iter().map(view).collect(),
            next_cursor: page
                .next_after
                .map(|id| URL_SAFE_NO_PAD.encode(id.as_bytes())),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

impl ListQuery {
    pub fn page(&self) -> Result<PageRequest, Error> {
        let after = match &self.cursor {
            None => None,
            Some(raw) => {
                let bytes = URL_SAFE_NO_PAD
                    .decode(raw)
                    .map_err(|_| Error::invalid("cursor", "not a cursor this API issued"))?;
                Some(
                    Uuid::from_slice(&bytes)
                        .map_err(|_| Error::invalid("cursor", "not a cursor this API issued"))?,
                )
            }
        };
        PageRequest::new(after, self.limit)
    }
}

/// `Some(None)` for an explicit `null`, `None` for an absent key.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `?limit=&cursor=` on a preview: its change lists are answered a window at a time.
#[derive(Debug, Deserialize)]
pub struct PreviewQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

impl PreviewQuery {
    /// `(offset, limit)`; the limit defaults to, and may not exceed, `limits.preview_page`.
    pub fn window(&self, most: usize) -> Result<(usize, usize), Error> {
        let limit = window_limit("limit", self.limit, most, most)?;
        let offset = self
            .cursor
            .as_deref()
            .map_or(Ok(0), |raw| offset_in("cursor", "preview:", raw))?;
        Ok((offset, limit))
    }
}

/// Orgs one sync preview plans and answers, by default and at most: a
/// cascade over a large tree is read a window of orgs at a time, so no one
/// answer plans (or holds the pages of) thousands of orgs.
const PREVIEW_ORGS: (usize, usize) = (20, 100);

/// `?org_limit=&org_cursor=` on a sync preview: which window of its orgs.
#[derive(Debug, Deserialize)]
pub struct OrgWindowQuery {
    org_limit: Option<usize>,
    org_cursor: Option<String>,
}

impl OrgWindowQuery {
    /// The orgs of the scope, by position, this page covers.
    pub fn window(&self) -> Result<std::ops::Range<usize>, Error> {
        let (default, most) = PREVIEW_ORGS;
        let limit = window_limit("org_limit", self.org_limit, default, most)?;
        let start = (self.org_cursor.as_deref())
            .map_or(Ok(0), |raw| offset_in("org_cursor", "orgs:", raw))?;
        Ok(start..start.saturating_add(limit))
    }
}

/// The cursor of a sync preview's next window of orgs, which [`OrgWindowQuery`] reads.
pub fn org_cursor(next: Option<usize>) -> Option<String> {
    next.map(|start| URL_SAFE_NO_PAD.encode(format!("orgs:{start}")))
}

fn window_limit(
    field: &str,
    asked: Option<usize>,
    default: usize,
    most: usize,
) -> Result<usize, Error> {
    match asked {
        None => Ok(default),
        Some(n) if (1..=most).contains(&n) => Ok(n),
        Some(_) => Err(Error::invalid(
            field,
            format!("must be between 1 and {most}"),
        )),
    }
}

/// The position a cursor this API issued (`prefix` and a number, in
/// URL-safe base64) stands for.
fn offset_in(field: &str, prefix: &str, raw: &str) -> Result<usize, Error> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(prefix)?.parse().ok())
        .ok_or_else(|| Error::invalid(field, "not a cursor this API issued"))
}

pub fn preview_view(page: PreviewPage) -> serde_json::Value {
    json!({
        "confirmation": page.confirmation,
        "counts": page.counts,
        "changes": page.changes,
        "next_cursor": preview_cursor(page.next_offset),
    })
}

/// The cursor of a preview's next window, which [`PreviewQuery`] reads.
pub fn preview_cursor(next_offset: Option<usize>) -> Option<String> {
    next_offset.map(|offset| URL_SAFE_NO_PAD.encode(format!("preview:{offset}")))
}

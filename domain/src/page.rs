//! Cursor pagination shared by every list.
//!
//! Lists are ordered by a time-ordered key (UUIDv7 ids), so a cursor is simply
//! the last key of the previous page: stable under inserts, no offsets to drift.

use uuid::Uuid;

/// Largest page a caller may ask for.
pub const MAX_PAGE_SIZE: u64 = 200;
/// Page size when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u64 = 50;

/// A request for one page: items strictly after `after`, at most `limit` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<Uuid>,
    pub limit: u64,
}

impl PageRequest {
    /// Builds a page request from untrusted input.
    ///
    /// # Errors
    /// `Invalid` when `limit` is 0 or above [`MAX_PAGE_SIZE`].
    pub fn new(after: Option<Uuid>, limit: Option<u64>) -> crate::Result<Self> {
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(crate::Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        Ok(Self { after, limit })
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            after: None,
            limit: DEFAULT_PAGE_SIZE,
        }
    }
}

/// One page of results and the cursor of the next one, if there is more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<Uuid>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in key order: the
    /// extra row only tells that another page exists.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u64, key: impl Fn(&T) -> Uuid) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_after = if has_more { rows.last().map(key) } else { None };
        Self {
            items: rows,
            next_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_outside_the_allowed_range_is_rejected() {
        assert!(PageRequest::new(None, Some(0)).is_err());
        assert!(PageRequest::new(None, Some(MAX_PAGE_SIZE + 1)).is_err());
        assert_eq!(
            PageRequest::new(None, None).map(|p| p.limit).ok(),
            Some(DEFAULT_PAGE_SIZE)
        );
    }

    #[test]
    fn an_overfetched_row_yields_a_cursor_and_is_not_returned() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = Page::from_overfetch(ids.clone(), 2, |id| *id);
        assert_eq!(page.items, ids[..2]);
        assert_eq!(page.next_after, Some(ids[1]));

        let last = Page::from_overfetch(ids[..2].to_vec(), 2, |id| *id);
        assert_eq!(last.next_after, None);
    }
}

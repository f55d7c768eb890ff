//! Paging of whole-fleet answers by router: `limit` routers per page (default
//! [`DEFAULT_LIMIT`], a larger `limit` is cut to [`MAX_LIMIT`]) after `cursor`, the opaque token a previous page
//! returned as its next cursor (today the last router id of that page, in router id order).
//! A page holds the routers with an id above the cursor, in id order, so a router enrolled
//! while a client pages through is seen on a later page and none is seen twice.

/// Routers per page when `limit` is not given: keeps a whole-fleet answer at about 2 MB.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 1000;

/// Why `limit` or `cursor` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error(
        "limit must be a whole number of routers from 1 (at most {MAX_LIMIT} are sent), got {0:?}"
    )]
    Limit(String),
    #[error("cursor {0:?} is not a cursor this collector returned")]
    Cursor(String),
}

/// One page of routers: those with `id > after`, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page {
    pub after: i64,
    pub limit: usize,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            after: 0,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl Page {
    /// Parses the `limit` and `cursor` query values (missing or empty: the defaults).
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Page, PageError> {
        let limit = match limit.map(str::trim).filter(|v| !v.is_empty()) {
            None => DEFAULT_LIMIT,
            // Above the maximum is the maximum (a client asking for "everything" gets pages).
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n >= 1 => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
                _ => return Err(PageError::Limit(v.to_string())),
            },
        };
        let after = match cursor.map(str::trim).filter(|v| !v.is_empty()) {
            None => 0,
            Some(v) => match v.strip_prefix('r').and_then(|n| n.parse::<i64>().ok()) {
                Some(id) if id >= 0 => id,
                _ => return Err(PageError::Cursor(v.to_string())),
            },
        };
        Ok(Page { after, limit })
    }

    /// Cuts `items` (ascending by id, at least `limit + 1` of them when another page follows)
    /// to the page and returns the next page's cursor, if another page follows.
    pub fn cut<T>(&self, items: &mut Vec<T>, id: impl Fn(&T) -> i64) -> Option<String> {
        if items.len() <= self.limit {
            return None;
        }
        items.truncate(self.limit);
        items.last().map(|t| cursor_of(id(t)))
    }
}

/// The cursor naming the page after router `id`.
pub fn cursor_of(id: i64) -> String {
    format!("r{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bounds_and_cursors() {
        assert_eq!(Page::parse(None, None).unwrap(), Page::default());
        assert_eq!(Page::parse(Some(""), Some("")).unwrap(), Page::default());
        assert_eq!(
            Page::parse(Some("3"), Some("r17")).unwrap(),
            Page {
                after: 17,
                limit: 3
            }
        );
        assert_eq!(Page::parse(Some("1000"), None).unwrap().limit, 1000);
        assert_eq!(Page::parse(Some("100000"), None).unwrap().limit, MAX_LIMIT);
        for bad in ["0", "-1", "1.5", "x", "99999999999999999999999"] {
            assert_eq!(
                Page::parse(Some(bad), None),
                Err(PageError::Limit(bad.into()))
            );
        }
        for bad in ["17", "r", "r-1", "rx", "%20"] {
            assert!(matches!(
                Page::parse(None, Some(bad)),
                Err(PageError::Cursor(_))
            ));
        }
    }

    #[test]
    fn cut_keeps_the_page_and_names_the_next() {
        let p = Page { after: 0, limit: 2 };
        let mut v = vec![4, 7, 9];
        assert_eq!(p.cut(&mut v, |&i| i), Some("r7".into()));
        assert_eq!(v, vec![4, 7]);
        let after = Page::parse(Some("2"), Some("r7")).unwrap();
        assert_eq!(after.after, 7);
        let mut last = vec![9];
        assert_eq!(after.cut(&mut last, |&i| i), None);
        assert_eq!(last, vec![9]);
    }
}

//! Validation problems, collected with a bound: at most
//! [`MAX_FIELD_ERRORS`] are kept (field names clipped to
//! [`MAX_FIELD_NAME_CHARS`]); the rest are only counted. However many bad
//! fields a body holds, an error costs a counter increment per field beyond
//! the first twenty, and the response stays small.

use serde::{Deserialize, Serialize};

/// Most problems kept for `details`; the rest are counted.
pub const MAX_FIELD_ERRORS: usize = 20;
/// Longest field name (in characters) repeated back in an error.
pub const MAX_FIELD_NAME_CHARS: usize = 64;

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub field: String,
    pub message: String,
}

/// `s` cut to `max` characters, with `…` when something was cut: client text
/// repeated in an error never grows with the input.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((end, _)) => format!("{}…", &s[..end]),
    }
}

/// The problems of one request: the first [`MAX_FIELD_ERRORS`] in order, and
/// how many more there were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors {
    kept: Vec<FieldError>,
    dropped: usize,
}

impl FieldErrors {
    /// No problems yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// One problem and nothing else.
    pub fn one(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new();
        e.push(field, message);
        e
    }

    /// Records a problem of a top-level field.
    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.push_at(None, field, message);
    }

    /// Records a problem of a field of batch item `index` (if any). Past the
    /// bound only a counter moves: nothing is copied or allocated.
    pub fn push_at(&mut self, index: Option<usize>, field: &str, message: impl Into<String>) {
        if self.kept.len() < MAX_FIELD_ERRORS {
            self.kept.push(FieldError { index, field: clip(field, MAX_FIELD_NAME_CHARS), message: message.into() });
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    /// Whether no problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Every problem recorded, kept or only counted.
    pub fn total(&self) -> usize {
        self.kept.len().saturating_add(self.dropped)
    }

    /// Problems counted but not kept.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// The kept problems, in the order found.
    pub fn kept(&self) -> &[FieldError] {
        &self.kept
    }

    /// Iterates over the kept problems.
    pub fn iter(&self) -> std::slice::Iter<'_, FieldError> {
        self.kept.iter()
    }

    /// `Ok(value)` when nothing was recorded, else the problems.
    pub fn into_result<T>(self, value: T) -> Result<T, FieldErrors> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc…");
        assert_eq!(clip("ééé", 2), "éé…");
        assert_eq!(clip("", 0), "");
    }

    #[test]
    fn keeps_twenty_and_counts_the_rest() {
        let mut e = FieldErrors::new();
        assert!(e.is_empty() && e.clone().into_result(1) == Ok(1));
        for i in 0..1000 {
            e.push_at(Some(i), &"k".repeat(1_000_000), "unknown field");
        }
        assert_eq!(e.kept().len(), MAX_FIELD_ERRORS);
        assert_eq!(e.dropped(), 1000 - MAX_FIELD_ERRORS);
        assert_eq!(e.total(), 1000);
        assert!(e.iter().all(|x| x.field.chars().count() == MAX_FIELD_NAME_CHARS + 1));
        assert_eq!(e.kept()[3].index, Some(3));
    }

    proptest! {
        #[test]
        fn never_more_than_the_bound(n in 0usize..200, name in "\\PC{0,100}") {
            let mut e = FieldErrors::new();
            for _ in 0..n {
                e.push(&name, "bad");
            }
            prop_assert!(e.kept().len() <= MAX_FIELD_ERRORS);
            prop_assert_eq!(e.total(), n);
            prop_assert!(e.iter().all(|x| x.field.chars().count() <= MAX_FIELD_NAME_CHARS + 1));
        }
    }
}

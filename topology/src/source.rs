//! Where a thing was written: file names and line numbers for every message about a file.
//!
//! Plan, policy, network and inventory files are written by hand, so every complaint about
//! one names the file and the line (`policy.toml:42: …`) the way a compiler would.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::de::DeserializeOwned;

/// A file and a 1-based line in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// The file as the user named it (`embedded/plan.toml` for built-in defaults).
    pub file: Arc<str>,
    /// 1-based line number.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Something with the place it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// Where.
    pub location: Location,
    /// What.
    pub value: T,
}

impl<T> Located<T> {
    /// The same location with a different value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Located<U> {
        Located {
            location: self.location,
            value: f(self.value),
        }
    }
}

impl<T: fmt::Display> fmt::Display for Located<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.value)
    }
}

impl<T: fmt::Debug + fmt::Display> std::error::Error for Located<T> {}

/// Every problem found in one pass over a file, one per line when displayed.
///
/// Checks report all they find rather than stopping at the first, so one edit–check cycle
/// fixes a whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems<T>(pub Vec<Located<T>>);

impl<T> Problems<T> {
    /// `Ok(ok)` when nothing was found, the problems otherwise.
    pub fn into_result<V>(self, ok: V) -> Result<V, Self> {
        if self.0.is_empty() { Ok(ok) } else { Err(self) }
    }

    /// The problems, in the order of the file.
    pub fn iter(&self) -> impl Iterator<Item = &Located<T>> {
        self.0.iter()
    }
}

impl<T: fmt::Display> fmt::Display for Problems<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl<T: fmt::Debug + fmt::Display> std::error::Error for Problems<T> {}

/// The text of a file with an index of where its lines start.
#[derive(Debug, Clone)]
pub struct SourceText<'a> {
    name: Arc<str>,
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceText<'a> {
    /// Indexes `text`, which was read from the file called `name`.
    pub fn new(name: impl Into<Arc<str>>, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceText {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// The file name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The whole text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The location of a byte offset.
    pub fn locate(&self, offset: usize) -> Location {
        let line = self.line_starts.partition_point(|&start| start <= offset);
        self.at_line(line.max(1))
    }

    /// The location where a span starts.
    pub fn locate_span(&self, span: &Range<usize>) -> Location {
        self.locate(span.start)
    }

    /// A location on a known line of this file.
    pub fn at_line(&self, line: usize) -> Location {
        Location {
            file: self.name.clone(),
            line,
        }
    }

    /// Deserialises the text as TOML; a syntax or shape error names the line.
    pub fn parse_toml<T: DeserializeOwned>(&self) -> Result<T, Located<String>> {
        toml::from_str(self.text).map_err(|err| Located {
            location: err
                .span()
                .map_or_else(|| self.at_line(1), |span| self.locate_span(&span)),
            value: err.message().trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_one_based_lines() {
        let source = SourceText::new("f.toml", "a\nbb\n\nccc");
        assert_eq!(source.locate(0).line, 1);
        assert_eq!(source.locate(1).line, 1);
        assert_eq!(source.locate(2).line, 2);
        assert_eq!(source.locate(5).line, 3);
        assert_eq!(source.locate(6).line, 4);
        assert_eq!(source.locate(6).to_string(), "f.toml:4");
    }

    #[test]
    fn toml_errors_name_the_line() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Shape {
            a: u8,
            b: u8,
        }
        let source = SourceText::new("shape.toml", "a = 1\n\nb = 300\n");
        let err = source.parse_toml::<Shape>().unwrap_err();
        assert_eq!(err.location.line, 3, "{err}");
        assert!(err.to_string().starts_with("shape.toml:3: "), "{err}");
    }
}

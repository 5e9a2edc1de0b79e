//! The dashboard's config file (`~/.config/jinbao/tui.toml`, or `--config FILE`): refresh
//! rate, hidden columns, keys and colours. Every setting has a default from a named
//! constant; the file overrides, the command line overrides the file. A file that does not
//! read is refused with its line, never half-applied.
//!
//! ```toml
//! refresh = "500ms"
//! utc-offset-hours = 8          # the conference timeline's day (北京时间)
//! hidden-columns = ["jitter"]
//!
//! [keys]
//! freeze = ["p"]
//! quit = ["q", "ctrl-c"]
//!
//! [colours]
//! down = "light-red"
//! up = "#00aa00"
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use topology::SourceText;

use crate::keys::{Action, Key, KeyMap};
use crate::links::Column;
use crate::theme::{Role, Theme};

/// How often the controller is asked, by default.
pub const REFRESH: Duration = Duration::from_secs(1);
/// The fastest refresh allowed.
pub const FASTEST: Duration = Duration::from_millis(100);
/// The slowest refresh the `-` key goes to.
pub const SLOWEST: Duration = Duration::from_secs(60);
/// Beijing time: the conference timeline's day.
pub const UTC_OFFSET_HOURS: i8 = 8;

/// The settings in force.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often to ask the controller.
    pub refresh: Duration,
    /// The timeline's time zone, hours east of UTC.
    pub utc_offset_hours: i8,
    /// Columns of the link table not shown.
    pub hidden: Vec<Column>,
    /// The keys.
    pub keys: KeyMap,
    /// The colours.
    pub theme: Theme,
}

impl Settings {
    /// The defaults, with colour as `NO_COLOR` says.
    pub fn defaults() -> Settings {
        Settings {
            refresh: REFRESH,
            utc_offset_hours: UTC_OFFSET_HOURS,
            hidden: Vec::new(),
            keys: KeyMap::default(),
            theme: Theme::from_env(),
        }
    }
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It does not say something usable, at a line.
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Where (1-based).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    refresh: Option<String>,
    utc_offset_hours: Option<i8>,
    #[serde(default)]
    hidden_columns: Vec<Column>,
    #[serde(default)]
    keys: BTreeMap<Action, Vec<String>>,
    #[serde(default)]
    colours: BTreeMap<Role, String>,
}

/// Reads the file at `path` over the defaults.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&path.display().to_string(), &text)
}

/// Reads config `text` (named `name` in errors) over the defaults.
pub fn parse(name: &str, text: &str) -> Result<Settings, ConfigError> {
    let source = SourceText::new(name, text);
    let at = |span: Option<std::ops::Range<usize>>, message: String| ConfigError::Invalid {
        path: name.to_owned(),
        line: span.map_or(1, |s| source.locate(s.start).line),
        message,
    };
    let file: File = toml::from_str(text).map_err(|e| at(e.span(), e.message().to_owned()))?;
    // Values that read as TOML but mean nothing: the line is found again by the key.
    let line_of = |table: Option<&str>, key: &str| key_offset(text, table, key).map(|o| o..o);
    let mut settings = Settings::defaults();
    if let Some(refresh) = &file.refresh {
        let every = humantime::parse_duration(refresh).map_err(|e| {
            at(
                line_of(None, "refresh"),
                format!("refresh `{refresh}`: {e}"),
            )
        })?;
        if every < FASTEST {
            return Err(at(
                line_of(None, "refresh"),
                format!("refresh {refresh} is faster than the fastest allowed ({FASTEST:?})"),
            ));
        }
        settings.refresh = every;
    }
    if let Some(hours) = file.utc_offset_hours {
        if !(-12..=14).contains(&hours) {
            return Err(at(
                line_of(None, "utc-offset-hours"),
                format!("utc-offset-hours {hours} is not between -12 and 14"),
            ));
        }
        settings.utc_offset_hours = hours;
    }
    settings.hidden = file.hidden_columns;
    let mut overrides = BTreeMap::new();
    for (action, texts) in &file.keys {
        let keys = texts
            .iter()
            .map(|t| t.parse::<Key>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| at(line_of(Some("keys"), &kebab(*action)), e.to_string()))?;
        overrides.insert(*action, keys);
    }
    settings.keys = KeyMap::with(&overrides);
    settings.theme = settings.theme.with(&file.colours).map_err(|message| {
        let role = file
            .colours
            .iter()
            .find(|(_, c)| message.contains(c.as_str()))
            .map(|(r, _)| kebab(*r))
            .unwrap_or_default();
        at(line_of(Some("colours"), &role), message)
    })?;
    Ok(settings)
}

/// Where `key` is set in `text`: under `[table]`, or before any table.
fn key_offset(text: &str, table: Option<&str>, key: &str) -> Option<usize> {
    let mut current: Option<&str> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            current = Some(name.trim());
        } else if current == table
            && trimmed
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

/// The name a value has in the file (`next-view`, `light-red`).
fn kebab(value: impl std::fmt::Debug) -> String {
    let name = format!("{value:?}");
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    #[test]
    fn a_file_sets_refresh_columns_keys_and_colours() {
        let settings = parse(
            "tui.toml",
            "refresh = \"250ms\"\nhidden-columns = [\"jitter\", \"plane\"]\n\n[keys]\nfreeze = [\"p\"]\n\n[colours]\ndown = \"#ff0000\"\n",
        )
        .expect("reads");
        assert_eq!(settings.refresh, Duration::from_millis(250));
        assert_eq!(settings.hidden, vec![Column::Jitter, Column::Plane]);
        let p = KeyEvent::new(KeyCode::Char('p'), KeyModifiers::NONE);
        assert_eq!(settings.keys.action(&p), Some(Action::Freeze));
    }

    #[test]
    fn mistakes_are_refused_at_their_line() {
        let cases = [
            ("refresh = \"1s\"\nrefersh = \"2s\"\n", 2, "refersh"),
            ("\nrefresh = \"10ms\"\n", 2, "faster"),
            ("[keys]\nquit = [\"q\"]\nfreeze = [\"ctrl-\"]\n", 3, "ctrl-"),
            (
                "[colours]\nup = \"green\"\ndown = \"redish\"\n",
                3,
                "redish",
            ),
            ("hidden-columns = [\"colour\"]\n", 1, "colour"),
        ];
        for (text, line, said) in cases {
            let err = parse("tui.toml", text).expect_err(text).to_string();
            assert!(
                err.starts_with(&format!("tui.toml:{line}: ")),
                "{text:?} → {err}"
            );
            assert!(err.contains(said), "{text:?} → {err}");
        }
    }
}

//! Colour that means something, and the same meaning without colour.
//!
//! Every state is also a word and a glyph (`▼ down`), so the dashboard reads the same on a
//! monochrome terminal, under `NO_COLOR` (no-color.org), or for someone who does not see red
//! and green apart; colour only makes the worst rows easier to find.

use std::collections::BTreeMap;
use std::str::FromStr;

use controller::alerts::Severity;
use controller::health::LinkState;
use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// What a colour in the config file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A link that is down; critical alerts; expired certificates.
    Down,
    /// A link nobody reports on.
    Unknown,
    /// A link on its backup path.
    Backup,
    /// A link with loss or round-trip time above the thresholds; warnings.
    Degraded,
    /// A healthy link.
    Up,
    /// The selected booking's path.
    Path,
    /// Headings and the current view's tab.
    Accent,
    /// The banner that says the controller is unreachable.
    Stale,
}

/// The styles in force.
#[derive(Debug, Clone)]
pub struct Theme {
    colour: bool,
    colours: BTreeMap<Role, Color>,
}

impl Theme {
    /// The default colours, or none.
    pub fn new(colour: bool) -> Theme {
        let colours = BTreeMap::from([
            (Role::Down, Color::LightRed),
            (Role::Unknown, Color::Magenta),
            (Role::Backup, Color::LightBlue),
            (Role::Degraded, Color::Yellow),
            (Role::Up, Color::Green),
            (Role::Path, Color::Cyan),
            (Role::Accent, Color::LightCyan),
            (Role::Stale, Color::Red),
        ]);
        Theme { colour, colours }
    }

    /// With colour unless `NO_COLOR` is set to anything non-empty.
    pub fn from_env() -> Theme {
        let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Theme::new(!no_colour)
    }

    /// Replaces colours by role (colour names as ratatui reads them: `red`, `light-red`,
    /// `#ff8800`, `12`).
    pub fn with(mut self, colours: &BTreeMap<Role, String>) -> Result<Theme, String> {
        for (role, text) in colours {
            let colour = Color::from_str(text).map_err(|_| {
                format!("`{text}` is not a colour (e.g. red, light-red, #ff8800, 12)")
            })?;
            self.colours.insert(*role, colour);
        }
        Ok(self)
    }

    /// Whether colour is used.
    pub fn colour(&self) -> bool {
        self.colour
    }

    /// The foreground style of a role (plain without colour).
    pub fn fg(&self, role: Role) -> Style {
        match self.colours.get(&role) {
            Some(colour) if self.colour => Style::new().fg(*colour),
            _ => Style::new(),
        }
    }

    /// The style of a link state: colour, and bold for the states that need someone.
    pub fn state(&self, state: LinkState) -> Style {
        let style = self.fg(role_of(state));
        match state {
            LinkState::Down | LinkState::Unknown => style.add_modifier(Modifier::BOLD),
            _ => style,
        }
    }

    /// The style of an alert's severity.
    pub fn severity(&self, severity: Severity) -> Style {
        match severity {
            Severity::Critical => self.fg(Role::Down).add_modifier(Modifier::BOLD),
            Severity::Warning => self.fg(Role::Degraded),
        }
    }

    /// The selected row: reversed, which reads without colour too.
    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// Headings.
    pub fn heading(&self) -> Style {
        self.fg(Role::Accent).add_modifier(Modifier::BOLD)
    }

    /// The rows of the selected booking's path.
    pub fn path(&self) -> Style {
        self.fg(Role::Path).add_modifier(Modifier::BOLD)
    }

    /// The unreachable banner: reversed so it stands out without colour.
    pub fn stale(&self) -> Style {
        let style = Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED);
        match self.colours.get(&Role::Stale) {
            Some(colour) if self.colour => style.fg(*colour),
            _ => style,
        }
    }

    /// Less important text.
    pub fn dim(&self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }

    /// A loss ratio: the colour of the state it would put a link in.
    pub fn loss(&self, loss: f64) -> Style {
        if loss >= 0.5 {
            self.state(LinkState::Down)
        } else if loss >= LOSS_WARNING {
            self.state(LinkState::Degraded)
        } else {
            Style::new()
        }
    }
}

/// Loss from which a number is shown in the degraded colour (the controller's own
/// threshold decides the link's state; this only draws the eye).
pub const LOSS_WARNING: f64 = 0.01;

fn role_of(state: LinkState) -> Role {
    match state {
        LinkState::Down => Role::Down,
        LinkState::Unknown => Role::Unknown,
        LinkState::Backup => Role::Backup,
        LinkState::Degraded => Role::Degraded,
        LinkState::Up => Role::Up,
    }
}

/// A state's glyph, so it reads without colour.
pub fn glyph(state: LinkState) -> &'static str {
    match state {
        LinkState::Down => "▼",
        LinkState::Unknown => "?",
        LinkState::Backup => "◆",
        LinkState::Degraded => "▲",
        LinkState::Up => "●",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_colour_every_state_is_still_told_apart_by_glyph() {
        let plain = Theme::new(false);
        assert_eq!(plain.fg(Role::Down), Style::new());
        let glyphs: std::collections::BTreeSet<_> =
            LinkState::ALL.iter().map(|s| glyph(*s)).collect();
        assert_eq!(glyphs.len(), LinkState::ALL.len());
        let coloured = Theme::new(true);
        assert_ne!(coloured.fg(Role::Down), coloured.fg(Role::Up));
    }

    #[test]
    fn colours_can_be_set_by_name_and_a_bad_one_is_named() {
        let theme = Theme::new(true)
            .with(&BTreeMap::from([(Role::Down, "#ff8800".to_owned())]))
            .expect("a colour");
        assert_eq!(
            theme.fg(Role::Down),
            Style::new().fg(Color::Rgb(0xff, 0x88, 0))
        );
        let err = Theme::new(true)
            .with(&BTreeMap::from([(Role::Up, "greenish".to_owned())]))
            .expect_err("not a colour");
        assert!(err.contains("greenish"), "{err}");
    }
}

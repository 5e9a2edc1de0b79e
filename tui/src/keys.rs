//! What each key does. Every key can be rebound in the config file (trippy's habit), and the
//! help screen is drawn from the bindings in force, so it never lies about a rebinding.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;

/// Something the operator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Leave the dashboard.
    Quit,
    /// Show or hide the keys.
    Help,
    /// Filter the rows of the current view.
    Filter,
    /// Jump to a view by name (`:alerts`).
    Command,
    /// The next view.
    NextView,
    /// The previous view.
    PreviousView,
    /// Select the row above.
    Up,
    /// Select the row below.
    Down,
    /// A page up.
    PageUp,
    /// A page down.
    PageDown,
    /// The first row.
    Top,
    /// The last row.
    Bottom,
    /// Open the selected link's detail.
    Open,
    /// Back: close the help, the filter or the detail.
    Back,
    /// Fold or unfold the selected node's subtree.
    Fold,
    /// Sort the links by the next column (tree → state → loss → …).
    Sort,
    /// Reverse the sort.
    ReverseSort,
    /// Choose which columns are shown.
    Columns,
    /// Stop taking new data while reading; again to resume.
    Freeze,
    /// Acknowledge the selected alert (engineers).
    Acknowledge,
    /// Refresh more often.
    Faster,
    /// Refresh less often.
    Slower,
}

impl Action {
    /// Every action, in the order the help lists them.
    pub const ALL: [Action; 22] = [
        Action::Help,
        Action::Quit,
        Action::NextView,
        Action::PreviousView,
        Action::Command,
        Action::Filter,
        Action::Up,
        Action::Down,
        Action::PageUp,
        Action::PageDown,
        Action::Top,
        Action::Bottom,
        Action::Open,
        Action::Back,
        Action::Fold,
        Action::Sort,
        Action::ReverseSort,
        Action::Columns,
        Action::Freeze,
        Action::Acknowledge,
        Action::Faster,
        Action::Slower,
    ];

    /// What it does, for the help.
    pub fn describe(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Help => "this help",
            Action::Filter => "filter rows",
            Action::Command => "jump to a view by name",
            Action::NextView => "next view",
            Action::PreviousView => "previous view",
            Action::Up => "up",
            Action::Down => "down",
            Action::PageUp => "page up",
            Action::PageDown => "page down",
            Action::Top => "first row",
            Action::Bottom => "last row",
            Action::Open => "open the link's detail",
            Action::Back => "back / close",
            Action::Fold => "fold or unfold a subtree",
            Action::Sort => "sort by the next column",
            Action::ReverseSort => "reverse the sort",
            Action::Columns => "show or hide columns",
            Action::Freeze => "freeze / resume updates",
            Action::Acknowledge => "ack the alert (engineers)",
            Action::Faster => "refresh faster (≥100 ms)",
            Action::Slower => "refresh slower",
        }
    }

    fn defaults(self) -> &'static [&'static str] {
        match self {
            Action::Quit => &["q", "ctrl-c"],
            Action::Help => &["?", "f1"],
            Action::Filter => &["/"],
            Action::Command => &[":"],
            Action::NextView => &["tab", "right"],
            Action::PreviousView => &["shift-tab", "left"],
            Action::Up => &["up", "k"],
            Action::Down => &["down", "j"],
            Action::PageUp => &["pageup", "ctrl-b"],
            Action::PageDown => &["pagedown", "ctrl-f"],
            Action::Top => &["home", "g"],
            Action::Bottom => &["end", "G"],
            Action::Open => &["enter"],
            Action::Back => &["esc"],
            Action::Fold => &["space"],
            Action::Sort => &["s"],
            Action::ReverseSort => &["S"],
            Action::Columns => &["c"],
            Action::Freeze => &["f"],
            Action::Acknowledge => &["a"],
            Action::Faster => &["+"],
            Action::Slower => &["-"],
        }
    }
}

/// One key with its modifiers, written `q`, `G`, `ctrl-c`, `shift-tab`, `f1`, `space`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    code: KeyName,
    ctrl: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum KeyName {
    Char(char),
    Named(NamedKey),
    F(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum NamedKey {
    Enter,
    Esc,
    Tab,
    BackTab,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    Space,
}

const NAMES: [(&str, NamedKey); 13] = [
    ("enter", NamedKey::Enter),
    ("esc", NamedKey::Esc),
    ("tab", NamedKey::Tab),
    ("shift-tab", NamedKey::BackTab),
    ("up", NamedKey::Up),
    ("down", NamedKey::Down),
    ("left", NamedKey::Left),
    ("right", NamedKey::Right),
    ("pageup", NamedKey::PageUp),
    ("pagedown", NamedKey::PageDown),
    ("home", NamedKey::Home),
    ("end", NamedKey::End),
    ("space", NamedKey::Space),
];

impl Key {
    /// The key a terminal event is, if it is one the dashboard can bind.
    pub fn of(event: &KeyEvent) -> Option<Key> {
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        let code = match event.code {
            KeyCode::Char(' ') => KeyName::Named(NamedKey::Space),
            KeyCode::Char(c) => KeyName::Char(c),
            KeyCode::Enter => KeyName::Named(NamedKey::Enter),
            KeyCode::Esc => KeyName::Named(NamedKey::Esc),
            KeyCode::Tab => KeyName::Named(NamedKey::Tab),
            KeyCode::BackTab => KeyName::Named(NamedKey::BackTab),
            KeyCode::Up => KeyName::Named(NamedKey::Up),
            KeyCode::Down => KeyName::Named(NamedKey::Down),
            KeyCode::Left => KeyName::Named(NamedKey::Left),
            KeyCode::Right => KeyName::Named(NamedKey::Right),
            KeyCode::PageUp => KeyName::Named(NamedKey::PageUp),
            KeyCode::PageDown => KeyName::Named(NamedKey::PageDown),
            KeyCode::Home => KeyName::Named(NamedKey::Home),
            KeyCode::End => KeyName::Named(NamedKey::End),
            KeyCode::F(n) => KeyName::F(n),
            _ => return None,
        };
        Some(Key { code, ctrl })
    }
}

/// A key name that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a key (e.g. q, G, ctrl-c, shift-tab, enter, esc, space, f1, pageup)")]
pub struct BadKey(pub String);

impl FromStr for Key {
    type Err = BadKey;

    fn from_str(text: &str) -> Result<Key, BadKey> {
        let bad = || BadKey(text.to_owned());
        let (ctrl, rest) = match text.strip_prefix("ctrl-") {
            Some(rest) if !rest.is_empty() => (true, rest),
            _ => (false, text),
        };
        let lower = rest.to_ascii_lowercase();
        let code = if let Some((_, named)) = NAMES.iter().find(|(name, _)| *name == lower) {
            KeyName::Named(*named)
        } else if let Some(n) = lower.strip_prefix('f').and_then(|n| n.parse::<u8>().ok()) {
            if !(1..=12).contains(&n) {
                return Err(bad());
            }
            KeyName::F(n)
        } else {
            let mut chars = rest.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if !c.is_control() => KeyName::Char(c),
                _ => return Err(bad()),
            }
        };
        Ok(Key { code, ctrl })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        match self.code {
            KeyName::Char(c) => write!(f, "{c}"),
            KeyName::F(n) => write!(f, "f{n}"),
            KeyName::Named(named) => {
                let name = NAMES
                    .iter()
                    .find(|(_, n)| *n == named)
                    .map_or("?", |(name, _)| name);
                f.write_str(name)
            }
        }
    }
}

/// The bindings in force: each key to one action.
#[derive(Debug, Clone)]
pub struct KeyMap {
    by_key: BTreeMap<Key, Action>,
}

impl Default for KeyMap {
    fn default() -> KeyMap {
        let mut by_key = BTreeMap::new();
        for action in Action::ALL {
            for text in action.defaults() {
                if let Ok(key) = text.parse() {
                    by_key.insert(key, action);
                }
            }
        }
        KeyMap { by_key }
    }
}

impl KeyMap {
    /// The defaults with `overrides` applied: an action given keys loses its default keys,
    /// and a key taken by another action moves to this one.
    pub fn with(overrides: &BTreeMap<Action, Vec<Key>>) -> KeyMap {
        let mut map = KeyMap::default();
        map.by_key
            .retain(|_, action| !overrides.contains_key(action));
        for (action, keys) in overrides {
            for key in keys {
                map.by_key.insert(*key, *action);
            }
        }
        map
    }

    /// The action of a key press.
    pub fn action(&self, event: &KeyEvent) -> Option<Action> {
        let key = Key::of(event)?;
        self.by_key.get(&key).copied()
    }

    /// The keys bound to `action`, as the help shows them (`j, down`).
    pub fn keys_of(&self, action: Action) -> String {
        let keys: Vec<String> = self
            .by_key
            .iter()
            .filter(|(_, a)| **a == action)
            .map(|(k, _)| k.to_string())
            .collect();
        keys.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn key_names_read_and_print_back() {
        for text in [
            "q",
            "G",
            "ctrl-c",
            "shift-tab",
            "enter",
            "space",
            "f1",
            "pageup",
            "?",
        ] {
            let key: Key = text.parse().expect(text);
            assert_eq!(key.to_string(), text);
        }
        for bad in ["", "ctrl-", "qq", "f13", "hyper-x"] {
            assert!(bad.parse::<Key>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rebinding_an_action_drops_its_defaults_and_takes_the_key() {
        let overrides = BTreeMap::from([(Action::Freeze, vec!["p".parse().expect("p")])]);
        let map = KeyMap::with(&overrides);
        let p = press(KeyCode::Char('p'), KeyModifiers::NONE);
        let f = press(KeyCode::Char('f'), KeyModifiers::NONE);
        assert_eq!(map.action(&p), Some(Action::Freeze));
        assert_eq!(map.action(&f), None);
        assert_eq!(map.keys_of(Action::Freeze), "p");
        let ctrl_c = press(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(map.action(&ctrl_c), Some(Action::Quit));
    }
}

//! The device naming rule of a plan, e.g. `{node}-{zone}-{role}{nn}` → `dc-1401-prod-db01`.
//!
//! Names carry the node and zone a device belongs to, so the IP registration check can tell
//! whether its address lies in the right block without a separate column that could disagree.

use regex::Regex;

use crate::node::NodeId;
use crate::vocabulary::{Plane, Zone};

/// A compiled naming rule.
#[derive(Debug, Clone)]
pub struct NamingRule {
    template: String,
    pattern: Regex,
}

/// What a device name says about the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceName {
    /// The node the name places the device at.
    pub node: NodeId,
    /// The plane, if the rule has `{plane}`.
    pub plane: Option<Plane>,
    /// The zone, if the rule has `{zone}`.
    pub zone: Option<Zone>,
}

/// The placeholders a rule may use and what each matches.
const PLACEHOLDERS: [(&str, &str); 5] = [
    (
        "node",
        r"(?:dc|dr|site)-(?:ministry|[0-9]+)(?:-[a-z]+-[0-9]{2,})?",
    ),
    ("plane", "business|office|public"),
    ("zone", "prod|exch|dec|dmz|mgmt"),
    ("role", "[a-z]+"),
    ("nn", "[0-9]{2,}"),
];

impl NamingRule {
    /// Compiles a template. Placeholders: `{node}` (required: the node tag, `dc-1401`),
    /// `{plane}`, `{zone}` (`prod`, `exch`, `dec`, `dmz`, `mgmt`), `{role}` (lower-case
    /// letters: `rtr`, `fw`, `db`) and `{nn}` (two or more digits). Each at most once.
    pub fn new(template: &str) -> Result<NamingRule, String> {
        let mut pattern = String::from("^");
        let mut rest = template;
        let mut seen = Vec::new();
        while let Some(open) = rest.find('{') {
            pattern.push_str(&regex::escape(&rest[..open]));
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in naming rule `{template}`"))?;
            let name = &rest[open + 1..open + close];
            let (_, matcher) = PLACEHOLDERS
                .iter()
                .find(|(known, _)| *known == name)
                .ok_or_else(|| {
                    format!("unknown placeholder {{{name}}} in naming rule `{template}` (known: {{node}} {{plane}} {{zone}} {{role}} {{nn}})")
                })?;
            if seen.contains(&name) {
                return Err(format!(
                    "placeholder {{{name}}} appears twice in naming rule `{template}`"
                ));
            }
            seen.push(name);
            pattern.push_str(&format!("(?P<{name}>{matcher})"));
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("stray `}}` in naming rule `{template}`"));
        }
        pattern.push_str(&regex::escape(rest));
        pattern.push('$');
        if !seen.contains(&"node") {
            return Err(format!("naming rule `{template}` must contain {{node}}"));
        }
        let pattern = Regex::new(&pattern).map_err(|e| e.to_string())?;
        Ok(NamingRule {
            template: template.to_owned(),
            pattern,
        })
    }

    /// The template as written.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// Reads a device name, or `None` if it does not follow the rule.
    pub fn read(&self, name: &str) -> Option<DeviceName> {
        let captures = self.pattern.captures(name)?;
        let node = NodeId::from_tag(captures.name("node")?.as_str()).ok()?;
        let plane = match captures.name("plane") {
            Some(m) => Some(m.as_str().parse().ok()?),
            None => None,
        };
        let zone = match captures.name("zone") {
            Some(m) => Some(Zone::from_tag(m.as_str())?),
            None => None,
        };
        Some(DeviceName { node, plane, zone })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_back_into_node_and_zone() {
        let rule = NamingRule::new("{node}-{zone}-{role}{nn}").unwrap();
        let name = rule.read("dc-1401-prod-db01").unwrap();
        assert_eq!(name.node.to_string(), "dc:1401");
        assert_eq!(name.zone, Some(Zone::Production));
        let name = rule.read("site-140105-window-03-mgmt-rtr01").unwrap();
        assert_eq!(name.node.to_string(), "site:140105:window-03");
        assert_eq!(name.zone, Some(Zone::Mgmt));
        for bad in [
            "dc-1401-prod-db",
            "dc-1401-production-db01",
            "DC-1401-prod-db01",
            "dc-14x-prod-db01",
            "dc-1401-prod-db01.example",
            "router-1401-prod-db01",
        ] {
            assert_eq!(rule.read(bad), None, "{bad}");
        }
    }

    #[test]
    fn literal_text_and_plane_placeholders_work() {
        let rule = NamingRule::new("jb.{plane}.{node}.{zone}.{role}{nn}").unwrap();
        let name = rule.read("jb.office.dc-ministry.dec.srv10").unwrap();
        assert_eq!(name.plane, Some(Plane::Office));
        assert_eq!(name.node, NodeId::MINISTRY);
        assert_eq!(
            rule.read("jbxoffice.dc-ministry.dec.srv10"),
            None,
            "dots are literal"
        );
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        for (template, why) in [
            ("{zone}-{role}{nn}", "must contain {node}"),
            ("{node}-{host}", "unknown placeholder {host}"),
            ("{node}-{node}", "appears twice"),
            ("{node}-{zone", "unclosed"),
            ("{node}}", "stray"),
        ] {
            let err = NamingRule::new(template).unwrap_err();
            assert!(err.contains(why), "{template}: {err}");
        }
    }
}

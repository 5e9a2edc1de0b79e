//! The link table behind the overview: the tree ministry → provinces → cities, worst
//! subtree first, or every link sorted by any column; filtered, with folded subtrees.
//!
//! Sans rendering: rows are computed from the snapshot and the operator's choices, so the
//! order and the filter are tested without a terminal, and the renderer only draws them.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use controller::health::{LinkKey, LinkState, LinkView};
use serde::Deserialize;
use topology::{NodeId, Plane};

use crate::feed::Names;

/// A column of the link table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Column {
    /// The lower end, indented under its upper end in tree order, with its name.
    Link,
    /// The plane.
    Plane,
    /// Up, degraded, backup, unknown or down.
    State,
    /// Probe loss (the first signal that a link is going bad).
    Loss,
    /// Round-trip time.
    Rtt,
    /// Jitter.
    Jitter,
    /// The underlay path in use.
    Path,
    /// Traffic towards the ministry.
    Up,
    /// Traffic away from the ministry.
    Down,
    /// How long since an end last reported.
    Seen,
}

impl Column {
    /// Every column, in table order.
    pub const ALL: [Column; 10] = [
        Column::Link,
        Column::State,
        Column::Loss,
        Column::Rtt,
        Column::Jitter,
        Column::Path,
        Column::Up,
        Column::Down,
        Column::Seen,
        Column::Plane,
    ];

    /// The heading.
    pub fn title(self) -> &'static str {
        match self {
            Column::Link => "LINK",
            Column::Plane => "PLANE",
            Column::State => "STATE",
            Column::Loss => "LOSS",
            Column::Rtt => "RTT",
            Column::Jitter => "JITTER",
            Column::Path => "PATH",
            Column::Up => "UP",
            Column::Down => "DOWN",
            Column::Seen => "SEEN",
        }
    }

    /// The width it needs.
    pub fn width(self) -> u16 {
        match self {
            Column::Link => 26,
            Column::Plane => 8,
            Column::State => 10,
            Column::Loss => 6,
            Column::Rtt | Column::Jitter => 8,
            Column::Path => 7,
            Column::Up | Column::Down => 9,
            Column::Seen => 6,
        }
    }

    /// Which columns give way first when the terminal is narrow: lower stays longer.
    fn priority(self) -> u8 {
        match self {
            Column::Link => 0,
            Column::State => 1,
            Column::Loss => 2,
            Column::Rtt => 3,
            Column::Path => 4,
            Column::Jitter => 5,
            Column::Up => 6,
            Column::Down => 7,
            Column::Seen => 8,
            Column::Plane => 9,
        }
    }

    /// The columns drawn in `width` cells: not hidden, the most important first, in table
    /// order; the link column is always drawn.
    pub fn fitting(hidden: &BTreeSet<Column>, width: u16) -> Vec<Column> {
        let mut by_priority: Vec<Column> = Column::ALL
            .into_iter()
            .filter(|c| *c == Column::Link || !hidden.contains(c))
            .collect();
        by_priority.sort_by_key(|c| c.priority());
        let mut used = 0u16;
        let mut kept = BTreeSet::new();
        for column in by_priority {
            let need = column.width() + 1;
            if column == Column::Link || used + need <= width {
                used += need;
                kept.insert(column);
            }
        }
        Column::ALL
            .into_iter()
            .filter(|c| kept.contains(c))
            .collect()
    }

    /// Worst first for this column: the order a NOC wants when it sorts by it.
    fn compare(self, a: &LinkView, b: &LinkView, now: SystemTime) -> Ordering {
        let rate = |r: Option<f64>| r.unwrap_or(-1.0);
        let key = match self {
            Column::Link => a.key.child.cmp(&b.key.child),
            Column::Plane => a.key.plane.cmp(&b.key.plane),
            Column::State => a.state.cmp(&b.state),
            Column::Loss => b.loss.total_cmp(&a.loss),
            Column::Rtt => b.rtt.cmp(&a.rtt),
            Column::Jitter => b.jitter.cmp(&a.jitter),
            Column::Path => format!("{:?}", b.path).cmp(&format!("{:?}", a.path)),
            Column::Up => rate(b.up_rate).total_cmp(&rate(a.up_rate)),
            Column::Down => rate(b.down_rate).total_cmp(&rate(a.down_rate)),
            Column::Seen => age(b, now).cmp(&age(a, now)),
        };
        key.then_with(|| a.worst_first(b))
    }
}

/// How long since either end of `link` reported (`None`: never).
pub fn age(link: &LinkView, now: SystemTime) -> Option<Duration> {
    link.last_report()
        .map(|at| now.duration_since(at).unwrap_or(Duration::ZERO))
}

/// How the table is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// The tree, each level worst subtree first.
    #[default]
    Tree,
    /// Every link by one column, worst first (or reversed).
    By(Column, bool),
}

impl Order {
    /// The next order of the sort key: tree, then each column in turn.
    pub fn next(self) -> Order {
        const CYCLE: [Column; 9] = [
            Column::State,
            Column::Loss,
            Column::Rtt,
            Column::Jitter,
            Column::Up,
            Column::Down,
            Column::Seen,
            Column::Path,
            Column::Link,
        ];
        match self {
            Order::Tree => Order::By(CYCLE[0], false),
            Order::By(column, _) => match CYCLE.iter().position(|c| *c == column) {
                Some(i) if i + 1 < CYCLE.len() => Order::By(CYCLE[i + 1], false),
                _ => Order::Tree,
            },
        }
    }

    /// The same order reversed (the tree has one order).
    pub fn reversed(self) -> Order {
        match self {
            Order::Tree => Order::Tree,
            Order::By(column, reverse) => Order::By(column, !reverse),
        }
    }

    /// For the status line.
    pub fn describe(self) -> String {
        match self {
            Order::Tree => "tree, worst first".into(),
            Order::By(column, false) => format!("{}, worst first", column.title().to_lowercase()),
            Order::By(column, true) => format!("{}, best first", column.title().to_lowercase()),
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    /// The link.
    pub link: &'a LinkView,
    /// Tree depth of the lower end (0 for a province under the ministry); 0 when sorted.
    pub depth: usize,
    /// The tree lines before the name (`│ ├ `); empty when sorted.
    pub branch: String,
    /// Links below this one that are folded away.
    pub folded: usize,
    /// The worst state below this link, folded or not.
    pub worst_below: Option<LinkState>,
}

impl Row<'_> {
    /// The row's identity for keeping the selection across refreshes.
    pub fn id(&self) -> String {
        self.link.key.to_string()
    }
}

/// What a row is matched against: plane, both ends and their names.
pub fn matches(link: &LinkView, names: &Names, filter: &str) -> bool {
    if filter.is_empty() {
        return true;
    }
    let filter = filter.to_lowercase();
    let key = link.key;
    let text = format!(
        "{} {} {} {} {} {}",
        key.plane,
        key.parent,
        names.of(&key.parent),
        key.child,
        names.of(&key.child),
        link.state.as_str(),
    );
    text.to_lowercase().contains(&filter)
}

/// The rows of the table.
pub fn rows<'a>(
    links: &'a [LinkView],
    order: Order,
    filter: &str,
    folded: &BTreeSet<(Plane, NodeId)>,
    names: &Names,
    now: SystemTime,
) -> Vec<Row<'a>> {
    match order {
        Order::By(column, reverse) => {
            let mut rows: Vec<&LinkView> =
                links.iter().filter(|l| matches(l, names, filter)).collect();
            rows.sort_by(|a, b| {
                let ordering = column.compare(a, b, now);
                if reverse {
                    ordering.reverse()
                } else {
                    ordering
                }
            });
            rows.into_iter()
                .map(|link| Row {
                    link,
                    depth: 0,
                    branch: String::new(),
                    folded: 0,
                    worst_below: None,
                })
                .collect()
        }
        Order::Tree => Tree::new(links, filter, names).rows(folded),
    }
}

/// The links as a forest: each link hangs under the link of its upper end.
struct Tree<'a> {
    links: &'a [LinkView],
    /// Children of each (plane, node): indices into `links`.
    below: BTreeMap<(Plane, NodeId), Vec<usize>>,
    /// Links whose upper end is no link's lower end (provinces under the ministry).
    roots: Vec<usize>,
    /// Per link: the worst state in its subtree (itself included).
    worst: Vec<LinkState>,
    /// Per link: it or something below it matches the filter.
    shown: Vec<bool>,
    /// Per link: the number of links below it.
    size: Vec<usize>,
}

impl<'a> Tree<'a> {
    fn new(links: &'a [LinkView], filter: &str, names: &Names) -> Tree<'a> {
        let lower: BTreeSet<(Plane, NodeId)> =
            links.iter().map(|l| (l.key.plane, l.key.child)).collect();
        let mut below: BTreeMap<(Plane, NodeId), Vec<usize>> = BTreeMap::new();
        let mut roots = Vec::new();
        for (i, link) in links.iter().enumerate() {
            let upper = (link.key.plane, link.key.parent);
            // A link whose upper end is its own lower end, or a cycle, would recurse:
            // links that arrived over the network are not trusted to form a tree.
            if lower.contains(&upper) && link.key.parent != link.key.child {
                below.entry(upper).or_default().push(i);
            } else {
                roots.push(i);
            }
        }
        let mut tree = Tree {
            links,
            below,
            roots,
            worst: links.iter().map(|l| l.state).collect(),
            shown: vec![false; links.len()],
            size: vec![0; links.len()],
        };
        let mut seen = vec![false; links.len()];
        let roots = tree.roots.clone();
        for root in roots {
            tree.summarise(root, filter, names, &mut seen);
        }
        // Links only reachable through a cycle: shown as roots, never lost.
        for i in 0..links.len() {
            if !seen[i] {
                tree.roots.push(i);
                tree.summarise(i, filter, names, &mut seen);
            }
        }
        let (links, worst) = (tree.links, &tree.worst);
        let by_worst = |a: &usize, b: &usize| {
            worst[*a]
                .cmp(&worst[*b])
                .then_with(|| links[*a].worst_first(&links[*b]))
        };
        tree.roots.sort_by(by_worst);
        for children in tree.below.values_mut() {
            children.sort_by(by_worst);
        }
        tree
    }

    /// Fills `worst`, `shown` and `size` for the subtree of link `i` (iteratively: a
    /// national tree is shallow, a hostile one need not be).
    fn summarise(&mut self, start: usize, filter: &str, names: &Names, seen: &mut [bool]) {
        let mut stack = vec![(start, false)];
        while let Some((i, done)) = stack.pop() {
            let link = &self.links[i];
            let children = self
                .below
                .get(&(link.key.plane, link.key.child))
                .cloned()
                .unwrap_or_default();
            if !done {
                if seen[i] {
                    continue;
                }
                seen[i] = true;
                stack.push((i, true));
                stack.extend(children.iter().filter(|c| !seen[**c]).map(|c| (*c, false)));
                continue;
            }
            let mut worst = link.state;
            let mut shown = matches(link, names, filter);
            let mut size = 0;
            for child in children {
                worst = worst.min(self.worst[child]);
                shown |= self.shown[child];
                size += 1 + self.size[child];
            }
            self.worst[i] = worst;
            self.shown[i] = shown;
            self.size[i] = size;
        }
    }

    fn rows(&self, folded: &BTreeSet<(Plane, NodeId)>) -> Vec<Row<'a>> {
        let mut rows = Vec::new();
        // (link, depth, the tree lines above it, is it the last of its siblings)
        let roots: Vec<usize> = self
            .roots
            .iter()
            .copied()
            .filter(|i| self.shown[*i])
            .collect();
        let mut stack: Vec<(usize, usize, String, bool)> = roots
            .iter()
            .rev()
            .enumerate()
            .map(|(n, i)| (*i, 0, String::new(), n == 0))
            .collect();
        let mut visited = vec![false; self.links.len()];
        while let Some((i, depth, lines, last)) = stack.pop() {
            if std::mem::replace(&mut visited[i], true) {
                continue;
            }
            let link = &self.links[i];
            let at = (link.key.plane, link.key.child);
            let children: Vec<usize> = self
                .below
                .get(&at)
                .map(|c| c.iter().copied().filter(|c| self.shown[*c]).collect())
                .unwrap_or_default();
            let fold = folded.contains(&at) && !children.is_empty();
            let branch = format!("{lines}{}", if last { "└ " } else { "├ " });
            rows.push(Row {
                link,
                depth,
                branch,
                folded: if fold { self.size[i] } else { 0 },
                worst_below: (self.worst[i] < link.state).then_some(self.worst[i]),
            });
            if fold {
                continue;
            }
            let inner = format!("{lines}{}", if last { "  " } else { "│ " });
            for (n, child) in children.iter().rev().enumerate() {
                stack.push((*child, depth + 1, inner.clone(), n == 0));
            }
        }
        rows
    }
}

/// Links per state, worst first.
pub fn counts(links: &[LinkView]) -> Vec<(LinkState, usize)> {
    LinkState::ALL
        .iter()
        .map(|state| (*state, links.iter().filter(|l| l.state == *state).count()))
        .collect()
}

/// The link a key names, if the snapshot has it.
pub fn find<'a>(links: &'a [LinkView], key: &LinkKey) -> Option<&'a LinkView> {
    links.iter().find(|l| l.key == *key)
}

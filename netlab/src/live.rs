//! The live link table: what a NOC engineer watching the lab wants at a glance — how many
//! tree tunnels are up, whether the controller is there, and the worst links first (down,
//! then on their backup path, then by loss and RTT) — redrawn in place on a terminal.
//!
//! The frame is built whole and written with one call, each line cleared as it is
//! rewritten, so nothing flickers; colour says health (red down, yellow on backup or lossy,
//! green up) unless `NO_COLOR` is set.

use std::io::Write;
use std::time::{Duration, Instant};

use agent::control::{PathChoice, PeerHealth, PeerRole};
use netlab::lab::Lab;

/// How many links the table shows.
const ROWS: usize = 12;
/// How often it is redrawn.
const EVERY: Duration = Duration::from_millis(250);

/// One row of the table.
struct Row {
    link: String,
    path: PathChoice,
    health: Option<PeerHealth>,
    rtt: Option<Duration>,
    loss: f64,
    jitter: Duration,
}

impl Row {
    /// Worst first: down (or not running), then on the backup path, then loss, then RTT.
    fn badness(&self) -> (u8, u8, u64, Duration) {
        let down = match self.health {
            None | Some(PeerHealth::Down) => 2,
            Some(PeerHealth::Unknown) => 1,
            Some(_) => 0,
        };
        let backup = u8::from(self.path == PathChoice::Backup);
        (
            down,
            backup,
            (self.loss * 1e6) as u64,
            self.rtt.unwrap_or_default(),
        )
    }
}

/// The table on a terminal.
pub(crate) struct LiveTable {
    colour: bool,
    drawn_lines: usize,
    last: Option<Instant>,
}

impl LiveTable {
    pub(crate) fn new() -> LiveTable {
        LiveTable {
            colour: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            drawn_lines: 0,
            last: None,
        }
    }

    /// Redraws the table if it is due.
    pub(crate) fn draw(&mut self, lab: &Lab, title: &str) {
        if self.last.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.draw_now(lab, title);
    }

    /// Redraws the table now.
    pub(crate) fn draw_now(&mut self, lab: &Lab, title: &str) {
        self.last = Some(Instant::now());
        let frame = self.frame(lab, title);
        let mut out = String::new();
        if self.drawn_lines > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn_lines));
        }
        for line in &frame {
            out.push_str("\r\x1b[2K");
            out.push_str(line);
            out.push('\n');
        }
        self.drawn_lines = frame.len();
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }

    /// Leaves the last frame on screen; what is printed next goes below it.
    pub(crate) fn finish(&mut self) {
        self.drawn_lines = 0;
        self.last = None;
    }

    fn frame(&self, lab: &Lab, title: &str) -> Vec<String> {
        let mut rows: Vec<Row> = lab
            .links()
            .iter()
            .map(|link| {
                let peer = lab.status(link.child).and_then(|status| {
                    status
                        .planes
                        .into_iter()
                        .flat_map(|p| p.peers)
                        .find(|p| p.role == PeerRole::Uplink)
                });
                Row {
                    link: format!("{}–{}", link.parent, link.child),
                    path: peer.as_ref().map_or(PathChoice::Primary, |p| p.path),
                    health: peer.as_ref().map(|p| p.health),
                    rtt: peer.as_ref().and_then(|p| p.rtt),
                    loss: peer.as_ref().map_or(0.0, |p| p.loss),
                    jitter: peer.as_ref().map_or(Duration::ZERO, |p| p.jitter),
                }
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.badness()));
        let (up, total) = lab.tunnels_up();
        let count = |f: &dyn Fn(&Row) -> bool| rows.iter().filter(|r| f(r)).count();
        let down = count(&|r| matches!(r.health, None | Some(PeerHealth::Down)));
        let backup = count(&|r| r.path == PathChoice::Backup);
        let mut lines = vec![
            format!(
                "{title}  tunnels up {up}/{total}  down {down}  on backup {backup}  controller {}",
                if lab.controller_up() {
                    "up".to_owned()
                } else {
                    self.paint("DOWN", Red)
                }
            ),
            format!(
                "  {:<28} {:<8} {:<8} {:>9} {:>7} {:>8}",
                "link (worst first)", "path", "health", "rtt", "loss", "jitter"
            ),
        ];
        for row in rows.iter().take(ROWS) {
            let health = match row.health {
                None => self.paint("stopped", Red),
                Some(PeerHealth::Down) => self.paint("down", Red),
                Some(PeerHealth::Unknown) => self.paint("unknown", Yellow),
                Some(PeerHealth::Up) if row.loss > 0.0 => self.paint("lossy", Yellow),
                Some(_) => self.paint("up", Green),
            };
            let path = match row.path {
                PathChoice::Backup => self.paint("backup", Yellow),
                PathChoice::Primary => "primary".to_owned(),
            };
            lines.push(format!(
                "  {:<28} {:<pw$} {:<hw$} {:>9} {:>6.2}% {:>8}",
                row.link,
                path,
                health,
                row.rtt.map_or("—".into(), |t| format!("{t:.1?}")),
                row.loss * 100.0,
                format!("{:.1?}", row.jitter),
                pw = 8 + invisible(&path),
                hw = 8 + invisible(&health),
            ));
        }
        lines
    }

    fn paint(&self, text: &str, colour: Colour) -> String {
        if !self.colour {
            return text.to_owned();
        }
        let code = match colour {
            Red => 31,
            Yellow => 33,
            Green => 32,
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

#[derive(Clone, Copy)]
enum Colour {
    Red,
    Yellow,
    Green,
}
use Colour::{Green, Red, Yellow};

/// The bytes of a painted string that take no room on screen (its escape sequences).
fn invisible(text: &str) -> usize {
    // `ESC[3Xm` before and `ESC[0m` after: see `LiveTable::paint`.
    if text.starts_with('\x1b') { 9 } else { 0 }
}

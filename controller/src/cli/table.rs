//! Plain text tables for the terminal: aligned columns (CJK-aware), a rule under the header,
//! no colour, nothing that breaks when piped.

use std::time::{Duration, SystemTime};

use comfy_table::{CellAlignment, ContentArrangement, LineStyle, Table, TableStyle};

/// A table with the given header; columns listed in `right` are right-aligned.
pub(crate) fn new(header: &[&str], right: &[usize]) -> Table {
    let mut table = Table::new();
    table
        .load_style(TableStyle::new().header_separator(LineStyle::none().fill('─').junction('─')))
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for &column in right {
        if let Some(column) = table.column_mut(column) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// The table as text, without the trailing spaces of padded last columns.
pub(crate) fn render(table: &Table) -> String {
    table
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A count with thousands separators: `41,352`.
pub(crate) fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A moment as UTC RFC 3339 to the second: `2026-11-27T07:35:39Z`.
pub(crate) fn when(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A span in its largest unit or two: `29d 23h`, `5h 02m`, `42s`.
pub(crate) fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        86_400.. if s % 86_400 < 3600 => format!("{}d", s / 86_400),
        86_400.. => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
        3600.. => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        60.. => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    #[test]
    fn times_read_like_a_log_and_spans_like_a_clock() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_765_539);
        assert_eq!(super::when(at), "2026-11-27T07:45:39Z");
        assert_eq!(super::span(Duration::from_secs(30 * 86_400 - 1)), "29d 23h");
        assert_eq!(super::span(Duration::from_secs(5 * 3600 + 120)), "5h 02m");
        assert_eq!(super::span(Duration::from_secs(61)), "1m 01s");
        assert_eq!(super::span(Duration::from_secs(42)), "42s");
        assert_eq!(super::span(Duration::from_secs(7 * 86_400)), "7d");
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(super::count(0), "0");
        assert_eq!(super::count(999), "999");
        assert_eq!(super::count(41_352), "41,352");
        assert_eq!(super::count(1_234_567), "1,234,567");
    }
}

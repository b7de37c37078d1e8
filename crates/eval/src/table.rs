//! Aligned Markdown tables and number formatting shared by the reports.

/// Column alignment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// Renders a Markdown table whose columns are padded to a common width, so it reads well both
/// as plain text and rendered. Every row must have one cell per header.
pub(crate) fn render(headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|(h, _)| width(h).max(3)).collect();
    for row in rows {
        debug_assert_eq!(row.len(), headers.len());
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |cells: &mut dyn Iterator<Item = (&str, Align, usize)>| {
        let mut s = String::from("|");
        for (cell, align, w) in cells {
            let pad = " ".repeat(w - width(cell));
            match align {
                Align::Left => s.push_str(&format!(" {cell}{pad} |")),
                Align::Right => s.push_str(&format!(" {pad}{cell} |")),
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&mut headers.iter().zip(&widths).map(|(&(h, a), &w)| (h, a, w)));
    out.push('|');
    for (&(_, align), &w) in headers.iter().zip(&widths) {
        match align {
            Align::Left => out.push_str(&format!(":{}|", "-".repeat(w + 1))),
            Align::Right => out.push_str(&format!("{}:|", "-".repeat(w + 1))),
        }
    }
    out.push('\n');
    for row in rows {
        out.push_str(&line(
            &mut row.iter().zip(headers).zip(&widths).map(|((c, &(_, a)), &w)| (c.as_str(), a, w)),
        ));
    }
    out
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let head = match digits.len() % 3 {
        0 => 3.min(digits.len()),
        r => r,
    };
    let mut out = digits[..head].to_string();
    for group in digits.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.extend(group.iter().map(|&b| b as char));
    }
    out
}

/// A shape as `1x8x26x26` (`scalar` for rank 0).
pub(crate) fn shape(s: &[usize]) -> String {
    if s.is_empty() {
        return "scalar".into();
    }
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
}

/// Bytes with a binary unit, e.g. `3.2 MiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_and_shapes() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(shape(&[1, 8, 26, 26]), "1x8x26x26");
        assert_eq!(shape(&[]), "scalar");
        assert_eq!(human_bytes(1000), "1000 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 200 * 1024), "3.2 MiB");
    }

    #[test]
    fn columns_are_padded_and_aligned() {
        let t = render(
            &[("name", Align::Left), ("n", Align::Right)],
            &[vec!["a".into(), "1,000".into()], vec!["long name".into(), "7".into()]],
        );
        let expected = "\
| name      |     n |
|:----------|------:|
| a         | 1,000 |
| long name |     7 |
";
        assert_eq!(t, expected);
    }
}

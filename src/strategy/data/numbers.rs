//! Numbers as the response writes them (`48,000`, `+6,000`, `+12.5%`) and the check that every
//! number the response states comes from the data or from our own figures.

use std::collections::BTreeSet;

use super::Analysis;

/// Numbers in `text` (digits with thousands separators and decimals; signs and `%` dropped),
/// normalised: `1,200` and `1200` are the same number.
pub(crate) fn numbers_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current = String::new();
    // Digits straight after a letter (`Q1`) are part of a name: no thousands group follows.
    let mut in_name = false;
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        // A decimal point joins digits; a comma only a group of exactly three (`1,200`, not the
        // `1,439` of a CSV row).
        let digits_after = chars[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        let joins =
            !current.is_empty() && ((c == '.' && digits_after > 0) || (c == ',' && digits_after == 3 && !in_name));
        if c.is_ascii_digit() || joins {
            if current.is_empty() {
                in_name = i > 0 && chars[i - 1].is_alphabetic();
            }
            if c != ',' {
                current.push(c);
            }
        } else if !current.is_empty() {
            found.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        found.push(current);
    }
    found
}

/// The numbers `output` states that neither the data (`source`) nor our figures hold. Small
/// numbers (one digit) are words more than figures and pass.
pub(crate) fn invented_numbers(output: &str, analysis: &Analysis, source: &str) -> Vec<String> {
    let known: BTreeSet<String> = analysis
        .figures
        .iter()
        .chain(analysis.findings.iter())
        .chain(analysis.next_steps.iter())
        .map(String::as_str)
        .chain([analysis.tables.as_str(), source])
        .flat_map(numbers_in)
        .collect();
    let mut seen = BTreeSet::new();
    numbers_in(output).into_iter().filter(|n| n.len() > 1 && !known.contains(n) && seen.insert(n.clone())).collect()
}

/// Every number the response states comes from the data or from our own figures: the model may
/// not invent one.
pub fn numbers_check(output: &str, analysis: &Analysis, source: &str) -> crate::protocol::Check {
    let invented = invented_numbers(output, analysis, source);
    crate::protocol::Check {
        name: "numbers_from_data".into(),
        passed: invented.is_empty(),
        detail: match invented.is_empty() {
            true => "every number comes from the data".into(),
            false => format!("numbers not in the data: {}", invented.join(", ")),
        },
    }
}

/// `48000` → `48,000`; `1234.5` → `1,234.5`.
pub fn format_number(n: f64) -> String {
    let rounded = (n * 100.0).round() / 100.0;
    let (int, frac) = (rounded.trunc().abs() as u64, rounded.fract().abs());
    let digits = int.to_string();
    let mut grouped = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(d);
    }
    let sign = if rounded < 0.0 { "-" } else { "" };
    if frac > 0.0 {
        let decimals = format!("{frac:.2}");
        format!("{sign}{grouped}{}", decimals.trim_start_matches('0').trim_end_matches('0'))
    } else {
        format!("{sign}{grouped}")
    }
}

/// A change, signed: `+40`, `-1,520`.
pub(crate) fn format_signed(n: f64) -> String {
    if n > 0.0 { format!("+{}", format_number(n)) } else { format_number(n) }
}

/// The change from `from` to `to` in percent, signed (`+12.5%`); none from zero.
pub(crate) fn percent_change(from: f64, to: f64) -> Option<String> {
    (from != 0.0).then(|| format!("{:+.1}%", 100.0 * (to - from) / from.abs()))
}

/// `part` of `whole` as a share, one decimal: `62.5%`; `0.0%` of nothing.
pub(crate) fn share(part: f64, whole: f64) -> String {
    format!("{:.1}%", if whole == 0.0 { 0.0 } else { 100.0 * part / whole })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_for_reading() {
        assert_eq!(format_number(48000.0), "48,000");
        assert_eq!(format_number(-1234.5), "-1,234.5");
        assert_eq!(format_number(0.25), "0.25");
        assert_eq!(format_signed(40.0), "+40");
        assert_eq!(percent_change(800.0, 760.0).as_deref(), Some("-5.0%"));
        assert_eq!(percent_change(0.0, 5.0), None);
        assert_eq!(share(5.0, 8.0), "62.5%");
        assert_eq!(share(1.0, 0.0), "0.0%");
    }

    #[test]
    fn a_csv_rows_commas_are_not_thousands_separators() {
        assert_eq!(numbers_in("North,Q1,439,1200 and 1,200.5"), ["1", "439", "1200", "1200.5"]);
    }
}

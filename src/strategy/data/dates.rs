//! Dates and periods as people write them: `2024-03-01`, `03/01/2024`, `March 1, 2024` are one
//! day, written one way (ISO) for cleaning and sorting; `Q1`, `2024-Q1`, `Jan`, `March 2024`,
//! `2024-03`, `W12` are periods.

use crate::strategy::words::{MONTHS, WEEKDAYS};

/// The month a word names (`Mar`, `march`, `Sept`), 1-based.
fn month(word: &str) -> Option<u32> {
    let word = word.to_lowercase();
    let named = |full: &&str| *full == word || (word.len() >= 3 && full.starts_with(word.as_str()));
    MONTHS.iter().position(named).map(|i| i as u32 + 1)
}

fn weekday(word: &str) -> bool {
    let word = word.to_lowercase();
    word.len() >= 3 && WEEKDAYS.iter().any(|d| d.starts_with(word.as_str()))
}

/// Whether the slashed dates among `values` put the day first (`31/01/2024`): only a first part
/// over 12 tells; otherwise month first, as in `03/01/2024`.
pub fn day_first<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    values.into_iter().any(|v| {
        let parts: Vec<&str> = v.trim().split(['/', '.', '-']).collect();
        parts.len() == 3 && parts[2].len() == 4 && parts[0].parse::<u32>().is_ok_and(|d| (13..=31).contains(&d))
    })
}

/// `value` as an ISO date (`2024-03-01`), if it is one day written in a common way. A time
/// after an ISO date is dropped.
pub fn iso_date(value: &str, day_first: bool) -> Option<String> {
    let value = value.trim();
    // `2024-03-01T10:00:00` or `2024-03-01 10:00`: the date part.
    let value = match value.get(..10) {
        Some(date) if value.len() > 10 && date.as_bytes()[4] == b'-' && value[10..].starts_with(['T', ' ']) => date,
        _ => value,
    };
    let tokens: Vec<&str> = value.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).collect();
    let number = |t: &str| t.parse::<u32>().ok().filter(|_| t.chars().all(|c| c.is_ascii_digit()));
    let (year, month, day) = if tokens.len() == 3 && tokens.iter().all(|t| number(t).is_some()) {
        // All digits: one kind of separator, and a four-digit year first or last.
        let separators: std::collections::BTreeSet<char> = value.chars().filter(|c| !c.is_ascii_digit()).collect();
        if separators.len() != 1 || !separators.iter().all(|s| matches!(s, '-' | '/' | '.')) {
            return None;
        }
        let [a, b, c] = [tokens[0], tokens[1], tokens[2]];
        match (a.len(), c.len()) {
            (4, 1..=2) => (number(a)?, number(b)?, number(c)?),
            (1..=2, 4) if day_first => (number(c)?, number(b)?, number(a)?),
            (1..=2, 4) => (number(c)?, number(a)?, number(b)?),
            _ => return None,
        }
    } else {
        // A month name, a day and a year in either order; a weekday before them is allowed.
        let tokens: Vec<&str> = tokens.into_iter().filter(|t| !weekday(t) || month(t).is_some()).collect();
        if tokens.len() != 3 {
            return None;
        }
        let named = tokens.iter().position(|t| month(t).is_some() && number(t).is_none())?;
        let others: Vec<u32> = tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != named)
            .map(|(_, t)| day_number(t))
            .collect::<Option<_>>()?;
        let (day, year) = match others.as_slice() {
            [d, y] | [y, d] if *y >= 1000 && *d <= 31 => (*d, *y),
            _ => return None,
        };
        (year, month(tokens[named])?, day)
    };
    valid(year, month, day).then(|| format!("{year:04}-{month:02}-{day:02}"))
}

/// A day or year token, an ordinal suffix allowed (`1st`, `22nd`).
fn day_number(token: &str) -> Option<u32> {
    let digits = token.trim_end_matches(|c: char| c.is_alphabetic());
    let suffix = &token[digits.len()..].to_lowercase();
    (matches!(suffix.as_str(), "" | "st" | "nd" | "rd" | "th") && !digits.is_empty())
        .then(|| digits.parse().ok())
        .flatten()
}

fn valid(year: u32, month: u32, day: u32) -> bool {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return false,
    };
    (1900..=2100).contains(&year) && (1..=days).contains(&day)
}

/// Whether `value` names a period rather than a day: a quarter, half, week, fiscal year, month
/// or weekday, alone or with a year (`Q1`, `2024-Q1`, `H2`, `W12`, `FY24`, `Jan`, `March 2024`,
/// `2024-03`). A bare year is a number unless the header says otherwise.
pub fn is_period(value: &str) -> bool {
    let tokens: Vec<String> =
        value.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase).collect();
    if tokens.is_empty() || tokens.len() > 3 {
        return false;
    }
    let is_year = |t: &str| t.len() == 4 && t.parse::<u32>().is_ok_and(|y| (1900..=2100).contains(&y));
    let has_month = tokens.iter().any(|t| month(t).is_some() && t.parse::<u32>().is_err());
    let has_year = tokens.iter().any(|t| is_year(t));
    let mut named = false;
    for (i, token) in tokens.iter().enumerate() {
        let after_week = i > 0 && matches!(tokens[i - 1].as_str(), "week" | "wk");
        let digits = token.chars().all(|c| c.is_ascii_digit());
        let ok = if digits {
            is_year(token)
                || after_week
                // `Jan 24`: a two-digit year after a month; `2024-03`: a month after a year.
                || (has_month && tokens.len() == 2 && token.len() == 2)
                || (has_year && tokens.len() == 2 && token.len() == 2 && token.parse::<u32>().is_ok_and(|m| (1..=12).contains(&m)))
        } else {
            let code = |prefix: &str, max: u32| {
                token.strip_prefix(prefix).is_some_and(|n| n.parse::<u32>().is_ok_and(|n| (1..=max).contains(&n)))
            };
            let with_year = |prefix: &str| {
                token
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.len() >= 2 && rest.len() <= 4 && rest.chars().all(|c| c.is_ascii_digit()))
            };
            let part = code("q", 4)
                || code("h", 2)
                || code("w", 53)
                || with_year("fy")
                || month(token).is_some()
                || weekday(token)
                || matches!(token.as_str(), "week" | "wk");
            // `2024q1`: a year joined to its quarter.
            let joined = token.len() == 6
                && token.get(..4).is_some_and(is_year)
                && token.get(4..).is_some_and(|rest| rest.starts_with(['q', 'h']));
            named |= part || joined;
            part || joined
        };
        if !ok {
            return false;
        }
    }
    named || (tokens.len() == 2 && has_year)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_day_written_many_ways_is_one_iso_date() {
        for (value, day_first) in [
            ("2024-03-01", false),
            ("2024/03/01", false),
            ("03/01/2024", false),
            ("01/03/2024", true),
            ("March 1, 2024", false),
            ("1 Mar 2024", false),
            ("Friday, March 1st, 2024", false),
            ("2024-03-01T09:30:00", false),
        ] {
            assert_eq!(iso_date(value, day_first).as_deref(), Some("2024-03-01"), "{value}");
        }
        for not_a_date in ["2024-02-30", "555-010-0100", "12.5", "1,200,300", "March 2024", "Q1", "hello"] {
            assert_eq!(iso_date(not_a_date, false), None, "{not_a_date}");
        }
        assert!(day_first(["31/01/2024", "01/02/2024"]));
        assert!(!day_first(["03/01/2024"]));
    }

    #[test]
    fn periods_are_quarters_months_weeks_and_years_with_them() {
        for period in [
            "Q1",
            "2024-Q1",
            "Q3 2023",
            "2024q2",
            "H2",
            "W12",
            "Week 12",
            "FY24",
            "Jan",
            "March 2024",
            "2024-03",
            "Jan-24",
            "Mon",
        ] {
            assert!(is_period(period), "{period}");
        }
        for not_a_period in ["2024", "North", "48000", "2024-03-01", "Q7", "Marching band", "May 5 2024"] {
            assert!(!is_period(not_a_period), "{not_a_period}");
        }
    }
}

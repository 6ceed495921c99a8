//! What we bid and what the work cost us. The bid is a share of the buyer's budget that grows
//! with the size of the work and is never above the budget; the cost is measured compute time
//! at the operator's hourly price, never invented.

use std::time::Duration;

/// Work of this many words (or the equivalent) earns the full configured share of the budget.
const FULL_SIZE_WORDS: f64 = 1000.0;
/// The smallest work still bids this part of the full share: a slogan list is cheap to write,
/// and a low bid on it wins more than it loses.
const SMALLEST_SHARE: f64 = 0.6;

/// Our bid, in whole cents, for work of about `size_words` words under `budget_usd`: the
/// configured `bid_fraction` of the budget for full-size work, down to
/// [`SMALLEST_SHARE`] of that for the smallest; never above the budget. No budget, no price to
/// quote.
pub fn bid_price_usd(budget_usd: Option<f64>, bid_fraction: f64, size_words: u64) -> f64 {
    let Some(budget) = budget_usd.filter(|b| b.is_finite() && *b > 0.0) else {
        return 0.0;
    };
    let size = (size_words as f64 / FULL_SIZE_WORDS).clamp(0.0, 1.0);
    let share = bid_fraction.clamp(0.0, 1.0) * (SMALLEST_SHARE + (1.0 - SMALLEST_SHARE) * size);
    let bid = (budget * share * 100.0).floor() / 100.0;
    bid.min(budget)
}

/// Compute time at `cost_per_hour_usd`, rounded to a millionth of a dollar.
pub fn compute_cost_usd(compute: Duration, cost_per_hour_usd: f64) -> f64 {
    (compute.as_secs_f64() / 3600.0 * cost_per_hour_usd * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bid_never_exceeds_the_budget() {
        assert_eq!(bid_price_usd(Some(25.0), 0.8, 1500), 20.0);
        assert_eq!(bid_price_usd(Some(3.33), 1.0, 1000), 3.33);
        assert_eq!(bid_price_usd(Some(0.015), 1.0, 1000), 0.01);
        assert_eq!(bid_price_usd(None, 0.8, 1000), 0.0);
        for budget in [3.0, 4.99, 17.77, 300.0, 500.0] {
            for size in [0, 50, 999, 10_000] {
                assert!(bid_price_usd(Some(budget), 0.9, size) <= budget);
            }
        }
    }

    #[test]
    fn the_bid_grows_with_the_size_of_the_work() {
        let small = bid_price_usd(Some(20.0), 0.8, 60);
        let medium = bid_price_usd(Some(20.0), 0.8, 500);
        let large = bid_price_usd(Some(20.0), 0.8, 1500);
        assert!(small < medium && medium < large, "{small} {medium} {large}");
        assert_eq!(large, 16.0);
        assert_eq!(bid_price_usd(Some(20.0), 0.8, 0), 9.6);
    }

    #[test]
    fn cost_is_measured_time_at_the_hourly_price() {
        assert_eq!(compute_cost_usd(Duration::from_secs(36), 0.10), 0.001);
        assert_eq!(compute_cost_usd(Duration::ZERO, 5.0), 0.0);
    }
}

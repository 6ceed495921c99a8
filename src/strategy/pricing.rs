//! What we bid and what the work cost us. The bid is a share of the buyer's budget and never
//! above it; the cost is measured compute time at the operator's hourly price, never invented.

use std::time::Duration;

/// Our bid for a budget, in whole cents, never above the budget. No budget, no price to quote.
pub fn bid_price_usd(budget_usd: Option<f64>, bid_fraction: f64) -> f64 {
    let Some(budget) = budget_usd.filter(|b| b.is_finite() && *b > 0.0) else {
        return 0.0;
    };
    let bid = (budget * bid_fraction.clamp(0.0, 1.0) * 100.0).floor() / 100.0;
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
        assert_eq!(bid_price_usd(Some(25.0), 0.8), 20.0);
        assert_eq!(bid_price_usd(Some(3.33), 1.0), 3.33);
        assert_eq!(bid_price_usd(Some(0.015), 1.0), 0.01);
        assert_eq!(bid_price_usd(None, 0.8), 0.0);
        for budget in [3.0, 4.99, 17.77, 300.0, 500.0] {
            assert!(bid_price_usd(Some(budget), 0.9) <= budget);
        }
    }

    #[test]
    fn cost_is_measured_time_at_the_hourly_price() {
        assert_eq!(compute_cost_usd(Duration::from_secs(36), 0.10), 0.001);
        assert_eq!(compute_cost_usd(Duration::ZERO, 5.0), 0.0);
    }
}

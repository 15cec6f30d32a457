//! Erlang-C: waiting in an M/M/c queue, and the M/G/c approximation built on it.
//!
//! With Poisson arrivals at rate λ, `c` servers and mean service time `s`, the
//! offered load is `a = λ·s` and the utilization `ρ = a/c`. The probability that an
//! arrival waits is Erlang's C formula, computed through the Erlang-B recursion
//! (`B₀ = 1`, `Bₖ = a·Bₖ₋₁ / (k + a·Bₖ₋₁)`, `C = c·B / (c − a·(1 − B))`), which is
//! stable for thousands of servers. The mean wait is `C·s / (c − a)`. For general
//! service times (M/G/c) the Allen–Cunneen approximation scales the M/M/c wait by
//! `(1 + cv²)/2`, where `cv` is the coefficient of variation of the service time.

/// Servers up to which Erlang C is computed exactly (the recursion costs O(c): about
/// 0.1 ms here).
const EXACT_UP_TO: u32 = 100_000;

/// Probability that an arrival waits, for `c` servers and offered load `a` (< c):
/// exact up to 100,000 servers, by the Halfin–Whitt approximation beyond
/// (`C ≈ 1 / (1 + β·Φ(β)/φ(β))`, `β = (c − a)/√a`), which is within 0.02 absolute at
/// 2,000 servers but some percent off in relative terms, so it is kept for sizes the
/// recursion would make slow.
pub fn erlang_c(c: u32, a: f64) -> f64 {
    if c == 0 || a >= f64::from(c) {
        return 1.0;
    }
    if a <= 0.0 {
        return 0.0;
    }
    if c > EXACT_UP_TO {
        return halfin_whitt(c, a);
    }
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (f64::from(k) + a * b);
    }
    let c = f64::from(c);
    c * b / (c - a * (1.0 - b))
}

fn halfin_whitt(c: u32, a: f64) -> f64 {
    let beta = (f64::from(c) - a) / a.sqrt();
    if beta > 8.0 {
        return 0.0;
    }
    let phi = (-beta * beta / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let cdf = 0.5 * erfc(-beta / std::f64::consts::SQRT_2);
    1.0 / (1.0 + beta * cdf / phi)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, |error| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Mean wait in an M/M/c queue with mean service time `service` (same unit out).
pub fn mmc_mean_wait(c: u32, a: f64, service: f64) -> f64 {
    if a >= f64::from(c) {
        return f64::INFINITY;
    }
    erlang_c(c, a) * service / (f64::from(c) - a)
}

/// Mean wait in an M/G/c queue (Allen–Cunneen): the M/M/c wait times `(1 + cv²)/2`.
pub fn mgc_mean_wait(c: u32, a: f64, service: f64, cv2: f64) -> f64 {
    mmc_mean_wait(c, a, service) * (1.0 + cv2) / 2.0
}

/// The wait not exceeded with probability `q` in an M/M/c queue: the wait is 0 with
/// probability `1 − C`, else exponential with rate `c/s − λ`.
pub fn mmc_wait_quantile(c: u32, a: f64, service: f64, q: f64) -> f64 {
    if a >= f64::from(c) {
        return f64::INFINITY;
    }
    let waits = erlang_c(c, a);
    if q <= 1.0 - waits {
        return 0.0;
    }
    let rate = (f64::from(c) - a) / service;
    (waits / (1.0 - q)).ln() / rate
}

/// The fewest servers that keep the M/G/c mean wait at or under `max_wait` at
/// utilization below `max_utilization`.
pub fn servers_for(a: f64, service: f64, cv2: f64, max_wait: f64, max_utilization: f64) -> u32 {
    let mut c = ((a / max_utilization.clamp(0.01, 1.0)).ceil() as u32).max(1);
    while f64::from(c) <= a || mgc_mean_wait(c, a, service, cv2) > max_wait {
        c += 1;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_textbook_values() {
        // M/M/1: P(wait) = ρ, mean wait = ρ·s/(1 − ρ).
        assert!((erlang_c(1, 0.8) - 0.8).abs() < 1e-12);
        assert!((mmc_mean_wait(1, 0.8, 1.0) - 4.0).abs() < 1e-9);
        // c = 2, a = 1: C = 1/3.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        // c = 10, a = 8: C ≈ 0.40918 (tables).
        assert!((erlang_c(10, 8.0) - 0.40918).abs() < 1e-4);
        assert_eq!(erlang_c(3, 3.0), 1.0);
        assert_eq!(erlang_c(3, 0.0), 0.0);
        // Thousands of servers stay finite.
        let big = erlang_c(5000, 4900.0);
        assert!(big > 0.0 && big < 1.0, "{big}");
    }

    #[test]
    fn halfin_whitt_joins_the_exact_formula() {
        for (c, a) in [(2000u32, 1950.0), (2000, 1900.0), (2000, 1990.0)] {
            let exact = erlang_c(c, a);
            let beta = (f64::from(c) - a) / a.sqrt();
            let phi = (-beta * beta / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let hw = 1.0 / (1.0 + beta * 0.5 * erfc(-beta / std::f64::consts::SQRT_2) / phi);
            assert!((hw - exact).abs() < 0.02, "c {c} a {a}: {hw} vs {exact}");
        }
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        assert!((erfc(1.0) - 0.157_299_2).abs() < 1e-6);
        assert!((erfc(-1.0) - 1.842_700_8).abs() < 1e-6);
    }

    #[test]
    fn quantiles_and_sizing_are_consistent() {
        let (c, a, s) = (4, 3.2, 1.0);
        let waits = erlang_c(c, a);
        assert_eq!(mmc_wait_quantile(c, a, s, 1.0 - waits - 0.01), 0.0);
        let p99 = mmc_wait_quantile(c, a, s, 0.99);
        // P(W > t) = C·exp(−(c − a)t/s).
        assert!((waits * (-(4.0 - 3.2) * p99).exp() - 0.01).abs() < 1e-12);
        let n = servers_for(20.0, 1.0, 1.0, 0.05, 0.95);
        assert!(mmc_mean_wait(n, 20.0, 1.0) <= 0.05);
        assert!(mmc_mean_wait(n - 1, 20.0, 1.0) > 0.05 || f64::from(n - 1) / 20.0 < 1.0 / 0.95);
    }
}

//! Request-length distributions: empirical CDFs of prompt plus output tokens.
//!
//! A CDF is a list of knots `[tokens, cumulative fraction]`, as in the workload files
//! (`azure`, `lmsys`, `agent_heavy`): either the bare list or an object with the list
//! under `cdf` and provenance beside it. Lengths are sampled by inverting the CDF with
//! linear interpolation between knots; below the first knot, between 1 token and it.

use serde::Deserialize;

/// A length distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct LengthCdf {
    /// `(tokens, cumulative fraction)`, increasing in both, ending at 1.
    knots: Vec<(f64, f64)>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CdfFile {
    Bare(Vec<(f64, f64)>),
    Wrapped { cdf: Vec<(f64, f64)> },
}

impl LengthCdf {
    /// Parses a workload file (a list of knots, or an object with `cdf`).
    pub fn from_json(text: &str) -> Result<LengthCdf, String> {
        let file: CdfFile = serde_json::from_str(text)
            .map_err(|e| format!("not a CDF (a list of [tokens, fraction] pairs): {e}"))?;
        let knots = match file {
            CdfFile::Bare(k) | CdfFile::Wrapped { cdf: k } => k,
        };
        LengthCdf::new(knots)
    }

    /// Checks and builds a CDF from knots.
    pub fn new(knots: Vec<(f64, f64)>) -> Result<LengthCdf, String> {
        if knots.is_empty() {
            return Err("the CDF has no knots".to_owned());
        }
        for (i, pair) in knots.windows(2).enumerate() {
            let ((t0, f0), (t1, f1)) = (pair[0], pair[1]);
            if t1 <= t0 || f1 < f0 {
                return Err(format!(
                    "knots {i} and {} are out of order: [{t0}, {f0}] then [{t1}, {f1}]",
                    i + 1
                ));
            }
        }
        let (first_t, first_f) = knots[0];
        let (_, last) = knots[knots.len() - 1];
        if first_t < 1.0 || !(0.0..=1.0).contains(&first_f) || (last - 1.0).abs() > 1e-6 {
            return Err(format!(
                "a CDF starts at ≥ 1 token with a fraction in [0, 1] and ends at 1 (ends at {last})"
            ));
        }
        Ok(LengthCdf { knots })
    }

    /// The length at quantile `u` in [0, 1).
    pub fn quantile(&self, u: f64) -> u32 {
        let u = u.clamp(0.0, 1.0);
        let mut previous = (1.0, 0.0);
        for &(t, f) in &self.knots {
            if u <= f {
                let (t0, f0) = previous;
                let span = f - f0;
                let x = if span > 0.0 {
                    t0 + (t - t0) * (u - f0) / span
                } else {
                    t
                };
                return x.round().max(1.0) as u32;
            }
            previous = (t, f);
        }
        previous.0 as u32
    }

    /// Fraction of requests of at most `tokens`.
    pub fn fraction_below(&self, tokens: f64) -> f64 {
        let mut previous = (1.0, 0.0);
        for &(t, f) in &self.knots {
            if tokens <= t {
                let (t0, f0) = previous;
                if tokens <= t0 {
                    return f0;
                }
                return f0 + (f - f0) * (tokens - t0) / (t - t0);
            }
            previous = (t, f);
        }
        1.0
    }

    /// The longest length: the first knot at which the fraction reaches 1.
    pub fn max_tokens(&self) -> u32 {
        self.knots
            .iter()
            .find(|(_, f)| *f >= 1.0 - 1e-9)
            .map_or(1, |(t, _)| *t as u32)
    }

    /// The mean length.
    pub fn mean(&self) -> f64 {
        let mut previous = (1.0, 0.0);
        let mut mean = 0.0;
        for &(t, f) in &self.knots {
            let (t0, f0) = previous;
            mean += (f - f0) * (t0 + t) / 2.0;
            previous = (t, f);
        }
        mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "[[100, 0.5], [1000, 0.9], [4000, 1.0]]";

    #[test]
    fn inverts_the_cdf_with_interpolation() {
        let cdf = LengthCdf::from_json(SMALL).unwrap();
        assert_eq!(cdf.quantile(0.5), 100);
        assert_eq!(cdf.quantile(0.7), 550);
        assert_eq!(cdf.quantile(1.0), 4000);
        assert_eq!(cdf.quantile(0.0), 1);
        assert!((cdf.fraction_below(550.0) - 0.7).abs() < 1e-9);
        assert_eq!(cdf.fraction_below(10_000.0), 1.0);
        let expected = 0.5 * 50.5 + 0.4 * 550.0 + 0.1 * 2500.0;
        assert!((cdf.mean() - expected).abs() < 1e-9);
        // Sampling at evenly spaced quantiles reproduces the mean.
        let n = 100_000;
        let sampled: f64 = (0..n)
            .map(|i| f64::from(cdf.quantile((i as f64 + 0.5) / n as f64)))
            .sum::<f64>()
            / n as f64;
        assert!(
            (sampled - expected).abs() / expected < 0.01,
            "{sampled} vs {expected}"
        );
    }

    #[test]
    fn accepts_wrapped_files_and_rejects_bad_ones() {
        let wrapped = format!("{{\"cdf\": {SMALL}, \"source\": \"test\"}}");
        assert_eq!(LengthCdf::from_json(&wrapped), LengthCdf::from_json(SMALL));
        for bad in [
            "[]",
            "[[100, 0.5], [50, 0.9], [400, 1.0]]",
            "[[100, 0.5], [200, 0.9]]",
            "{}",
            "x",
        ] {
            assert!(LengthCdf::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_shared_workloads_have_their_documented_shapes() {
        // Needs ../shared/data (set SWITCHYARD_DATA to its path); skipped otherwise.
        let Ok(data) = std::env::var("SWITCHYARD_DATA") else {
            eprintln!("skipped: SWITCHYARD_DATA is not set");
            return;
        };
        let load = |name: &str| {
            let path = format!("{data}/workloads/{name}_cdf.json");
            LengthCdf::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap()
        };
        let azure = load("azure");
        assert!(
            azure.fraction_below(4096.0) > 0.85,
            "azure is concentrated below 4K"
        );
        let agent = load("agent_heavy");
        let over_4k = 1.0 - agent.fraction_below(4096.0);
        assert!(
            (0.4..0.6).contains(&over_4k),
            "about half of agent_heavy is over 4K: {over_4k}"
        );
        let lmsys = load("lmsys");
        assert!(lmsys.mean() < azure.mean() && azure.mean() < agent.mean());
    }
}

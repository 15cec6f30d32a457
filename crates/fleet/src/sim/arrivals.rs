//! Arrival sources: when requests come and how long they are.
//!
//! Each source draws from its own random stream (seeded from the run's seed and the
//! source's index), so adding a source does not change the others' requests. Poisson,
//! diurnal and MMPP arrivals are sampled exactly: a unit-rate exponential is spent
//! against the rate's integral, segment by segment. Traces are read whole and sorted
//! by arrival (a decision log is written in completion order), at 24 bytes a row.

use super::spec::{ArrivalSpec, LengthModel, Source, SpecError};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use std::path::Path;
use switchyard_wire::hash::mix64;

/// No model or pool named.
pub(crate) const UNNAMED: u16 = u16::MAX;

/// One arriving request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Arrival {
    pub at_ms: f64,
    pub prompt: u32,
    pub output: u32,
    /// Index into the trace's (or source's) names, or [`UNNAMED`].
    pub model: u16,
    pub pool: u16,
}

#[derive(Debug, Clone)]
enum Process {
    Poisson {
        rate: f64,
    },
    Piecewise {
        rates: Vec<f64>,
        segment_ms: f64,
    },
    Mmpp {
        rates: Vec<f64>,
        dwell_ms: Vec<f64>,
        state: usize,
        state_end: f64,
    },
    Trace {
        rows: Vec<Arrival>,
        next: usize,
    },
}

/// A source producing arrivals in time order.
#[derive(Debug, Clone)]
pub(crate) struct SourceStream {
    process: Process,
    lengths: Vec<(f64, LengthModel)>,
    rng: SmallRng,
    now_ms: f64,
    /// Names that `Arrival::model` and `Arrival::pool` index.
    pub names: Vec<String>,
    model: u16,
}

#[derive(Deserialize)]
struct TraceRow {
    arrival_s: Option<f64>,
    ts_ms: Option<f64>,
    prompt_tokens: Option<u64>,
    output_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    model: Option<String>,
    pool: Option<String>,
    /// A decision log's phase that answered: rows not answered by `forward` (refused
    /// requests, local answers) never reached the fleet and are skipped.
    phase: Option<String>,
    /// A decision log's line kind: only request lines (which have none) are arrivals;
    /// `outcome` lines score earlier answers.
    kind: Option<String>,
}

impl SourceStream {
    /// The stream of `source`, the `index`-th of a run seeded with `seed`.
    pub(crate) fn new(source: &Source, index: usize, seed: u64) -> Result<SourceStream, SpecError> {
        let rng = SmallRng::seed_from_u64(mix64(seed ^ mix64(index as u64 + 1)));
        let mut names = Vec::new();
        let model = match &source.model {
            Some(m) => {
                names.push(m.clone());
                0
            }
            None => UNNAMED,
        };
        let process = match &source.arrival {
            ArrivalSpec::Poisson { rate } => Process::Poisson {
                rate: rate / 1000.0,
            },
            ArrivalSpec::Diurnal { rates, period_s } => Process::Piecewise {
                rates: rates.iter().map(|r| r / 1000.0).collect(),
                segment_ms: period_s * 1000.0 / rates.len() as f64,
            },
            ArrivalSpec::Mmpp { rates, dwell_s } => Process::Mmpp {
                rates: rates.iter().map(|r| r / 1000.0).collect(),
                dwell_ms: dwell_s.iter().map(|d| d * 1000.0).collect(),
                state: 0,
                state_end: f64::NAN,
            },
            ArrivalSpec::Trace { path, speed } => Process::Trace {
                rows: read_trace(path, *speed, &mut names)?,
                next: 0,
            },
        };
        Ok(SourceStream {
            process,
            lengths: source.lengths.clone(),
            rng,
            now_ms: 0.0,
            names,
            model,
        })
    }

    /// The next arrival, or `None` when a trace is exhausted.
    pub(crate) fn next_arrival(&mut self) -> Option<Arrival> {
        let at_ms = match &mut self.process {
            Process::Trace { rows, next } => {
                let row = rows.get(*next).copied()?;
                *next += 1;
                return Some(row);
            }
            Process::Poisson { rate } => {
                let rate = *rate;
                self.now_ms + exponential(&mut self.rng) / rate
            }
            Process::Piecewise { rates, segment_ms } => {
                let mut budget = exponential(&mut self.rng);
                let mut t = self.now_ms;
                loop {
                    let segment = (t / *segment_ms).floor();
                    let end = (segment + 1.0) * *segment_ms;
                    let rate = rates[segment as usize % rates.len()];
                    let room = rate * (end - t);
                    if rate > 0.0 && budget <= room {
                        break t + budget / rate;
                    }
                    budget -= room;
                    // Step past the boundary even where rounding keeps `end` at `t`.
                    t = if end > t { end } else { t + *segment_ms * 1e-9 };
                }
            }
            Process::Mmpp {
                rates,
                dwell_ms,
                state,
                state_end,
            } => {
                if state_end.is_nan() {
                    *state_end = exponential(&mut self.rng) * dwell_ms[*state];
                }
                let mut budget = exponential(&mut self.rng);
                let mut t = self.now_ms;
                loop {
                    let rate = rates[*state];
                    let room = rate * (*state_end - t);
                    if rate > 0.0 && budget <= room {
                        break t + budget / rate;
                    }
                    budget -= room;
                    t = *state_end;
                    *state = (*state + 1) % rates.len();
                    *state_end = t + exponential(&mut self.rng) * dwell_ms[*state];
                }
            }
        };
        self.now_ms = at_ms;
        let (prompt, output) = self.draw_lengths();
        Some(Arrival {
            at_ms,
            prompt,
            output,
            model: self.model,
            pool: UNNAMED,
        })
    }

    fn draw_lengths(&mut self) -> (u32, u32) {
        let total_weight = self.lengths.last().map_or(1.0, |l| l.0);
        let pick = self.rng.random::<f64>() * total_weight;
        let index = self
            .lengths
            .iter()
            .position(|(cumulative, _)| pick < *cumulative)
            .unwrap_or(self.lengths.len().saturating_sub(1));
        let u = self.rng.random::<f64>();
        match self.lengths.get(index).map(|l| &l.1) {
            Some(LengthModel::Cdf {
                cdf,
                output_fraction,
            }) => {
                let total = cdf.quantile(u).max(2);
                let output =
                    ((f64::from(total) * output_fraction).round() as u32).clamp(1, total - 1);
                (total - output, output)
            }
            Some(LengthModel::Fixed {
                prompt,
                output,
                output_mean,
            }) => {
                let output = match (output, output_mean) {
                    (Some(o), _) => *o,
                    (None, Some(mean)) => geometric(u, *mean),
                    (None, None) => 1,
                };
                (*prompt, output)
            }
            None => (1, 1),
        }
    }
}

/// A unit-rate exponential draw.
fn exponential(rng: &mut SmallRng) -> f64 {
    -(1.0 - rng.random::<f64>()).ln()
}

/// A geometric length ≥ 1 with mean `mean`, from a uniform `u` (inversion).
fn geometric(u: f64, mean: f64) -> u32 {
    if mean <= 1.0 {
        return 1;
    }
    let p = 1.0 / mean;
    let draw = ((1.0 - u).ln() / (1.0 - p).ln()).ceil();
    draw.clamp(1.0, f64::from(u32::MAX / 2)) as u32
}

fn intern(names: &mut Vec<String>, name: Option<String>) -> Result<u16, String> {
    let Some(name) = name else {
        return Ok(UNNAMED);
    };
    if let Some(i) = names.iter().position(|n| *n == name) {
        return Ok(i as u16);
    }
    if names.len() >= usize::from(UNNAMED) {
        return Err("more than 65,534 distinct model and pool names".into());
    }
    names.push(name);
    Ok((names.len() - 1) as u16)
}

fn read_trace(path: &Path, speed: f64, names: &mut Vec<String>) -> Result<Vec<Arrival>, SpecError> {
    let file = path.display().to_string();
    let fail = |line: usize, message: String| {
        SpecError {
        file: file.clone(),
        line: Some(line),
        message,
        help: Some(
            "a trace row has arrival_s (or a decision log's ts_ms), prompt_tokens and output_tokens (or completion_tokens)"
                .into(),
        ),
    }
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        SpecError::unreadable(
            &file,
            &e,
            "the trace",
            "the path is relative to the simulation file",
        )
    })?;
    let mut rows = Vec::new();
    let csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if csv {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        for (i, record) in reader.deserialize::<TraceRow>().enumerate() {
            let row = record.map_err(|e| fail(i + 2, e.to_string()))?;
            rows.push(arrival(row, names).map_err(|m| fail(i + 2, m))?);
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let row: TraceRow =
                serde_json::from_str(line).map_err(|e| fail(i + 1, e.to_string()))?;
            if row.kind.is_some() || row.phase.as_deref().is_some_and(|p| p != "forward") {
                continue;
            }
            rows.push(arrival(row, names).map_err(|m| fail(i + 1, m))?);
        }
    }
    if rows.is_empty() {
        return Err(fail(1, "the trace has no rows".into()));
    }
    rows.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let origin = rows[0].at_ms;
    for row in &mut rows {
        row.at_ms = (row.at_ms - origin) / speed;
    }
    Ok(rows)
}

fn arrival(row: TraceRow, names: &mut Vec<String>) -> Result<Arrival, String> {
    let at_ms = match (row.arrival_s, row.ts_ms) {
        (Some(s), _) => s * 1000.0,
        (None, Some(ms)) => ms,
        (None, None) => return Err("no arrival_s or ts_ms".into()),
    };
    if !at_ms.is_finite() || at_ms < 0.0 {
        return Err(format!("arrival {at_ms} ms is not a time"));
    }
    let prompt = row.prompt_tokens.ok_or("no prompt_tokens")?;
    let output = row
        .output_tokens
        .or(row.completion_tokens)
        .ok_or("no output_tokens or completion_tokens")?;
    let tokens = |v: u64| u32::try_from(v).map_err(|_| format!("{v} tokens is too many"));
    Ok(Arrival {
        at_ms,
        prompt: tokens(prompt)?.max(1),
        output: tokens(output)?.max(1),
        model: intern(names, row.model)?,
        pool: intern(names, row.pool)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::spec::builtin_cdf;

    fn source(arrival: ArrivalSpec, lengths: Vec<(f64, LengthModel)>) -> Source {
        Source {
            name: "s".into(),
            arrival,
            lengths,
            model: None,
        }
    }

    fn fixed(prompt: u32, output: u32) -> Vec<(f64, LengthModel)> {
        vec![(
            1.0,
            LengthModel::Fixed {
                prompt,
                output: Some(output),
                output_mean: None,
            },
        )]
    }

    fn rate_of(stream: &mut SourceStream, n: usize) -> f64 {
        let mut last = 0.0;
        for _ in 0..n {
            last = stream.next_arrival().unwrap().at_ms;
        }
        n as f64 / (last / 1000.0)
    }

    #[test]
    fn poisson_and_diurnal_rates_come_out_as_written() {
        let mut s = SourceStream::new(
            &source(ArrivalSpec::Poisson { rate: 250.0 }, fixed(10, 5)),
            0,
            1,
        )
        .unwrap();
        let r = rate_of(&mut s, 200_000);
        assert!((r - 250.0).abs() < 2.5, "{r}");
        // Half the day at 100/s, half at 300/s: 200/s on average, and the first half
        // holds a quarter of the arrivals.
        let spec = ArrivalSpec::Diurnal {
            rates: vec![100.0, 300.0],
            period_s: 100.0,
        };
        let mut s = SourceStream::new(&source(spec, fixed(10, 5)), 0, 1).unwrap();
        let times: Vec<f64> = (0..200_000)
            .map(|_| s.next_arrival().unwrap().at_ms)
            .collect();
        let in_first = times
            .iter()
            .filter(|t| (**t % 100_000.0) < 50_000.0)
            .count() as f64;
        assert!((in_first / times.len() as f64 - 0.25).abs() < 0.01);
        let r = times.len() as f64 / (times[times.len() - 1] / 1000.0);
        assert!((r - 200.0).abs() < 4.0, "{r}");
    }

    #[test]
    fn mmpp_averages_its_states_by_dwell_time() {
        // 20/s for 9 s, 200/s for 1 s on average: (180 + 200) / 10 = 38/s.
        let spec = ArrivalSpec::Mmpp {
            rates: vec![20.0, 200.0],
            dwell_s: vec![9.0, 1.0],
        };
        let mut s = SourceStream::new(&source(spec, fixed(10, 5)), 0, 9).unwrap();
        let r = rate_of(&mut s, 400_000);
        assert!((r - 38.0).abs() < 1.5, "{r}");
    }

    #[test]
    fn lengths_follow_the_cdf_and_the_split() {
        let cdf = builtin_cdf("azure").unwrap();
        let mean = cdf.mean();
        let lengths = vec![(
            1.0,
            LengthModel::Cdf {
                cdf,
                output_fraction: 0.25,
            },
        )];
        let mut s =
            SourceStream::new(&source(ArrivalSpec::Poisson { rate: 1.0 }, lengths), 0, 4).unwrap();
        let (mut total, mut out) = (0.0, 0.0);
        let n = 100_000;
        for _ in 0..n {
            let a = s.next_arrival().unwrap();
            total += f64::from(a.prompt + a.output);
            out += f64::from(a.output);
        }
        assert!(
            (total / n as f64 - mean).abs() / mean < 0.02,
            "{} vs {mean}",
            total / n as f64
        );
        assert!((out / total - 0.25).abs() < 0.01);
        // Geometric output has the mean asked for.
        let lengths = vec![(
            1.0,
            LengthModel::Fixed {
                prompt: 1,
                output: None,
                output_mean: Some(400.0),
            },
        )];
        let mut s =
            SourceStream::new(&source(ArrivalSpec::Poisson { rate: 1.0 }, lengths), 0, 4).unwrap();
        let m: f64 = (0..n)
            .map(|_| f64::from(s.next_arrival().unwrap().output))
            .sum::<f64>()
            / n as f64;
        assert!((m - 400.0).abs() < 6.0, "{m}");
    }

    #[test]
    fn traces_read_csv_jsonl_and_decision_logs_in_arrival_order() {
        let dir = std::env::temp_dir().join(format!("sy-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("t.csv");
        std::fs::write(
            &csv,
            "arrival_s,prompt_tokens,output_tokens,model\n0.5,100,10,a\n0.0,50,5,b\n",
        )
        .unwrap();
        let spec = ArrivalSpec::Trace {
            path: csv.clone(),
            speed: 1.0,
        };
        let mut s = SourceStream::new(&source(spec, vec![]), 0, 0).unwrap();
        let first = s.next_arrival().unwrap();
        assert_eq!((first.at_ms, first.prompt, first.output), (0.0, 50, 5));
        assert_eq!(s.names[first.model as usize], "b");
        assert_eq!(s.next_arrival().unwrap().at_ms, 500.0);
        assert!(s.next_arrival().is_none());

        let log = dir.join("decisions.jsonl");
        std::fs::write(
            &log,
            concat!(
                "{\"ts_ms\":1000400,\"pool\":\"long\",\"prompt_tokens\":9000,\"completion_tokens\":20}\n",
                "{\"ts_ms\":1000000,\"pool\":\"short\",\"prompt_tokens\":22,\"completion_tokens\":64}\n",
                "{\"ts_ms\":1000100,\"pool\":\"\",\"phase\":\"govern\",\"prompt_tokens\":9,\"completion_tokens\":0}\n",
                "{\"kind\":\"outcome\",\"ts_ms\":1000900,\"source\":\"feedback\",\"request_id\":\"sy-1\",\"score\":0.0}\n"
            ),
        )
        .unwrap();
        let spec = ArrivalSpec::Trace {
            path: log.clone(),
            speed: 2.0,
        };
        let mut s = SourceStream::new(&source(spec, vec![]), 0, 0).unwrap();
        let a = s.next_arrival().unwrap();
        assert_eq!((a.at_ms, s.names[a.pool as usize].as_str()), (0.0, "short"));
        assert_eq!(s.next_arrival().unwrap().at_ms, 200.0);
        assert!(
            s.next_arrival().is_none(),
            "a refused request and an outcome line are not replayed"
        );

        std::fs::write(&log, "{\"ts_ms\":1}\n").unwrap();
        let spec = ArrivalSpec::Trace {
            path: log.clone(),
            speed: 1.0,
        };
        let err = SourceStream::new(&source(spec, vec![]), 0, 0).unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(err.message.contains("prompt_tokens"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

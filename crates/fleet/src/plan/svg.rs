//! Small SVG charts of a plan: the Pareto front over (cost, P99 TTFT), pool sizes over
//! the day, and the workload CDFs. Axes, ticks, labels and a legend; no dependencies.

use super::{Candidate, HourPlan};
use crate::workload::LengthCdf;
use std::fmt::Write as _;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    /// Joined points.
    Line,
    /// Dots.
    Dots,
}

/// One series of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
    /// How it is drawn.
    pub mark: Mark,
}

/// A chart of series on linear (or log-2 x) axes, as an SVG document.
pub fn chart(title: &str, x_label: &str, y_label: &str, series: &[Series], log_x: bool) -> String {
    let fx = |x: f64| if log_x { x.max(1e-9).log2() } else { x };
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(x, y)| (fx(x), y)))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let (mut x0, mut x1) = bounds(all.iter().map(|p| p.0));
    let (mut y0, mut y1) = bounds(all.iter().map(|p| p.1));
    if !log_x {
        (x0, x1) = nice_range(x0, x1);
    }
    y0 = y0.min(0.0);
    (y0, y1) = nice_range(y0, y1);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let px = |x: f64| LEFT + (fx(x) - x0) / (x1 - x0).max(1e-12) * plot_w;
    let py = |y: f64| TOP + plot_h - (y - y0) / (y1 - y0).max(1e-12) * plot_h;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        escape(title)
    );
    // Grid and ticks.
    for y in ticks(y0, y1) {
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{0}" y1="{1:.1}" y2="{1:.1}" stroke="#ddd"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
            LEFT + plot_w,
            py(y),
            LEFT - 6.0,
            py(y) + 4.0,
            tick(y)
        );
    }
    let x_ticks: Vec<f64> = if log_x {
        let (lo, hi) = (x0.floor() as i32, x1.ceil() as i32);
        let every = if hi - lo > 10 { 2 } else { 1 };
        (lo..=hi)
            .filter(|e| e % every == 0)
            .map(|e| 2f64.powi(e))
            .filter(|x| fx(*x) >= x0 - 1e-9 && fx(*x) <= x1 + 1e-9)
            .collect()
    } else {
        ticks(x0, x1)
    };
    for x in x_ticks {
        let label = if log_x { tokens(x) } else { tick(x) };
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{TOP}" y2="{1}" stroke="#eee"/><text x="{0:.1}" y="{2}" text-anchor="middle">{3}</text>"##,
            px(x),
            TOP + plot_h,
            TOP + plot_h + 18.0,
            label
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 18.0,
        escape(x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(20,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        escape(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|(x, y)| fx(*x).is_finite() && y.is_finite())
            .map(|&(x, y)| (px(x), py(y)))
            .collect();
        match s.mark {
            Mark::Line => {
                let path: Vec<String> = points
                    .iter()
                    .map(|(x, y)| format!("{x:.1},{y:.1}"))
                    .collect();
                let _ = writeln!(
                    svg,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                    path.join(" ")
                );
            }
            Mark::Dots => {
                for (x, y) in &points {
                    let _ = writeln!(
                        svg,
                        r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{color}" fill-opacity="0.7"/>"#
                    );
                }
            }
        }
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let lx = WIDTH - RIGHT + 12.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{}" width="14" height="4" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            ly - 2.0,
            lx + 20.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    (lo, hi)
}

/// A round step (1, 2 or 5 times a power of ten) giving about six ticks.
fn nice_step(span: f64) -> f64 {
    let raw = span / 6.0;
    let power = 10f64.powf(raw.log10().floor());
    let unit = raw / power;
    let nice = if unit <= 1.0 {
        1.0
    } else if unit <= 2.0 {
        2.0
    } else if unit <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

fn nice_range(lo: f64, hi: f64) -> (f64, f64) {
    let step = nice_step(hi - lo);
    ((lo / step).floor() * step, (hi / step).ceil() * step)
}

fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let step = nice_step(hi - lo);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 10_000.0 {
        format!("{:.0}K", v / 1000.0)
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A power-of-two token count: 512, 1K, 64K.
fn tokens(v: f64) -> String {
    if v >= 1024.0 {
        format!("{:.0}K", v / 1024.0)
    } else {
        format!("{v:.0}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The candidates over (cost, P99 TTFT), the Pareto front among them, and the best.
pub fn pareto(candidates: &[Candidate], best: &Candidate) -> String {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| {
        a.cost_per_hour
            .total_cmp(&b.cost_per_hour)
            .then(a.ttft_p99_ms.total_cmp(&b.ttft_p99_ms))
    });
    let mut front = Vec::new();
    let mut lowest = f64::INFINITY;
    for c in sorted {
        if c.ttft_p99_ms < lowest {
            lowest = c.ttft_p99_ms;
            front.push((c.cost_per_hour, c.ttft_p99_ms));
        }
    }
    chart(
        "Candidate fleets: cost against predicted P99 TTFT",
        "dollars per hour",
        "P99 TTFT (ms)",
        &[
            Series {
                name: "candidates".into(),
                points: candidates
                    .iter()
                    .map(|c| (c.cost_per_hour, c.ttft_p99_ms))
                    .collect(),
                mark: Mark::Dots,
            },
            Series {
                name: "Pareto front".into(),
                points: front,
                mark: Mark::Line,
            },
            Series {
                name: format!("plan (B {}, γ {})", best.boundary, best.gamma),
                points: vec![(best.cost_per_hour, best.ttft_p99_ms)],
                mark: Mark::Dots,
            },
        ],
        false,
    )
}

/// Instances per pool over the day.
pub fn day(hours: &[HourPlan]) -> String {
    let pools = hours.iter().map(|h| h.instances.len()).max().unwrap_or(0);
    let names = ["short pool", "long pool"];
    let mut series: Vec<Series> = (0..pools)
        .map(|i| Series {
            name: names.get(i).copied().unwrap_or("pool").into(),
            points: hours
                .iter()
                .map(|h| {
                    (
                        h.hour as f64,
                        h.instances.get(i).copied().map_or(0.0, f64::from),
                    )
                })
                .collect(),
            mark: Mark::Line,
        })
        .collect();
    series.push(Series {
        name: "all instances".into(),
        points: hours
            .iter()
            .map(|h| (h.hour as f64, f64::from(h.instances.iter().sum::<u32>())))
            .collect(),
        mark: Mark::Line,
    });
    chart(
        "Pool sizes over the day (re-planned every hour)",
        "hour",
        "instances",
        &series,
        false,
    )
}

/// The workload CDFs on a log-2 token axis.
pub fn cdfs(mix: &[(String, &LengthCdf)]) -> String {
    let longest = mix
        .iter()
        .map(|m| m.1.max_tokens())
        .max()
        .unwrap_or(1 << 16);
    let steps = ((f64::from(longest).log2() - 4.0) * 10.0).ceil().max(1.0) as u32;
    let series: Vec<Series> = mix
        .iter()
        .map(|(name, cdf)| Series {
            name: name.clone(),
            points: (0..=steps)
                .map(|i| 2f64.powf(4.0 + f64::from(i) / 10.0))
                .map(|t| (t, cdf.fraction_below(t)))
                .collect(),
            mark: Mark::Line,
        })
        .collect();
    chart(
        "Request length CDFs (prompt + output)",
        "tokens (log scale)",
        "cumulative fraction",
        &series,
        true,
    )
}

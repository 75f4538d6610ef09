//! The final report: text for people, JSON for machines, SVG for eyes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ferrokeeper::proto::ErrorCode;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Latency summary of one op kind (or of all of them).
#[derive(Clone, Debug, PartialEq)]
pub struct KindSummary {
    pub name: String,
    pub ops: u64,
    pub throughput: f64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// (percentile, latency µs) from 0 to 100, denser towards the tail.
    pub spectrum: Vec<(f64, u64)>,
}

/// Percentiles of the spectrum: 100 * (1 - 10^(-k/10)), k = 0..=50, then 100.
pub fn spectrum_percentiles() -> Vec<f64> {
    let mut v: Vec<f64> = (0..=50)
        .map(|k| 100.0 * (1.0 - 10f64.powf(-(k as f64) / 10.0)))
        .collect();
    v.push(100.0);
    v
}

impl KindSummary {
    pub fn from_histogram(name: &str, h: &Histogram<u64>, seconds: f64) -> KindSummary {
        let q = |p: f64| h.value_at_quantile(p / 100.0);
        KindSummary {
            name: name.to_string(),
            ops: h.len(),
            throughput: if seconds > 0.0 {
                h.len() as f64 / seconds
            } else {
                0.0
            },
            mean_us: if h.is_empty() { 0.0 } else { h.mean() },
            p50_us: q(50.0),
            p90_us: q(90.0),
            p99_us: q(99.0),
            p999_us: q(99.9),
            max_us: h.max(),
            spectrum: if h.is_empty() {
                Vec::new()
            } else {
                spectrum_percentiles()
                    .into_iter()
                    .map(|p| (p, if p >= 100.0 { h.max() } else { q(p) }))
                    .collect()
            },
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "ops": self.ops,
            "throughput_ops_per_s": round2(self.throughput),
            "latency_us": {
                "mean": round2(self.mean_us),
                "p50": self.p50_us,
                "p90": self.p90_us,
                "p99": self.p99_us,
                "p99_9": self.p999_us,
                "max": self.max_us,
            },
            "spectrum": self.spectrum.iter().map(|(p, v)| json!([round_pct(*p), v])).collect::<Vec<_>>(),
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TimePoint {
    /// Seconds since the start of the measured period.
    pub t: u64,
    pub ops: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CpuUse {
    /// "server" or "loadgen".
    pub what: String,
    pub pid: u32,
    pub cpu_seconds: f64,
    /// CPU time per successful op.
    pub us_per_op: f64,
    /// Average cores busy over the measured period.
    pub cores: f64,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub workload: String,
    pub target: String,
    /// Run options, echoed in the JSON.
    pub config: Value,
    pub measured_seconds: f64,
    pub overall: KindSummary,
    pub by_op: Vec<KindSummary>,
    pub errors: BTreeMap<i32, u64>,
    pub timeline: Vec<TimePoint>,
    pub cpu: Vec<CpuUse>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round_pct(x: f64) -> f64 {
    (x * 100_000.0).round() / 100_000.0
}

pub fn error_name(code: i32) -> String {
    match ErrorCode::from_code(code) {
        Some(c) => c.to_string(),
        None => format!("Unknown({code})"),
    }
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

impl Report {
    pub fn total_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn format_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "workload {} against {}: {:.1} s measured",
            self.workload, self.target, self.measured_seconds
        );
        let _ = writeln!(
            s,
            "throughput {:.0} ops/s ({} ops, {} errors)",
            self.overall.throughput,
            self.overall.ops,
            self.total_errors()
        );
        let _ = writeln!(
            s,
            "{:<14} {:>10} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "ops", "ops/s", "p50", "p90", "p99", "p99.9", "max"
        );
        for k in self.by_op.iter().chain(std::iter::once(&self.overall)) {
            let _ = writeln!(
                s,
                "{:<14} {:>10} {:>12.0} {:>9} {:>9} {:>9} {:>9} {:>9}",
                k.name,
                k.ops,
                k.throughput,
                ms(k.p50_us),
                ms(k.p90_us),
                ms(k.p99_us),
                ms(k.p999_us),
                ms(k.max_us)
            );
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "errors by code:");
            for (code, n) in &self.errors {
                let _ = writeln!(s, "  {:<28} {}", error_name(*code), n);
            }
        }
        for c in &self.cpu {
            let _ = writeln!(
                s,
                "cpu {} pid {}: {:.2} s ({:.2} cores), {:.2} us/op",
                c.what, c.pid, c.cpu_seconds, c.cores, c.us_per_op
            );
        }
        s
    }

    pub fn to_json(&self) -> Value {
        let errors: serde_json::Map<String, Value> = self
            .errors
            .iter()
            .map(|(c, n)| (error_name(*c), json!(n)))
            .collect();
        json!({
            "workload": self.workload,
            "target": self.target,
            "config": self.config,
            "measured_seconds": round2(self.measured_seconds),
            "ops": self.overall.ops,
            "errors": self.total_errors(),
            "throughput_ops_per_s": round2(self.overall.throughput),
            "latency_us": self.overall.to_json()["latency_us"].clone(),
            "by_op": self.by_op.iter().map(|k| (k.name.clone(), k.to_json())).collect::<serde_json::Map<_, _>>(),
            "errors_by_code": errors,
            "timeline": self.timeline.iter().map(|p| json!({
                "t": p.t, "ops": p.ops, "errors": p.errors,
                "p50_us": p.p50_us, "p99_us": p.p99_us, "max_us": p.max_us,
            })).collect::<Vec<_>>(),
            "cpu": self.cpu.iter().map(|c| json!({
                "what": c.what, "pid": c.pid, "cpu_seconds": round2(c.cpu_seconds),
                "cores": round2(c.cores), "us_per_op": round2(c.us_per_op),
            })).collect::<Vec<_>>(),
        })
    }

    /// A self-contained SVG: latency percentile spectrum per op kind,
    /// throughput and p99 over time.
    pub fn render_svg(&self) -> String {
        const W: f64 = 960.0;
        const PANEL_H: f64 = 260.0;
        const LEFT: f64 = 80.0;
        const RIGHT: f64 = 170.0;
        const COLORS: [&str; 8] = [
            "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
        ];
        let plot_w = W - LEFT - RIGHT;
        let mut s = String::new();
        let total_h = 60.0 + 3.0 * (PANEL_H + 60.0);
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{total_h}" viewBox="0 0 {W} {total_h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text>"#,
            esc(&format!(
                "ferrokeeper-loadgen: {} against {}: {:.0} ops/s, p99 {} ms, {} errors",
                self.workload,
                self.target,
                self.overall.throughput,
                ms(self.overall.p99_us),
                self.total_errors()
            ))
        );

        // Panel 1: percentile spectrum (x: log of 1/(1-p), y: log latency).
        let top = 60.0;
        let series: Vec<&KindSummary> = self
            .by_op
            .iter()
            .filter(|k| !k.spectrum.is_empty())
            .collect();
        let (lo, hi) = series
            .iter()
            .flat_map(|k| k.spectrum.iter().map(|(_, v)| *v))
            .fold((u64::MAX, 1u64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let lo_dec = (lo.max(1) as f64).log10().floor();
        let hi_dec = (hi.max(2) as f64).log10().ceil().max(lo_dec + 1.0);
        let ylog = |v: u64| {
            let f = ((v.max(1) as f64).log10() - lo_dec) / (hi_dec - lo_dec);
            top + PANEL_H - f * PANEL_H
        };
        let xp = |p: f64| {
            let nines = if p >= 100.0 {
                5.0
            } else {
                (1.0 / (1.0 - p / 100.0)).log10().min(5.0)
            };
            LEFT + nines / 5.0 * plot_w
        };
        frame(
            &mut s,
            top,
            PANEL_H,
            LEFT,
            plot_w,
            "latency by percentile (log scale)",
        );
        for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
            .iter()
            .enumerate()
        {
            let x = LEFT + i as f64 / 5.0 * plot_w;
            grid_v(&mut s, x, top, PANEL_H, label);
        }
        let mut d = lo_dec;
        while d <= hi_dec {
            let v = 10f64.powf(d);
            let y = top + PANEL_H - (d - lo_dec) / (hi_dec - lo_dec) * PANEL_H;
            grid_h(&mut s, y, LEFT, plot_w, &fmt_us(v));
            d += 1.0;
        }
        for (i, k) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let pts: Vec<String> = k
                .spectrum
                .iter()
                .map(|(p, v)| format!("{:.1},{:.1}", xp(*p), ylog(*v)))
                .collect();
            polyline(&mut s, &pts, color);
            legend(
                &mut s,
                W - RIGHT + 10.0,
                top + 14.0 + 18.0 * i as f64,
                color,
                &k.name,
            );
        }

        // Panels 2 and 3: throughput and p99 over time.
        let n = self.timeline.len().max(1) as f64;
        let xt = |t: f64| LEFT + (t + 0.5) / n * plot_w;
        // One point per second: `value` scaled to `max`, clamped to the panel at `top`.
        let timeline_points = |top: f64, max: f64, value: &dyn Fn(&TimePoint) -> f64| {
            self.timeline
                .iter()
                .map(|p| {
                    let y = top + PANEL_H - (value(p) / max).min(1.0) * PANEL_H;
                    format!("{:.1},{:.1}", xt(p.t as f64), y)
                })
                .collect::<Vec<String>>()
        };
        let top2 = top + PANEL_H + 60.0;
        let max_ops = self
            .timeline
            .iter()
            .map(|p| p.ops)
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        frame(
            &mut s,
            top2,
            PANEL_H,
            LEFT,
            plot_w,
            "throughput (ops/s) per second of the measured period",
        );
        axis_lin(&mut s, top2, PANEL_H, LEFT, plot_w, max_ops, &|v| {
            format!("{v:.0}")
        });
        let ops_pts = timeline_points(top2, max_ops, &|p| p.ops as f64);
        polyline(&mut s, &ops_pts, COLORS[0]);
        let err_pts = timeline_points(top2, max_ops, &|p| p.errors as f64);
        polyline(&mut s, &err_pts, COLORS[1]);
        legend(&mut s, W - RIGHT + 10.0, top2 + 14.0, COLORS[0], "ops/s");
        legend(&mut s, W - RIGHT + 10.0, top2 + 32.0, COLORS[1], "errors/s");

        let top3 = top2 + PANEL_H + 60.0;
        let max_lat = self
            .timeline
            .iter()
            .map(|p| p.p99_us)
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        frame(
            &mut s,
            top3,
            PANEL_H,
            LEFT,
            plot_w,
            "latency per second (ms)",
        );
        axis_lin(&mut s, top3, PANEL_H, LEFT, plot_w, max_lat, &|v| {
            format!("{:.2}", v / 1000.0)
        });
        for (i, (label, get)) in [
            ("p50", (|p: &TimePoint| p.p50_us) as fn(&TimePoint) -> u64),
            ("p99", |p: &TimePoint| p.p99_us),
        ]
        .iter()
        .enumerate()
        {
            let pts = timeline_points(top3, max_lat, &|p| get(p) as f64);
            polyline(&mut s, &pts, COLORS[i + 2]);
            legend(
                &mut s,
                W - RIGHT + 10.0,
                top3 + 14.0 + 18.0 * i as f64,
                COLORS[i + 2],
                label,
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="{}" fill="#555">x: seconds 0..{} of the measured period</text>"##,
            top3 + PANEL_H + 30.0,
            self.timeline.len()
        );
        s.push_str("</svg>\n");
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn fmt_us(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{} s", v / 1_000_000.0)
    } else if v >= 1000.0 {
        format!("{} ms", v / 1000.0)
    } else {
        format!("{v} µs")
    }
}

fn frame(s: &mut String, top: f64, h: f64, left: f64, w: f64, title: &str) {
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#333"/><text x="{left}" y="{}" font-weight="bold">{}</text>"##,
        top - 8.0,
        esc(title)
    );
}

fn grid_v(s: &mut String, x: f64, top: f64, h: f64, label: &str) {
    let _ = writeln!(
        s,
        r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
        top + h,
        top + h + 16.0,
        esc(label)
    );
}

fn grid_h(s: &mut String, y: f64, left: f64, w: f64, label: &str) {
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
        left + w,
        left - 6.0,
        y + 4.0,
        esc(label)
    );
}

fn axis_lin(
    s: &mut String,
    top: f64,
    h: f64,
    left: f64,
    w: f64,
    max: f64,
    fmt: &dyn Fn(f64) -> String,
) {
    for i in 0..=4 {
        let v = max * i as f64 / 4.0;
        grid_h(s, top + h - h * i as f64 / 4.0, left, w, &fmt(v));
    }
}

fn polyline(s: &mut String, pts: &[String], color: &str) {
    if pts.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
        pts.join(" ")
    );
}

fn legend(s: &mut String, x: f64, y: f64, color: &str, label: &str) {
    let _ = writeln!(
        s,
        r#"<rect x="{x}" y="{}" width="14" height="4" fill="{color}"/><text x="{}" y="{y}">{}</text>"#,
        y - 5.0,
        x + 20.0,
        esc(label)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    fn sample() -> Report {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 10).unwrap();
        }
        let get = KindSummary::from_histogram("getData", &h, 2.0);
        let overall = KindSummary::from_histogram("all", &h, 2.0);
        Report {
            workload: "getset".into(),
            target: "127.0.0.1:2181".into(),
            config: json!({"sessions": 4}),
            measured_seconds: 2.0,
            overall,
            by_op: vec![get],
            errors: [(-101, 3), (-4, 1)].into_iter().collect(),
            timeline: vec![
                TimePoint {
                    t: 0,
                    ops: 500,
                    errors: 1,
                    p50_us: 5000,
                    p99_us: 9900,
                    max_us: 10000,
                },
                TimePoint {
                    t: 1,
                    ops: 500,
                    errors: 3,
                    p50_us: 5000,
                    p99_us: 9900,
                    max_us: 10000,
                },
            ],
            cpu: vec![CpuUse {
                what: "server".into(),
                pid: 42,
                cpu_seconds: 1.5,
                us_per_op: 1500.0,
                cores: 0.75,
            }],
        }
    }

    #[test]
    fn summary_percentiles() {
        let r = sample();
        let k = &r.by_op[0];
        assert_eq!(k.ops, 1000);
        assert_eq!(k.throughput, 500.0);
        assert!((4990..=5010).contains(&k.p50_us), "{}", k.p50_us);
        assert!((9890..=9910).contains(&k.p99_us), "{}", k.p99_us);
        assert!((9990..=10010).contains(&k.max_us));
        assert_eq!(k.spectrum.first().unwrap().0, 0.0);
        assert_eq!(k.spectrum.last().unwrap(), &(100.0, k.max_us));
        assert!(k
            .spectrum
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn text_report_has_throughput_percentiles_and_errors() {
        let text = sample().format_text();
        assert!(
            text.contains("throughput 500 ops/s (1000 ops, 4 errors)"),
            "{text}"
        );
        let line = text.lines().find(|l| l.starts_with("getData")).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], "1000");
        assert_eq!(cols[2], "500");
        assert!(
            cols[3].starts_with("5.0") || cols[3].starts_with("4.9"),
            "{line}"
        );
        assert!(text.contains("NoNode(-101)"));
        assert!(text.contains("ConnectionLoss(-4)"));
        assert!(text.contains("cpu server pid 42: 1.50 s (0.75 cores), 1500.00 us/op"));
    }

    #[test]
    fn json_report_shape() {
        let j = sample().to_json();
        assert_eq!(j["ops"], 1000);
        assert_eq!(j["errors"], 4);
        assert_eq!(j["errors_by_code"]["NoNode(-101)"], 3);
        assert_eq!(j["by_op"]["getData"]["ops"], 1000);
        assert!(j["latency_us"]["p99"].as_u64().unwrap() > 9000);
        assert_eq!(j["timeline"].as_array().unwrap().len(), 2);
        assert_eq!(error_name(-999), "Unknown(-999)");
    }

    #[test]
    fn svg_is_well_formed_enough() {
        let svg = sample().render_svg();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 1 + 2 + 2);
        assert!(!svg.contains("NaN"));
    }
}

//! SVG charts of a report: for each workload, throughput, p50 and p99 latency against
//! concurrency (logarithmic axes), one line per target. Plain SVG, no dependencies.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::report::Report;

const PANEL_W: f64 = 360.0;
const PANEL_H: f64 = 260.0;
const MARGIN_L: f64 = 62.0;
const MARGIN_R: f64 = 14.0;
const MARGIN_T: f64 = 30.0;
const MARGIN_B: f64 = 40.0;
const LEGEND_H: f64 = 28.0;

/// A line colour per target (colour-blind-safe palette).
fn colour(target: &str) -> &'static str {
    match target {
        "tarn" => "#0072B2",
        "native" => "#009E73",
        "connect-per-request" => "#D55E00",
        "reset-per-checkout" => "#CC79A7",
        "single-connection" => "#E69F00",
        t if t.starts_with("tarn-") => "#56B4E9",
        _ => "#555555",
    }
}

/// One panel's data: a title, a y-axis label, and per target the y value at each x.
struct Panel<'a> {
    title: &'a str,
    y_label: &'a str,
    series: Vec<(String, Vec<Option<f64>>)>,
}

/// Writes `<dir>/<workload>.svg` for every workload; returns the files.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let xs = &report.settings.concurrencies;
    let mut files = Vec::new();
    for workload in report.workloads() {
        let targets = report.targets(&workload);
        let series = |f: fn(&crate::load::LoadResult) -> f64| {
            targets
                .iter()
                .map(|t| {
                    let ys = xs
                        .iter()
                        .map(|&c| report.point(&workload, t, c).map(f).filter(|v| *v > 0.0))
                        .collect();
                    (t.clone(), ys)
                })
                .collect::<Vec<_>>()
        };
        let panels = [
            Panel {
                title: "throughput",
                y_label: "requests/s",
                series: series(|r| r.rps),
            },
            Panel {
                title: "p50 latency",
                y_label: "ms",
                series: series(|r| r.latency.p50_us / 1e3),
            },
            Panel {
                title: "p99 latency",
                y_label: "ms",
                series: series(|r| r.latency.p99_us / 1e3),
            },
        ];
        let svg = chart(
            &format!("{workload}: by concurrency"),
            xs,
            &panels,
            &targets,
        );
        let path = dir.join(format!("{workload}.svg"));
        std::fs::write(&path, svg)?;
        files.push(path);
    }
    Ok(files)
}

fn chart(title: &str, xs: &[usize], panels: &[Panel<'_>], targets: &[String]) -> String {
    let width = PANEL_W * panels.len() as f64;
    let height = PANEL_H + LEGEND_H + 24.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="16" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    for (i, panel) in panels.iter().enumerate() {
        draw_panel(&mut svg, PANEL_W * i as f64, 20.0, xs, panel);
    }
    // Legend.
    let y = PANEL_H + 20.0 + LEGEND_H / 2.0;
    let mut x = MARGIN_L;
    for t in targets {
        let _ = writeln!(
            svg,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="3"/>"#,
            x + 22.0,
            colour(t)
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}">{}</text>"#,
            x + 27.0,
            y + 4.0,
            escape(t)
        );
        x += 40.0 + 6.5 * t.len() as f64;
    }
    svg.push_str("</svg>\n");
    svg
}

fn draw_panel(svg: &mut String, ox: f64, oy: f64, xs: &[usize], panel: &Panel<'_>) {
    let (x0, x1) = (ox + MARGIN_L, ox + PANEL_W - MARGIN_R);
    let (y0, y1) = (oy + PANEL_H - MARGIN_B, oy + MARGIN_T);
    let values: Vec<f64> = panel
        .series
        .iter()
        .flat_map(|(_, ys)| ys.iter().flatten().copied())
        .collect();
    let (lo, hi) = match (
        values.iter().copied().reduce(f64::min),
        values.iter().copied().reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => (1.0, 10.0),
    };
    // Decades that cover the data.
    let (dlo, dhi) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let ly = |v: f64| y0 - (v.log10() - dlo) / (dhi - dlo) * (y0 - y1);
    let lx = |i: usize| {
        if xs.len() <= 1 {
            (x0 + x1) / 2.0
        } else {
            x0 + 10.0 + (x1 - x0 - 20.0) * i as f64 / (xs.len() - 1) as f64
        }
    };
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{}</text>"#,
        (x0 + x1) / 2.0,
        oy + 18.0,
        escape(panel.title)
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        x1 - x0,
        y0 - y1
    );
    // Y grid: 1, 2, 5 per decade.
    let mut d = dlo;
    while d <= dhi {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powf(d);
            if v.log10() > dhi + 1e-9 {
                break;
            }
            let y = ly(v);
            let stroke = if m == 1.0 { "#ccc" } else { "#eee" };
            let _ = writeln!(
                svg,
                r#"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="{stroke}"/>"#
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                x0 - 4.0,
                y + 4.0,
                number(v)
            );
        }
        d += 1.0;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" transform="rotate(-90 {} {})">{}</text>"#,
        ox + 14.0,
        (y0 + y1) / 2.0,
        ox + 14.0,
        (y0 + y1) / 2.0,
        escape(panel.y_label)
    );
    for (i, c) in xs.iter().enumerate() {
        let x = lx(i);
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{c}</text>"#,
            y0 + 14.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">concurrency</text>"#,
        (x0 + x1) / 2.0,
        y0 + 30.0
    );
    for (target, ys) in &panel.series {
        let points: Vec<String> = ys
            .iter()
            .enumerate()
            .filter_map(|(i, y)| y.map(|y| format!("{:.1},{:.1}", lx(i), ly(y))))
            .collect();
        let c = colour(target);
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#,
            points.join(" ")
        );
        for p in &points {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(svg, r#"<circle cx="{x}" cy="{y}" r="3" fill="{c}"/>"#);
        }
    }
}

/// A short axis label: 0.5, 2, 50, 1k, 20k.
fn number(v: f64) -> String {
    if v >= 1000.0 {
        format!("{}k", v / 1000.0)
    } else if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels() {
        assert_eq!(number(20_000.0), "20k");
        assert_eq!(number(50.0), "50");
        assert_eq!(number(0.5), "0.5");
    }
}

//! Charts as SVG, drawn on the server: line charts with axes, units and a tooltip (`<title>`)
//! per time slot, and sparklines. No script is needed to read them; colours come from CSS
//! classes (`s0`…`s5`) so that they follow the light or dark theme.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use maud::{html, Markup};

use super::format;

/// What the values of a chart measure; decides the axis labels and tooltips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// 0–100; the axis always spans 0–100.
    Percent,
    Bytes,
    BytesPerSecond,
    /// A plain number (load average).
    Plain,
}

impl Unit {
    pub fn format(self, value: f64) -> String {
        match self {
            Unit::Percent => format::percent(value),
            Unit::Bytes => format::bytes(value),
            Unit::BytesPerSecond => format::rate(value),
            Unit::Plain => format!("{value:.2}"),
        }
    }
}

/// One line of a chart: `(unix time, value)` points, oldest first.
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub points: Vec<(i64, f64)>,
}

/// A chart over `[from, to]` (Unix seconds).
#[derive(Debug, Clone)]
pub struct Chart {
    /// Used for the accessible name and the empty-chart text.
    pub title: String,
    pub unit: Unit,
    pub from: i64,
    pub to: i64,
    pub lines: Vec<Line>,
    /// Shade the area under the first line.
    pub fill_first: bool,
}

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 190.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// One decimal: enough for coordinates in a 480-unit box.
fn n(v: f64) -> String {
    format!("{v:.1}")
}

/// The chart as an `<svg>` element.
pub fn chart(c: &Chart) -> Markup {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let span = (c.to - c.from).max(1) as f64;
    let x_of = |t: i64| LEFT + (t - c.from) as f64 / span * plot_w;
    let data_max = c
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let axis = YAxis::new(c.unit, data_max);
    let y_of = |v: f64| TOP + plot_h - (v / axis.max).clamp(0.0, 1.05) * plot_h;
    let grid: Vec<(f64, String)> = (0..=axis.ticks)
        .map(|i| {
            let v = axis.max * f64::from(i) / f64::from(axis.ticks);
            (y_of(v), axis.label(v))
        })
        .collect();
    let step = time_step(c.to - c.from);
    let times: Vec<i64> =
        std::iter::successors(Some(c.from - c.from.rem_euclid(step) + step), |t| {
            Some(t + step)
        })
        .take_while(|t| *t <= c.to)
        .collect();
    let empty = c.lines.iter().all(|l| l.points.is_empty());
    html! {
        svg.chart viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img" aria-label=(c.title)
            xmlns="http://www.w3.org/2000/svg" {
            // Horizontal grid lines with value labels.
            @for (y, label) in &grid {
                line.grid x1=(LEFT) x2=(n(WIDTH - RIGHT)) y1=(n(*y)) y2=(n(*y)) {}
                text.ylabel x=(n(LEFT - 6.0)) y=(n(y + 4.0)) { (label) }
            }
            // Time axis.
            @for t in &times {
                @let x = x_of(*t);
                line.grid x1=(n(x)) x2=(n(x)) y1=(TOP) y2=(n(TOP + plot_h)) {}
                text.xlabel x=(n(x)) y=(n(HEIGHT - 7.0)) { (time_label(*t, step)) }
            }
            line.axis x1=(LEFT) x2=(n(WIDTH - RIGHT)) y1=(n(TOP + plot_h)) y2=(n(TOP + plot_h)) {}
            @if empty {
                text.empty x=(n(LEFT + plot_w / 2.0)) y=(n(TOP + plot_h / 2.0)) { "no data in this range" }
            } @else {
                (lines(c, &x_of, &y_of))
                (hit_columns(c, &x_of, plot_h))
            }
        }
    }
}

/// The lines (and the shaded area under the first), one path per line.
fn lines(c: &Chart, x_of: &dyn Fn(i64) -> f64, y_of: &dyn Fn(f64) -> f64) -> Markup {
    let mut paths: Vec<(String, String)> = Vec::new();
    for (index, line) in c.lines.iter().enumerate() {
        let class = format!("s{}", index % 6);
        let segments = segments(&line.points);
        if index == 0 && c.fill_first {
            for segment in &segments {
                if let (Some(first), Some(last)) = (segment.first(), segment.last()) {
                    let mut d = format!("M{:.1},{:.1}", x_of(first.0), y_of(0.0));
                    for p in segment.iter() {
                        let _ = write!(d, "L{:.1},{:.1}", x_of(p.0), y_of(p.1));
                    }
                    let _ = write!(d, "L{:.1},{:.1}Z", x_of(last.0), y_of(0.0));
                    paths.push((format!("area {class}"), d));
                }
            }
        }
        let mut d = String::new();
        for segment in &segments {
            for (i, p) in segment.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if i == 0 { 'M' } else { 'L' },
                    x_of(p.0),
                    y_of(p.1)
                );
            }
        }
        paths.push((format!("line {class}"), d));
    }
    html! {
        @for (class, d) in &paths {
            path class=(class) d=(d) {}
        }
    }
}

/// One transparent column per time slot, its `<title>` the tooltip with every line's value.
fn hit_columns(c: &Chart, x_of: &dyn Fn(i64) -> f64, plot_h: f64) -> Markup {
    let mut slots: BTreeMap<i64, Vec<Option<f64>>> = BTreeMap::new();
    for (index, line) in c.lines.iter().enumerate() {
        for &(t, v) in &line.points {
            slots.entry(t).or_insert_with(|| vec![None; c.lines.len()])[index] = Some(v);
        }
    }
    let times: Vec<i64> = slots.keys().copied().collect();
    let columns: Vec<(f64, f64, String)> = slots
        .iter()
        .enumerate()
        .map(|(i, (t, values))| {
            let left = if i == 0 {
                LEFT
            } else {
                (x_of(times[i - 1]) + x_of(*t)) / 2.0
            };
            let right = times
                .get(i + 1)
                .map_or(WIDTH - RIGHT, |next| (x_of(*t) + x_of(*next)) / 2.0);
            let mut tip = format::utc(*t);
            for (line, value) in c.lines.iter().zip(values) {
                if let Some(v) = value {
                    let _ = write!(tip, "\n{}: {}", line.label, c.unit.format(*v));
                }
            }
            (left, (right - left).max(0.5), tip)
        })
        .collect();
    html! {
        @for (left, width, tip) in &columns {
            rect.hit x=(n(*left)) y=(TOP) width=(n(*width)) height=(n(plot_h)) {
                title { (tip) }
            }
        }
    }
}

/// A small line of the last values, without axes; its `<title>` gives now / min / max.
pub fn sparkline(label: &str, unit: Unit, from: i64, to: i64, points: &[(i64, f64)]) -> Markup {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    let view_box = format!("0 0 {W} {H}");
    let Some(last) = points.last() else {
        return html! {
            svg.spark viewBox=(view_box) role="img" aria-label={(label) " (no data)"}
                xmlns="http://www.w3.org/2000/svg" {
                title { (label) " last hour: no data" }
            }
        };
    };
    let max = points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let min = points.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    let top = match unit {
        Unit::Percent => 100.0,
        _ => max.max(f64::MIN_POSITIVE) * 1.1,
    };
    let span = (to - from).max(1) as f64;
    let mut d = String::new();
    for segment in segments(points) {
        for (i, p) in segment.iter().enumerate() {
            let x = (p.0 - from) as f64 / span * W;
            let y = H - 1.0 - (p.1 / top).clamp(0.0, 1.0) * (H - 2.0);
            let _ = write!(d, "{}{x:.1},{y:.1}", if i == 0 { 'M' } else { 'L' });
        }
    }
    let tip = format!(
        "{label} last hour: now {}, min {}, max {}",
        unit.format(last.1),
        unit.format(min),
        unit.format(max)
    );
    html! {
        svg.spark viewBox=(view_box) role="img" aria-label=(tip) xmlns="http://www.w3.org/2000/svg" {
            title { (tip) }
            path.line.s0 d=(d) {}
        }
    }
}

/// Splits points where the gap is much wider than usual (the host was down, the agent
/// stopped): a line across the gap would invent values.
fn segments(points: &[(i64, f64)]) -> Vec<&[(i64, f64)]> {
    let mut gaps: Vec<i64> = points.windows(2).map(|w| w[1].0 - w[0].0).collect();
    if gaps.is_empty() {
        return vec![points];
    }
    gaps.sort_unstable();
    let usual = gaps[gaps.len() / 2].max(1);
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..points.len() {
        if points[i].0 - points[i - 1].0 > usual * 3 {
            out.push(&points[start..i]);
            start = i;
        }
    }
    out.push(&points[start..]);
    out
}

/// The value axis: its top and how to label a value on it.
struct YAxis {
    unit: Unit,
    max: f64,
    ticks: u32,
    /// Bytes are labelled in one IEC unit across the axis (`0`, `2 GiB`, `4 GiB`).
    scale: f64,
    suffix: &'static str,
}

impl YAxis {
    fn new(unit: Unit, data_max: f64) -> YAxis {
        let ticks = 4;
        if unit == Unit::Percent {
            return YAxis {
                unit,
                max: 100.0,
                ticks,
                scale: 1.0,
                suffix: "%",
            };
        }
        let (scale, suffix) = match unit {
            Unit::Bytes | Unit::BytesPerSecond => iec_scale(data_max, unit == Unit::BytesPerSecond),
            _ => (1.0, ""),
        };
        let step = nice_step(data_max / scale / f64::from(ticks));
        YAxis {
            unit,
            max: step * f64::from(ticks) * scale,
            ticks,
            scale,
            suffix,
        }
    }

    fn label(&self, value: f64) -> String {
        let v = value / self.scale;
        let number = if v == 0.0 || v >= 10.0 || v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        };
        match self.unit {
            Unit::Plain => number,
            _ => format!("{number} {}", self.suffix),
        }
    }
}

fn iec_scale(max: f64, rate: bool) -> (f64, &'static str) {
    const UNITS: [(&str, &str); 6] = [
        ("B", "B/s"),
        ("KiB", "KiB/s"),
        ("MiB", "MiB/s"),
        ("GiB", "GiB/s"),
        ("TiB", "TiB/s"),
        ("PiB", "PiB/s"),
    ];
    let mut scale = 1.0;
    let mut index = 0;
    while max / scale >= 1024.0 && index < UNITS.len() - 1 {
        scale *= 1024.0;
        index += 1;
    }
    let names = UNITS[index];
    (scale, if rate { names.1 } else { names.0 })
}

/// 1, 2, 2.5 or 5 times a power of ten, at least `raw` (and at least a tiny positive step, so
/// that an all-zero chart still has an axis).
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 0.25;
    }
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .find(|n| *n >= fraction - 1e-9)
        .unwrap_or(10.0);
    nice * power
}

/// Time between labelled ticks: the smallest that gives at most six over the span.
fn time_step(span: i64) -> i64 {
    const STEPS: [i64; 16] = [
        60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172_800, 604_800,
        1_209_600, 2_592_000, 7_776_000,
    ];
    STEPS
        .into_iter()
        .find(|s| span / s <= 6)
        .unwrap_or(31_536_000)
}

/// `14:30` within a day, `11-25` for days, `2026-11` for months (UTC).
fn time_label(t: i64, step: i64) -> String {
    let text = common::time::format_rfc3339(common::time::from_unix_seconds(t));
    // `2026-11-25T14:30:00Z`
    match step {
        s if s < 86400 => text.get(11..16),
        s if s < 2_592_000 => text.get(5..10),
        _ => text.get(0..7),
    }
    .unwrap_or("")
    .to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line(points: &[(i64, f64)]) -> Line {
        Line {
            label: "CPU <total>".into(),
            points: points.to_vec(),
        }
    }

    #[test]
    fn chart_has_axes_lines_and_tooltips() {
        let svg = chart(&Chart {
            title: "CPU".into(),
            unit: Unit::Percent,
            from: 0,
            to: 3600,
            lines: vec![line(&[(0, 10.0), (60, 20.0), (120, 30.0)])],
            fill_first: true,
        })
        .into_string();
        assert!(svg.starts_with("<svg class=\"chart\""));
        assert!(svg.contains(">100 %</text>") && svg.contains(">0 %</text>"));
        assert!(
            svg.contains(">00:10</text>"),
            "time labels every 10 min: {svg}"
        );
        assert_eq!(svg.matches("<rect class=\"hit\"").count(), 3);
        assert!(svg.contains("<title>1970-01-01 00:01:00 UTC\nCPU &lt;total&gt;: 20.0 %</title>"));
        assert!(svg.contains("class=\"area s0\"") && svg.contains("class=\"line s0\""));
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn empty_chart_says_so() {
        let svg = chart(&Chart {
            title: "Load".into(),
            unit: Unit::Plain,
            from: 0,
            to: 86400,
            lines: vec![line(&[])],
            fill_first: false,
        })
        .into_string();
        assert!(svg.contains("no data in this range"));
    }

    #[test]
    fn gaps_split_lines() {
        let points = [(0, 1.0), (10, 1.0), (20, 1.0), (500, 1.0), (510, 1.0)];
        let parts = segments(&points);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], &points[3..]);
        assert_eq!(segments(&[]).len(), 1);
    }

    #[test]
    fn byte_axes_use_one_iec_unit() {
        let axis = YAxis::new(Unit::Bytes, 7.0 * 1024.0 * 1024.0 * 1024.0);
        assert_eq!(axis.label(axis.max), "8 GiB");
        assert_eq!(axis.label(axis.max / 2.0), "4 GiB");
        let axis = YAxis::new(Unit::BytesPerSecond, 900.0);
        assert_eq!(axis.label(axis.max), "1000 B/s");
        let axis = YAxis::new(Unit::Plain, 0.0);
        assert!(axis.max > 0.0);
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(0.21), 0.25);
        assert_eq!(nice_step(3.0), 5.0);
    }

    #[test]
    fn time_steps_and_labels() {
        assert_eq!(time_step(3600), 600);
        assert_eq!(time_step(86400), 21600);
        assert_eq!(time_step(7 * 86400), 172_800);
        assert_eq!(time_label(1_764_110_700, 600), "22:45");
        assert_eq!(time_label(1_764_110_700, 86400), "11-25");
        assert_eq!(time_label(1_764_110_700, 7_776_000), "2025-11");
    }

    #[test]
    fn sparkline_summarises_in_its_title() {
        let svg = sparkline(
            "CPU",
            Unit::Percent,
            0,
            100,
            &[(0, 5.0), (50, 50.0), (100, 10.0)],
        )
        .into_string();
        assert!(svg.contains("now 10.0 %, min 5.0 %, max 50.0 %"));
        assert!(sparkline("CPU", Unit::Percent, 0, 100, &[])
            .into_string()
            .contains("no data"));
    }
}

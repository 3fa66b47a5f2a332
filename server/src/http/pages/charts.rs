//! Charts declared as data — which series make which chart — and drawing them from the stored
//! history (`Store::query_series`) as SVG: the five charts of a host page, the sparklines of
//! the overview cards, and `/hosts/NAME/chart?m=…&range=…[&spark=1]`, the fragment the page
//! script fetches to keep a chart current.
//!
//! Series are named with `common::series::SeriesName`; a host's disks and interfaces come from
//! its newest sample, or from its stored series names parsed back when it has none.

use std::collections::BTreeMap;

use common::series::{DiskField, HostField, NetField, SeriesName};
use maud::{html, Markup};

use crate::context::Context;
use crate::error::Result;
use crate::http::api::Range;
use crate::http::svg::{self, Chart, Line, Unit};
use crate::http::{Request, Response};
use crate::state::HostState;
use crate::store::SeriesQuery;

/// Points per chart: about one per 2.5 px of a desktop chart, enough to see spikes.
pub const CHART_POINTS: usize = 180;
const SPARK_POINTS: usize = 60;

/// Where a line's points come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// One series of the node.
    Host(HostField),
    /// The first series when it has points, else the second, shown with `label`.
    HostOr(HostField, &'static str, HostField),
    /// The sum over the node's interfaces that are not bridges (a bridge carries its ports'
    /// traffic a second time).
    Net(NetField),
    /// The sum over the node's disks.
    Disk(DiskField),
}

/// One line of a chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineDef {
    pub label: &'static str,
    pub source: Source,
}

/// One chart of a host page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartDef {
    /// In URLs: `?m=cpu`.
    pub key: &'static str,
    pub title: &'static str,
    pub unit: Unit,
    pub lines: &'static [LineDef],
}

const fn line(label: &'static str, source: Source) -> LineDef {
    LineDef { label, source }
}

/// The charts of a host page, in order.
pub const CHARTS: [ChartDef; 5] = [
    ChartDef {
        key: "cpu",
        title: "CPU",
        unit: Unit::Percent,
        lines: &[
            line("total", Source::Host(HostField::CpuPercent)),
            line("user", Source::Host(HostField::CpuUserPercent)),
            line("system", Source::Host(HostField::CpuSystemPercent)),
            line("iowait", Source::Host(HostField::CpuIowaitPercent)),
        ],
    },
    ChartDef {
        key: "mem",
        title: "Memory",
        unit: Unit::Bytes,
        lines: &[
            line(
                "used (without ARC)",
                Source::HostOr(
                    HostField::MemUsedWithoutArcBytes,
                    "used",
                    HostField::MemUsedBytes,
                ),
            ),
            line("ZFS ARC", Source::Host(HostField::MemArcBytes)),
            line("total", Source::Host(HostField::MemTotalBytes)),
        ],
    },
    ChartDef {
        key: "load",
        title: "Load",
        unit: Unit::Plain,
        lines: &[
            line("1 min", Source::Host(HostField::Load1)),
            line("5 min", Source::Host(HostField::Load5)),
            line("15 min", Source::Host(HostField::Load15)),
        ],
    },
    ChartDef {
        key: "net",
        title: "Network",
        unit: Unit::BytesPerSecond,
        lines: &[
            line("received", Source::Net(NetField::RxBytesPerS)),
            line("sent", Source::Net(NetField::TxBytesPerS)),
        ],
    },
    ChartDef {
        key: "disk",
        title: "Disk I/O",
        unit: Unit::BytesPerSecond,
        lines: &[
            line("read", Source::Disk(DiskField::ReadBytesPerS)),
            line("written", Source::Disk(DiskField::WriteBytesPerS)),
        ],
    },
];

/// The sparklines of an overview card: the last hour, as a share so that big and small
/// hosts compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparkDef {
    pub key: &'static str,
    pub label: &'static str,
    pub series: HostField,
    /// Divide by the newest `mem_total_bytes` (memory as a share of the total).
    pub share_of_memory: bool,
}

pub const SPARKS: [SparkDef; 2] = [
    SparkDef {
        key: "cpu",
        label: "CPU",
        series: HostField::CpuPercent,
        share_of_memory: false,
    },
    SparkDef {
        key: "mem",
        label: "Memory used",
        series: HostField::MemUsedBytes,
        share_of_memory: true,
    },
];

pub fn chart_def(key: &str) -> Option<&'static ChartDef> {
    CHARTS.iter().find(|c| c.key == key)
}

pub fn spark_def(key: &str) -> Option<&'static SparkDef> {
    SPARKS.iter().find(|s| s.key == key)
}

/// A chart of a host page in its figure: caption, legend and the SVG in a box the page
/// script refreshes from `/hosts/NAME/chart`.
pub fn figure(
    ctx: &Context,
    state: &HostState,
    def: &ChartDef,
    range: Range,
    now: i64,
) -> Result<Markup> {
    let chart = chart(ctx, state, def, now - range.seconds(), now, CHART_POINTS)?;
    Ok(html! {
        figure.card {
            figcaption {
                span.title { (def.title) }
                span.legend {
                    @for (i, line) in chart.lines.iter().enumerate() {
                        span.key { i class={ "swatch s" (i % 6) } {} (line.label) }
                    }
                }
            }
            div.chart-box data-chart={ "/hosts/" (state.name()) "/chart?m=" (def.key) "&range=" (range.as_str()) } {
                (svg::chart(&chart))
            }
        }
    })
}

/// Where an overview card's sparkline goes; the page script fetches it when it scrolls into
/// view (a thousand cards do not cost two thousand queries up front).
pub fn spark_box(state: &HostState, def: &SparkDef) -> Markup {
    html! {
        span.spark-box data-spark={ "/hosts/" (state.name()) "/chart?m=" (def.key) "&spark=1" } {}
    }
}

/// `GET /hosts/NAME/chart?m=…&range=…[&spark=1]`: one chart as SVG.
pub fn fragment(ctx: &Context, request: &Request, name: &str) -> Result<Response> {
    let Some(state) = ctx.hosts.get(name) else {
        return Ok(Response::text(404, "no such host\n"));
    };
    let key = request.query_param("m").unwrap_or("cpu");
    let now = common::time::now_unix();
    let markup = if request.query_param("spark") == Some("1") {
        let Some(def) = spark_def(key) else {
            return Ok(Response::text(400, "unknown chart\n"));
        };
        sparkline(ctx, &state, def, now)?
    } else {
        let Some(def) = chart_def(key) else {
            return Ok(Response::text(400, "unknown chart\n"));
        };
        let range = request
            .query_param("range")
            .and_then(Range::parse)
            .unwrap_or(Range::Hour);
        svg::chart(&chart(
            ctx,
            &state,
            def,
            now - range.seconds(),
            now,
            CHART_POINTS,
        )?)
    };
    Ok(Response::new(200, "image/svg+xml", markup.into_string())
        .with_header("Cache-Control", "no-store"))
}

/// The last hour of one sparkline.
fn sparkline(ctx: &Context, state: &HostState, def: &SparkDef, now: i64) -> Result<Markup> {
    let from = now - Range::Hour.seconds();
    let mut points = series(ctx, state, &def.series.into(), from, now, SPARK_POINTS)?;
    if def.share_of_memory {
        let total = state
            .fast()
            .and_then(|f| f.mem_total_bytes)
            .map_or(0.0, crate::http::format::to_f64);
        points = if total > 0.0 {
            points
                .into_iter()
                .map(|(t, v)| (t, v / total * 100.0))
                .collect()
        } else {
            Vec::new()
        };
    }
    Ok(svg::sparkline(def.label, Unit::Percent, from, now, &points))
}

/// The lines of chart `def` for a host over `[from, to]`.
pub fn chart(
    ctx: &Context,
    state: &HostState,
    def: &ChartDef,
    from: i64,
    to: i64,
    max_points: usize,
) -> Result<Chart> {
    let get = |name: &SeriesName| series(ctx, state, name, from, to, max_points);
    let mut lines = Vec::with_capacity(def.lines.len());
    for line in def.lines {
        let (label, points) = match line.source {
            Source::Host(field) => (line.label, get(&field.into())?),
            Source::HostOr(field, other_label, other) => {
                let points = get(&field.into())?;
                if points.is_empty() {
                    (other_label, get(&other.into())?)
                } else {
                    (line.label, points)
                }
            }
            Source::Net(field) => {
                let names: Vec<SeriesName> = interfaces(ctx, state)?
                    .into_iter()
                    .map(|i| SeriesName::Net(i, field))
                    .collect();
                (
                    line.label,
                    summed(ctx, state, &names, from, to, max_points)?,
                )
            }
            Source::Disk(field) => {
                let names: Vec<SeriesName> = disks(ctx, state)?
                    .into_iter()
                    .map(|d| SeriesName::Disk(d, field))
                    .collect();
                (
                    line.label,
                    summed(ctx, state, &names, from, to, max_points)?,
                )
            }
        };
        lines.push(Line {
            label: label.to_owned(),
            points,
        });
    }
    Ok(Chart {
        title: format!("{} of {}", def.title, state.name()),
        unit: def.unit,
        from,
        to,
        lines,
        fill_first: true,
    })
}

/// One series of a host between `from` and `to`, through the store's query API.
fn series(
    ctx: &Context,
    state: &HostState,
    name: &SeriesName,
    from: i64,
    to: i64,
    max_points: usize,
) -> Result<Vec<(i64, f64)>> {
    let name = name.to_string();
    let points = ctx.store.query_series(
        &SeriesQuery {
            host_id: state.host.id,
            name: &name,
            from,
            to,
            max_points,
        },
        &ctx.config.retention,
        common::time::now_unix(),
    )?;
    Ok(points.into_iter().map(|p| (p.t, p.avg)).collect())
}

/// The sum of several series at each time any of them has a point. Points of one sample share
/// its time, and downsampled buckets share their start, so the series line up.
fn summed(
    ctx: &Context,
    state: &HostState,
    names: &[SeriesName],
    from: i64,
    to: i64,
    max_points: usize,
) -> Result<Vec<(i64, f64)>> {
    let mut total: BTreeMap<i64, f64> = BTreeMap::new();
    for name in names {
        for (t, v) in series(ctx, state, name, from, to, max_points)? {
            *total.entry(t).or_default() += v;
        }
    }
    Ok(total.into_iter().collect())
}

/// Interfaces whose traffic counts once: not bridges. From the newest sample; from the stored
/// series names when there is none.
fn interfaces(ctx: &Context, state: &HostState) -> Result<Vec<String>> {
    match state.fast() {
        Some(fast) if !fast.net.is_empty() => Ok(fast
            .net
            .iter()
            .filter(|n| !n.bridge)
            .map(|n| n.name.clone())
            .collect()),
        _ => stored(ctx, state, |name| match name {
            SeriesName::Net(iface, NetField::RxBytesPerS) => Some(iface),
            _ => None,
        }),
    }
}

/// The node's disks: from the newest sample; from the stored series names when there is none.
fn disks(ctx: &Context, state: &HostState) -> Result<Vec<String>> {
    match state.fast() {
        Some(fast) if !fast.disks.is_empty() => {
            Ok(fast.disks.iter().map(|d| d.name.clone()).collect())
        }
        _ => stored(ctx, state, |name| match name {
            SeriesName::Disk(dev, DiskField::ReadBytesPerS) => Some(dev),
            _ => None,
        }),
    }
}

/// What `pick` takes from each of the host's stored series names that parses.
fn stored(
    ctx: &Context,
    state: &HostState,
    pick: impl Fn(SeriesName) -> Option<String>,
) -> Result<Vec<String>> {
    Ok(ctx
        .store
        .series_names(state.host.id)?
        .iter()
        .filter_map(|n| SeriesName::parse(n))
        .filter_map(pick)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chart_and_sparkline_is_found_by_its_key() {
        for def in &CHARTS {
            assert_eq!(chart_def(def.key), Some(def));
            assert!(!def.lines.is_empty());
        }
        for def in &SPARKS {
            assert_eq!(spark_def(def.key), Some(def));
        }
        assert_eq!(chart_def("nope"), None);
    }
}

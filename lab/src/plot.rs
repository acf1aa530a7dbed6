//! The pictures of a run, drawn with plotters: iterations per second per node and for the
//! cluster with the faults as labelled shaded spans (`throughput.png`), and p50/p99 latency
//! per second (`latency.png`).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::analysis;
use crate::data::Run;
use crate::palette;
use crate::spans;

/// Where a TrueType font is looked for (Debian's fonts-dejavu-core first).
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers a font for the labels; plotters draws no text without one.
fn load_font() -> Result<()> {
    let path = std::env::var("PERSEUS_FONT")
        .ok()
        .into_iter()
        .chain(FONT_PATHS.iter().map(|p| p.to_string()))
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| {
            anyhow!(
                "no TrueType font found (apt-get install fonts-dejavu-core, or set PERSEUS_FONT)"
            )
        })?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading font {path}"))?;
    // plotters keeps the font for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{path} is not a usable TrueType font"))?;
    Ok(())
}

/// A colour of the one table (`palette`), as plotters takes it.
fn rgb(shade: palette::Shade) -> RGBColor {
    let (r, g, b) = shade.rgb;
    RGBColor(r, g, b)
}

fn fault_color(kind: &analysis::FaultKind) -> RGBAColor {
    let shade = palette::fault(kind);
    rgb(shade).mix(shade.alpha)
}

/// Draws both pictures into `dir`.
pub fn draw(dir: &Path, title: &str, run: &Run) -> Result<()> {
    load_font()?;
    throughput(&dir.join("throughput.png"), title, run)?;
    latency(&dir.join("latency.png"), title, run)?;
    Ok(())
}

/// Second N covers [N-1, N): its count is drawn at N - 0.5, on the same time axis as the
/// faults.
fn x_max(run: &Run) -> f64 {
    run.seconds.last().map_or(1.0, |s| s.second as f64)
}

fn shade_faults<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    run: &Run,
    y_top: f64,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let spans = spans::of_run(run);
    // Where the labels go: in pixels of the plotting area, each span's label on the first row
    // where it runs into no other.
    let (width_px, height_px) = chart.plotting_area().dim_in_pixel();
    let px_per_s = f64::from(width_px) / x_max(run).max(1e-9);
    let labels: Vec<spans::Label> = spans
        .iter()
        .map(|s| spans::Label {
            x: (s.from_ms as f64 / 1000.0 + 0.2) * px_per_s,
            width: spans::text_width(&s.label(), LABEL_PX),
        })
        .collect();
    let rows = spans::rows(&labels);
    let row_h = (LABEL_PX + 4.0) / f64::from(height_px.max(1)) * y_top;
    for (span, row) in spans.iter().zip(rows) {
        let (x0, x1) = (span.from_ms as f64 / 1000.0, span.to_ms as f64 / 1000.0);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0, 0.0), (x1.max(x0 + 0.05), y_top)],
                fault_color(&span.kind).filled(),
            )))
            .map_err(|e| anyhow!("drawing: {e}"))?;
        chart
            .draw_series(std::iter::once(Text::new(
                span.label(),
                (x0 + 0.2, y_top - row_h * (row as f64 + 0.2)),
                ("sans-serif", LABEL_PX).into_font(),
            )))
            .map_err(|e| anyhow!("drawing: {e}"))?;
    }
    Ok(())
}

/// The size of the fault labels, px.
const LABEL_PX: f64 = 16.0;

fn throughput(path: &Path, title: &str, run: &Run) -> Result<()> {
    let root = BitMapBackend::new(path, (1200, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("drawing: {e}"))?;
    throughput_on(&root, title, run)?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The throughput charts of several runs, one above the other (each with its own y scale),
/// in one picture.
pub fn stacked_throughput(path: &Path, runs: &[(String, Run)]) -> Result<()> {
    load_font()?;
    let rows = runs.len().max(1);
    let root = BitMapBackend::new(path, (1200, 520 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("drawing: {e}"))?;
    for (area, (name, run)) in root.split_evenly((rows, 1)).iter().zip(runs) {
        throughput_on(area, name, run)?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn throughput_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    run: &Run,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let y_top = run.seconds.iter().map(|s| s.cluster).max().unwrap_or(1) as f64 * 1.15;
    let y_top = y_top.max(1.0);
    let mut chart = time_chart(
        root,
        format!("{title}: iterations per second"),
        run,
        y_top,
        "iterations/s",
    )?;
    let series = |f: &dyn Fn(&crate::data::Second) -> u64| -> Vec<(f64, f64)> {
        run.seconds
            .iter()
            .map(|s| (s.second as f64 - 0.5, f(s) as f64))
            .collect()
    };
    chart
        .draw_series(LineSeries::new(
            series(&|s| s.cluster),
            BLACK.stroke_width(2),
        ))
        .map_err(|e| anyhow!("drawing: {e}"))?
        .label("cluster")
        .legend(|(x, y)| legend_line(x, y, BLACK));
    for i in 0..run.node_count() {
        let color = rgb(palette::node(i));
        chart
            .draw_series(LineSeries::new(
                series(&|s| s.nodes.get(i).copied().unwrap_or(0)),
                color.stroke_width(2),
            ))
            .map_err(|e| anyhow!("drawing: {e}"))?
            .label(format!("n{}", i + 1))
            .legend(move |(x, y)| legend_line(x, y, color));
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

type TimeChart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A chart over the run's seconds (0 to `y_top` up the side), with its grid and the faults
/// shaded.
fn time_chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, plotters::coord::Shift>,
    caption: String,
    run: &Run,
    y_top: f64,
    y_desc: &str,
) -> Result<TimeChart<'a, DB>>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max(run), 0.0..y_top)
        .map_err(|e| anyhow!("drawing: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("second")
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow!("drawing: {e}"))?;
    shade_faults(&mut chart, run, y_top)?;
    Ok(chart)
}

/// The short line that stands for a series in the legend.
fn legend_line(x: i32, y: i32, color: RGBColor) -> PathElement<(i32, i32)> {
    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
}

/// The legend box of a time chart.
fn draw_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut TimeChart<'a, DB>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(position)
        .draw()
        .map_err(|e| anyhow!("drawing: {e}"))?;
    Ok(())
}

fn latency(path: &Path, title: &str, run: &Run) -> Result<()> {
    let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("drawing: {e}"))?;
    let ms = |v: Option<u64>| v.map(|us| us as f64 / 1000.0);
    let y_top = run
        .seconds
        .iter()
        .filter_map(|s| ms(s.latency_us.p99))
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = time_chart(
        &root,
        format!("{title}: iteration latency"),
        run,
        y_top,
        "ms",
    )?;
    for (name, color, pick) in [
        (
            "p50",
            rgb(palette::P50),
            (|s: &crate::data::Second| s.latency_us.p50) as fn(&crate::data::Second) -> Option<u64>,
        ),
        ("p99", rgb(palette::P99), |s: &crate::data::Second| {
            s.latency_us.p99
        }),
    ] {
        let points: Vec<(f64, f64)> = run
            .seconds
            .iter()
            .filter_map(|s| ms(pick(s)).map(|v| (s.second as f64 - 0.5, v)))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| anyhow!("drawing: {e}"))?
            .label(name)
            .legend(move |(x, y)| legend_line(x, y, color));
    }
    draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The matrix's picture: one panel per measure, in each a strip of points (one per run) for
/// every system and fault with a bar at the median; a log scale in ms, since a leaderless
/// store's tens of ms and a leader election's seconds belong in one picture (0 is drawn at 1).
pub fn distributions(path: &Path, runs: &[crate::figures::RunFigures]) -> Result<()> {
    load_font()?;
    let mut groups: Vec<(String, String)> = Vec::new();
    for r in runs {
        let key = (r.plan.system.clone(), r.plan.fault.clone());
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    let columns = 3;
    let rows = crate::measures::NAMES.len().div_ceil(columns);
    let width = (260 + 130 * groups.len() as u32).max(500);
    let root =
        BitMapBackend::new(path, (width * columns as u32, 460 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("drawing: {e}"))?;
    let values = |k: usize, g: &(String, String)| -> Vec<f64> {
        runs.iter()
            .filter(|r| r.plan.system == g.0 && r.plan.fault == g.1)
            .filter_map(|r| r.measures.as_ref().and_then(|m| m.values()[k]))
            .map(|v| v.max(1.0))
            .collect()
    };
    for (k, area) in root
        .split_evenly((rows, columns))
        .iter()
        .enumerate()
        .take(crate::measures::NAMES.len())
    {
        let top = groups
            .iter()
            .flat_map(|g| values(k, g))
            .fold(10.0, f64::max)
            * 2.0;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{} (ms)", crate::measures::NAMES[k]),
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(70)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..groups.len() as f64, (1.0..top).log_scale())
            .map_err(|e| anyhow!("drawing: {e}"))?;
        let names: Vec<String> = groups.iter().map(|(s, f)| format!("{s}\n{f}")).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = (x - 0.5).round();
                if (x - 0.5 - i).abs() < 0.01 && i >= 0.0 {
                    names
                        .get(i as usize)
                        .map(|n| n.replace('\n', " "))
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("ms")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| anyhow!("drawing: {e}"))?;
        for (gi, g) in groups.iter().enumerate() {
            let color = rgb(palette::node(gi));
            let points = values(k, g);
            // A fixed spread across the strip so equal values stay visible.
            let n = points.len().max(1) as f64;
            let dots: Vec<(f64, f64)> = points
                .iter()
                .enumerate()
                .map(|(j, &v)| (gi as f64 + 0.3 + 0.4 * (j as f64 + 0.5) / n, v))
                .collect();
            chart
                .draw_series(
                    dots.iter()
                        .map(|&p| Circle::new(p, 5, color.mix(0.7).filled())),
                )
                .map_err(|e| anyhow!("drawing: {e}"))?;
            let values: Vec<Option<f64>> = points.iter().map(|&v| Some(v)).collect();
            if let Some(median) = crate::figures::Stats::of(&values).median {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(gi as f64 + 0.2, median), (gi as f64 + 0.8, median)],
                        BLACK.stroke_width(3),
                    )))
                    .map_err(|e| anyhow!("drawing: {e}"))?;
            }
        }
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

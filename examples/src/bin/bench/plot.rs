//! SVG charts for the bench's `--plot` option.
//!
//! Each [`Chart`] is a grouped bar chart: one group of bars per category (an IPC
//! mechanism, say), one bar per [`Series`] (a message size, say) in a colour of
//! its own, with the legend to the right of the plot so it never hides a bar.
//! [`write_svg`] stacks the charts vertically in one SVG file.
//!
//! Only the `plotters` SVG backend is used: text becomes `<text>` elements that
//! the viewer renders, so no font crate is needed, and text widths used for the
//! layout are estimates.

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, DefaultFormatting, KeyPointHint, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One chart: grouped bars, one group per category, one bar per series.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The caption above the chart, e.g. "Round trip, median (pinned)".
    pub title: String,
    /// The y axis description, e.g. "ns (log scale)".
    pub y_label: String,
    /// The x groups, left to right, e.g. `["atomic", "futex", "pipe"]`.
    pub categories: Vec<String>,
    /// The bars of each group, in this order, e.g. one series per message size.
    pub series: Vec<Series>,
    /// Use a log10 y axis (for values spanning orders of magnitude). Values that
    /// are not positive have no bar on a log axis.
    pub log_y: bool,
}

/// One bar per category, all in one colour, named in the legend.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend text, e.g. "64 B".
    pub name: String,
    /// One value per category (by index); `None`, NaN and infinities draw no
    /// bar, and neither do missing trailing entries.
    pub values: Vec<Option<f64>>,
}

/// The SVG is at least this wide; wider when the category labels need it.
const MIN_WIDTH: u32 = 1200;
/// A cap on the width, however many categories there are.
const MAX_WIDTH: u32 = 30_000;
/// The height of each chart.
const CHART_HEIGHT: u32 = 450;
/// The font family of all text.
const FONT: &str = "sans-serif";
/// Font sizes in plotters units (the SVG backend writes `size / 1.24` px).
const TITLE_SIZE: f64 = 26.0;
const LABEL_SIZE: f64 = 15.0;
const DESC_SIZE: f64 = 16.0;
/// Space around each plot, between the y labels and the plot, and for the x labels.
const MARGIN: u32 = 12;
const Y_LABEL_AREA: u32 = 90;
const X_LABEL_AREA: u32 = 34;
/// Legend geometry: swatch size, gap between swatch and text, row height.
const SWATCH: i32 = 14;
const SWATCH_GAP: i32 = 8;
const LEGEND_ROW: i32 = 22;
/// The fraction of a category's width its group of bars takes.
const GROUP_FILL: f64 = 0.8;
/// The fraction of a bar's slot left empty between neighbouring bars.
const BAR_GAP: f64 = 0.12;
/// Decimal exponents of the log axis are kept in this range (f64 is ~1e±308).
const MAX_EXP: i32 = 300;

/// Draws the charts stacked vertically in one SVG file at `path`.
///
/// The SVG is drawn in memory first, so a drawing error leaves no file behind.
/// With no charts at all the file holds a short note instead.
pub fn write_svg(path: &Path, charts: &[Chart]) -> Result<(), String> {
    let svg = render(charts)?;
    std::fs::write(path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Draws the charts into an SVG document.
fn render(charts: &[Chart]) -> Result<String, String> {
    let width = charts.iter().map(chart_width).max().unwrap_or(MIN_WIDTH);
    let rows = u32::try_from(charts.len().max(1)).unwrap_or(u32::MAX);
    let height = CHART_HEIGHT.saturating_mul(rows);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        let drawing = |e: DrawingAreaErrorKind<std::io::Error>| format!("cannot draw charts: {e}");
        root.fill(&WHITE).map_err(drawing)?;
        if charts.is_empty() {
            let style = TextStyle::from((FONT, DESC_SIZE).into_font())
                .pos(Pos::new(HPos::Center, VPos::Center));
            let centre = (to_i32(width / 2), to_i32(height / 2));
            root.draw_text("no charts", &style, centre)
                .map_err(drawing)?;
        }
        for (chart, area) in charts.iter().zip(root.split_evenly((charts.len(), 1))) {
            draw_chart(&area, chart)
                .map_err(|e| format!("cannot draw chart {:?}: {e}", chart.title))?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// The width `chart` needs for its category labels, bars and legend.
fn chart_width(chart: &Chart) -> u32 {
    let label = chart
        .categories
        .iter()
        .map(|c| text_width(c, LABEL_SIZE))
        .max()
        .unwrap_or(0);
    let bars = u32::try_from(chart.series.len())
        .unwrap_or(u32::MAX)
        .saturating_mul(10);
    let slot = (label + 16).max(bars.saturating_add(20));
    let groups = u32::try_from(chart.categories.len()).unwrap_or(u32::MAX);
    groups
        .saturating_mul(slot)
        .saturating_add(2 * MARGIN + Y_LABEL_AREA + legend_width(chart))
        .clamp(MIN_WIDTH, MAX_WIDTH)
}

/// The width of the legend column of `chart`.
fn legend_width(chart: &Chart) -> u32 {
    let name = chart
        .series
        .iter()
        .map(|s| text_width(&s.name, LABEL_SIZE))
        .max();
    name.map_or(0, |w| {
        w.saturating_add(2 * MARGIN + (SWATCH + SWATCH_GAP) as u32)
    })
    .min(MIN_WIDTH / 3)
}

/// A generous estimate of the rendered width of `text` in pixels.
fn text_width(text: &str, size: f64) -> u32 {
    // The backend writes font-size = size / 1.24; sans-serif glyphs average
    // well under 0.6 em.
    let px = text.chars().count() as f64 * size / 1.24 * 0.6;
    px.ceil().min(f64::from(MAX_WIDTH)) as u32
}

/// Saturating `u32` to `i32` for pixel coordinates.
fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// The `i`-th series colour: a colour-blind-friendly set of ten, then hues
/// spread by the golden ratio.
fn colour(i: usize) -> RGBAColor {
    const SET: [RGBColor; 10] = [
        RGBColor(0x4e, 0x79, 0xa7),
        RGBColor(0xf2, 0x8e, 0x2b),
        RGBColor(0xe1, 0x57, 0x59),
        RGBColor(0x76, 0xb7, 0xb2),
        RGBColor(0x59, 0xa1, 0x4f),
        RGBColor(0xed, 0xc9, 0x48),
        RGBColor(0xb0, 0x7a, 0xa1),
        RGBColor(0xff, 0x9d, 0xa7),
        RGBColor(0x9c, 0x75, 0x5f),
        RGBColor(0xba, 0xb0, 0xac),
    ];
    match SET.get(i) {
        Some(c) => c.to_rgba(),
        None => HSLColor((i as f64 * 0.618_034).fract(), 0.6, 0.45).to_rgba(),
    }
}

/// The y axis of one chart, derived from its drawable values.
#[derive(Debug, Clone, Copy, PartialEq)]
enum YAxis {
    /// From `10^lo` to `10^hi`, `lo < hi`.
    Log { lo: i32, hi: i32 },
    /// From `lo` to `hi`, `lo <= 0 <= hi`, `lo < hi`.
    Linear { lo: f64, hi: f64 },
}

impl YAxis {
    /// Fits an axis to `values` (already filtered by [`drawable`]).
    fn fit(log: bool, values: &[f64]) -> Self {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if log {
            if values.is_empty() {
                return YAxis::Log { lo: 0, hi: 1 };
            }
            let lo = clamp_exp(min.log10().floor());
            let hi = clamp_exp(max.log10().ceil());
            if lo < hi {
                YAxis::Log { lo, hi }
            } else if hi < MAX_EXP {
                YAxis::Log { lo, hi: hi + 1 }
            } else {
                YAxis::Log { lo: lo - 1, hi }
            }
        } else {
            // Leave head room above the tallest bar (and below the lowest
            // negative one); values are within +-f64::MAX / 4 by `drawable`, so
            // `hi - lo` is finite.
            let lo = min.min(0.0) * 1.08;
            let hi = max.max(0.0) * 1.08;
            if lo < hi {
                YAxis::Linear { lo, hi }
            } else {
                YAxis::Linear { lo: 0.0, hi: 1.0 }
            }
        }
    }

    /// The lowest and highest values on the axis.
    fn bounds(self) -> (f64, f64) {
        match self {
            YAxis::Log { lo, hi } => (pow10(lo), pow10(hi)),
            YAxis::Linear { lo, hi } => (lo, hi),
        }
    }

    /// Where the bars start: the bottom of a log axis, zero on a linear one.
    fn base(self) -> f64 {
        match self {
            YAxis::Log { lo, .. } => pow10(lo),
            YAxis::Linear { .. } => 0.0,
        }
    }
}

/// Rounds a (finite or not) decimal exponent into `-MAX_EXP..=MAX_EXP`.
fn clamp_exp(e: f64) -> i32 {
    if e.is_nan() {
        0
    } else {
        e.clamp(f64::from(-MAX_EXP), f64::from(MAX_EXP)) as i32
    }
}

/// `10^e` for a small integer exponent.
fn pow10(e: i32) -> f64 {
    10f64.powi(e)
}

/// The tick marks of a log axis from `10^lo` to `10^hi`: labelled (bold) ones
/// at powers of ten (thinned out over many decades, or with 2 and 5 added over
/// a single one), and light grid lines between them over a few decades.
fn log_ticks(lo: i32, hi: i32) -> (Vec<f64>, Vec<f64>) {
    let span = hi - lo;
    let mut bold = Vec::new();
    let mut light = Vec::new();
    if span <= 1 {
        for e in lo..hi {
            bold.extend([1.0, 2.0, 5.0].map(|m| m * pow10(e)));
        }
        bold.push(pow10(hi));
        return (bold, light);
    }
    let step = (span + 9) / 10;
    let mut e = lo;
    while e <= hi {
        bold.push(pow10(e));
        e += step;
    }
    if span <= 8 {
        for e in lo..hi {
            light.extend((2..=9).map(|m| f64::from(m) * pow10(e)));
        }
    }
    (bold, light)
}

/// Formats a tick value compactly: `0.5`, `20`, `1.5k`, `10M`, `1e-6`.
fn tick_label(v: f64) -> String {
    const SUFFIXES: [(f64, &str); 6] = [
        (1e18, "E"),
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
    ];
    let a = v.abs();
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    if !(1e-3..1e21).contains(&a) {
        return trim_zeros(&format!("{v:.2e}"));
    }
    for (scale, suffix) in SUFFIXES {
        if a >= scale {
            return format!("{}{suffix}", trim_zeros(&format!("{:.2}", v / scale)));
        }
    }
    trim_zeros(&format!("{v:.3}"))
}

/// Drops trailing zeros (and a trailing point) of a decimal mantissa:
/// `1.50` to `1.5`, `2.00e3` to `2e3`.
fn trim_zeros(s: &str) -> String {
    let (mantissa, exp) = match s.find('e') {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let mantissa = if mantissa.contains('.') {
        mantissa.trim_end_matches('0').trim_end_matches('.')
    } else {
        mantissa
    };
    format!("{mantissa}{exp}")
}

/// The value to draw, if any: finite, positive on a log axis, and small
/// enough that axis arithmetic cannot overflow.
fn drawable(v: Option<f64>, log: bool) -> Option<f64> {
    let v = v?;
    let ok = v.is_finite() && (!log || v > 0.0);
    ok.then(|| v.clamp(f64::MIN / 4.0, f64::MAX / 4.0))
}

/// Draws one chart (title, axes, bars, legend) into `area`.
fn draw_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let values: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().take(chart.categories.len()))
        .filter_map(|v| drawable(*v, chart.log_y))
        .collect();
    let axis = YAxis::fit(chart.log_y, &values);

    let body = area.titled(&chart.title, (FONT, TITLE_SIZE))?;
    let (width, _) = body.dim_in_pixel();
    let legend_w = legend_width(chart).min(width / 2);
    let (plot, legend) = body.split_horizontally(to_i32(width - legend_w));
    draw_legend(&legend, chart)?;

    match axis {
        YAxis::Log { lo, hi } => {
            let (bold, light) = log_ticks(lo, hi);
            let spec = (pow10(lo)..pow10(hi))
                .log_scale()
                .with_key_points(bold)
                .with_light_points(light);
            draw_plot(&plot, chart, spec, axis)?;
        }
        YAxis::Linear { lo, hi } => draw_plot(&plot, chart, lo..hi, axis)?,
    }
    if values.is_empty() {
        let (w, h) = plot.dim_in_pixel();
        let style = (FONT, DESC_SIZE)
            .into_font()
            .color(&BLACK.mix(0.6))
            .pos(Pos::new(HPos::Center, VPos::Center));
        plot.draw_text("no data", &style, (to_i32(w / 2), to_i32(h / 2)))?;
    }
    Ok(())
}

/// Draws the axes, grid and bars of `chart` into `plot`, with `y_spec` as the
/// y coordinate and `axis` its range.
fn draw_plot<DB, Y>(
    plot: &DrawingArea<DB, Shift>,
    chart: &Chart,
    y_spec: Y,
    axis: YAxis,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let groups = chart.categories.len();
    let x_spec = Groups(groups);

    let mut ctx = ChartBuilder::on(plot)
        .margin(MARGIN)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(x_spec, y_spec)?;

    let category = |x: &f64| {
        let i = x.floor();
        if i >= 0.0 {
            chart
                .categories
                .get(i as usize)
                .cloned()
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    let tick = |y: &f64| tick_label(*y);
    ctx.configure_mesh()
        .disable_x_mesh()
        .bold_line_style(BLACK.mix(0.2))
        .light_line_style(BLACK.mix(0.05))
        .x_label_formatter(&category)
        .y_label_formatter(&tick)
        .label_style((FONT, LABEL_SIZE))
        .axis_desc_style((FONT, DESC_SIZE))
        .y_desc(chart.y_label.as_str())
        .draw()?;

    let (bottom, top) = axis.bounds();
    let base = axis.base();
    let slot = GROUP_FILL / chart.series.len().max(1) as f64;
    let bars = chart.series.iter().enumerate().flat_map(|(j, s)| {
        let style = colour(j).filled();
        s.values
            .iter()
            .take(groups)
            .enumerate()
            .filter_map(move |(i, v)| {
                let v = drawable(*v, chart.log_y)?.clamp(bottom, top);
                let left = i as f64 + (1.0 - GROUP_FILL) / 2.0 + j as f64 * slot;
                let x0 = left + slot * BAR_GAP / 2.0;
                let x1 = left + slot * (1.0 - BAR_GAP / 2.0);
                Some(Rectangle::new([(x0, base), (x1, v)], style))
            })
    });
    ctx.draw_series(bars)?;
    Ok(())
}

/// The x coordinate: one unit per category (at least one unit), with the
/// ticks, and so the labels, at the middle of each.
#[derive(Debug, Clone, Copy)]
struct Groups(usize);

impl Ranged for Groups {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let units = self.0.max(1) as f64;
        let px = f64::from(limit.1) - f64::from(limit.0);
        // Float to int casts saturate, so a stray value cannot overflow.
        limit.0.saturating_add((px * value / units).round() as i32)
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..self.0).map(|i| i as f64 + 0.5).collect()
    }

    fn range(&self) -> Range<f64> {
        0.0..self.0.max(1) as f64
    }
}

/// Draws the legend of `chart` (a swatch and the name of each series) down
/// the left of `area`.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    if chart.series.is_empty() {
        return Ok(());
    }
    let (_, h) = area.dim_in_pixel();
    let rows = i32::try_from(chart.series.len()).unwrap_or(i32::MAX);
    // Squeeze the rows if there are too many to fit at the usual spacing.
    let row = LEGEND_ROW
        .min((to_i32(h) - 2 * to_i32(MARGIN)) / rows)
        .max(1);
    let style =
        TextStyle::from((FONT, LABEL_SIZE).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let x = to_i32(MARGIN);
    for (j, s) in chart.series.iter().enumerate() {
        let y = to_i32(MARGIN) + row * i32::try_from(j).unwrap_or(i32::MAX) + row / 2;
        let half = SWATCH / 2;
        area.draw(&Rectangle::new(
            [(x, y - half), (x + SWATCH, y + half)],
            colour(j).filled(),
        ))?;
        area.draw_text(&s.name, &style, (x + SWATCH + SWATCH_GAP, y))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A temp file path unique to this process and call, removed on drop.
    struct TempSvg(PathBuf);

    impl TempSvg {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("shmlane-plot-test-{}-{n}.svg", std::process::id());
            TempSvg(std::env::temp_dir().join(name))
        }
    }

    impl Drop for TempSvg {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Writes `charts` to a temp file and reads the document back.
    fn write_and_read(charts: &[Chart]) -> String {
        let file = TempSvg::new();
        write_svg(&file.0, charts).expect("write_svg");
        let svg = std::fs::read_to_string(&file.0).expect("read back the SVG");
        assert!(
            svg.starts_with("<svg"),
            "not an SVG: {:?}",
            &svg[..svg.len().min(80)]
        );
        assert!(svg.trim_end().ends_with("</svg>"), "unterminated SVG");
        svg
    }

    /// The unescaped contents of the `<text>` elements of `svg`.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                let body = &body[..body.find("</text>")?];
                Some(
                    body.trim()
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&quot;", "\"")
                        .replace("&apos;", "'")
                        .replace("&amp;", "&"),
                )
            })
            .collect()
    }

    /// The `(x, width)` of each `<rect>` filled with `colour`.
    fn bars(svg: &str, colour: RGBAColor) -> Vec<(f64, f64)> {
        let (r, g, b) = colour.rgb();
        let fill = format!("fill=\"#{r:02X}{g:02X}{b:02X}\"");
        svg.split("<rect")
            .skip(1)
            .filter_map(|t| {
                let tag = &t[..t.find('>')?];
                if !tag.contains(&fill) {
                    return None;
                }
                Some((attr(tag, "x")?, attr(tag, "width")?))
            })
            .collect()
    }

    /// The numeric value of attribute `name` in the tag text `tag`.
    fn attr(tag: &str, name: &str) -> Option<f64> {
        let key = format!(" {name}=\"");
        let start = tag.find(&key)? + key.len();
        let len = tag[start..].find('"')?;
        tag[start..start + len].parse().ok()
    }

    fn series(name: &str, values: &[Option<f64>]) -> Series {
        Series {
            name: name.to_owned(),
            values: values.to_vec(),
        }
    }

    fn chart(log_y: bool, categories: &[&str], series: Vec<Series>) -> Chart {
        Chart {
            title: "Round trip, median (pinned)".to_owned(),
            y_label: "ns (log scale)".to_owned(),
            categories: categories.iter().map(|c| (*c).to_owned()).collect(),
            series,
            log_y,
        }
    }

    const CATEGORIES: [&str; 14] = [
        "atomic",
        "futex",
        "shm spin",
        "shm block",
        "pipe",
        "fifo",
        "unix stream",
        "unix dgram",
        "socketpair",
        "tcp loopback",
        "udp loopback",
        "posix mq",
        "eventfd",
        "signal & <x>",
    ];

    fn full_chart(log_y: bool) -> Chart {
        let sizes = ["64 B", "4 KiB", "64 KiB", "1 MiB"];
        let series = sizes
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let values = (0..CATEGORIES.len())
                    .map(|i| (i != 1 || j == 0).then(|| 10f64.powi(j as i32) * (i + 1) as f64))
                    .collect::<Vec<_>>();
                series(name, &values)
            })
            .collect();
        chart(log_y, &CATEGORIES, series)
    }

    #[test]
    fn labels_and_legend_are_text() {
        let charts = [full_chart(true), full_chart(false)];
        let svg = write_and_read(&charts);
        let texts = texts(&svg);
        for chart in &charts {
            assert!(texts.contains(&chart.title), "title missing");
            assert!(texts.contains(&chart.y_label), "y label missing");
            for c in &chart.categories {
                assert!(texts.contains(c), "category {c:?} missing from {texts:?}");
            }
            for s in &chart.series {
                assert!(texts.contains(&s.name), "series {:?} missing", s.name);
            }
        }
        // Each category label appears once per chart: one tick per group.
        let atomic = texts.iter().filter(|t| *t == "atomic").count();
        assert_eq!(atomic, 2);
        // Two charts stacked: the SVG is twice a chart's height.
        assert!(svg.contains(&format!("height=\"{}\"", 2 * CHART_HEIGHT)));
    }

    #[test]
    fn one_bar_per_present_value_side_by_side() {
        let svg = write_and_read(&[full_chart(true)]);
        // Series 0 has all 14 values; the others skip category 1.
        let first = bars(&svg, colour(0));
        let second = bars(&svg, colour(1));
        // The legend, drawn first, has a swatch of each colour too.
        assert_eq!(first.len(), CATEGORIES.len() + 1);
        assert_eq!(second.len(), CATEGORIES.len());
        // Within a group, bar 1 is right of bar 0 and they do not overlap.
        let (x0, w0) = first[1];
        let (x1, _) = second[1];
        let (next, _) = first[2];
        assert!(x0 < next, "groups out of order: {first:?}");
        assert!(w0 > 1.0, "bars too thin: {w0}");
        assert!(x1 >= x0 + w0, "bars overlap: {first:?} {second:?}");
    }

    #[test]
    fn wide_enough_for_labels() {
        let c = full_chart(false);
        let width = chart_width(&c);
        assert!(width >= MIN_WIDTH);
        let per_group = (width - 2 * MARGIN - Y_LABEL_AREA - legend_width(&c)) / 14;
        assert!(per_group >= text_width("tcp loopback", LABEL_SIZE) + 8);
        // Few short categories: the minimum width.
        assert_eq!(chart_width(&chart(false, &["a"], vec![])), MIN_WIDTH);
    }

    #[test]
    fn edge_cases_do_not_fail() {
        let cases = [
            chart(true, &[], vec![]),
            chart(false, &[], vec![]),
            chart(true, &["a", "b"], vec![]),
            chart(true, &["a", "b"], vec![series("none", &[None, None])]),
            chart(false, &["a", "b"], vec![series("none", &[None, None])]),
            chart(true, &["a"], vec![series("one", &[Some(42.0)])]),
            chart(true, &["a"], vec![series("ten", &[Some(10.0)])]),
            chart(false, &["a"], vec![series("one", &[Some(42.0)])]),
            chart(false, &["a"], vec![series("zero", &[Some(0.0)])]),
            chart(
                true,
                &["a", "b"],
                vec![series("zero", &[Some(0.0), Some(5.0)])],
            ),
            chart(
                true,
                &["a", "b"],
                vec![series("neg", &[Some(-3.0), Some(0.0)])],
            ),
            chart(
                false,
                &["a", "b"],
                vec![series("neg", &[Some(-3.0), Some(7.0)])],
            ),
            chart(
                true,
                &["a", "b", "c"],
                vec![series(
                    "odd",
                    &[Some(f64::NAN), Some(f64::INFINITY), Some(1.0)],
                )],
            ),
            chart(
                false,
                &["a", "b"],
                vec![series("odd", &[Some(f64::NEG_INFINITY), Some(f64::NAN)])],
            ),
            chart(
                true,
                &["a", "b"],
                vec![series("huge", &[Some(f64::MAX), Some(5e-324)])],
            ),
            chart(
                false,
                &["a", "b"],
                vec![series("huge", &[Some(f64::MAX), Some(f64::MIN)])],
            ),
            chart(
                false,
                &["a", "b"],
                vec![series("tiny", &[Some(1e-300), Some(2e-300)])],
            ),
            // Values and categories of different lengths.
            chart(true, &["a", "b", "c"], vec![series("short", &[Some(3.0)])]),
            chart(
                true,
                &["a"],
                vec![series("long", &[Some(3.0), Some(4.0), Some(5.0)])],
            ),
            // Many series: colours beyond the fixed set, squeezed legend.
            chart(
                true,
                &["a"],
                (0..40)
                    .map(|j| series(&format!("s{j}"), &[Some(f64::from(j + 1))]))
                    .collect(),
            ),
        ];
        for (i, c) in cases.iter().enumerate() {
            let svg = write_and_read(std::slice::from_ref(c));
            assert!(texts(&svg).contains(&c.title), "case {i}: no title");
        }
        let svg = write_and_read(&cases);
        assert!(texts(&svg).iter().any(|t| t == "no data"));
        // No charts at all still makes a valid SVG.
        let svg = write_and_read(&[]);
        assert!(texts(&svg).iter().any(|t| t == "no charts"));
    }

    #[test]
    fn log_axis_skips_zero_and_spans_decades() {
        let c = chart(
            true,
            &["a", "b", "c"],
            vec![series("s", &[Some(0.0), Some(150.0), Some(2.5e6)])],
        );
        let svg = write_and_read(std::slice::from_ref(&c));
        // Zero has no bar: one bar plus the legend swatch per present value.
        assert_eq!(bars(&svg, colour(0)).len(), 3);
        let texts = texts(&svg);
        for tick in ["100", "1k", "10k", "100k", "1M", "10M"] {
            assert!(
                texts.iter().any(|t| t == tick),
                "no {tick} tick in {texts:?}"
            );
        }
    }

    #[test]
    fn axis_fit() {
        assert_eq!(
            YAxis::fit(true, &[150.0, 2.5e6]),
            YAxis::Log { lo: 2, hi: 7 }
        );
        assert_eq!(YAxis::fit(true, &[100.0]), YAxis::Log { lo: 2, hi: 3 });
        assert_eq!(YAxis::fit(true, &[]), YAxis::Log { lo: 0, hi: 1 });
        assert_eq!(
            YAxis::fit(true, &[1e300, 1e301]),
            YAxis::Log { lo: 299, hi: 300 }
        );
        assert_eq!(YAxis::fit(false, &[]), YAxis::Linear { lo: 0.0, hi: 1.0 });
        assert_eq!(
            YAxis::fit(false, &[0.0]),
            YAxis::Linear { lo: 0.0, hi: 1.0 }
        );
        let YAxis::Linear { lo, hi } = YAxis::fit(false, &[5.0, 10.0]) else {
            panic!("not linear");
        };
        assert_eq!(lo, 0.0);
        assert!(hi > 10.0 && hi < 11.0);
    }

    #[test]
    fn tick_labels() {
        let cases = [
            (0.0, "0"),
            (1.0, "1"),
            (0.5, "0.5"),
            (20.0, "20"),
            (1000.0, "1k"),
            (1500.0, "1.5k"),
            (250_000.0, "250k"),
            (1e6, "1M"),
            (2.5e9, "2.5G"),
            (1e-6, "1e-6"),
            (-2000.0, "-2k"),
        ];
        for (v, want) in cases {
            assert_eq!(tick_label(v), want, "tick_label({v})");
        }
    }

    #[test]
    fn unwritable_path_is_an_error() {
        let dir = TempSvg::new();
        let path = dir.0.join("missing-dir").join("chart.svg");
        let err = write_svg(&path, &[full_chart(true)]).expect_err("should fail");
        assert!(err.contains("chart.svg"), "unclear error: {err}");
    }
}

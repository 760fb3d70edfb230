//! Convergence plots as PNG and SVG (plotters), usable for any time series.
//!
//! A [`Figure`] is a stack of [`Panel`]s sharing the x axis (time). Each panel
//! holds [`Series`] (one line per controller, say) and optional horizontal
//! reference lines; the figure can mark events with vertical lines.
//! [`render`] writes both files.
//!
//! Text needs a TrueType font: [`ensure_font`] looks for DejaVu Sans /
//! Liberation Sans / Noto Sans in the usual places (or the file named by
//! `AURAIO_PLOT_FONT`) and registers it once. Without a font the plots are
//! still written, without any text, and [`RenderOutcome::text`] is false so
//! the caller can warn. Nothing here panics on bad data: non-finite points
//! are dropped and empty panels get a unit range.
//!
//! ```no_run
//! use auraio_sim::plot::{Figure, Panel, Series, render};
//! let fig = Figure {
//!     title: "limit over time".into(),
//!     x_label: "time (s)".into(),
//!     panels: vec![Panel {
//!         y_label: "in-flight limit".into(),
//!         series: vec![Series { label: "aimd".into(), points: vec![(0.0, 16.0), (1.0, 70.0)], dashed: false }],
//!         hlines: vec![(72.0, "best fixed".into())],
//!         log_y: false,
//!     }],
//!     vlines: vec![(0.5, "step".into())],
//! };
//! render(&fig, "out.png".as_ref(), "out.svg".as_ref(), (1200, 500)).unwrap();
//! ```

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::SimError;

/// One line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// (x, y) points in x order.
    pub points: Vec<(f64, f64)>,
    /// Draw as a thin black dashed line (references such as "best depth")
    /// instead of the next palette color.
    pub dashed: bool,
}

/// One plot area.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Panel {
    /// Y axis description.
    pub y_label: String,
    /// Lines, colored in order.
    pub series: Vec<Series>,
    /// Dashed horizontal reference lines: (y, label). A label is shown in
    /// the legend once per distinct text.
    pub hlines: Vec<(f64, String)>,
    /// Logarithmic y axis (values <= 0 are dropped).
    pub log_y: bool,
}

/// Stacked panels sharing the x axis.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figure {
    /// Title on top.
    pub title: String,
    /// X axis description (bottom panel).
    pub x_label: String,
    /// Panels, top to bottom.
    pub panels: Vec<Panel>,
    /// Vertical event markers: (x, label).
    pub vlines: Vec<(f64, String)>,
}

/// What [`render`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderOutcome {
    /// Whether text (titles, axes, legends) was drawn (a font was found).
    pub text: bool,
}

const FONT_NAME: &str = "auraio-sans";
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
];

/// Find and register a font for plot text, once per process. Returns the
/// font file used, or None (plots are then drawn without text).
pub fn ensure_font() -> Option<PathBuf> {
    static FONT: OnceLock<Option<PathBuf>> = OnceLock::new();
    FONT.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(p) = std::env::var_os("AURAIO_PLOT_FONT") {
            candidates.push(PathBuf::from(p));
        }
        candidates.extend(FONT_PATHS.iter().map(PathBuf::from));
        for path in candidates {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            // plotters keeps the font for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(FONT_NAME, FontStyle::Normal, bytes).is_ok() {
                return Some(path);
            }
        }
        None
    })
    .clone()
}

/// Line colors, in series order.
pub const PALETTE: &[RGBColor] = &[
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

fn plot_err(path: &Path, e: impl std::fmt::Display) -> SimError {
    SimError::Plot(format!("{}: {e}", path.display()))
}

/// Write `fig` as a PNG and an SVG of `size` pixels.
pub fn render(
    fig: &Figure,
    png: &Path,
    svg: &Path,
    size: (u32, u32),
) -> Result<RenderOutcome, SimError> {
    let text = ensure_font().is_some();
    {
        let root = BitMapBackend::new(png, size).into_drawing_area();
        draw(fig, &root, text).map_err(|e| plot_err(png, e))?;
        root.present().map_err(|e| plot_err(png, e))?;
    }
    {
        let root = SVGBackend::new(svg, size).into_drawing_area();
        draw(fig, &root, text).map_err(|e| plot_err(svg, e))?;
        root.present().map_err(|e| plot_err(svg, e))?;
    }
    Ok(RenderOutcome { text })
}

fn finite(points: &[(f64, f64)], log_y: bool) -> impl Iterator<Item = (f64, f64)> + '_ {
    points
        .iter()
        .copied()
        .filter(move |(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0))
}

/// Log scale only pays off (and gets tick labels) over more than a decade
/// or so: narrower data is drawn on a linear axis.
fn use_log(panel: &Panel) -> bool {
    if !panel.log_y {
        return false;
    }
    let (mut lo, mut hi) = (f64::INFINITY, 0.0_f64);
    for s in &panel.series {
        for (_, y) in finite(&s.points, true) {
            lo = lo.min(y);
            hi = hi.max(y);
        }
    }
    lo.is_finite() && hi / lo >= 20.0
}

fn ranges(fig: &Figure, panel: &Panel) -> ((f64, f64), (f64, f64)) {
    let mut x = (f64::INFINITY, f64::NEG_INFINITY);
    for p in &fig.panels {
        for s in &p.series {
            for (px, _) in finite(&s.points, false) {
                x = (x.0.min(px), x.1.max(px));
            }
        }
    }
    let mut y = (f64::INFINITY, f64::NEG_INFINITY);
    for s in &panel.series {
        for (_, py) in finite(&s.points, panel.log_y) {
            y = (y.0.min(py), y.1.max(py));
        }
    }
    for (hy, _) in &panel.hlines {
        if hy.is_finite() && (!panel.log_y || *hy > 0.0) {
            y = (y.0.min(*hy), y.1.max(*hy));
        }
    }
    if !x.0.is_finite() || !x.1.is_finite() {
        x = (0.0, 1.0);
    }
    if x.1 <= x.0 {
        x.1 = x.0 + 1.0;
    }
    if !y.0.is_finite() || !y.1.is_finite() {
        y = if panel.log_y { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if panel.log_y {
        y = (y.0 * 0.8, y.1 * 1.25);
    } else {
        let pad = (y.1 - y.0).abs().max(y.1.abs() * 0.05).max(1e-9) * 0.08;
        y = ((y.0 - pad).min(0.0_f64.max(y.0 - pad)), y.1 + pad);
        if y.0 > 0.0 && y.0 < y.1 * 0.5 {
            y.0 = 0.0;
        }
    }
    if y.1 <= y.0 {
        y.1 = y.0 + 1.0;
    }
    (x, y)
}

/// Short axis labels: 1.5k, 2M, 0.25, 12.
pub fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(
    fig: &Figure,
    root: &DrawingArea<DB, Shift>,
    text: bool,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let body = if text && !fig.title.is_empty() {
        root.titled(&fig.title, (FONT_NAME, 24))?
    } else {
        root.clone()
    };
    let n = fig.panels.len().max(1);
    let areas = body.split_evenly((n, 1));
    for (i, (panel, area)) in fig.panels.iter().zip(areas.iter()).enumerate() {
        let last = i + 1 == fig.panels.len();
        draw_panel(fig, panel, area, text, last)?;
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    fig: &Figure,
    panel: &Panel,
    area: &DrawingArea<DB, Shift>,
    text: bool,
    last: bool,
) -> DrawResult<DB> {
    let log = use_log(panel);
    let linear;
    let panel = if panel.log_y && !log {
        linear = Panel {
            log_y: false,
            y_label: panel.y_label.replace(", log", ""),
            ..panel.clone()
        };
        &linear
    } else {
        panel
    };
    let ((x0, x1), (y0, y1)) = ranges(fig, panel);
    let mut b = ChartBuilder::on(area);
    b.margin(10);
    if text {
        b.x_label_area_size(if last { 40 } else { 25 })
            .y_label_area_size(80);
    }
    if panel.log_y {
        let mut chart = b.build_cartesian_2d(x0..x1, (y0..y1).log_scale())?;
        mesh_and_lines(fig, panel, &mut chart, text, last, (y0, y1))
    } else {
        let mut chart = b.build_cartesian_2d(x0..x1, y0..y1)?;
        mesh_and_lines(fig, panel, &mut chart, text, last, (y0, y1))
    }
}

fn mesh_and_lines<'a, DB, Y>(
    fig: &Figure,
    panel: &Panel,
    chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    text: bool,
    last: bool,
    (y0, y1): (f64, f64),
) -> DrawResult<DB>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    {
        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(RGBColor(235, 235, 235));
        if text {
            mesh.y_label_formatter(&|v: &f64| tick_label(*v))
                .x_label_formatter(&|v: &f64| tick_label(*v))
                .y_desc(panel.y_label.as_str())
                .label_style((FONT_NAME, 14))
                .axis_desc_style((FONT_NAME, 16));
            if last {
                mesh.x_desc(fig.x_label.as_str());
            }
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw()?;
    }
    for (x, _) in &fig.vlines {
        if x.is_finite() {
            chart.draw_series(LineSeries::new(
                vec![(*x, y0), (*x, y1)],
                ShapeStyle::from(&RGBColor(150, 150, 150)).stroke_width(1),
            ))?;
        }
    }
    let mut color_i = 0;
    for s in &panel.series {
        let pts: Vec<(f64, f64)> = finite(&s.points, panel.log_y).collect();
        // Noisy series are drawn thin: the bitmap backend's wide-line
        // polygons smear on long runs of steep, short segments.
        let noisy = pts.len() > 2000;
        let (color, width) = if s.dashed {
            (BLACK, 1)
        } else {
            color_i += 1;
            (
                PALETTE[(color_i - 1) % PALETTE.len()],
                if noisy { 1 } else { 2 },
            )
        };
        let style = ShapeStyle::from(&color).stroke_width(width);
        let series = if s.dashed {
            chart.draw_series(DashedLineSeries::new(pts, 8, 6, style))?
        } else {
            chart.draw_series(LineSeries::new(pts, style))?
        };
        if text && !s.label.is_empty() {
            series.label(s.label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(width + 1))
            });
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    let (x0, x1) = {
        let r = chart.x_range();
        (r.start, r.end)
    };
    for (y, label) in &panel.hlines {
        if !y.is_finite() || (panel.log_y && *y <= 0.0) {
            continue;
        }
        let style = ShapeStyle::from(&BLACK).stroke_width(1);
        let s = chart.draw_series(DashedLineSeries::new(vec![(x0, *y), (x1, *y)], 8, 6, style))?;
        if text && !label.is_empty() && !seen.contains(&label.as_str()) {
            seen.push(label.as_str());
            s.label(label.as_str()).legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(1))
            });
        }
    }
    if text && (panel.series.iter().any(|s| !s.label.is_empty()) || !seen.is_empty()) {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font((FONT_NAME, 14))
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig() -> Figure {
        Figure {
            title: "test".into(),
            x_label: "time (s)".into(),
            panels: vec![
                Panel {
                    y_label: "limit".into(),
                    series: vec![
                        Series {
                            label: "a".into(),
                            points: vec![(0.0, 1.0), (1.0, 5.0), (2.0, f64::NAN)],
                            dashed: false,
                        },
                        Series {
                            label: "ref".into(),
                            points: vec![(0.0, 3.0), (2.0, 3.0)],
                            dashed: true,
                        },
                    ],
                    hlines: vec![(4.0, "best".into())],
                    log_y: false,
                },
                Panel {
                    y_label: "p99".into(),
                    series: vec![Series {
                        label: "a".into(),
                        points: vec![(0.0, 0.0), (1.0, 100.0), (2.0, 1000.0)],
                        dashed: false,
                    }],
                    hlines: vec![],
                    log_y: true,
                },
                Panel::default(),
            ],
            vlines: vec![(0.5, "step".into())],
        }
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(2_000_000.0), "2M");
        assert_eq!(tick_label(250_000.0), "250k");
        assert_eq!(tick_label(1500.0), "1500");
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(12.0), "12");
        assert_eq!(tick_label(0.0), "0");
    }

    #[test]
    fn writes_png_and_svg_even_with_odd_data() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("f.png");
        let svg = dir.path().join("f.svg");
        render(&fig(), &png, &svg, (400, 300)).unwrap();
        let p = std::fs::read(&png).unwrap();
        assert_eq!(&p[1..4], b"PNG");
        let s = std::fs::read_to_string(&svg).unwrap();
        assert!(s.contains("<svg"));
        if ensure_font().is_some() {
            assert!(s.contains("time (s)"));
        }
        // A path that cannot be written is an error, not a panic.
        let bad = dir.path().join("missing-dir").join("f.png");
        assert!(render(&fig(), &bad, &svg, (400, 300)).is_err());
    }
}

//! Convergence plot: in-flight limit, IOPS and P99 over time, three stacked
//! panels, PNG or SVG by the file's extension (plotters).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::summary::TimelinePoint;

/// Places a TrueType font is looked for (first hit wins), after `$AURAIO_FONT`.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Registers a sans-serif font with plotters once. Returns the font's path,
/// or `None` when no usable font exists (plots are then drawn without text).
pub fn ensure_font() -> Option<&'static Path> {
    static FONT: OnceLock<Option<PathBuf>> = OnceLock::new();
    FONT.get_or_init(|| {
        let env = std::env::var_os("AURAIO_FONT").map(PathBuf::from);
        let candidates = env
            .into_iter()
            .chain(FONT_CANDIDATES.iter().map(PathBuf::from));
        for path in candidates {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Some(path);
            }
        }
        None
    })
    .as_deref()
}

/// Moments marked on the plot with a dashed vertical line.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Marks {
    /// The time to converge (see [`crate::converge`]).
    pub converged: Option<Duration>,
    /// When the controllers first settled (see
    /// [`crate::converge::Settled`]); not drawn when it is the same moment
    /// as `converged`.
    pub settled: Option<Duration>,
}

impl Marks {
    /// `(seconds, label, label height as a share of the chart)` of each
    /// mark to draw: "settled" is labelled lower than "converged", so two
    /// close marks stay readable.
    fn lines(&self) -> Vec<(f64, &'static str, f64)> {
        let mut v = Vec::new();
        if let Some(s) = self.settled.filter(|&s| Some(s) != self.converged) {
            v.push((s.as_secs_f64(), "settled", 0.85));
        }
        if let Some(c) = self.converged {
            v.push((c.as_secs_f64(), "converged", 0.95));
        }
        v.retain(|m| m.0.is_finite());
        v
    }
}

/// Draws the plot to `path` (`.svg` → SVG, anything else → PNG), with a
/// dashed vertical line at each of `marks`. Returns a warning to show when
/// the plot had to be drawn without text.
pub fn write_plot(
    path: &Path,
    title: &str,
    points: &[TimelinePoint],
    limits: &[(Duration, f64)],
    marks: Marks,
) -> anyhow::Result<Option<String>> {
    let text = ensure_font().is_some();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let size = (1100, 900);
    let svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if svg {
        draw(
            SVGBackend::new(path, size).into_drawing_area(),
            title,
            points,
            limits,
            marks,
            text,
        )?;
    } else {
        draw(
            BitMapBackend::new(path, size).into_drawing_area(),
            title,
            points,
            limits,
            marks,
            text,
        )?;
    }
    Ok((!text).then(|| {
        "no TrueType font found (install fonts-dejavu-core or set AURAIO_FONT): plot drawn without labels".to_string()
    }))
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}

/// Draws onto any plotters backend. `text = false` draws no text at all.
pub fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    points: &[TimelinePoint],
    limits: &[(Duration, f64)],
    marks: Marks,
    text: bool,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let root = if text {
        root.titled(title, ("sans-serif", 22)).map_err(err)?
    } else {
        root
    };
    let panels = root.split_evenly((3, 1));
    let t_max = points
        .iter()
        .map(|p| p.t.as_secs_f64())
        .chain(limits.iter().map(|l| l.0.as_secs_f64()))
        .fold(0.0, f64::max)
        .max(0.001);
    let marks = marks.lines();
    // The limit at full resolution when given (it is a step function: a
    // short excursion matters for the time to converge).
    let limit: Vec<(f64, f64)> = if limits.is_empty() {
        points
            .iter()
            .map(|p| (p.t.as_secs_f64(), f64::from(p.limit)))
            .collect()
    } else {
        limits.iter().map(|&(t, v)| (t.as_secs_f64(), v)).collect()
    };
    let iops: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.t.as_secs_f64(), p.iops / 1e3))
        .collect();
    let p99: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.p99_ns > 0)
        .map(|p| (p.t.as_secs_f64(), p.p99_ns as f64 / 1e6))
        .collect();
    panel(
        &panels[0],
        "in-flight limit",
        &marks,
        &limit,
        t_max,
        BLUE,
        text,
        true,
    )?;
    panel(
        &panels[1],
        "IOPS (thousands)",
        &marks,
        &iops,
        t_max,
        RGBColor(0, 140, 60),
        text,
        false,
    )?;
    panel(
        &panels[2],
        "P99 latency (ms)",
        &marks,
        &p99,
        t_max,
        RED,
        text,
        false,
    )?;
    root.present().map_err(err)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    label: &str,
    marks: &[(f64, &'static str, f64)],
    data: &[(f64, f64)],
    t_max: f64,
    color: RGBColor,
    text: bool,
    step: bool,
) -> anyhow::Result<()> {
    let y_max = data.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-3) * 1.15;
    let mut b = ChartBuilder::on(area);
    b.margin(12);
    if text {
        b.x_label_area_size(44).y_label_area_size(64);
    }
    let mut chart = b.build_cartesian_2d(0.0..t_max, 0.0..y_max).map_err(err)?;
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(WHITE.mix(0.0));
    if text {
        mesh.x_desc("time (s)")
            .y_desc(label)
            .x_label_formatter(&tick_label)
            .y_label_formatter(&tick_label)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(err)?;
    for &(x, name, at) in marks {
        // Dashed marker: time to converge, first settled.
        let n = 40;
        let dashes = (0..n).step_by(2).map(|i| {
            let y0 = y_max * f64::from(i) / f64::from(n);
            let y1 = y_max * f64::from(i + 1) / f64::from(n);
            PathElement::new(vec![(x, y0), (x, y1)], BLACK.mix(0.6))
        });
        chart.draw_series(dashes).map_err(err)?;
        if text && step {
            chart
                .draw_series(std::iter::once(Text::new(
                    name,
                    // Left of the line near the right edge, else right of it.
                    (
                        if x > 0.8 * t_max {
                            x - 0.075 * t_max
                        } else {
                            x + 0.005 * t_max
                        },
                        y_max * at,
                    ),
                    ("sans-serif", 14),
                )))
                .map_err(err)?;
        }
    }
    let style = ShapeStyle::from(&color).stroke_width(2);
    if step {
        // The limit holds until the next decision: draw it as steps.
        let mut pts = Vec::with_capacity(data.len() * 2);
        for w in data.windows(2) {
            pts.push(w[0]);
            pts.push((w[1].0, w[0].1));
        }
        if let Some(&last) = data.last() {
            pts.push(last);
        }
        chart
            .draw_series(LineSeries::new(pts, style))
            .map_err(err)?;
    } else {
        chart
            .draw_series(LineSeries::new(data.iter().copied(), style))
            .map_err(err)?;
    }
    Ok(())
}

/// An axis tick's label: whole numbers without a trailing `.0` (a limit
/// of 64, not 64.0), others with the fewest decimals (up to 3) that show
/// them (0.5 s, 2.25 ms).
fn tick_label(v: &f64) -> String {
    let mut s = format!("{v:.3}");
    if s.contains('.') {
        s.truncate(s.trim_end_matches('0').trim_end_matches('.').len());
    }
    if s == "-0" {
        s = "0".to_string();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_drop_trailing_zeros() {
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (64.0, "64"),
            (180.0, "180"),
            (0.5, "0.5"),
            (2.25, "2.25"),
            (1.2346, "1.235"),
            (10.0, "10"),
            (100.0001, "100"),
        ];
        for (v, want) in cases {
            assert_eq!(tick_label(&v), want, "{v}");
        }
    }

    fn points() -> Vec<TimelinePoint> {
        (0..100)
            .map(|i| TimelinePoint {
                t: Duration::from_millis(i * 100),
                iops: 1000.0 * (i.min(50) as f64),
                limit: (i.min(64)) as u32,
                p99_ns: 100_000 + 10_000 * i,
            })
            .collect()
    }

    #[test]
    fn writes_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("a").join("plot.png");
        let marks = Marks {
            converged: Some(Duration::from_secs(5)),
            settled: Some(Duration::from_secs(2)),
        };
        write_plot(&png, "test", &points(), &[], marks).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let svg = dir.path().join("plot.SVG");
        write_plot(
            &svg,
            "test",
            &points(),
            &[(Duration::ZERO, 4.0), (Duration::from_secs(11), 8.0)],
            Marks::default(),
        )
        .unwrap();
        let s = std::fs::read_to_string(&svg).unwrap();
        assert!(s.contains("<svg"), "{}", &s[..s.len().min(200)]);
        if ensure_font().is_some() {
            assert!(s.contains("in-flight limit"));
            assert!(!s.contains("settled"), "no marks were asked for");
        }
    }

    #[test]
    fn marks_name_both_moments_but_one_line_when_they_coincide() {
        let both = Marks {
            converged: Some(Duration::from_millis(9_500)),
            settled: Some(Duration::from_millis(1_800)),
        };
        let names: Vec<_> = both.lines().iter().map(|m| m.1).collect();
        assert_eq!(names, ["settled", "converged"]);
        assert_eq!(both.lines()[0].0, 1.8);
        let same = Marks {
            converged: Some(Duration::from_secs(2)),
            settled: Some(Duration::from_secs(2)),
        };
        assert_eq!(same.lines().len(), 1);
        assert!(Marks::default().lines().is_empty());
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("marks.svg");
        write_plot(&svg, "marks", &points(), &[], both).unwrap();
        let s = std::fs::read_to_string(&svg).unwrap();
        if ensure_font().is_some() {
            assert!(s.contains("settled") && s.contains("converged"));
        }
    }

    #[test]
    fn draws_without_text_and_with_empty_data() {
        let mut buf = vec![0u8; 300 * 200 * 3];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (300, 200)).into_drawing_area();
            draw(
                root,
                "no text",
                &points(),
                &[],
                Marks {
                    converged: Some(Duration::from_secs(1)),
                    settled: None,
                },
                false,
            )
            .unwrap();
        }
        assert!(buf.iter().any(|&b| b != 255), "nothing drawn");
        let dir = tempfile::tempdir().unwrap();
        write_plot(
            &dir.path().join("empty.svg"),
            "empty",
            &[],
            &[],
            Marks {
                converged: Some(Duration::ZERO),
                settled: Some(Duration::ZERO),
            },
        )
        .unwrap();
    }
}

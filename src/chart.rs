//! Line charts as PNG files (plotters' bitmap backend), for figures and learning curves.
//!
//! Text is drawn by `ab_glyph` from a TrueType file found at run time, so nothing links
//! fontconfig: `$KEEL_FONT` if set, else DejaVu Sans or Liberation Sans at their usual Linux
//! paths (Debian: `apt-get install fonts-dejavu-core`, done by `scripts/setup.sh` if missing).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

/// Where a sans-serif TrueType font is usually found.
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Loads and registers the font once for the process.
fn ensure_font() -> Result<()> {
    static LOADED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let loaded = LOADED.get_or_init(|| {
        let candidates: Vec<PathBuf> = match std::env::var_os("KEEL_FONT") {
            Some(path) => vec![PathBuf::from(path)],
            None => FONT_CANDIDATES.iter().map(PathBuf::from).collect(),
        };
        let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
            format!(
                "no TrueType font for plot text: install fonts-dejavu-core or set KEEL_FONT to a .ttf file (looked at {})",
                candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })?;
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // The font lives as long as the process: plotters keeps a reference to it.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{}: not a TrueType/OpenType font", path.display()))?;
        Ok(path.clone())
    });
    loaded.as_ref().map(|_| ()).map_err(|e| anyhow!("{e}"))
}

/// A plotting error in words (drawing happens in memory, so these are font and layout errors).
fn drawing(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}

/// One line: `y[t]` at `x = t`, with an optional band `y ± band` (e.g. one standard deviation).
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Values, one per x step.
    pub y: Vec<f64>,
    /// Half-width of a shaded band around the line.
    pub band: Option<Vec<f64>>,
}

/// A chart of several series against the step index.
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// X-axis label.
    pub x_label: String,
    /// Y-axis label.
    pub y_label: String,
    /// Logarithmic y-axis; non-positive values are then left out.
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

/// Tableau-like colours, distinct enough for six lines.
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

impl Chart {
    /// The y-axis range: every positive value (log), or 0 and every value and band edge (linear).
    fn y_range(&self) -> (f64, f64) {
        if self.log_y {
            let positive = self.series.iter().flat_map(|s| s.y.iter().copied()).filter(|v| *v > 0.0 && v.is_finite());
            let (low, high) = positive.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
            if low.is_finite() { (low / 2.0, high * 2.0) } else { (1e-16, 1.0) }
        } else {
            let edges = self.series.iter().flat_map(|s| {
                let band = s.band.as_deref().unwrap_or(&[]);
                s.y.iter().enumerate().flat_map(move |(t, &y)| {
                    let b = band.get(t).copied().unwrap_or(0.0);
                    [y - b, y + b]
                })
            });
            let (low, high) = edges.filter(|v| v.is_finite()).fold((0.0f64, 0.0f64), |(l, h), v| (l.min(v), h.max(v)));
            (low, if high > low { high * 1.05 } else { low + 1.0 })
        }
    }

    /// Writes the chart to `path` as a PNG of `width x height` pixels: drawn in memory, encoded,
    /// then written atomically, so a failure leaves no half-written file and says why in words.
    pub fn write_png(&self, path: &Path, width: u32, height: u32) -> Result<()> {
        ensure_font()?;
        let mut pixels = vec![0u8; width as usize * height as usize * 3];
        self.draw(&mut pixels, width, height).with_context(|| format!("drawing {}", path.display()))?;
        save_png(path, width, height, pixels)
    }

    /// Draws the chart into `pixels` (RGB rows).
    fn draw(&self, pixels: &mut [u8], width: u32, height: u32) -> Result<()> {
        let root = BitMapBackend::with_buffer(pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let steps = self.series.iter().map(|s| s.y.len()).max().unwrap_or(1).max(2);
        let (low, high) = self.y_range();
        let mut builder = ChartBuilder::on(&root);
        builder.caption(&self.title, ("sans-serif", 22)).margin(12).x_label_area_size(44).y_label_area_size(72);
        if self.log_y {
            let chart = builder.build_cartesian_2d(0..steps - 1, (low..high).log_scale()).map_err(drawing)?;
            self.draw_on(chart, |v| format!("{v:.0e}"))?;
        } else {
            let chart = builder.build_cartesian_2d(0..steps - 1, low..high).map_err(drawing)?;
            self.draw_on(chart, |v| format!("{v:.2}"))?;
        }
        root.present().map_err(drawing)
    }

    /// Mesh, lines, bands and legend on a built chart, whatever its y-axis.
    fn draw_on<'a, DB, X, Y>(
        &self,
        mut chart: ChartContext<'a, DB, Cartesian2d<X, Y>>,
        y_format: fn(&f64) -> String,
    ) -> Result<()>
    where
        DB: DrawingBackend + 'a,
        X: Ranged<ValueType = usize> + ValueFormatter<usize>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(BLACK.mix(0.04))
            .y_label_formatter(&y_format)
            .draw()
            .map_err(drawing)?;
        let keep = |v: f64| v.is_finite() && (!self.log_y || v > 0.0);
        for (i, series) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            if let Some(band) = &series.band {
                let upper = series.y.iter().zip(band).enumerate().map(|(t, (y, b))| (t, y + b));
                // On a log axis the band stops at zero; on a linear one it may go negative (returns).
                let floor = if self.log_y { 0.0 } else { f64::NEG_INFINITY };
                let lower = series.y.iter().zip(band).enumerate().rev().map(|(t, (y, b))| (t, (y - b).max(floor)));
                let outline: Vec<(usize, f64)> = upper.chain(lower).filter(|(_, v)| keep(*v)).collect();
                chart.draw_series(std::iter::once(Polygon::new(outline, colour.mix(0.18)))).map_err(drawing)?;
            }
            let points: Vec<(usize, f64)> = series.y.iter().copied().enumerate().filter(|(_, v)| keep(*v)).collect();
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(drawing)?
                .label(series.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(drawing)
    }
}

/// A grid of cells, one colour and one short text per cell: rows and columns are two swept
/// settings (e.g. target period × learning rate).
pub struct HeatMap {
    /// Title above the grid.
    pub title: String,
    /// What the rows are.
    pub row_label: String,
    /// What the columns are.
    pub column_label: String,
    /// Row headers, top to bottom.
    pub rows: Vec<String>,
    /// Column headers, left to right.
    pub columns: Vec<String>,
    /// Colour position of each cell, `[row][column]`, in [0, 1] (0: the low end of the scale);
    /// NaN draws grey.
    pub shade: Vec<Vec<f64>>,
    /// Text of each cell, `[row][column]` (lines separated by `\n`).
    pub text: Vec<Vec<String>>,
    /// What the colour means, at its low and high ends.
    pub scale: (String, String),
}

/// A colour on a blue (0) to white (0.5) to red (1) scale.
fn diverging(t: f64) -> RGBColor {
    let (low, mid, high) = ((49.0, 104.0, 172.0), (247.0, 247.0, 247.0), (196.0, 43.0, 47.0));
    let t = t.clamp(0.0, 1.0);
    let (a, b, u): ((f64, f64, f64), (f64, f64, f64), f64) =
        if t < 0.5 { (low, mid, t * 2.0) } else { (mid, high, (t - 0.5) * 2.0) };
    let mix = |x: f64, y: f64| (x + (y - x) * u).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

impl HeatMap {
    /// Writes the grid to `path` as a PNG (atomically, like [`Chart::write_png`]), sized to fit.
    pub fn write_png(&self, path: &Path) -> Result<()> {
        ensure_font()?;
        let (cell_w, cell_h, left, top, bottom) = (150u32, 70u32, 110u32, 95u32, 60u32);
        // Wide enough for the grid and the title (about 11 px a character at 20 px).
        let title_width = 24 + 11 * self.title.chars().count() as u32;
        let width = (left + cell_w * self.columns.len().max(1) as u32 + 20).max(title_width);
        let height = top + cell_h * self.rows.len().max(1) as u32 + bottom;
        let mut pixels = vec![0u8; width as usize * height as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
            root.fill(&WHITE).map_err(drawing)?;
            let text = |size: u32| ("sans-serif", size).into_font().color(&BLACK);
            root.draw_text(&self.title, &text(20), (12, 10)).map_err(drawing)?;
            root.draw_text(&format!("rows: {}   columns: {}", self.row_label, self.column_label), &text(14), (12, 38))
                .map_err(drawing)?;
            for (c, header) in self.columns.iter().enumerate() {
                let x = (left + cell_w * c as u32 + 8) as i32;
                root.draw_text(header, &text(15), (x, (top - 24) as i32)).map_err(drawing)?;
            }
            for (r, header) in self.rows.iter().enumerate() {
                let y = (top + cell_h * r as u32 + cell_h / 2 - 8) as i32;
                root.draw_text(header, &text(15), (12, y)).map_err(drawing)?;
                for c in 0..self.columns.len() {
                    let (x0, y0) = ((left + cell_w * c as u32) as i32, (top + cell_h * r as u32) as i32);
                    let shade = self.shade.get(r).and_then(|row| row.get(c)).copied().unwrap_or(f64::NAN);
                    let colour = if shade.is_finite() { diverging(shade) } else { RGBColor(200, 200, 200) };
                    root.draw(&Rectangle::new([(x0, y0), (x0 + cell_w as i32, y0 + cell_h as i32)], colour.filled()))
                        .map_err(drawing)?;
                    root.draw(&Rectangle::new(
                        [(x0, y0), (x0 + cell_w as i32, y0 + cell_h as i32)],
                        BLACK.mix(0.3).stroke_width(1),
                    ))
                    .map_err(drawing)?;
                    let lines = self.text.get(r).and_then(|row| row.get(c)).map_or("", String::as_str);
                    for (i, line) in lines.lines().enumerate() {
                        root.draw_text(line, &text(14), (x0 + 8, y0 + 10 + 20 * i as i32)).map_err(drawing)?;
                    }
                }
            }
            let legend_y = (top + cell_h * self.rows.len() as u32 + 20) as i32;
            for i in 0..100 {
                let x = left as i32 + 2 * i;
                root.draw(&Rectangle::new([(x, legend_y), (x + 2, legend_y + 14)], diverging(i as f64 / 99.0).filled()))
                    .map_err(drawing)?;
            }
            root.draw_text(&self.scale.0, &text(13), (12, legend_y)).map_err(drawing)?;
            root.draw_text(&self.scale.1, &text(13), (left as i32 + 210, legend_y)).map_err(drawing)?;
            root.present().map_err(drawing)?;
        }
        save_png(path, width, height, pixels)
    }
}

/// Encodes RGB rows as PNG and writes them to `path` atomically.
fn save_png(path: &Path, width: u32, height: u32, pixels: Vec<u8>) -> Result<()> {
    let image = image::RgbImage::from_raw(width, height, pixels)
        .ok_or_else(|| anyhow!("drawing {}: the pixel buffer has the wrong size", path.display()))?;
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .with_context(|| format!("encoding {} as PNG", path.display()))?;
    Ok(crate::write_atomically(path, &png)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_with_log_and_linear_axes() {
        let dir = std::env::temp_dir().join(format!("keel-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        for log_y in [true, false] {
            let chart = Chart {
                title: "test".into(),
                x_label: "round".into(),
                y_label: "value".into(),
                log_y,
                series: vec![
                    Series { label: "a".into(), y: vec![1.0, 0.1, 0.01, 0.0], band: None },
                    Series { label: "b".into(), y: vec![0.5, 0.4, 0.3, 0.3], band: Some(vec![0.1; 4]) },
                ],
            };
            let path = dir.join(format!("chart-{log_y}.png"));
            chart.write_png(&path, 400, 300).unwrap_or_else(|e| panic!("{e:#}"));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&bytes[1..4], b"PNG");
        }
    }
}

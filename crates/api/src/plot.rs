//! The forecast plot: the reservoir volume from the last fill to the alarm, with the alarm
//! volume, the due date and today marked. Drawn with `plotters` to SVG (coordinates are
//! floating point for drawing only; the forecast itself is exact).

use chrono::{DateTime, NaiveDate, Utc};
use clinic_domain::time::{ClinicZone, LocalTime};
use plotters::prelude::*;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

pub struct PlotInput<'a> {
    pub serial: &'a str,
    pub filled_at: DateTime<Utc>,
    pub points: &'a [(DateTime<Utc>, Decimal)],
    pub alarm_ml: Decimal,
    pub alarm_at: Option<DateTime<Utc>>,
    pub due_date: NaiveDate,
    pub binding: &'a str,
    pub now: DateTime<Utc>,
    pub zone: ClinicZone,
}

fn days_since(from: DateTime<Utc>, t: DateTime<Utc>) -> f64 {
    (t - from).num_seconds() as f64 / 86_400.0
}

pub fn forecast_svg(p: &PlotInput<'_>) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let max_ml = p
            .points
            .iter()
            .map(|(_, v)| *v)
            .max()
            .unwrap_or(p.alarm_ml)
            .max(p.alarm_ml)
            .to_f64()
            .unwrap_or(40.0);
        let last = p.points.last().map(|(t, _)| *t).unwrap_or(p.now);
        let x_max = days_since(p.filled_at, last.max(p.now)).max(1.0);
        let due_start = match p
            .zone
            .resolve_local(p.due_date.and_hms_opt(0, 0, 0).unwrap_or_default())
        {
            LocalTime::Single(t) | LocalTime::Repeated(t, _) => Some(t),
            LocalTime::Skipped => None,
        };
        let title = format!("Reservoir {} — refill due {} ({})", p.serial, p.due_date, p.binding);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..x_max * 1.02, 0.0..max_ml * 1.1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("days since the fill")
            .y_desc("mL in the reservoir")
            .light_line_style(RGBColor(235, 238, 243))
            .draw()
            .map_err(|e| e.to_string())?;
        let curve: Vec<(f64, f64)> = p
            .points
            .iter()
            .map(|(t, v)| (days_since(p.filled_at, *t), v.to_f64().unwrap_or(0.0)))
            .collect();
        chart
            .draw_series(LineSeries::new(curve, RGBColor(11, 92, 173).stroke_width(3)))
            .map_err(|e| e.to_string())?
            .label("expected volume")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(11, 92, 173).stroke_width(3)));
        let alarm = p.alarm_ml.to_f64().unwrap_or(0.0);
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, alarm), (x_max * 1.02, alarm)],
                RED.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(format!("low-reservoir alarm ({} mL)", p.alarm_ml))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(2)));
        let mut vertical = |at: f64, color: RGBColor, label: String| -> Result<(), String> {
            chart
                .draw_series(LineSeries::new(
                    vec![(at, 0.0), (at, max_ml * 1.1)],
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            Ok(())
        };
        if let Some(due) = due_start {
            vertical(
                days_since(p.filled_at, due),
                RGBColor(196, 104, 0),
                format!("refill due {}", p.due_date),
            )?;
        }
        vertical(
            days_since(p.filled_at, p.now),
            RGBColor(90, 90, 90),
            format!("today {}", p.zone.local_date(p.now)),
        )?;
        if let Some(a) = p.alarm_at {
            vertical(
                days_since(p.filled_at, a),
                RGBColor(160, 0, 0),
                format!("alarm {}", p.zone.local_date(a)),
            )?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(200, 200, 200))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

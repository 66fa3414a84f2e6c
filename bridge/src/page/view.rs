//! Pure view-model functions of the status page: token masking, CDR totals per period and
//! currency, energy per day, the SVG chart, the colour class of a connector status, the
//! certificate-expiry line of the attention list.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;

/// Masks a token uid: only its last four characters stay readable.
pub fn mask_uid(uid: &str) -> String {
    let chars: Vec<char> = uid.chars().collect();
    if chars.len() <= 4 {
        return "••••".to_string();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("••••{tail}")
}

/// One CDR as the page aggregates it.
#[derive(Debug, Clone, PartialEq)]
pub struct CdrLine {
    /// The UTC day the charge ended.
    pub day: NaiveDate,
    /// Energy (kWh).
    pub kwh: Decimal,
    /// ISO 4217 currency.
    pub currency: String,
    /// Total cost excluding VAT.
    pub cost: Decimal,
}

/// Count, energy and revenue per currency of a set of CDRs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Number of CDRs.
    pub count: usize,
    /// Energy (kWh).
    pub kwh: Decimal,
    /// Revenue excluding VAT per currency.
    pub revenue: BTreeMap<String, Decimal>,
}

/// Totals of the CDRs whose day satisfies `keep`.
pub fn totals(lines: &[CdrLine], keep: impl Fn(NaiveDate) -> bool) -> Totals {
    let mut t = Totals::default();
    for l in lines.iter().filter(|l| keep(l.day)) {
        t.count += 1;
        t.kwh += l.kwh;
        *t.revenue.entry(l.currency.clone()).or_default() += l.cost;
    }
    t
}

/// Today's totals.
pub fn today(lines: &[CdrLine], today: NaiveDate) -> Totals {
    totals(lines, |d| d == today)
}

/// This month's totals (up to and including `today`).
pub fn this_month(lines: &[CdrLine], today: NaiveDate) -> Totals {
    totals(lines, |d| {
        d.year() == today.year() && d.month() == today.month() && d <= today
    })
}

/// Energy per day for the `days` days ending with `today`, oldest first, zero-filled.
pub fn energy_per_day(lines: &[CdrLine], today: NaiveDate, days: u32) -> Vec<(NaiveDate, Decimal)> {
    let mut out: Vec<(NaiveDate, Decimal)> = (0..days)
        .rev()
        .filter_map(|back| today.checked_sub_days(chrono::Days::new(u64::from(back))))
        .map(|d| (d, Decimal::ZERO))
        .collect();
    for l in lines {
        if let Some(slot) = out.iter_mut().find(|(d, _)| *d == l.day) {
            slot.1 += l.kwh;
        }
    }
    out
}

/// Width and height of the chart's view box.
pub const CHART_W: u32 = 300;
/// Height of the chart's view box.
pub const CHART_H: u32 = 100;

/// One bar of the chart: x, y, width, height in view-box units, and its tooltip.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height (0 for a day without energy).
    pub h: f64,
    /// `YYYY-MM-DD: N kWh`.
    pub title: String,
}

/// The bars of the energy chart, scaled so the largest day fills the height.
pub fn chart_bars(days: &[(NaiveDate, Decimal)]) -> Vec<Bar> {
    if days.is_empty() {
        return Vec::new();
    }
    let max = days.iter().map(|(_, k)| *k).max().unwrap_or_default();
    let max = f64::try_from(max).unwrap_or(0.0);
    let slot = f64::from(CHART_W) / days.len() as f64;
    days.iter()
        .enumerate()
        .map(|(i, (d, kwh))| {
            let v = f64::try_from(*kwh).unwrap_or(0.0);
            let h = if max > 0.0 {
                v / max * f64::from(CHART_H)
            } else {
                0.0
            };
            Bar {
                x: i as f64 * slot + slot * 0.1,
                y: f64::from(CHART_H) - h,
                w: slot * 0.8,
                h,
                title: format!("{d}: {} kWh", kwh.round_dp(3).normalize()),
            }
        })
        .collect()
}

/// The CSS class of an OCPP connector status or an OCPI EVSE status (upper or mixed case).
pub fn status_class(status: &str) -> &'static str {
    match status.to_ascii_lowercase().as_str() {
        "available" => "ok",
        "charging" | "occupied" | "preparing" | "suspendedev" | "suspendedevse" | "finishing"
        | "reserved" | "blocked" => "busy",
        "faulted" | "unavailable" | "outoforder" | "inoperative" => "bad",
        _ => "off",
    }
}

/// Human duration: `1h 05m`, `4m 10s`.
pub fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// The attention line of a TLS listener's server certificate that expires within
/// `tls::EXPIRY_WARNING_DAYS` (30) days or has expired; `None` while it is further away.
pub fn cert_expiry(listener: &str, not_after: DateTime<Utc>, now: DateTime<Utc>) -> Option<String> {
    let left = not_after - now;
    if left >= chrono::Duration::days(crate::tls::EXPIRY_WARNING_DAYS) {
        return None;
    }
    let date = not_after.format("%Y-%m-%d %H:%M UTC");
    Some(if left <= chrono::Duration::zero() {
        format!(
            "The TLS certificate of the {listener} listener expired on {date}: renew it and send SIGHUP"
        )
    } else {
        format!(
            "The TLS certificate of the {listener} listener expires in {} day(s) ({date}): renew it and send SIGHUP",
            left.num_days()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::from_str(s).unwrap()
    }
    fn line(day: &str, kwh: &str, cur: &str, cost: &str) -> CdrLine {
        CdrLine {
            day: d(day),
            kwh: Decimal::from_str(kwh).unwrap(),
            currency: cur.into(),
            cost: Decimal::from_str(cost).unwrap(),
        }
    }

    #[test]
    fn masking_keeps_only_the_last_four() {
        assert_eq!(mask_uid("DE8ACC12E46L89"), "••••6L89");
        assert_eq!(mask_uid("ABCD"), "••••");
        assert_eq!(mask_uid(""), "••••");
        assert!(!mask_uid("0123456789").contains("0123"));
    }

    #[test]
    fn totals_split_by_period_and_currency() {
        let lines = vec![
            line("2026-12-06", "10.5", "EUR", "3.10"),
            line("2026-12-06", "2", "CHF", "1"),
            line("2026-12-01", "4", "EUR", "1.20"),
            line("2026-11-30", "100", "EUR", "30"),
        ];
        let t = today(&lines, d("2026-12-06"));
        assert_eq!(t.count, 2);
        assert_eq!(t.kwh, Decimal::from_str("12.5").unwrap());
        assert_eq!(t.revenue["EUR"], Decimal::from_str("3.10").unwrap());
        assert_eq!(t.revenue["CHF"], Decimal::ONE);
        let m = this_month(&lines, d("2026-12-06"));
        assert_eq!(m.count, 3);
        assert_eq!(m.revenue["EUR"], Decimal::from_str("4.30").unwrap());
    }

    #[test]
    fn energy_per_day_is_zero_filled_and_bounded() {
        let lines = vec![
            line("2026-12-06", "1", "EUR", "0"),
            line("2026-12-06", "2", "EUR", "0"),
            line("2026-11-07", "5", "EUR", "0"),
            line("2026-11-06", "9", "EUR", "0"), // 31 days back: outside
        ];
        let days = energy_per_day(&lines, d("2026-12-06"), 30);
        assert_eq!(days.len(), 30);
        assert_eq!(days[0], (d("2026-11-07"), Decimal::from(5)));
        assert_eq!(days[29], (d("2026-12-06"), Decimal::from(3)));
        assert_eq!(days.iter().map(|x| x.1).sum::<Decimal>(), Decimal::from(8));
    }

    #[test]
    fn chart_scales_the_largest_day_to_full_height() {
        let days = vec![
            (d("2026-12-05"), Decimal::from(2)),
            (d("2026-12-06"), Decimal::from(4)),
            (d("2026-12-07"), Decimal::ZERO),
        ];
        let bars = chart_bars(&days);
        assert_eq!(bars.len(), 3);
        assert!((bars[1].h - f64::from(CHART_H)).abs() < 1e-9);
        assert!((bars[0].h - f64::from(CHART_H) / 2.0).abs() < 1e-9);
        assert_eq!(bars[2].h, 0.0);
        assert!(bars[0].x < bars[1].x && bars[1].x + bars[1].w <= f64::from(CHART_W));
        assert_eq!(bars[1].title, "2026-12-06: 4 kWh");
        assert!(chart_bars(&[]).is_empty());
        // all-zero month: no division by zero
        assert!(chart_bars(&[(d("2026-12-01"), Decimal::ZERO)])[0].h == 0.0);
    }

    #[test]
    fn statuses_get_colours() {
        assert_eq!(status_class("Available"), "ok");
        assert_eq!(status_class("AVAILABLE"), "ok");
        assert_eq!(status_class("Charging"), "busy");
        assert_eq!(status_class("Faulted"), "bad");
        assert_eq!(status_class("UNKNOWN"), "off");
        assert_eq!(duration(3900), "1h 05m");
        assert_eq!(duration(250), "4m 10s");
    }

    #[test]
    fn certificates_enter_the_attention_list_within_30_days() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let days = |n: i64| now + chrono::Duration::days(n);
        assert_eq!(cert_expiry("ocpp", days(90), now), None);
        assert_eq!(cert_expiry("ocpp", days(30), now), None);
        let soon = cert_expiry("ocpi", days(29), now).unwrap();
        assert!(
            soon.contains("ocpi listener expires in 29 day(s)"),
            "{soon}"
        );
        assert!(soon.contains("2027-01-04"), "{soon}");
        let gone = cert_expiry("ocpp", days(-1), now).unwrap();
        assert!(
            gone.contains("ocpp listener expired on 2026-12-05"),
            "{gone}"
        );
    }
}

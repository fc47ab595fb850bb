//! The worked examples of shared/domain/intrathecal.md §4, with the instants and dates
//! given there, and the forecast's properties.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;
use crate::time::ClinicZone;

fn d(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

fn chicago() -> ClinicZone {
    ClinicZone::parse("America/Chicago").expect("zone")
}

fn local(y: i32, m: u32, day: u32, h: u32, min: u32) -> DateTime<Utc> {
    chicago()
        .tz()
        .with_ymd_and_hms(y, m, day, h, min, 0)
        .single()
        .expect("unambiguous local time")
        .with_timezone(&Utc)
}

fn date(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).expect("date")
}

/// The alarm on the Chicago wall clock, to the nearest minute, as "YYYY-MM-DD HH:MM".
fn wall(at: DateTime<Utc>) -> String {
    let rounded = at + Duration::seconds(30);
    let l = rounded.with_timezone(&chicago().tz());
    format!("{} {:02}:{:02}", l.date_naive(), l.hour(), l.minute())
}

fn continuous(daily: &str, filled_at: DateTime<Utc>) -> Vec<Programme> {
    vec![Programme {
        effective_at: filled_at,
        delivery: Delivery::Continuous { daily_dose: d(daily) },
        bolus_dose: Decimal::ZERO,
        bolus_max_per_day: 0,
    }]
}

fn inputs(
    fill: &str,
    lra: &str,
    conc: &str,
    programmes: Vec<Programme>,
    filled_at: DateTime<Utc>,
    stability: u32,
) -> Inputs {
    Inputs {
        zone: chicago(),
        filled_at,
        fill_volume_ml: d(fill),
        prime_volume_ml: Decimal::ZERO,
        alarm_volume_ml: d(lra),
        concentration: Some(d(conc)),
        programmes,
        stability_days: Some(stability),
        battery_deadline: None,
        margin_days: 7,
        over_infusion_factor: None,
    }
}

fn today() -> NaiveDate {
    date(2027, 1, 4)
}

#[test]
fn example_1_morphine() {
    let filled = local(2027, 1, 4, 9, 0);
    let mut i = inputs("40.0", "2.0", "25", continuous("5", filled), filled, 180);
    let f = forecast(&i, today());
    assert_eq!(f.daily_volume_ml, Some(d("0.2")));
    assert_eq!(f.usable_volume_ml, d("38.0"));
    assert_eq!(f.alarm_at, Some(filled + Duration::days(190)), "exactly 190 days");
    assert_eq!(wall(f.alarm_at.expect("alarm")), "2027-07-13 10:00");
    assert_eq!(f.volume_due, Some(date(2027, 7, 6)), "day 183");
    assert_eq!(
        (f.due_date, f.binding),
        (date(2027, 7, 3), Binding::Stability),
        "day 180"
    );

    i.stability_days = Some(90);
    let f = forecast(&i, today());
    assert_eq!(
        (f.due_date, f.binding),
        (date(2027, 4, 4), Binding::Stability),
        "day 90"
    );

    i.stability_days = Some(180);
    i.over_infusion_factor = Some(d("1.145"));
    let f = forecast(&i, today());
    assert_eq!(f.daily_volume_ml, Some(d("0.229")));
    assert_eq!(wall(f.alarm_at.expect("alarm")), "2027-06-19 08:32");
    assert_eq!((f.due_date, f.binding), (date(2027, 6, 12), Binding::Volume), "day 159");
}

#[test]
fn example_2_baclofen_flex_steps() {
    let filled = local(2027, 1, 4, 10, 0);
    let t = |h| NaiveTime::from_hms_opt(h, 0, 0).expect("time");
    let programmes = vec![Programme {
        effective_at: filled,
        delivery: Delivery::Flex {
            steps: vec![
                Step {
                    start: t(6),
                    rate_per_hour: d("20"),
                },
                Step {
                    start: t(22),
                    rate_per_hour: d("35"),
                },
            ],
        },
        bolus_dose: Decimal::ZERO,
        bolus_max_per_day: 0,
    }];
    assert_eq!(programmes[0].daily_amount(), d("600"));
    let i = inputs("20.0", "3.0", "2000", programmes, filled, 180);
    let f = forecast(&i, today());
    assert_eq!(f.daily_volume_ml, Some(d("0.3")));
    assert_eq!(f.usable_volume_ml, d("17.0"));
    let alarm = f.alarm_at.expect("alarm");
    assert_eq!(wall(alarm), "2027-03-02 02:34");
    // The average-rate shortcut (56.67 days) would say about half an hour earlier.
    let shortcut = filled + Duration::seconds((17.0 / 0.3 * 86400.0) as i64);
    assert!(
        (alarm - shortcut).num_minutes().abs() >= 25,
        "the shortcut is off by about half an hour"
    );
    assert_eq!((f.due_date, f.binding), (date(2027, 2, 23), Binding::Volume), "day 50");
}

#[test]
fn example_3_ziconotide() {
    let filled = local(2027, 1, 4, 9, 0);
    let f = forecast(
        &inputs("40.0", "2", "25", continuous("3.6", filled), filled, 84),
        today(),
    );
    assert_eq!(
        f.alarm_at.map(|a| chicago().local_date(a)),
        Some(date(2027, 9, 25)),
        "day 264"
    );
    assert_eq!(
        (f.due_date, f.binding),
        (date(2027, 3, 29), Binding::Stability),
        "day 84"
    );

    let f = forecast(
        &inputs("40.0", "2", "5", continuous("3.6", filled), filled, 40),
        today(),
    );
    assert_eq!(wall(f.alarm_at.expect("alarm")), "2027-02-26 03:40");
    assert_eq!(
        (f.due_date, f.binding),
        (date(2027, 2, 13), Binding::Stability),
        "day 40"
    );

    let f = forecast(
        &inputs("40.0", "2", "5", continuous("3.6", filled), filled, 14),
        today(),
    );
    assert_eq!(
        (f.due_date, f.binding),
        (date(2027, 1, 18), Binding::Stability),
        "first fill: day 14"
    );
}

#[test]
fn example_4_patient_boluses() {
    let filled = local(2027, 1, 4, 9, 0);
    let mut programmes = continuous("2.0", filled);
    programmes[0].bolus_dose = d("0.1");
    programmes[0].bolus_max_per_day = 4;
    let f = forecast(&inputs("20.0", "2", "10", programmes, filled, 180), today());
    assert_eq!(f.daily_volume_ml, Some(d("0.24")));
    assert_eq!(
        f.alarm_at,
        Some(filled + Duration::days(75)),
        "exactly 75 days (basal alone: 90)"
    );
    assert_eq!(
        wall(f.alarm_at.expect("alarm")),
        "2027-03-20 10:00",
        "an hour later on the wall clock: DST began"
    );
    assert_eq!((f.due_date, f.binding), (date(2027, 3, 13), Binding::Volume), "day 68");
}

#[test]
fn example_5_priming_bolus_and_raised_alarm() {
    let filled = local(2027, 1, 4, 9, 0);
    let mut i = inputs("20.0", "4", "2000", continuous("400", filled), filled, 180);
    i.prime_volume_ml = d("0.25");
    let f = forecast(&i, today());
    assert_eq!(f.usable_volume_ml, d("15.75"));
    assert_eq!(f.daily_volume_ml, Some(d("0.2")));
    assert_eq!(f.alarm_at, Some(filled + Duration::hours(78 * 24 + 18)), "78.75 days");
    assert_eq!(wall(f.alarm_at.expect("alarm")), "2027-03-24 04:00");
    assert_eq!((f.due_date, f.binding), (date(2027, 3, 17), Binding::Volume), "day 72");

    i.over_infusion_factor = Some(d("1.145"));
    let f = forecast(&i, today());
    assert_eq!(wall(f.alarm_at.expect("alarm")), "2027-03-14 04:39");
    assert_eq!((f.due_date, f.binding), (date(2027, 3, 7), Binding::Volume), "day 62");
}

#[test]
fn a_night_step_is_nine_hours_when_the_clocks_go_back() {
    // Fill at 22:00 on 2027-11-06 (the night the clocks go back) with only the night step
    // delivering: 22:00–06:00 lasts 9 hours that night.
    let filled = local(2027, 11, 6, 22, 0);
    let t = |h| NaiveTime::from_hms_opt(h, 0, 0).expect("time");
    let programmes = vec![Programme {
        effective_at: filled,
        delivery: Delivery::Flex {
            steps: vec![
                Step {
                    start: t(6),
                    rate_per_hour: Decimal::ZERO,
                },
                Step {
                    start: t(22),
                    rate_per_hour: d("100"),
                },
            ],
        },
        bolus_dose: Decimal::ZERO,
        bolus_max_per_day: 0,
    }];
    // 1 mL/h at 100 mcg/mL; 9 usable mL last exactly the 9-hour night.
    let i = inputs("11", "2", "100", programmes, filled, 180);
    let f = forecast(&i, date(2027, 11, 6));
    assert_eq!(f.alarm_at, Some(filled + Duration::hours(9)));
    assert_eq!(wall(f.alarm_at.expect("alarm")), "2027-11-07 06:00");
}

#[test]
fn a_step_starting_in_the_spring_gap_begins_when_the_clock_jumps() {
    // 2027-03-14: 02:00 CST does not exist; the clock jumps to 03:00 CDT at 08:00Z. A step
    // "02:00–22:00" therefore runs from 08:00Z, not an hour earlier or later.
    let filled = local(2027, 3, 13, 22, 0);
    let t = |h| NaiveTime::from_hms_opt(h, 0, 0).expect("time");
    let programmes = vec![Programme {
        effective_at: filled,
        delivery: Delivery::Flex {
            steps: vec![
                Step {
                    start: t(2),
                    rate_per_hour: d("100"),
                },
                Step {
                    start: t(22),
                    rate_per_hour: Decimal::ZERO,
                },
            ],
        },
        bolus_dose: Decimal::ZERO,
        bolus_max_per_day: 0,
    }];
    // 1 mL/h from 08:00Z; 5 usable mL → 13:00Z.
    let f = forecast(&inputs("7", "2", "100", programmes, filled, 180), date(2027, 3, 13));
    assert_eq!(
        f.alarm_at,
        Some(Utc.with_ymd_and_hms(2027, 3, 14, 13, 0, 0).single().expect("instant"))
    );
}

#[test]
fn a_reservoir_outlasting_the_look_ahead_lets_stability_bind() {
    let filled = local(2027, 1, 4, 9, 0);
    let f = forecast(
        &inputs("40", "2", "100", continuous("2.4", filled), filled, 40),
        today(),
    );
    assert_eq!(
        (f.due_date, f.binding, f.alarm_at),
        (date(2027, 2, 13), Binding::Stability, None)
    );
    assert!(f.problems.is_empty(), "{:?}", f.problems);
}

#[test]
fn battery_can_bind() {
    let filled = local(2027, 1, 4, 9, 0);
    let mut i = inputs("40.0", "2.0", "25", continuous("5", filled), filled, 180);
    i.battery_deadline = Some(date(2027, 2, 1));
    let f = forecast(&i, today());
    assert_eq!(
        (f.due_date, f.binding, f.battery_due),
        (date(2027, 2, 1), Binding::Battery, Some(date(2027, 2, 1)))
    );
}

#[test]
fn missing_or_contradictory_inputs_make_the_pump_due_now() {
    let filled = local(2027, 1, 4, 9, 0);
    let base = inputs("40.0", "2.0", "25", continuous("5", filled), filled, 180);
    let now = date(2027, 1, 10);
    let cases: Vec<(Inputs, &str)> = vec![
        (
            Inputs {
                concentration: None,
                ..base.clone()
            },
            "concentration",
        ),
        (
            Inputs {
                programmes: vec![],
                ..base.clone()
            },
            "programme",
        ),
        (
            Inputs {
                stability_days: None,
                ..base.clone()
            },
            "stability",
        ),
        (
            Inputs {
                programmes: continuous("0", filled),
                ..base.clone()
            },
            "delivers nothing",
        ),
        (
            Inputs {
                fill_volume_ml: d("2.0"),
                ..base.clone()
            },
            "usable volume",
        ),
        (
            Inputs {
                programmes: vec![Programme {
                    effective_at: filled,
                    delivery: Delivery::Flex { steps: vec![] },
                    bolus_dose: Decimal::ZERO,
                    bolus_max_per_day: 0,
                }],
                ..base.clone()
            },
            "no steps",
        ),
    ];
    for (i, reason) in cases {
        let f = forecast(&i, now);
        assert_eq!((f.due_date, f.binding), (now, Binding::MissingData), "{reason}");
        assert!(
            f.problems.iter().any(|p| p.contains(reason)),
            "{reason}: {:?}",
            f.problems
        );
    }
}

#[test]
fn a_reprogramming_after_the_fill_changes_the_rate_from_its_instant() {
    let filled = local(2027, 1, 4, 9, 0);
    let mut programmes = continuous("5", filled);
    // After 10 days (2 mL used), the dose doubles: 36 mL left at 0.4 mL/day = 90 more days.
    programmes.push(Programme {
        effective_at: filled + Duration::days(10),
        delivery: Delivery::Continuous { daily_dose: d("10") },
        bolus_dose: Decimal::ZERO,
        bolus_max_per_day: 0,
    });
    let f = forecast(&inputs("40.0", "2.0", "25", programmes, filled, 365), today());
    let alarm = f.alarm_at.expect("alarm");
    let exact = filled + Duration::days(100);
    // 5/24/25 mL/h recurs in decimal; rounding goes toward an earlier alarm, never later.
    assert!(
        alarm <= exact && exact - alarm <= Duration::seconds(1),
        "{alarm} vs {exact}"
    );
}

#[test]
fn expected_volume_follows_the_programme() {
    let filled = local(2027, 1, 4, 9, 0);
    let i = inputs("40.0", "2.0", "25", continuous("5", filled), filled, 180);
    assert_eq!(expected_volume(&i, filled + Duration::days(10)), Some(d("38.0")));
    assert_eq!(
        expected_volume(&i, filled + Duration::days(300)),
        Some(Decimal::ZERO),
        "never below zero"
    );
    assert_eq!(expected_volume(&i, filled - Duration::days(1)), None);
    assert_eq!(
        expected_volume(
            &Inputs {
                concentration: None,
                ..i
            },
            filled
        ),
        None
    );
}

#[test]
fn flex_steps_must_tile_the_day() {
    let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("time");
    let ok = check_flex_steps(&[(t(22, 0), t(6, 0), d("35")), (t(6, 0), t(22, 0), d("20"))]).expect("valid");
    assert_eq!(ok.iter().map(|s| s.start).collect::<Vec<_>>(), [t(6, 0), t(22, 0)]);
    assert!(
        check_flex_steps(&[(t(0, 0), t(0, 0), d("5"))]).is_ok(),
        "one step all day"
    );
    let gap = check_flex_steps(&[(t(6, 0), t(20, 0), d("20")), (t(22, 0), t(6, 0), d("35"))]).expect_err("gap");
    assert_eq!(gap.errors()[0].code, "steps_do_not_cover_the_day");
    assert!(
        check_flex_steps(&[(t(6, 0), t(23, 0), d("20")), (t(22, 0), t(6, 0), d("35"))]).is_err(),
        "overlap"
    );
    assert_eq!(
        check_flex_steps(&[(t(0, 0), t(0, 0), d("-1"))])
            .expect_err("negative")
            .errors()[0]
            .field,
        "steps[0].rate_per_hour"
    );
    assert!(check_flex_steps(&[]).is_err());
}

#[test]
fn stability_and_discrepancy_rules() {
    assert_eq!(stability_for(false, false, Some(84), Some(40), Some(14)), Some(84));
    assert_eq!(stability_for(false, true, Some(84), Some(40), Some(14)), Some(40));
    assert_eq!(stability_for(true, true, Some(84), Some(40), Some(14)), Some(14));
    assert_eq!(stability_for(true, false, Some(180), None, None), Some(180));
    assert_eq!(stability_for(false, true, Some(180), None, None), Some(180));
    assert_eq!(stability_for(false, false, None, None, None), None, "fentanyl: no data");
    assert!(!is_discrepancy(d("20"), d("3.0"), d("2.1")));
    assert!(is_discrepancy(d("20"), d("3.0"), d("1.9")));
    assert!(!is_discrepancy(d("40"), d("3.0"), d("1.1")));
    assert!(is_discrepancy(d("40"), d("3.0"), d("0.9")));
}

// --- properties ---------------------------------------------------------------------

fn flex_programme(filled: DateTime<Utc>, day: u32, night: u32, bolus: u32) -> Vec<Programme> {
    let t = |h| NaiveTime::from_hms_opt(h, 0, 0).expect("time");
    vec![Programme {
        effective_at: filled,
        delivery: Delivery::Flex {
            steps: vec![
                Step {
                    start: t(6),
                    rate_per_hour: Decimal::from(day),
                },
                Step {
                    start: t(22),
                    rate_per_hour: Decimal::from(night),
                },
            ],
        },
        bolus_dose: Decimal::from(bolus),
        bolus_max_per_day: 2,
    }]
}

/// A fine-grained numeric integration: minute by minute, for comparison.
fn integrate(i: &Inputs) -> DateTime<Utc> {
    let c = i.concentration.expect("concentration");
    let usable = i.fill_volume_ml - i.prime_volume_ml - i.alarm_volume_ml;
    let p = &i.programmes[0];
    let Delivery::Flex { steps } = &p.delivery else {
        panic!("flex")
    };
    let mut delivered = Decimal::ZERO;
    let mut t = i.filled_at;
    loop {
        let per_minute = (rate_at(i.zone, steps, t) + p.bolus_per_hour()) / c / Decimal::from(60);
        if delivered + per_minute >= usable {
            return t;
        }
        delivered += per_minute;
        t += Duration::minutes(1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn due_date_is_never_later_than_any_limit(
        fill in 5u32..40, day in 1u32..60, night in 1u32..60, stability in 1u32..200, battery in 1i64..400, margin in 0u32..14, start_day in 0i64..365,
    ) {
        let filled = local(2027, 1, 1, 9, 0) + Duration::days(start_day);
        let mut i = inputs(&fill.to_string(), "2", "500", flex_programme(filled, day, night, 0), filled, stability);
        i.battery_deadline = Some(chicago().local_date(filled) + Duration::days(battery));
        i.margin_days = margin;
        let f = forecast(&i, chicago().local_date(filled));
        for limit in [f.volume_due, f.stability_due, f.battery_due].into_iter().flatten() {
            prop_assert!(f.due_date <= limit);
        }
        if let Some(alarm) = f.alarm_at {
            prop_assert!(f.due_date <= chicago().local_date(alarm));
        }
    }

    #[test]
    fn more_volume_never_alarms_earlier_and_a_higher_rate_never_later(
        fill in 5u32..30, extra in 1u32..10, day in 1u32..50, night in 1u32..50, more in 1u32..20,
    ) {
        let filled = local(2027, 3, 1, 9, 0);
        let base = inputs(&fill.to_string(), "2", "500", flex_programme(filled, day, night, 1), filled, 365);
        let alarm = |i: &Inputs| forecast(i, date(2027, 3, 1)).alarm_at;
        let fuller = Inputs { fill_volume_ml: base.fill_volume_ml + Decimal::from(extra), ..base.clone() };
        prop_assert!(alarm(&fuller) >= alarm(&base));
        let faster = Inputs { programmes: flex_programme(filled, day + more, night + more, 1), ..base.clone() };
        prop_assert!(alarm(&faster) <= alarm(&base));
    }

    #[test]
    fn step_simulation_agrees_with_numeric_integration_within_a_minute(
        fill in 3u32..8, day in 10u32..80, night in 10u32..80, start_day in 0i64..300, start_hour in 0u32..24,
    ) {
        let filled = local(2027, 1, 1, 0, 0) + Duration::days(start_day) + Duration::hours(i64::from(start_hour));
        let i = inputs(&fill.to_string(), "2", "100", flex_programme(filled, day, night, 1), filled, 365);
        let simulated = forecast(&i, chicago().local_date(filled)).alarm_at.expect("alarm");
        // Start inside the 02:00 hour of the spring-forward day too (covered by start_hour).
        let integrated = integrate(&i);
        prop_assert!((simulated - integrated).num_seconds().abs() <= 60, "{simulated} vs {integrated}");
    }
}

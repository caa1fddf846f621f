//! Japanese national holidays (国民の祝日), computed from the Act on National Holidays
//! (国民の祝日に関する法律, 昭和23年法律第178号) and the special laws that added or moved days,
//! each rule with the years it applied. Covers 1955–2099.
//!
//! What the engine applies, in order:
//! 1. The holidays of Article 2, each with the years of the amendment that created, moved or
//!    renamed it (Happy Monday rules from 2000 and 2003; the Emperor's Birthday with each reign;
//!    Mountain Day from 2016; the Olympic moves of 2020 and 2021), and the vernal and autumnal
//!    equinox days by the usual astronomical approximation (valid 1900–2099) unless the calendar
//!    gives the officially published date.
//! 2. The days made holidays by special laws (1959, 1989, 1990, 1993, 2019).
//! 3. Substitute holidays (振替休日, Article 3(2)) from 1973-04-12: until 2006 the Monday after a
//!    holiday on a Sunday; from 2007 the first following day that is not a national holiday.
//! 4. Citizens' holidays (国民の休日, Article 3(3)) from 1985-12-27: a day between two national
//!    holidays; until 2006 not when it was a Sunday or a substitute holiday. The 2019 accession
//!    day counts as a national holiday for this rule (which made 2019-04-30 and 05-02 holidays).

use std::collections::BTreeMap;

use jiff::civil::{Date, Weekday};
use serde::Serialize;

/// First year the engine covers.
pub const FIRST_YEAR: i16 = 1955;
/// Last year the engine covers (the limit of the equinox approximation).
pub const LAST_YEAR: i16 = 2099;

/// What made a day a holiday.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HolidayKind {
    /// A holiday of Article 2 of the Act (国民の祝日).
    National,
    /// A day made a holiday by a special law (e.g. an imperial ceremony).
    Special,
    /// A substitute holiday (振替休日) for a holiday that fell on a Sunday.
    Substitute,
    /// A citizens' holiday (国民の休日) between two national holidays.
    Citizens,
}

/// One holiday.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Holiday {
    /// The date.
    pub date: Date,
    /// Its name in Japanese, as the law names it.
    pub name: &'static str,
    /// Its name in English.
    pub name_en: &'static str,
    /// What made it a holiday.
    pub kind: HolidayKind,
}

/// The year is outside 1955–2099.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error(
    "Japanese national holidays are computed for {FIRST_YEAR}–{LAST_YEAR}; {year} is outside that range"
)]
pub struct YearOutOfRange {
    /// The year asked for.
    pub year: i16,
}

/// Officially published equinox days that replace the approximation for some years.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EquinoxOverrides {
    vernal: BTreeMap<i16, Date>,
    autumnal: BTreeMap<i16, Date>,
}

impl EquinoxOverrides {
    /// Uses `date` as the vernal equinox day of its year.
    pub fn set_vernal(&mut self, date: Date) {
        self.vernal.insert(date.year(), date);
    }

    /// Uses `date` as the autumnal equinox day of its year.
    pub fn set_autumnal(&mut self, date: Date) {
        self.autumnal.insert(date.year(), date);
    }
}

/// When in the year a holiday of Article 2 falls.
#[derive(Clone, Copy, Debug)]
enum When {
    /// A fixed month and day.
    Fixed(i8, i8),
    /// The n-th Monday of a month (the Happy Monday system).
    NthMonday(i8, i8),
    /// The vernal equinox day.
    Vernal,
    /// The autumnal equinox day.
    Autumnal,
}

/// A holiday of Article 2 as it stood for a span of years (both ends inclusive).
struct Rule {
    name: &'static str,
    name_en: &'static str,
    when: When,
    from: i16,
    to: i16,
}

const fn rule(name: &'static str, name_en: &'static str, when: When, from: i16, to: i16) -> Rule {
    Rule {
        name,
        name_en,
        when,
        from,
        to,
    }
}

/// The Act took effect on 1948-07-20; 9999 means "still in force".
const ACT: i16 = 1948;
const NOW: i16 = 9999;

const RULES: &[Rule] = &[
    rule("元日", "New Year's Day", When::Fixed(1, 1), ACT, NOW),
    // The Happy Monday amendment of 1998 (in force 2000) moved it to the second Monday.
    rule(
        "成人の日",
        "Coming of Age Day",
        When::Fixed(1, 15),
        ACT,
        1999,
    ),
    rule(
        "成人の日",
        "Coming of Age Day",
        When::NthMonday(1, 2),
        2000,
        NOW,
    ),
    // Added in 1966, the date set by cabinet order that December: first kept in 1967.
    rule(
        "建国記念の日",
        "National Foundation Day",
        When::Fixed(2, 11),
        1967,
        NOW,
    ),
    rule("春分の日", "Vernal Equinox Day", When::Vernal, ACT, NOW),
    // The Emperor's Birthday follows the reign: Showa (4/29), Heisei (12/23, from the 1989
    // amendment), Reiwa (2/23, from 2020; 2019 had none).
    rule(
        "天皇誕生日",
        "The Emperor's Birthday",
        When::Fixed(4, 29),
        ACT,
        1988,
    ),
    rule(
        "天皇誕生日",
        "The Emperor's Birthday",
        When::Fixed(12, 23),
        1989,
        2018,
    ),
    rule(
        "天皇誕生日",
        "The Emperor's Birthday",
        When::Fixed(2, 23),
        2020,
        NOW,
    ),
    // 4/29 became Greenery Day in 1989 and Showa Day in 2007, when Greenery Day moved to 5/4.
    rule("みどりの日", "Greenery Day", When::Fixed(4, 29), 1989, 2006),
    rule("昭和の日", "Showa Day", When::Fixed(4, 29), 2007, NOW),
    rule(
        "憲法記念日",
        "Constitution Memorial Day",
        When::Fixed(5, 3),
        ACT,
        NOW,
    ),
    rule("みどりの日", "Greenery Day", When::Fixed(5, 4), 2007, NOW),
    rule("こどもの日", "Children's Day", When::Fixed(5, 5), ACT, NOW),
    // Marine Day from 1996; third Monday of July from 2003; moved for the Tokyo Olympics.
    rule("海の日", "Marine Day", When::Fixed(7, 20), 1996, 2002),
    rule("海の日", "Marine Day", When::NthMonday(7, 3), 2003, 2019),
    rule("海の日", "Marine Day", When::Fixed(7, 23), 2020, 2020),
    rule("海の日", "Marine Day", When::Fixed(7, 22), 2021, 2021),
    rule("海の日", "Marine Day", When::NthMonday(7, 3), 2022, NOW),
    // Mountain Day from 2016; moved for the Tokyo Olympics.
    rule("山の日", "Mountain Day", When::Fixed(8, 11), 2016, 2019),
    rule("山の日", "Mountain Day", When::Fixed(8, 10), 2020, 2020),
    rule("山の日", "Mountain Day", When::Fixed(8, 8), 2021, 2021),
    rule("山の日", "Mountain Day", When::Fixed(8, 11), 2022, NOW),
    // Respect for the Aged Day from 1966; third Monday of September from 2003.
    rule(
        "敬老の日",
        "Respect for the Aged Day",
        When::Fixed(9, 15),
        1966,
        2002,
    ),
    rule(
        "敬老の日",
        "Respect for the Aged Day",
        When::NthMonday(9, 3),
        2003,
        NOW,
    ),
    rule("秋分の日", "Autumnal Equinox Day", When::Autumnal, ACT, NOW),
    // Health and Sports Day from 1966; second Monday of October from 2000; renamed Sports Day
    // in 2020 and moved to July for the Tokyo Olympics in 2020 and 2021.
    rule(
        "体育の日",
        "Health and Sports Day",
        When::Fixed(10, 10),
        1966,
        1999,
    ),
    rule(
        "体育の日",
        "Health and Sports Day",
        When::NthMonday(10, 2),
        2000,
        2019,
    ),
    rule("スポーツの日", "Sports Day", When::Fixed(7, 24), 2020, 2020),
    rule("スポーツの日", "Sports Day", When::Fixed(7, 23), 2021, 2021),
    rule(
        "スポーツの日",
        "Sports Day",
        When::NthMonday(10, 2),
        2022,
        NOW,
    ),
    rule("文化の日", "Culture Day", When::Fixed(11, 3), ACT, NOW),
    rule(
        "勤労感謝の日",
        "Labour Thanksgiving Day",
        When::Fixed(11, 23),
        ACT,
        NOW,
    ),
];

/// Days made holidays by special laws: (year, month, day, name, English name).
const SPECIAL: &[(i16, i8, i8, &str, &str)] = &[
    (
        1959,
        4,
        10,
        "皇太子明仁親王の結婚の儀",
        "Wedding of Crown Prince Akihito",
    ),
    (
        1989,
        2,
        24,
        "昭和天皇の大喪の礼",
        "Funeral of Emperor Showa",
    ),
    (
        1990,
        11,
        12,
        "即位礼正殿の儀",
        "Enthronement Ceremony of Emperor Akihito",
    ),
    (
        1993,
        6,
        9,
        "皇太子徳仁親王の結婚の儀",
        "Wedding of Crown Prince Naruhito",
    ),
    (
        2019,
        5,
        1,
        "天皇の即位の日",
        "Accession of Emperor Naruhito",
    ),
    (
        2019,
        10,
        22,
        "即位礼正殿の儀",
        "Enthronement Ceremony of Emperor Naruhito",
    ),
];

const SUBSTITUTE_NAME: (&str, &str) = ("振替休日", "Substitute Holiday");
const CITIZENS_NAME: (&str, &str) = ("国民の休日", "Citizens' Holiday");

/// Day of March of the vernal equinox day by the usual approximation (1900–2099), in JST.
pub fn approximate_vernal_day(year: i16) -> i8 {
    equinox_day(year, 20.8357, 20.8431)
}

/// Day of September of the autumnal equinox day by the usual approximation (1900–2099), in JST.
pub fn approximate_autumnal_day(year: i16) -> i8 {
    equinox_day(year, 23.2588, 23.2488)
}

/// The approximation: a base day for the period, the mean drift of the equinox per year
/// (0.242194 days) and the leap-year correction; the 1900–1979 period counts its leap years
/// from 1983 so that truncation towards zero gives the right day before 1980.
fn equinox_day(year: i16, base_1900: f64, base_1980: f64) -> i8 {
    let y = i32::from(year);
    let (base, leap) = if y < 1980 {
        (base_1900, (y - 1983) / 4)
    } else {
        (base_1980, (y - 1980) / 4)
    };
    let day = base + 0.242194 * f64::from(y - 1980) - f64::from(leap);
    // The value is between 19 and 25 for every year the approximation is valid for.
    day.floor() as i8
}

fn checked_year(year: i16) -> Result<(), YearOutOfRange> {
    if (FIRST_YEAR..=LAST_YEAR).contains(&year) {
        Ok(())
    } else {
        Err(YearOutOfRange { year })
    }
}

fn rule_date(year: i16, when: When, overrides: &EquinoxOverrides) -> Option<Date> {
    match when {
        When::Fixed(m, d) => Date::new(year, m, d).ok(),
        When::NthMonday(m, n) => Date::new(year, m, 1)
            .ok()?
            .nth_weekday_of_month(n, Weekday::Monday)
            .ok(),
        When::Vernal => match overrides.vernal.get(&year) {
            Some(d) => Some(*d),
            None => Date::new(year, 3, approximate_vernal_day(year)).ok(),
        },
        When::Autumnal => match overrides.autumnal.get(&year) {
            Some(d) => Some(*d),
            None => Date::new(year, 9, approximate_autumnal_day(year)).ok(),
        },
    }
}

/// The national holidays of `year` in date order, using the approximated equinox days.
pub fn holidays(year: i16) -> Result<Vec<Holiday>, YearOutOfRange> {
    holidays_with(year, &EquinoxOverrides::default())
}

/// The national holidays of `year` in date order, with published equinox days from `overrides`.
pub fn holidays_with(
    year: i16,
    overrides: &EquinoxOverrides,
) -> Result<Vec<Holiday>, YearOutOfRange> {
    checked_year(year)?;
    let mut days: BTreeMap<Date, Holiday> = BTreeMap::new();
    for r in RULES.iter().filter(|r| (r.from..=r.to).contains(&year)) {
        if let Some(date) = rule_date(year, r.when, overrides) {
            days.insert(
                date,
                Holiday {
                    date,
                    name: r.name,
                    name_en: r.name_en,
                    kind: HolidayKind::National,
                },
            );
        }
    }
    for &(y, m, d, name, name_en) in SPECIAL.iter().filter(|s| s.0 == year) {
        if let Ok(date) = Date::new(y, m, d) {
            days.insert(
                date,
                Holiday {
                    date,
                    name,
                    name_en,
                    kind: HolidayKind::Special,
                },
            );
        }
    }
    let national: Vec<Date> = days.keys().copied().collect();

    // Article 3(2): substitute holidays, from the 1973 amendment.
    let substitute_from = Date::constant(1973, 4, 12);
    let new_rule_from = Date::constant(2007, 1, 1);
    let mut substitutes = Vec::new();
    for &h in &national {
        if h < substitute_from || h.weekday() != Weekday::Sunday {
            continue;
        }
        let Ok(mut next) = h.tomorrow() else { continue };
        if h < new_rule_from {
            if days.contains_key(&next) {
                continue;
            }
        } else {
            while days.contains_key(&next) {
                let Ok(n) = next.tomorrow() else { break };
                next = n;
            }
        }
        substitutes.push(next);
    }
    for date in substitutes {
        days.entry(date).or_insert(Holiday {
            date,
            name: SUBSTITUTE_NAME.0,
            name_en: SUBSTITUTE_NAME.1,
            kind: HolidayKind::Substitute,
        });
    }

    // Article 3(3): citizens' holidays, from the 1985 amendment.
    let citizens_from = Date::constant(1985, 12, 27);
    let mut citizens = Vec::new();
    for pair in national.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        let Ok(between) = before.tomorrow() else {
            continue;
        };
        if between < citizens_from || between.tomorrow().ok() != Some(after) {
            continue;
        }
        // Until 2006 the rule excluded Sundays (and substitute holidays, which are holidays
        // already); from 2007 any day that is not itself a national holiday.
        let sunday_before_2007 = between < new_rule_from && between.weekday() == Weekday::Sunday;
        if !days.contains_key(&between) && !sunday_before_2007 {
            citizens.push(between);
        }
    }
    for date in citizens {
        days.insert(
            date,
            Holiday {
                date,
                name: CITIZENS_NAME.0,
                name_en: CITIZENS_NAME.1,
                kind: HolidayKind::Citizens,
            },
        );
    }
    Ok(days.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(year: i16) -> Vec<(String, &'static str)> {
        holidays(year)
            .unwrap()
            .into_iter()
            .map(|h| (h.date.to_string(), h.name))
            .collect()
    }

    fn has(year: i16, date: &str, name: &str) -> bool {
        listed(year).iter().any(|(d, n)| d == date && *n == name)
    }

    fn is_holiday(date: &str) -> bool {
        let d: Date = date.parse().unwrap();
        holidays(d.year()).unwrap().iter().any(|h| h.date == d)
    }

    #[test]
    fn range_is_enforced() {
        assert!(holidays(1954).is_err());
        assert!(holidays(2100).is_err());
        assert!(holidays(1955).is_ok());
        assert!(holidays(2099).is_ok());
        let err = holidays(2100).unwrap_err().to_string();
        assert!(err.contains("2100") && err.contains("1955"), "{err}");
    }

    #[test]
    fn equinox_approximation_matches_known_days() {
        // (year, vernal, autumnal) as published.
        for (y, v, a) in [
            (1955, 21, 24),
            (1960, 20, 23),
            (1978, 21, 23),
            (1979, 21, 24),
            (1980, 20, 23),
            (2012, 20, 22),
            (2024, 20, 22),
            (2025, 20, 23),
            (2026, 20, 23),
            (2027, 21, 23),
        ] {
            assert_eq!(approximate_vernal_day(y), v, "vernal {y}");
            assert_eq!(approximate_autumnal_day(y), a, "autumnal {y}");
        }
    }

    #[test]
    fn equinox_override_replaces_the_approximation() {
        let mut o = EquinoxOverrides::default();
        o.set_vernal(Date::constant(2030, 3, 21));
        let with = holidays_with(2030, &o).unwrap();
        let without = holidays(2030).unwrap();
        assert!(
            with.iter()
                .any(|h| h.name == "春分の日" && h.date.day() == 21)
        );
        assert!(
            without
                .iter()
                .any(|h| h.name == "春分の日" && h.date.day() == 20)
        );
    }

    #[test]
    fn emperors_birthday_follows_the_reign() {
        assert!(has(1988, "1988-04-29", "天皇誕生日"));
        assert!(has(1989, "1989-04-29", "みどりの日"));
        assert!(has(1989, "1989-12-23", "天皇誕生日"));
        assert!(has(2018, "2018-12-23", "天皇誕生日"));
        assert!(listed(2019).iter().all(|(_, n)| *n != "天皇誕生日"));
        assert!(has(2020, "2020-02-23", "天皇誕生日"));
        assert!(!is_holiday("2019-02-23") && !is_holiday("2019-12-23"));
    }

    #[test]
    fn greenery_and_showa_day() {
        assert!(has(2006, "2006-04-29", "みどりの日"));
        assert!(has(2006, "2006-05-04", "国民の休日"));
        assert!(has(2007, "2007-04-29", "昭和の日"));
        assert!(has(2007, "2007-05-04", "みどりの日"));
    }

    #[test]
    fn happy_monday_rules_take_effect_in_2000_and_2003() {
        assert!(has(1999, "1999-01-15", "成人の日"));
        assert!(has(2000, "2000-01-10", "成人の日"));
        assert!(has(1999, "1999-10-11", "振替休日")); // 1999-10-10 was a Sunday
        assert!(has(2000, "2000-10-09", "体育の日"));
        assert!(has(2002, "2002-07-20", "海の日"));
        assert!(has(2003, "2003-07-21", "海の日"));
        assert!(has(2002, "2002-09-16", "振替休日")); // 9/15 was a Sunday
        assert!(has(2003, "2003-09-15", "敬老の日"));
    }

    #[test]
    fn holidays_start_in_their_years() {
        assert!(!is_holiday("1966-02-11"));
        assert!(has(1967, "1967-02-11", "建国記念の日"));
        assert!(!is_holiday("1965-09-15") && has(1966, "1966-09-15", "敬老の日"));
        assert!(has(1966, "1966-10-10", "体育の日"));
        assert!(!is_holiday("1995-07-20") && has(1996, "1996-07-20", "海の日"));
        assert!(!is_holiday("2015-08-11") && has(2016, "2016-08-11", "山の日"));
        assert!(has(2019, "2019-10-14", "体育の日"));
        assert!(has(2022, "2022-10-10", "スポーツの日"));
    }

    #[test]
    fn olympic_moves_of_2020_and_2021() {
        assert!(has(2020, "2020-07-23", "海の日"));
        assert!(has(2020, "2020-07-24", "スポーツの日"));
        assert!(has(2020, "2020-08-10", "山の日"));
        assert!(!is_holiday("2020-10-12") && !is_holiday("2020-07-20"));
        assert!(has(2021, "2021-07-22", "海の日"));
        assert!(has(2021, "2021-07-23", "スポーツの日"));
        assert!(has(2021, "2021-08-08", "山の日"));
        assert!(has(2021, "2021-08-09", "振替休日"));
        assert!(!is_holiday("2021-10-11") && !is_holiday("2021-08-11"));
    }

    #[test]
    fn substitute_holidays_start_on_1973_04_12() {
        // 1973-02-11 was a Sunday, before the amendment: no substitute.
        assert!(!is_holiday("1973-02-12"));
        // The first substitute holiday.
        assert!(has(1973, "1973-04-30", "振替休日"));
        assert!(has(1973, "1973-09-24", "振替休日"));
    }

    #[test]
    fn substitute_rule_of_2007_skips_following_holidays() {
        // 2008-05-04 (Sunday) → 05-06, because 05-05 is a holiday.
        assert!(has(2008, "2008-05-06", "振替休日"));
        // 2009-05-03 (Sunday) → 05-06.
        assert!(has(2009, "2009-05-06", "振替休日"));
        // Under the old rule the substitute was the Monday: 2001-09-23 (Sunday) → 09-24.
        assert!(has(2001, "2001-09-24", "振替休日"));
        // 1997-05-04 was a Sunday between two holidays: not a citizens' holiday before 2007,
        // and not a national holiday, so no substitute either.
        assert!(!is_holiday("1997-05-04") && !is_holiday("1997-05-06"));
    }

    #[test]
    fn citizens_holidays() {
        // 1986-05-04 was a Sunday (excluded), 1987-05-04 a substitute; 1988 the first.
        assert!(!has(1986, "1986-05-04", "国民の休日"));
        assert!(has(1987, "1987-05-04", "振替休日"));
        assert!(has(1988, "1988-05-04", "国民の休日"));
        // Silver week.
        assert!(has(2009, "2009-09-22", "国民の休日"));
        assert!(has(2015, "2015-09-22", "国民の休日"));
        assert!(has(2026, "2026-09-22", "国民の休日"));
        assert!(has(2032, "2032-09-21", "国民の休日"));
        // The accession day counts as a national holiday for Article 3(3).
        assert!(has(2019, "2019-04-30", "国民の休日"));
        assert!(has(2019, "2019-05-02", "国民の休日"));
    }

    #[test]
    fn special_laws() {
        assert!(has(1959, "1959-04-10", "皇太子明仁親王の結婚の儀"));
        assert!(has(1989, "1989-02-24", "昭和天皇の大喪の礼"));
        assert!(has(1990, "1990-11-12", "即位礼正殿の儀"));
        assert!(has(1993, "1993-06-09", "皇太子徳仁親王の結婚の儀"));
        assert!(has(2019, "2019-05-01", "天皇の即位の日"));
        assert!(has(2019, "2019-10-22", "即位礼正殿の儀"));
    }

    #[test]
    fn every_year_is_sorted_named_and_plausible() {
        for year in FIRST_YEAR..=LAST_YEAR {
            let list = holidays(year).unwrap();
            assert!(list.windows(2).all(|w| w[0].date < w[1].date), "{year}");
            assert!(list.iter().all(|h| h.date.year() == year));
            assert!(
                list.iter()
                    .all(|h| !h.name.is_empty() && !h.name_en.is_empty())
            );
            assert!((9..=26).contains(&list.len()), "{year}: {}", list.len());
            // No substitute holiday on a Sunday, and every Sunday holiday from 1973-04-12 on has
            // its substitute in the days after it.
            for h in &list {
                assert!(h.kind != HolidayKind::Substitute || h.date.weekday() != Weekday::Sunday);
            }
        }
    }
}

//! When a waiting caller hears what: the announcement schedule of one call, sans-IO.
//!
//! The options follow Asterisk's queues.conf, so a site moving from Asterisk finds its
//! settings again:
//!
//! | option | meaning |
//! |---|---|
//! | `announce_frequency` | position and estimated wait on entry, then every N seconds (0: on entry only) |
//! | `min_announce_frequency` | at least this long between any two announcements |
//! | `announce_position` | `yes`, `no`, `limit` (only at or under the limit), `more` (above the limit: "more than L callers ahead") |
//! | `announce_holdtime` | `yes`, `no`, `once` (the first announcement only) |
//! | `announce_round_seconds` | the estimated wait is rounded to this (30 s by default) |
//! | `periodic_announce` | prompts played in turn (or at random) every `periodic_announce_frequency` |
//!
//! `welcome` is not among them: it is what every caller hears as soon as its call is
//! answered ([`Experience::entry_prompts`]), whole, also when an agent is free; the caller
//! joins the queue when it ends, so the welcome is never queue wait.
//!
//! Time is the call's own: seconds since it joined the queue. The call task asks
//! [`Schedule::next_due`] when to wake, and [`Schedule::due`] what is due then; an
//! announcement of position and wait needs the ACD's estimate, which the call task
//! fetches and hands to [`Schedule::position_prompts`].

use std::time::Duration;

use serde::Deserialize;

use crate::call::phrases::{self, Language};

/// `announce_position`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum AnnouncePosition {
    /// Always.
    #[default]
    Yes,
    /// Never.
    No,
    /// Only when the position is at or under the limit.
    Limit,
    /// Above the limit, "more than L callers ahead"; at or under it, the position.
    More,
}

/// `announce_holdtime`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum AnnounceHoldtime {
    /// Every time.
    #[default]
    Yes,
    /// Never.
    No,
    /// The first announcement only.
    Once,
}

/// A queue's caller experience: announcements, music, menu, survey.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Experience {
    /// Prompt language: `it` or `en`.
    pub(crate) language: String,
    /// Play the welcome prompt to every caller as its call is answered, whole, before it
    /// joins the queue (also when an agent is free).
    pub(crate) welcome: bool,
    /// Music on hold: a file under `prompts/music/` without `.wav`, or a path to a WAV.
    pub(crate) music: String,
    /// Seconds between position and wait announcements (0: on entry only).
    pub(crate) announce_frequency: f64,
    /// Seconds at least between any two announcements.
    pub(crate) min_announce_frequency: f64,
    /// See the module documentation.
    pub(crate) announce_position: AnnouncePosition,
    /// The limit of `announce_position = "limit" | "more"`.
    pub(crate) announce_position_limit: u32,
    /// See the module documentation.
    pub(crate) announce_holdtime: AnnounceHoldtime,
    /// The estimated wait is rounded to this many seconds.
    pub(crate) announce_round_seconds: f64,
    /// Prompts (names under the language folder) played periodically.
    pub(crate) periodic_announce: Vec<String>,
    /// Seconds between periodic announcements (0: none).
    pub(crate) periodic_announce_frequency: f64,
    /// Pick periodic announcements at random rather than in turn.
    pub(crate) random_periodic_announce: bool,
    /// Offer the in-queue menu (1: call me back, 0: leave the queue) after the first
    /// announcement.
    pub(crate) menu: bool,
    /// Ask the caller to rate the call after the agent hangs up.
    pub(crate) survey: bool,
    /// Seconds the caller has to vote once the survey question ends.
    pub(crate) survey_timeout: f64,
}

impl Default for Experience {
    fn default() -> Self {
        Experience {
            language: "it".into(),
            welcome: true,
            music: "default".into(),
            announce_frequency: 60.0,
            min_announce_frequency: 15.0,
            announce_position: AnnouncePosition::Yes,
            announce_position_limit: 5,
            announce_holdtime: AnnounceHoldtime::Yes,
            announce_round_seconds: 30.0,
            periodic_announce: vec!["periodic-1".into()],
            periodic_announce_frequency: 45.0,
            random_periodic_announce: false,
            menu: false,
            survey: false,
            survey_timeout: 8.0,
        }
    }
}

impl Experience {
    /// What every caller hears as soon as its call is answered, before it joins the queue:
    /// the welcome, if the queue has one.
    pub(crate) fn entry_prompts(&self) -> Vec<String> {
        if self.welcome {
            vec!["welcome".to_owned()]
        } else {
            Vec::new()
        }
    }

    /// Why the settings cannot work, naming the field.
    pub(crate) fn check(&self) -> Result<Language, (&'static str, String)> {
        let language = self
            .language
            .parse::<Language>()
            .map_err(|_| ("language", format!("'{}' is not it or en", self.language)))?;
        for (field, value) in [
            ("announce_frequency", self.announce_frequency),
            ("min_announce_frequency", self.min_announce_frequency),
            (
                "periodic_announce_frequency",
                self.periodic_announce_frequency,
            ),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err((field, "must be a number of seconds, 0 or more".into()));
            }
        }
        for (field, value) in [
            ("announce_round_seconds", self.announce_round_seconds),
            ("survey_timeout", self.survey_timeout),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err((field, "must be a number of seconds above 0".into()));
            }
        }
        if self.periodic_announce_frequency > 0.0 && self.periodic_announce.is_empty() {
            return Err((
                "periodic_announce",
                "lists no prompt but periodic_announce_frequency is set".into(),
            ));
        }
        Ok(language)
    }
}

/// What is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Announce position and wait: fetch the estimate, then [`Schedule::position_prompts`].
    Position,
    /// Play this periodic announcement.
    Periodic(String),
}

/// One call's announcement schedule.
#[derive(Clone, Debug)]
pub(crate) struct Schedule {
    experience: Experience,
    language: Language,
    next_position: Option<Duration>,
    next_periodic: Option<Duration>,
    last_announcement: Option<Duration>,
    announced_holdtime: bool,
    periodic_turn: usize,
    /// A small deterministic generator for random periodic announcements.
    random: u64,
}

fn secs(value: f64) -> Option<Duration> {
    (value > 0.0).then(|| Duration::from_secs_f64(value))
}

/// Whether a position announcement would say anything: the position, the estimated wait,
/// or (the first time) the in-queue menu. When it would say nothing none is due, so the
/// ACD is asked for no estimate and no `announced` is recorded: the caller was told
/// nothing.
fn speaks(experience: &Experience, first: bool) -> bool {
    experience.announce_position != AnnouncePosition::No
        || experience.announce_holdtime != AnnounceHoldtime::No
        || (first && experience.menu)
}

impl Schedule {
    /// The schedule of a call that joined at time zero; the entry announcement is due at
    /// once.
    pub(crate) fn new(experience: Experience, language: Language, seed: u64) -> Schedule {
        let next_periodic = secs(experience.periodic_announce_frequency);
        let next_position = speaks(&experience, true).then_some(Duration::ZERO);
        Schedule {
            experience,
            language,
            next_position,
            next_periodic,
            last_announcement: None,
            announced_holdtime: false,
            periodic_turn: 0,
            random: seed | 1,
        }
    }

    /// When something is next due, from the call's entry.
    pub(crate) fn next_due(&self) -> Option<Duration> {
        let gap = secs(self.experience.min_announce_frequency).unwrap_or_default();
        let earliest = self.last_announcement.map(|last| last + gap);
        let due = match (self.next_position, self.next_periodic) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(earliest.map_or(due, |earliest| due.max(earliest)))
    }

    /// What is due at `now` (from the call's entry), if anything; the position comes first
    /// when both are due.
    pub(crate) fn due(&mut self, now: Duration) -> Option<Due> {
        if self.next_due().is_none_or(|due| due > now) {
            return None;
        }
        if self.next_position.is_some_and(|at| at <= now) {
            self.next_position = secs(self.experience.announce_frequency)
                .filter(|_| speaks(&self.experience, false))
                .map(|every| now + every);
            self.last_announcement = Some(now);
            return Some(Due::Position);
        }
        if self.next_periodic.is_some_and(|at| at <= now) {
            self.next_periodic =
                secs(self.experience.periodic_announce_frequency).map(|every| now + every);
            self.last_announcement = Some(now);
            let prompts = &self.experience.periodic_announce;
            let index = if self.experience.random_periodic_announce {
                // xorshift64: reproducible per call, no global generator.
                self.random ^= self.random << 13;
                self.random ^= self.random >> 7;
                self.random ^= self.random << 17;
                (self.random % prompts.len() as u64) as usize
            } else {
                let turn = self.periodic_turn % prompts.len();
                self.periodic_turn += 1;
                turn
            };
            return Some(Due::Periodic(prompts[index].clone()));
        }
        None
    }

    /// The prompts of a position-and-wait announcement, for the caller at `position` (1
    /// for the first) with `estimated_wait`; empty when nothing is to be said.
    pub(crate) fn position_prompts(
        &mut self,
        position: u32,
        estimated_wait: Option<Duration>,
    ) -> Vec<String> {
        let e = &self.experience;
        let limit = e.announce_position_limit;
        let mut prompts = match e.announce_position {
            AnnouncePosition::No => Vec::new(),
            AnnouncePosition::Yes => phrases::position(self.language, position),
            AnnouncePosition::Limit if position <= limit => {
                phrases::position(self.language, position)
            }
            AnnouncePosition::Limit => Vec::new(),
            AnnouncePosition::More if position > limit => phrases::more_than(self.language, limit),
            AnnouncePosition::More => phrases::position(self.language, position),
        };
        let say_wait = match e.announce_holdtime {
            AnnounceHoldtime::Yes => true,
            AnnounceHoldtime::No => false,
            AnnounceHoldtime::Once => !self.announced_holdtime,
        };
        if say_wait && let Some(wait) = estimated_wait {
            let round_to = Duration::from_secs_f64(e.announce_round_seconds);
            prompts.extend(phrases::estimated_wait(self.language, wait, round_to));
            self.announced_holdtime = true;
        }
        prompts
    }

    /// The language.
    pub(crate) fn language(&self) -> Language {
        self.language
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    /// Runs the schedule over virtual time, one second at a time, collecting what is due.
    fn run(experience: Experience, until: u64) -> Vec<(u64, Due)> {
        let mut schedule = Schedule::new(experience, Language::English, 7);
        let mut out = Vec::new();
        let mut now = 0;
        while now <= until {
            match schedule.next_due() {
                Some(due) if due <= s(until) => {
                    now = due.as_secs().max(now);
                    while let Some(what) = schedule.due(s(now)) {
                        out.push((now, what));
                    }
                    now += 1;
                }
                _ => break,
            }
        }
        out
    }

    #[test]
    fn position_on_entry_then_every_announce_frequency_with_periodic_between() {
        let experience = Experience {
            announce_frequency: 60.0,
            periodic_announce_frequency: 45.0,
            min_announce_frequency: 15.0,
            periodic_announce: vec!["periodic-1".into(), "periodic-2".into()],
            ..Experience::default()
        };
        let due = run(experience, 200);
        assert_eq!(
            due,
            [
                (0, Due::Position),
                (45, Due::Periodic("periodic-1".into())),
                (60, Due::Position),
                (90, Due::Periodic("periodic-2".into())),
                (120, Due::Position),
                (135, Due::Periodic("periodic-1".into())),
                // Both due at 180: the position first, the periodic 15 s later.
                (180, Due::Position),
                (195, Due::Periodic("periodic-2".into())),
            ]
        );
    }

    #[test]
    fn a_queue_that_says_neither_position_nor_wait_announces_nothing() {
        let silent = Experience {
            announce_frequency: 60.0,
            announce_position: AnnouncePosition::No,
            announce_holdtime: AnnounceHoldtime::No,
            periodic_announce: Vec::new(),
            periodic_announce_frequency: 0.0,
            ..Experience::default()
        };
        assert_eq!(run(silent.clone(), 200), []);
        // With the menu, the first announcement offers it, and that is all.
        let menu = Experience {
            menu: true,
            ..silent
        };
        assert_eq!(run(menu, 200), [(0, Due::Position)]);
    }

    #[test]
    fn the_minimum_gap_pushes_a_colliding_announcement_back() {
        let experience = Experience {
            announce_frequency: 50.0,
            periodic_announce_frequency: 45.0,
            min_announce_frequency: 20.0,
            ..Experience::default()
        };
        let due = run(experience, 130);
        // The position due at 50 waits until 20 s after the periodic at 45.
        assert_eq!(
            due,
            [
                (0, Due::Position),
                (45, Due::Periodic("periodic-1".into())),
                (65, Due::Position),
                (90, Due::Periodic("periodic-1".into())),
                (115, Due::Position),
            ]
        );
    }

    #[test]
    fn zero_frequencies_mean_entry_only_and_no_periodic() {
        let experience = Experience {
            announce_frequency: 0.0,
            periodic_announce_frequency: 0.0,
            ..Experience::default()
        };
        assert_eq!(run(experience, 1000), [(0, Due::Position)]);
    }

    #[test]
    fn random_periodic_announcements_stay_in_the_list_and_are_reproducible() {
        let experience = Experience {
            announce_frequency: 0.0,
            periodic_announce_frequency: 10.0,
            min_announce_frequency: 0.0,
            random_periodic_announce: true,
            periodic_announce: vec!["periodic-1".into(), "periodic-2".into()],
            ..Experience::default()
        };
        let first = run(experience.clone(), 500);
        assert_eq!(first, run(experience, 500));
        let names: std::collections::BTreeSet<_> = first
            .iter()
            .filter_map(|(_, d)| match d {
                Due::Periodic(n) => Some(n.clone()),
                Due::Position => None,
            })
            .collect();
        assert_eq!(names.len(), 2, "both get played over 50 announcements");
    }

    #[test]
    fn position_and_holdtime_options() {
        let mut schedule = Schedule::new(Experience::default(), Language::English, 1);
        let mut both = schedule.position_prompts(3, Some(s(130)));
        assert_eq!(
            both.drain(..3).collect::<Vec<_>>(),
            ["you-are-number", "n-3", "in-queue"]
        );
        assert_eq!(both[0], "estimated-wait");
        assert!(
            schedule.position_prompts(2, None).len() == 3,
            "no estimate: position only"
        );

        let limit = Experience {
            announce_position: AnnouncePosition::Limit,
            announce_position_limit: 5,
            ..Experience::default()
        };
        let mut schedule = Schedule::new(limit, Language::English, 1);
        assert_eq!(schedule.position_prompts(6, None), Vec::<String>::new());
        assert_eq!(
            schedule.position_prompts(5, None),
            ["you-are-number", "n-5", "in-queue"]
        );

        let more = Experience {
            announce_position: AnnouncePosition::More,
            announce_position_limit: 5,
            ..Experience::default()
        };
        let mut schedule = Schedule::new(more, Language::Italian, 1);
        assert_eq!(
            schedule.position_prompts(9, None),
            ["more-than", "n-5", "callers-ahead"]
        );

        let once = Experience {
            announce_holdtime: AnnounceHoldtime::Once,
            announce_position: AnnouncePosition::No,
            ..Experience::default()
        };
        let mut schedule = Schedule::new(once, Language::English, 1);
        assert!(!schedule.position_prompts(1, Some(s(300))).is_empty());
        assert!(
            schedule.position_prompts(1, Some(s(300))).is_empty(),
            "once"
        );
    }

    #[test]
    fn the_welcome_is_heard_on_entry_and_never_in_a_position_announcement() {
        let experience = Experience::default();
        assert_eq!(experience.entry_prompts(), ["welcome"]);
        let mut schedule = Schedule::new(experience, Language::Italian, 1);
        for (position, wait) in [(1, None), (1, Some(s(30))), (7, Some(s(400)))] {
            let prompts = schedule.position_prompts(position, wait);
            assert!(!prompts.is_empty());
            assert!(!prompts.iter().any(|p| p == "welcome"), "{prompts:?}");
        }
        let without = Experience {
            welcome: false,
            ..Experience::default()
        };
        assert!(without.entry_prompts().is_empty());
    }

    #[test]
    fn the_settings_of_earlier_configurations_still_read() {
        // Every field a configuration may already hold, as the demo and deploy/ write them.
        let text = r#"
            language = "it"
            welcome = true
            music = "default"
            announce_frequency = 60
            min_announce_frequency = 15
            announce_position = "more"
            announce_position_limit = 10
            announce_holdtime = "once"
            announce_round_seconds = 30
            periodic_announce = ["periodic-1", "periodic-2"]
            periodic_announce_frequency = 45
            random_periodic_announce = false
            menu = true
            survey = true
            survey_timeout = 8
        "#;
        let experience: Experience = toml::from_str(text).expect("the fields read");
        assert!(experience.welcome && experience.menu && experience.survey);
        assert_eq!(experience.entry_prompts(), ["welcome"]);
        // A misspelt field is still refused, by name.
        let error = toml::from_str::<Experience>("welcome_always = true").unwrap_err();
        assert!(error.to_string().contains("welcome_always"), "{error}");
    }

    #[test]
    fn settings_are_checked_by_name() {
        let bad = Experience {
            language: "fr".into(),
            ..Experience::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "language");
        let bad = Experience {
            announce_round_seconds: 0.0,
            ..Experience::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "announce_round_seconds");
        let bad = Experience {
            periodic_announce: vec![],
            ..Experience::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "periodic_announce");
        assert_eq!(Experience::default().check(), Ok(Language::Italian));
    }
}

//! Announcements assembled from prompt names: what a waiting caller hears about their place
//! in the queue and their wait.
//!
//! A prompt name is a file stem: the media layer plays `prompts/<language>/<name>.wav` for
//! each name in turn, back to back (every stock prompt carries 50 ms of silence before its
//! speech and 150 ms after, so the words flow). `prompts/README.md` lists every name with
//! its text in both languages. Both languages have the same names and the same word order,
//! so the functions here differ by language only where the words do: Italian says
//! "un minuto", not "uno minuto", so it has a prompt `un`.
//!
//! Numbers are recorded whole, `n-0` to `n-100`: Italian elides and contracts them
//! ("ventuno", "ventotto"), so they cannot be composed from parts. Above 100 the
//! announcements say "more than" instead (see each function).
//!
//! ```text
//! position(Italian, 3)      you-are-number n-3 in-queue       Lei è il numero tre in coda.
//! more_than(English, 10)    more-than n-10 callers-ahead      There are more than ten callers
//!                                                             ahead of you.
//! estimated_wait(Italian, 50 s, round_to 30 s)
//!                           estimated-wait about un minute    L'attesa stimata è di circa un
//!                                                             minuto.
//! ```
//!
//! Check a prompt folder against [`all_names`] at startup, so that a missing file is a clear
//! error then rather than silence in the middle of a call.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The highest number with its own prompt (`n-0` to `n-100`).
const MAX_NUMBER: u32 = 100;

/// The prompts that are not numbers, in the order of `prompts/README.md`.
const NAMES: [&str; 22] = [
    "welcome",
    "you-are-number",
    "in-queue",
    "more-than",
    "callers-ahead",
    "estimated-wait",
    "about",
    "over",
    "un",
    "minute",
    "minutes",
    "less-than-a-minute",
    "periodic-1",
    "periodic-2",
    "menu",
    "callback-number",
    "callback-confirm",
    "callback-intro",
    "survey",
    "survey-thanks",
    "goodbye",
    "invalid-choice",
];

/// The language a caller hears: it picks the prompt folder (`prompts/it`, `prompts/en`) and
/// the few words that differ between languages.
///
/// Parsed from configuration with [`FromStr`]: `it` or `italian`, `en` or `english`, in any
/// case. Italian is the default, the reference site's language.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum Language {
    /// Italian, `it`.
    #[default]
    Italian,
    /// English, `en`.
    English,
}

impl Language {
    /// The language code, also the name of its prompt folder: `"it"` or `"en"`.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Language::Italian => "it",
            Language::English => "en",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Language {
    type Err = UnknownLanguage;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "it" | "italian" => Ok(Language::Italian),
            "en" | "english" => Ok(Language::English),
            _ => Err(UnknownLanguage(text.to_owned())),
        }
    }
}

/// A language name that is none of `it`, `italian`, `en`, `english`; holds the text given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UnknownLanguage(String);

impl fmt::Display for UnknownLanguage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown language '{}' (expected it or en)", self.0)
    }
}

impl std::error::Error for UnknownLanguage {}

/// The prompt name of a number, `n-0` to `n-100`; larger numbers are not asked for.
fn number(value: u32) -> String {
    debug_assert!(value <= MAX_NUMBER, "no prompt for {value}");
    format!("n-{}", value.min(MAX_NUMBER))
}

/// Prompt names (file stems) for "you are number N in the queue": for position 3,
/// `["you-are-number", "n-3", "in-queue"]`.
///
/// `position` counts from 1, the caller who will be answered next; 0 is not a position and
/// is announced as 1. Positions above 100 have no number prompt and say how many callers are
/// ahead instead, which stays true: position 101 (100 ahead) gives [`more_than`] 99, any
/// later position gives [`more_than`] 100.
pub(crate) fn position(language: Language, position: u32) -> Vec<String> {
    if position > MAX_NUMBER {
        return more_than(language, (position - 2).min(MAX_NUMBER));
    }
    vec![
        "you-are-number".to_owned(),
        number(position.max(1)),
        "in-queue".to_owned(),
    ]
}

/// Prompt names for "there are more than L callers ahead of you": for 10,
/// `["more-than", "n-10", "callers-ahead"]`.
///
/// For a queue that announces exact positions only up to a limit (Asterisk's
/// `announce_position = more`). A limit above 100 is announced as 100, which stays true
/// (more than 250 ahead is more than 100 ahead).
pub(crate) fn more_than(language: Language, limit: u32) -> Vec<String> {
    // Same words and order in both languages.
    _ = language;
    vec![
        "more-than".to_owned(),
        number(limit.min(MAX_NUMBER)),
        "callers-ahead".to_owned(),
    ]
}

/// Prompt names for "the estimated wait is about N minutes".
///
/// The wait is first rounded to the nearest multiple of `round_to` (half up: with 30 s, 15 s
/// rounds to 30 s and 14.9 s to 0; a zero `round_to` does not round), then said in whole
/// minutes, a partial minute counting as one (90 s is "about 2 minutes"): an estimate that
/// errs long is kinder than one that errs short. Zero is never said: a rounded wait under a
/// minute is "less than a minute". Above 100 minutes there is no number prompt, and the wait
/// is "over 100 minutes".
///
/// | wait (`round_to` 30 s) | rounded | names | English |
/// |---|---|---|---|
/// | 0 to 14.9 s | 0 s | `estimated-wait less-than-a-minute` | ... less than a minute |
/// | 15 to 44.9 s | 30 s | `estimated-wait less-than-a-minute` | ... less than a minute |
/// | 45 to 74.9 s | 60 s | `estimated-wait about n-1 minute` | ... about one minute |
/// | 75 to 104.9 s | 90 s | `estimated-wait about n-2 minutes` | ... about two minutes |
/// | 105 to 134.9 s | 120 s | `estimated-wait about n-2 minutes` | ... about two minutes |
/// | 135 to 164.9 s | 150 s | `estimated-wait about n-3 minutes` | ... about three minutes |
/// | 5955 to 6014.9 s | 5970, 6000 s | `estimated-wait about n-100 minutes` | ... about 100 min. |
/// | 6015 s or more | 6030 s or more | `estimated-wait over n-100 minutes` | ... over 100 min. |
///
/// In Italian one minute is `about un minute` ("circa un minuto", not "circa uno minuto");
/// every other count uses the number prompt: `about n-2 minutes` ("circa due minuti"),
/// `about n-21 minutes` ("circa ventuno minuti").
pub(crate) fn estimated_wait(
    language: Language,
    wait: Duration,
    round_to: Duration,
) -> Vec<String> {
    const MINUTE_NANOS: u128 = 60 * 1_000_000_000;
    // u128 nanoseconds: even Duration::MAX plus half a Duration::MAX cannot overflow.
    let wait = wait.as_nanos();
    let step = round_to.as_nanos();
    let rounded = match (wait + step / 2).checked_div(step) {
        Some(multiples) => multiples * step,
        // A zero round_to does not round.
        None => wait,
    };
    let mut names = vec!["estimated-wait".to_owned()];
    if rounded < MINUTE_NANOS {
        names.push("less-than-a-minute".to_owned());
        return names;
    }
    let minutes = rounded.div_ceil(MINUTE_NANOS);
    if minutes > u128::from(MAX_NUMBER) {
        names.extend(["over".to_owned(), number(MAX_NUMBER), "minutes".to_owned()]);
    } else if minutes == 1 {
        let one = match language {
            Language::Italian => "un".to_owned(),
            Language::English => number(1),
        };
        names.extend(["about".to_owned(), one, "minute".to_owned()]);
    } else {
        // minutes <= MAX_NUMBER here, so the conversion cannot fail.
        let count = u32::try_from(minutes).unwrap_or(MAX_NUMBER);
        names.extend(["about".to_owned(), number(count), "minutes".to_owned()]);
    }
    names
}

/// Every prompt name the module can produce, plus the stand-alone prompts the call flow
/// plays by name (`welcome`, `periodic-1`, `menu`, `survey`, ...): the catalogue of
/// `prompts/README.md`, the same in every language.
///
/// For checking a prompt folder at startup, so that a missing file is a clear error before
/// any call rather than silence in the middle of one. Music on hold (`prompts/music/`) is
/// not included.
pub(crate) fn all_names() -> Vec<String> {
    NAMES
        .iter()
        .map(|name| (*name).to_owned())
        .chain((0..=MAX_NUMBER).map(number))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    const BOTH: [Language; 2] = [Language::Italian, Language::English];

    fn secs(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    fn prompts_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")
    }

    #[test]
    fn languages_parse_print_and_default_to_italian() {
        for (text, language) in [
            ("it", Language::Italian),
            ("IT", Language::Italian),
            ("italian", Language::Italian),
            ("Italian", Language::Italian),
            ("en", Language::English),
            ("english", Language::English),
            ("EN", Language::English),
        ] {
            assert_eq!(text.parse::<Language>(), Ok(language), "{text}");
        }
        for bad in ["", "fr", "ita", " it", "en-GB"] {
            let error = bad.parse::<Language>().unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("unknown language '{bad}' (expected it or en)")
            );
        }
        assert_eq!(Language::default(), Language::Italian);
        assert_eq!(Language::Italian.as_str(), "it");
        assert_eq!(Language::English.as_str(), "en");
        assert_eq!(Language::English.to_string(), "en");
        for language in BOTH {
            assert_eq!(language.as_str().parse::<Language>(), Ok(language));
        }
    }

    #[test]
    fn positions_up_to_100_are_whole_numbers() {
        for language in BOTH {
            for (place, name) in [
                (1, "n-1"),
                (2, "n-2"),
                (21, "n-21"),
                (28, "n-28"),
                (99, "n-99"),
                (100, "n-100"),
            ] {
                assert_eq!(
                    position(language, place),
                    ["you-are-number", name, "in-queue"],
                    "{language} {place}"
                );
            }
            assert_eq!(
                position(language, 0),
                position(language, 1),
                "0 is said as 1"
            );
        }
    }

    #[test]
    fn positions_above_100_say_how_many_are_ahead() {
        for language in BOTH {
            // Position 101 has exactly 100 callers ahead: "more than 99" is the true claim.
            assert_eq!(
                position(language, 101),
                ["more-than", "n-99", "callers-ahead"]
            );
            for place in [102, 150, 1000, u32::MAX] {
                assert_eq!(
                    position(language, place),
                    ["more-than", "n-100", "callers-ahead"],
                    "{place}"
                );
            }
        }
    }

    #[test]
    fn more_than_caps_at_100() {
        for language in BOTH {
            assert_eq!(
                more_than(language, 10),
                ["more-than", "n-10", "callers-ahead"]
            );
            assert_eq!(more_than(language, 0)[1], "n-0");
            assert_eq!(more_than(language, 21)[1], "n-21");
            assert_eq!(more_than(language, 28)[1], "n-28");
            assert_eq!(more_than(language, 100)[1], "n-100");
            assert_eq!(more_than(language, 101)[1], "n-100");
            assert_eq!(more_than(language, u32::MAX)[1], "n-100");
        }
    }

    /// The table of `estimated_wait`'s documentation, with `round_to` = 30 s.
    #[test]
    fn waits_round_to_30_seconds_then_up_to_whole_minutes() {
        fn about(n: &'static str, unit: &'static str) -> Vec<&'static str> {
            vec!["estimated-wait", "about", n, unit]
        }
        let less = ["estimated-wait", "less-than-a-minute"];
        let over = ["estimated-wait", "over", "n-100", "minutes"];
        let round_to = secs(30.0);
        for (wait, italian, english) in [
            (0.0, less.to_vec(), less.to_vec()),
            (14.9, less.to_vec(), less.to_vec()),
            (15.0, less.to_vec(), less.to_vec()),
            (44.9, less.to_vec(), less.to_vec()),
            (45.0, about("un", "minute"), about("n-1", "minute")),
            (74.9, about("un", "minute"), about("n-1", "minute")),
            (75.0, about("n-2", "minutes"), about("n-2", "minutes")),
            (104.9, about("n-2", "minutes"), about("n-2", "minutes")),
            (105.0, about("n-2", "minutes"), about("n-2", "minutes")),
            (134.9, about("n-2", "minutes"), about("n-2", "minutes")),
            (135.0, about("n-3", "minutes"), about("n-3", "minutes")),
            (
                21.0 * 60.0,
                about("n-21", "minutes"),
                about("n-21", "minutes"),
            ),
            (
                28.0 * 60.0,
                about("n-28", "minutes"),
                about("n-28", "minutes"),
            ),
            (5954.9, about("n-99", "minutes"), about("n-99", "minutes")),
            (5955.0, about("n-100", "minutes"), about("n-100", "minutes")),
            (6014.9, about("n-100", "minutes"), about("n-100", "minutes")),
            (6015.0, over.to_vec(), over.to_vec()),
            (86_400.0, over.to_vec(), over.to_vec()),
        ] {
            assert_eq!(
                estimated_wait(Language::Italian, secs(wait), round_to),
                italian,
                "it {wait} s"
            );
            assert_eq!(
                estimated_wait(Language::English, secs(wait), round_to),
                english,
                "en {wait} s"
            );
        }
    }

    #[test]
    fn other_roundings_and_extremes() {
        let it = Language::Italian;
        // No rounding: any part of a minute counts, and under a minute stays under.
        assert_eq!(
            estimated_wait(it, secs(59.9), Duration::ZERO)[1],
            "less-than-a-minute"
        );
        assert_eq!(estimated_wait(it, secs(60.0), Duration::ZERO)[2], "un");
        assert_eq!(estimated_wait(it, secs(60.1), Duration::ZERO)[2], "n-2");
        // A minute: 29.9 s rounds to 0, 30 s to 60 s, 90 s to 120 s.
        assert_eq!(
            estimated_wait(it, secs(29.9), secs(60.0))[1],
            "less-than-a-minute"
        );
        assert_eq!(estimated_wait(it, secs(30.0), secs(60.0))[2], "un");
        assert_eq!(estimated_wait(it, secs(90.0), secs(60.0))[2], "n-2");
        // Nothing overflows.
        let over = ["estimated-wait", "over", "n-100", "minutes"];
        assert_eq!(estimated_wait(it, Duration::MAX, secs(30.0)), over);
        assert_eq!(estimated_wait(it, Duration::MAX, Duration::MAX), over);
        assert_eq!(
            estimated_wait(it, secs(10.0), Duration::MAX)[1],
            "less-than-a-minute"
        );
    }

    #[test]
    fn all_names_covers_every_name_produced_once() {
        let names = all_names();
        let set: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(set.len(), names.len(), "no duplicates");
        assert_eq!(names.len(), NAMES.len() + 101);
        for language in BOTH {
            let mut produced = Vec::new();
            for n in 0..=300 {
                produced.extend(position(language, n));
                produced.extend(more_than(language, n));
            }
            for seconds in (0..=7000).step_by(5) {
                let wait = Duration::from_secs(seconds);
                produced.extend(estimated_wait(language, wait, secs(30.0)));
                produced.extend(estimated_wait(language, wait, Duration::ZERO));
            }
            for name in produced {
                assert!(set.contains(name.as_str()), "{language}: {name}");
            }
        }
    }

    /// The sample rate, channel count and bits per sample of a RIFF/WAVE file's `fmt `
    /// chunk, and whether it is PCM (format tag 1).
    fn wav_format(bytes: &[u8]) -> Option<(u32, u16, u16, bool)> {
        if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return None;
        }
        let mut at = 12;
        while at + 8 <= bytes.len() {
            let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
            let body = bytes.get(at + 8..at + 8 + size)?;
            if &bytes[at..at + 4] == b"fmt " && size >= 16 {
                let tag = u16::from_le_bytes([body[0], body[1]]);
                let channels = u16::from_le_bytes([body[2], body[3]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                let bits = u16::from_le_bytes([body[14], body[15]]);
                return Some((rate, channels, bits, tag == 1));
            }
            at += 8 + size + size % 2;
        }
        None
    }

    #[test]
    fn every_name_is_a_wav_in_both_prompt_folders() {
        let names = all_names();
        for language in BOTH {
            let folder = prompts_dir().join(language.as_str());
            for name in &names {
                let path = folder.join(format!("{name}.wav"));
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(
                    wav_format(&bytes),
                    Some((8000, 1, 16, true)),
                    "{}: 8000 Hz mono 16-bit PCM",
                    path.display()
                );
            }
            // And the folder holds nothing the catalogue does not know.
            let known: BTreeSet<String> = names.iter().map(|n| format!("{n}.wav")).collect();
            for entry in std::fs::read_dir(&folder).expect("prompt folder") {
                let file = entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                assert!(
                    known.contains(&file),
                    "{}: not in all_names()",
                    folder.join(&file).display()
                );
            }
        }
    }
}

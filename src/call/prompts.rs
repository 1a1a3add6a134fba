//! The prompt library: every prompt and music file the configuration can play, loaded and
//! encoded once at start (a missing or unreadable file stops the server with its name,
//! rather than leaving a caller in silence mid-call).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use amico_media::{Clip, Playlist};

use crate::call::phrases::{self, Language};

/// Prompts every queue may use besides numbers and the periodic announcements.
pub(crate) const FIXED: [&str; 9] = [
    "welcome",
    "menu",
    "callback-number",
    "callback-confirm",
    "callback-intro",
    "survey",
    "survey-thanks",
    "goodbye",
    "invalid-choice",
];

/// Loaded prompts and music.
#[derive(Clone, Debug, Default)]
pub(crate) struct Prompts {
    clips: HashMap<(Language, String), Clip>,
    music: HashMap<String, Clip>,
}

/// The prompt folder: the configured one, else `prompts` in the working directory, else
/// the source tree's (for `cargo run`).
pub(crate) fn folder(configured: Option<&Path>) -> PathBuf {
    if let Some(dir) = configured {
        return dir.to_path_buf();
    }
    let local = PathBuf::from("prompts");
    if local.is_dir() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")
    }
}

impl Prompts {
    /// Loads, for each language used, every fixed prompt, every number and duration piece
    /// and the `extra` prompts (periodic announcements), and each music named.
    pub(crate) fn load(
        dir: &Path,
        languages: &[Language],
        extra: &[String],
        music: &[String],
    ) -> anyhow::Result<Prompts> {
        let mut prompts = Prompts::default();
        let mut names: Vec<String> = phrases::all_names();
        names.extend(FIXED.iter().map(|n| (*n).to_owned()));
        names.extend(extra.iter().cloned());
        names.sort();
        names.dedup();
        for &language in languages {
            for name in &names {
                let path = dir.join(language.as_str()).join(format!("{name}.wav"));
                let clip = Clip::from_wav(&path).map_err(|e| anyhow::anyhow!("prompts: {e}"))?;
                prompts.clips.insert((language, name.clone()), clip);
            }
        }
        for name in music {
            let path = if name.ends_with(".wav") || name.contains('/') {
                PathBuf::from(name)
            } else {
                dir.join("music").join(format!("{name}.wav"))
            };
            let clip = Clip::from_wav(&path).map_err(|e| anyhow::anyhow!("music: {e}"))?;
            prompts.music.insert(name.clone(), clip);
        }
        Ok(prompts)
    }

    /// The clips of these prompt names (names loaded at start; an unknown one is skipped).
    pub(crate) fn clips(&self, language: Language, names: &[String]) -> Vec<Clip> {
        names
            .iter()
            .filter_map(|name| self.clips.get(&(language, name.clone())).cloned())
            .collect()
    }

    /// A music loop, if loaded.
    pub(crate) fn playlist_music(&self, music: &str) -> Option<Clip> {
        self.music.get(music).cloned()
    }

    /// Prompts then music.
    pub(crate) fn playlist(&self, language: Language, names: &[String], music: &str) -> Playlist {
        Playlist::new(self.clips(language, names), self.music.get(music).cloned())
    }
}

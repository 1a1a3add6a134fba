//! What the waiting caller hears: announcements in order, then music until replaced.

use crate::{Clip, Codec};

/// What a waiting caller hears, given to [`MediaSession::play`](crate::MediaSession::play):
/// the clips of `sequence` once each, in order, then `background` looped until the next
/// `play` (music on hold). Without a background the caller hears comfort noise once the
/// sequence is over.
///
/// The application builds one per announcement, e.g. `welcome → music`, later
/// `you-are → number-3 → in-the-queue → music`. Clips are shared, so building a playlist
/// copies nothing.
#[derive(Debug, Clone, Default)]
pub struct Playlist {
    /// Played once each, in order; clips of no frames are skipped.
    pub sequence: Vec<Clip>,
    /// Looped after the sequence, with no gap and no marker between loops; `None` (or a clip
    /// of no frames) means comfort noise.
    pub background: Option<Clip>,
}

impl Playlist {
    /// A playlist of `sequence` then `background`.
    pub fn new(sequence: Vec<Clip>, background: Option<Clip>) -> Self {
        Self {
            sequence,
            background,
        }
    }

    /// Only music (or another loop), with no announcement before it.
    pub fn background(background: Clip) -> Self {
        Self::new(Vec::new(), Some(background))
    }

    /// The frames of the sequence: how many packets play before
    /// [`MediaEvent::PlaylistDone`](crate::MediaEvent::PlaylistDone).
    pub fn sequence_frames(&self) -> usize {
        self.sequence.iter().map(Clip::frames).sum()
    }
}

/// One frame of a playlist, as the session sends it.
#[derive(Debug)]
pub(crate) struct PlaybackFrame<'a> {
    /// The payload in the requested law, or `None` once the sequence is over and there is no
    /// background: the caller goes back to comfort noise.
    pub(crate) audio: Option<&'a [u8]>,
    /// The frame starts a new clip (or the playlist, or the end of it), which the stream
    /// marks as new audio.
    pub(crate) starts_clip: bool,
    /// The playlist's id, on the call where the sequence has been sent entirely (the frame
    /// carrying its last frame; the first call for a sequence without frames). Once.
    pub(crate) sequence_done: Option<u64>,
}

/// Where a playing [`Playlist`] is.
#[derive(Debug)]
pub(crate) struct Playback {
    id: u64,
    playlist: Playlist,
    /// The clip playing: an index into the sequence, or the sequence's length for the
    /// background.
    clip: usize,
    /// The next frame of that clip.
    frame: usize,
    /// Sequence frames not yet sent.
    remaining: usize,
    starts_clip: bool,
    done_reported: bool,
}

impl Playback {
    pub(crate) fn new(playlist: Playlist, id: u64) -> Self {
        Self {
            id,
            remaining: playlist.sequence_frames(),
            playlist,
            clip: 0,
            frame: 0,
            starts_clip: true,
            done_reported: false,
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The next 20 ms in `codec`'s law: pre-encoded frames, nothing computed per packet.
    pub(crate) fn next_frame(&mut self, codec: Codec) -> PlaybackFrame<'_> {
        let sequence = &self.playlist.sequence;
        while sequence
            .get(self.clip)
            .is_some_and(|clip| self.frame >= clip.frames())
        {
            self.clip += 1;
            self.frame = 0;
            self.starts_clip = true;
        }
        let clip = match sequence.get(self.clip) {
            Some(clip) => {
                self.remaining -= 1;
                Some(clip)
            }
            None => {
                let background = self
                    .playlist
                    .background
                    .as_ref()
                    .filter(|clip| clip.frames() > 0);
                if background.is_some_and(|clip| self.frame >= clip.frames()) {
                    // A loop, not a new piece: no marker.
                    self.frame = 0;
                }
                background
            }
        };
        let audio = clip.and_then(|clip| clip.frame(codec, self.frame));
        self.frame += 1;
        let sequence_done = (self.remaining == 0 && !self.done_reported).then(|| {
            self.done_reported = true;
            self.id
        });
        PlaybackFrame {
            audio,
            starts_clip: std::mem::take(&mut self.starts_clip),
            sequence_done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711;

    fn clip(name: &str, frames: usize, level: i16) -> Clip {
        Clip::from_samples(&vec![level; frames * 160], name)
    }

    /// (first byte of the frame, starts_clip, done) for `count` frames.
    fn play(playback: &mut Playback, count: usize) -> Vec<(Option<u8>, bool, Option<u64>)> {
        (0..count)
            .map(|_| {
                let frame = playback.next_frame(Codec::Pcmu);
                (
                    frame.audio.map(|audio| audio[0]),
                    frame.starts_clip,
                    frame.sequence_done,
                )
            })
            .collect()
    }

    #[test]
    fn sequence_then_looping_background_marks_each_new_clip_once() {
        let (a, b, music) = (clip("a", 2, 1000), clip("b", 1, 2000), clip("m", 2, 3000));
        let (ca, cb, cm) = (
            g711::ulaw_encode(1000),
            g711::ulaw_encode(2000),
            g711::ulaw_encode(3000),
        );
        let empty = Clip::from_samples(&[], "empty");
        let playlist = Playlist::new(vec![a, empty.clone(), b, empty], Some(music));
        assert_eq!(playlist.sequence_frames(), 3);
        let mut playback = Playback::new(playlist, 42);
        assert_eq!(playback.id(), 42);
        assert_eq!(
            play(&mut playback, 8),
            [
                (Some(ca), true, None),
                (Some(ca), false, None),
                (Some(cb), true, Some(42)),
                (Some(cm), true, None),
                (Some(cm), false, None),
                (Some(cm), false, None),
                (Some(cm), false, None),
                (Some(cm), false, None),
            ]
        );
    }

    #[test]
    fn without_background_the_playlist_ends_and_done_comes_once() {
        let mut playback = Playback::new(Playlist::new(vec![clip("a", 1, 5)], None), 7);
        let ca = g711::ulaw_encode(5);
        assert_eq!(
            play(&mut playback, 3),
            [
                (Some(ca), true, Some(7)),
                (None, true, None),
                (None, false, None)
            ]
        );
    }

    #[test]
    fn an_empty_sequence_is_done_at_once() {
        let mut playback = Playback::new(Playlist::background(clip("m", 1, 9)), 3);
        let cm = g711::ulaw_encode(9);
        assert_eq!(
            play(&mut playback, 2),
            [(Some(cm), true, Some(3)), (Some(cm), false, None)]
        );
        let mut nothing = Playback::new(Playlist::default(), 4);
        assert_eq!(play(&mut nothing, 1), [(None, true, Some(4))]);
    }
}

//! Prompt clips encoded once, and the per-call cursor that plays them.
//!
//! A clip is decoded from WAV and encoded to both PCMU and PCMA at load time,
//! so 5 000 calls playing the same greeting share two byte vectors and do no
//! codec work at all: sending a frame is taking a 160-byte slice.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Codec, FRAME_DURATION, FRAME_SAMPLES, SAMPLE_RATE};

/// Why a prompt could not be loaded or queued.
#[derive(Debug)]
pub enum PromptError {
    /// The file could not be opened or its WAV header not read.
    Open {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: hound::Error,
    },
    /// A WAV file that is not 8 kHz, 16-bit, mono integer PCM.
    Format {
        /// The file.
        path: PathBuf,
        /// Its actual format, for the message.
        found: String,
    },
    /// The sample data could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: hound::Error,
    },
    /// A prompt directory could not be listed.
    Dir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A clip id that is not in the cache.
    UnknownClip(String),
}

impl fmt::Display for PromptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromptError::Open { path, source } => {
                write!(f, "cannot open prompt {}: {source}", path.display())
            }
            PromptError::Format { path, found } => write!(
                f,
                "prompt {} is {found}; prompts must be 8000 Hz, 16-bit, mono PCM WAV \
                 (sox in.wav -r 8000 -c 1 -b 16 out.wav)",
                path.display()
            ),
            PromptError::Read { path, source } => {
                write!(
                    f,
                    "cannot read samples of prompt {}: {source}",
                    path.display()
                )
            }
            PromptError::Dir { path, source } => {
                write!(
                    f,
                    "cannot list prompt directory {}: {source}",
                    path.display()
                )
            }
            PromptError::UnknownClip(id) => write!(f, "no prompt clip with id {id:?}"),
        }
    }
}

impl std::error::Error for PromptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PromptError::Open { source, .. } | PromptError::Read { source, .. } => Some(source),
            PromptError::Dir { source, .. } => Some(source),
            PromptError::Format { .. } | PromptError::UnknownClip(_) => None,
        }
    }
}

/// One prompt, pre-encoded into whole 20 ms frames for both codecs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    frames: usize,
    /// `frames` × 160 bytes of μ-law, frame after frame.
    pcmu: Vec<u8>,
    /// `frames` × 160 bytes of A-law, frame after frame.
    pcma: Vec<u8>,
}

impl Clip {
    /// Encodes 8 kHz samples; the last frame is padded with silence.
    pub fn from_samples(samples: &[i16]) -> Clip {
        let frames = samples.len().div_ceil(FRAME_SAMPLES);
        Clip {
            frames,
            pcmu: encode_padded(Codec::Pcmu, samples, frames),
            pcma: encode_padded(Codec::Pcma, samples, frames),
        }
    }

    /// Loads an 8 kHz, 16-bit, mono PCM WAV file. Anything else is refused:
    /// resampling at load time would hide a badly produced prompt.
    pub fn load_wav(path: &Path) -> Result<Clip, PromptError> {
        let mut reader = hound::WavReader::open(path).map_err(|source| PromptError::Open {
            path: path.to_owned(),
            source,
        })?;
        check_format(path, reader.spec())?;
        let samples = reader
            .samples::<i16>()
            .collect::<Result<Vec<i16>, _>>()
            .map_err(|source| PromptError::Read {
                path: path.to_owned(),
                source,
            })?;
        Ok(Clip::from_samples(&samples))
    }

    /// Number of 20 ms frames.
    pub fn frame_count(&self) -> usize {
        self.frames
    }

    /// Playing time, in whole frames.
    pub fn duration(&self) -> Duration {
        FRAME_DURATION * u32::try_from(self.frames).unwrap_or(u32::MAX)
    }

    /// Frame `n` (160 bytes) in `codec`; past the end, a silent frame, so a
    /// stale index can never take down a call.
    pub fn frame(&self, codec: Codec, n: usize) -> &[u8] {
        let start = n.saturating_mul(FRAME_SAMPLES);
        self.encoded(codec)
            .get(start..start.saturating_add(FRAME_SAMPLES))
            .unwrap_or(codec.silence_frame())
    }

    /// All frames of the clip in `codec`, back to back.
    pub fn encoded(&self, codec: Codec) -> &[u8] {
        match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        }
    }
}

fn encode_padded(codec: Codec, samples: &[i16], frames: usize) -> Vec<u8> {
    let mut out = vec![codec.silence_byte(); frames * FRAME_SAMPLES];
    codec.encode(samples, &mut out);
    out
}

fn check_format(path: &Path, spec: hound::WavSpec) -> Result<(), PromptError> {
    let ok = spec.channels == 1
        && spec.sample_rate == SAMPLE_RATE
        && spec.bits_per_sample == 16
        && spec.sample_format == hound::SampleFormat::Int;
    if ok {
        return Ok(());
    }
    let kind = match spec.sample_format {
        hound::SampleFormat::Int => "PCM",
        hound::SampleFormat::Float => "float",
    };
    Err(PromptError::Format {
        path: path.to_owned(),
        found: format!(
            "{} Hz, {}-bit, {} channel(s) {kind}",
            spec.sample_rate, spec.bits_per_sample, spec.channels
        ),
    })
}

/// All prompt clips of the server, by id, shared by every call.
#[derive(Debug, Clone, Default)]
pub struct PromptCache {
    clips: HashMap<String, Arc<Clip>>,
}

impl PromptCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads every `*.wav` in `dir` (not recursing), each under its file stem:
    /// `prompts/greeting.wav` becomes `greeting`. The first bad file fails the
    /// whole load, so a broken prompt is found at start-up, not mid-call.
    pub fn load_dir(dir: &Path) -> Result<PromptCache, PromptError> {
        let dir_err = |source| PromptError::Dir {
            path: dir.to_owned(),
            source,
        };
        let mut cache = PromptCache::new();
        for entry in std::fs::read_dir(dir).map_err(dir_err)? {
            let path = entry.map_err(dir_err)?.path();
            let is_wav = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if is_wav && path.is_file() {
                let id = stem.to_owned();
                cache.insert(id, Clip::load_wav(&path)?);
            }
        }
        Ok(cache)
    }

    /// Loads one WAV file under `id`, replacing any clip of that id.
    pub fn load_wav(&mut self, id: impl Into<String>, path: &Path) -> Result<(), PromptError> {
        self.insert(id, Clip::load_wav(path)?);
        Ok(())
    }

    /// Adds (or replaces) a clip.
    pub fn insert(&mut self, id: impl Into<String>, clip: Clip) {
        self.clips.insert(id.into(), Arc::new(clip));
    }

    /// The clip with this id.
    pub fn get(&self, id: &str) -> Option<&Clip> {
        self.clips.get(id).map(Arc::as_ref)
    }

    /// A shared handle to the clip, for a [`Playout`] to hold.
    pub fn get_shared(&self, id: &str) -> Option<Arc<Clip>> {
        self.clips.get(id).cloned()
    }

    /// Whether a clip with this id exists (for validating flows at load time).
    pub fn contains(&self, id: &str) -> bool {
        self.clips.contains_key(id)
    }

    /// Number of clips.
    pub fn len(&self) -> usize {
        self.clips.len()
    }

    /// Whether there are no clips.
    pub fn is_empty(&self) -> bool {
        self.clips.is_empty()
    }

    /// All clip ids, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.clips.keys().map(String::as_str)
    }
}

/// One entry of a play request: a clip by id, or a pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cue<'a> {
    /// The clip with this id.
    Clip(&'a str),
    /// Silence for this many milliseconds, rounded up to whole frames.
    SilenceMs(u32),
}

#[derive(Debug, Clone)]
enum Item {
    Clip(Arc<Clip>),
    Silence(usize),
}

impl Item {
    fn frames(&self) -> usize {
        match self {
            Item::Clip(clip) => clip.frame_count(),
            Item::Silence(frames) => *frames,
        }
    }
}

/// What [`Playout::next_frame`] hands the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayoutFrame<'a> {
    /// 160 bytes to send: prompt audio, or silence when nothing is queued.
    pub payload: &'a [u8],
    /// True exactly once per drained queue: on the frame that finished it.
    /// The call sends PromptDone after sending this frame.
    pub done: bool,
}

/// Queue slots reserved per call: a prompt, a pause and a few follow-ups.
const QUEUE_CAPACITY: usize = 8;

/// Per-call cursor over a queue of clips and pauses.
///
/// It yields one frame per 20 ms tick for as long as the call lasts: queued
/// audio first, then silence. Queuing allocates only past eight pending
/// items; [`Playout::next_frame`] never allocates.
#[derive(Debug, Clone, Default)]
pub struct Playout {
    queue: VecDeque<Item>,
    /// Frame index within the item at the front of the queue.
    position: usize,
    /// Whether the queue held anything since the last `done`.
    armed: bool,
}

impl Playout {
    /// An idle cursor, with room for a few queued items so that ordinary
    /// play requests do not allocate either.
    pub fn new() -> Self {
        Playout {
            queue: VecDeque::with_capacity(QUEUE_CAPACITY),
            ..Self::default()
        }
    }

    /// Appends the cues to the queue. Every clip id is checked first, so an
    /// unknown id leaves the queue untouched.
    pub fn play(&mut self, cache: &PromptCache, cues: &[Cue<'_>]) -> Result<(), PromptError> {
        if let Some(Cue::Clip(missing)) = cues
            .iter()
            .find(|cue| matches!(cue, Cue::Clip(id) if !cache.contains(id)))
        {
            return Err(PromptError::UnknownClip((*missing).to_owned()));
        }
        for cue in cues {
            match *cue {
                Cue::Clip(id) => {
                    if let Some(clip) = cache.get_shared(id) {
                        self.enqueue_clip(clip);
                    }
                }
                Cue::SilenceMs(ms) => self.enqueue_silence_ms(ms),
            }
        }
        Ok(())
    }

    /// Appends a clip.
    pub fn enqueue_clip(&mut self, clip: Arc<Clip>) {
        self.queue.push_back(Item::Clip(clip));
        self.armed = true;
    }

    /// Appends a pause, rounded up to whole 20 ms frames.
    pub fn enqueue_silence_ms(&mut self, ms: u32) {
        let frame_ms = FRAME_DURATION.as_millis() as u32;
        self.queue
            .push_back(Item::Silence(ms.div_ceil(frame_ms) as usize));
        self.armed = true;
    }

    /// Drops everything queued (barge-in); returns whether anything was left
    /// to play. No `done` is reported for a cleared queue: the caller knows.
    pub fn clear(&mut self) -> bool {
        let was_playing = self.remaining_frames() > 0;
        self.queue.clear();
        self.position = 0;
        self.armed = false;
        was_playing
    }

    /// Whether queued audio or pauses remain.
    pub fn is_playing(&self) -> bool {
        self.remaining_frames() > 0
    }

    /// Frames left in the queue.
    pub fn remaining_frames(&self) -> usize {
        let total: usize = self.queue.iter().map(Item::frames).sum();
        total.saturating_sub(self.position)
    }

    /// Asks the cache for the front of the queue, which [`Playout::next_frame`] reads
    /// first; a hint only.
    pub fn prefetch_queue(&self) {
        if let Some(item) = self.queue.front() {
            super::prefetch(item);
        }
    }

    /// The payload for the next 20 ms in `codec`.
    pub fn next_frame(&mut self, codec: Codec) -> PlayoutFrame<'_> {
        self.drop_finished_items();
        let Some(item) = self.queue.front() else {
            let done = std::mem::replace(&mut self.armed, false);
            return PlayoutFrame {
                payload: codec.silence_frame(),
                done,
            };
        };
        let n = self.position;
        self.position += 1;
        let last_of_item = self.position >= item.frames();
        let last_of_queue = last_of_item && self.queue.iter().skip(1).all(|i| i.frames() == 0);
        if last_of_queue {
            self.armed = false;
        }
        let payload = match item {
            Item::Clip(clip) => clip.frame(codec, n),
            Item::Silence(_) => codec.silence_frame(),
        };
        PlayoutFrame {
            payload,
            done: last_of_queue,
        }
    }

    /// Pops items that are fully played (or empty) so the front is current.
    fn drop_finished_items(&mut self) {
        while let Some(item) = self.queue.front() {
            if self.position < item.frames() {
                return;
            }
            self.queue.pop_front();
            self.position = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(len: usize) -> Vec<i16> {
        (0..len).map(|i| (i as i16).wrapping_mul(97)).collect()
    }

    fn cache_with(clips: &[(&str, usize)]) -> PromptCache {
        let mut cache = PromptCache::new();
        for &(id, samples) in clips {
            cache.insert(id, Clip::from_samples(&ramp(samples)));
        }
        cache
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/audio")
            .join(name)
    }

    #[test]
    fn clip_is_encoded_once_into_padded_frames() {
        let samples = ramp(400);
        let clip = Clip::from_samples(&samples);
        assert_eq!(clip.frame_count(), 3);
        assert_eq!(clip.duration(), Duration::from_millis(60));
        for codec in [Codec::Pcmu, Codec::Pcma] {
            assert_eq!(clip.encoded(codec).len(), 480);
            let mut expect = [0u8; 160];
            codec.encode(&samples[160..320], &mut expect);
            assert_eq!(clip.frame(codec, 1), &expect[..]);
            let last = clip.frame(codec, 2);
            codec.encode(&samples[320..], &mut expect[..80]);
            assert_eq!(&last[..80], &expect[..80]);
            assert!(
                last[80..].iter().all(|&b| b == codec.silence_byte()),
                "padding"
            );
            assert_eq!(
                clip.frame(codec, 3),
                &codec.silence_frame()[..],
                "past the end"
            );
            assert_eq!(clip.frame(codec, usize::MAX), &codec.silence_frame()[..]);
        }
    }

    #[test]
    fn empty_clip_has_no_frames() {
        let clip = Clip::from_samples(&[]);
        assert_eq!(clip.frame_count(), 0);
        assert_eq!(clip.duration(), Duration::ZERO);
    }

    #[test]
    fn loads_fixture_wav() {
        let clip = Clip::load_wav(&fixture("speech.wav")).expect("fixture loads");
        // speech.wav is 45801 samples: 286 full frames and one partial.
        assert_eq!(clip.frame_count(), 287);
        assert!(clip.frame(Codec::Pcmu, 100).iter().any(|&b| b != 0xFF));
    }

    #[test]
    fn refuses_other_formats_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("hotline-prompt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("stereo44k.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).expect("create wav");
        for _ in 0..20 {
            w.write_sample(0i16).expect("write");
        }
        w.finalize().expect("finalize");
        let err = Clip::load_wav(&path).expect_err("must refuse");
        let msg = err.to_string();
        assert!(matches!(err, PromptError::Format { .. }), "{err:?}");
        assert!(msg.contains("stereo44k.wav"), "{msg}");
        assert!(
            msg.contains("44100 Hz") && msg.contains("2 channel"),
            "{msg}"
        );

        std::fs::write(dir.join("garbage.wav"), b"not a wav").expect("write");
        let err = Clip::load_wav(&dir.join("garbage.wav")).expect_err("must refuse");
        assert!(err.to_string().contains("garbage.wav"), "{err}");
        let err = PromptCache::load_dir(&dir).expect_err("bad files fail the load");
        assert!(err.to_string().contains(".wav"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn cache_loads_a_directory_by_file_stem() {
        let cache = PromptCache::load_dir(&fixture("")).expect("fixtures load");
        assert!(cache.len() >= 5);
        assert!(cache.contains("speech") && cache.contains("babble"));
        assert!(cache.get("make").is_none(), "make.sh is not a prompt");
        let a = cache.get_shared("speech").expect("present");
        let b = cache.get_shared("speech").expect("present");
        assert!(Arc::ptr_eq(&a, &b), "calls share one encoding");
        assert!(PromptCache::load_dir(Path::new("/nonexistent/prompts")).is_err());
    }

    #[test]
    fn playout_plays_clips_and_gaps_then_reports_done_once() {
        let cache = cache_with(&[("a", 320), ("b", 100)]);
        let mut p = Playout::new();
        p.play(
            &cache,
            &[Cue::Clip("a"), Cue::SilenceMs(30), Cue::Clip("b")],
        )
        .expect("ids exist");
        assert_eq!(p.remaining_frames(), 2 + 2 + 1);
        let a = cache.get("a").expect("a");
        let b = cache.get("b").expect("b");
        let mut got = Vec::new();
        for _ in 0..8 {
            let f = p.next_frame(Codec::Pcma);
            got.push((f.payload.to_vec(), f.done));
        }
        let silence = Codec::Pcma.silence_frame().to_vec();
        let want = vec![
            (a.frame(Codec::Pcma, 0).to_vec(), false),
            (a.frame(Codec::Pcma, 1).to_vec(), false),
            (silence.clone(), false),
            (silence.clone(), false),
            (b.frame(Codec::Pcma, 0).to_vec(), true),
            (silence.clone(), false),
            (silence.clone(), false),
            (silence, false),
        ];
        assert_eq!(got, want);
        assert!(!p.is_playing());
    }

    #[test]
    fn unknown_id_leaves_the_queue_untouched() {
        let cache = cache_with(&[("a", 160)]);
        let mut p = Playout::new();
        let err = p
            .play(&cache, &[Cue::Clip("a"), Cue::Clip("nope")])
            .expect_err("unknown");
        assert!(matches!(err, PromptError::UnknownClip(ref id) if id == "nope"));
        assert!(!p.is_playing());
        assert!(!p.next_frame(Codec::Pcmu).done, "nothing was queued");
    }

    #[test]
    fn queue_of_empty_items_is_done_at_once() {
        let cache = cache_with(&[("empty", 0)]);
        let mut p = Playout::new();
        p.play(&cache, &[Cue::Clip("empty"), Cue::SilenceMs(0)])
            .expect("ids exist");
        let f = p.next_frame(Codec::Pcmu);
        assert_eq!(
            (f.payload, f.done),
            (&Codec::Pcmu.silence_frame()[..], true)
        );
        assert!(!p.next_frame(Codec::Pcmu).done);
    }

    #[test]
    fn clear_stops_playback_without_done() {
        let cache = cache_with(&[("a", 1600)]);
        let mut p = Playout::new();
        p.play(&cache, &[Cue::Clip("a")]).expect("ids exist");
        let _ = p.next_frame(Codec::Pcmu);
        assert!(p.clear());
        assert!(!p.clear());
        let f = p.next_frame(Codec::Pcmu);
        assert_eq!(
            (f.payload, f.done),
            (&Codec::Pcmu.silence_frame()[..], false)
        );
    }

    #[test]
    fn appending_while_playing_extends_the_same_run() {
        let cache = cache_with(&[("a", 160)]);
        let mut p = Playout::new();
        p.play(&cache, &[Cue::Clip("a"), Cue::Clip("a")])
            .expect("ids exist");
        assert!(!p.next_frame(Codec::Pcmu).done);
        p.play(&cache, &[Cue::Clip("a")]).expect("ids exist");
        let dones: Vec<bool> = (0..3).map(|_| p.next_frame(Codec::Pcmu).done).collect();
        assert_eq!(dones, vec![false, true, false]);
    }
}

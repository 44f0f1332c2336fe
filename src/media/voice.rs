//! Voice classifier: turns the caller's 20 ms frames into the few events the
//! flow engine acts on (P-QUIET, P-NOISE, and voice for menus and recording).
//! Silence produces nothing: the flow engine times silence itself.
//!
//! # How it decides
//!
//! One pass over each frame measures its energy (as dBov, 0 dBov being a
//! full-scale sine) and its *voicing*, the lag-one autocorrelation divided
//! by the energy. Vowels carry most of their energy below 1 kHz, so
//! neighbouring samples are alike (0.6-0.95); hiss and white noise give
//! about 0. Alongside, a *floor* is kept: the minimum of two-frame-smoothed
//! energy over the last `floor_window_ms`. One talker always pauses or
//! closes a stop consonant within a second, so under speech the floor falls
//! to the line's background; stationary noise and many-talker babble have
//! no such gaps, so their floor stays near their level.
//!
//! * A frame is **active** when its energy is at least `activity_dbov` and
//!   at least `snr_margin_db` above the floor (so steady hum or hiss is never
//!   activity, and speech over moderate noise still is).
//! * Active frames open an **utterance**; `end_silence_ms` of inactive
//!   frames close it.
//! * `VoiceStart` fires once the utterance holds `voice_start_ms` of voiced
//!   frames at or above `voice_dbov`; `VoiceEnd` when it closes.
//! * An utterance that closes without reaching that, but with at least
//!   `too_quiet_ms` of voiced frames, is reported as `TooQuiet`. Unvoiced
//!   blips (clicks, breaths, hiss bursts) are dropped.
//! * `Noise` fires when the floor has stayed at or above `noise_dbov` for
//!   `noise_ms`. While noisy, voice events are withheld (babble would make
//!   them meaningless); the state clears once a short (200-300 ms) floor has
//!   stayed 3 dB under the noise level for `clean_ms`.
//!
//! The state starts as if the line had been silent, so a caller who speaks
//! at once is heard at once, and noise needs the whole floor window plus
//! `noise_ms` (about 2 s by default) to be reported.
//!
//! # Measurements
//!
//! Fixtures are in `tests/fixtures/audio/` (`make.sh` regenerates them:
//! espeak-ng `cmn-latn-pinyin` Mandarin, converted by sox to 8 kHz mono
//! 16-bit). Levels in dBov; "active" frames are those at or above -60 dBov;
//! "voiced" frames are active with voicing of at least 0.5; the floor is
//! the classifier's own, after its first window (1.1 s). Times are when the
//! event is reported. The test `fixture_levels_match_the_documented_table`
//! recomputes every number here and fails if one drifts.
//!
//! | fixture | content | clip RMS | active p50 / p90 | loudest frame | voiced p50 | voiced share | floor min .. max | events |
//! |---|---|---|---|---|---|---|---|---|
//! | `speech.wav` | 您好,我家的水管爆裂了,請派人來修理 with 0.5 s / 1.0 s of silence around | -17.9 | -19.3 / -12.0 | -8.9 | -18.5 | 81 % | -120 .. -35.7 | VoiceStart 0.58 s, VoiceEnd 5.00 s |
//! | `speech_quiet.wav` | the same, 30 dB down | -47.9 | -48.1 / -41.2 | -38.9 | -47.5 | 91 % | -120 .. -65.7 | TooQuiet 5.00 s |
//! | `white_noise.wav` | sox `whitenoise vol 0.5`, 5 s | -15.8 | -15.8 / -15.2 | -14.6 | none | 0 % | -16.6 .. -16.4 | Noise 1.96 s |
//! | `babble.wav` | six voices (pitch, speed, variant), staggered, 5 s | -16.0 | -16.7 / -13.5 | -8.7 | -16.7 | 100 % | -27.4 .. -19.1 | VoiceStart 0.08 s, Noise 1.96 s |
//! | `silence.wav` | 2 s digital silence, 3 s white noise at -70.2 dBov | -72.4 | none | -69.0 | none | 0 % | -120 .. -70.8 | none |
//!
//! Sweeps of the same fixtures (tests `thresholds_sit_where_the_table_says`,
//! `softer_normal_speech_is_still_voice`, `quiet_noise_is_not_noise`):
//!
//! * speech is VoiceStart/VoiceEnd from +9 dB down to -18 dB, TooQuiet
//!   from -21 dB down to at least -48 dB: the boundary sits 9-12 dB above
//!   the -30 dB quiet fixture and 18-21 dB below the normal one;
//! * babble is Noise down to -10 dB (clip -26 dBov, floor -37.4 .. -29.1);
//!   at -12 dB its floor no longer stays above -35 dBov for a second and it
//!   is heard as voice;
//! * white noise is Noise down to a clip level of -33.8 dBov, not at -36.8;
//! * speech 9 dB hotter than the fixture keeps its floor above -35 dBov for
//!   at most 32 consecutive frames, well short of the 50 that make Noise.
//!
//! # Why the defaults sit where they do
//!
//! * `activity_dbov` -60: 9 dB above the loudest comfort-noise frame
//!   (-69.0), 12 dB under the median of the quiet speech (-48.1).
//! * `voice_dbov` -30, with `voice_start_ms` 100 (five frames): puts the
//!   normal/quiet boundary at 18-21 dB under the normal fixture, 9-12 dB
//!   above the quiet one, leaving more room on the normal side where real
//!   callers vary most. The normal fixture is hot (active speech about
//!   -19 dBov); a caller at the ITU nominal -26 dBov still has 11 dB in hand.
//! * `voicing` 0.5: white noise stays under 0.15 in 90 % of frames; 81 % of
//!   the active frames of speech (and 91 % of the quiet speech) are above.
//! * `snr_margin_db` 10: speech over white noise at -45 dBov (about 26 dB
//!   under the speech) is still one clean utterance, while steady noise
//!   (white noise varies by ±1 dB from frame to frame) is never activity.
//! * `noise_dbov` -35: under the babble's lowest floor (-27.4) by 7.6 dB and
//!   the white noise's (-16.6) by 18 dB; above the speech's highest floor
//!   (-35.7), which it reaches only for a few frames at a time.
//! * `floor_window_ms` 1000, `noise_ms` 1000: the speech fixture's floor
//!   over 1 s peaks at -35.7 dBov; a 0.5 s window would let it reach
//!   -31 dBov. Together they give Noise about 2 s after noise starts.
//! * `end_silence_ms` 600: the fixtures' longest pause inside a sentence is
//!   120 ms; 600 ms also spans the commas of natural speech while keeping
//!   turn-taking brisk.
//! * `too_quiet_ms` 200: a syllable or two; shorter voiced blips are not
//!   worth asking the caller to speak up.
//! * `clean_ms` 1000: a 400 ms pause in the noise does not re-arm Noise, a
//!   1.5 s one does (test `noise_is_reported_once_while_it_lasts_...`).
//!
//! # Known limits
//!
//! * Babble is made of speech: its first syllables open an utterance and
//!   may fire `VoiceStart` (at 0.08 s on the fixture) before `Noise`
//!   (at 1.96 s) cancels it. Background talkers more than about 10 dB under
//!   the fixture's level are not Noise; they are voice, as they would be to
//!   a human operator.
//! * A far caller over a line whose own noise is within 10 dB of their
//!   voice is inactive, hence neither voice nor TooQuiet: to the flow that
//!   is silence, which is what the caller sounds like.
//! * Energy and voicing cannot tell a loud tonal sound (music on hold, a
//!   TV) from speech; such audio is voice, and noise if it never pauses.
//!
//! The benchmark (`cargo bench --bench media`) measures about 0.18 µs per
//! frame for the classifier on this 2-core machine.

use serde::Deserialize;

use super::FRAME_SAMPLES;

/// Mean square of a full-scale sine, the 0 dBov reference (ITU-T G.100).
const FULL_SCALE_SINE_MS: f32 = 32768.0 * 32768.0 / 2.0;

/// The floor tracker keeps one minimum per block of this many frames (100 ms).
const FLOOR_BLOCK_FRAMES: u32 = 5;
/// Longest floor window: 3 s in 100 ms blocks.
const MAX_FLOOR_BLOCKS: usize = 30;
/// Completed blocks (besides the current one) in the short floor that decides
/// when noise has gone: 200-300 ms, so a pause in the noise shows at once
/// but must outlast `clean_ms` to count.
const RECENT_FLOOR_BLOCKS: usize = 2;
/// The floor must fall this far below the noise level before the line counts
/// as clean, so a floor hovering at the threshold cannot re-arm Noise.
const NOISE_HYSTERESIS_DB: f32 = 3.0;
/// Duration of one frame in ms, for converting settings.
const FRAME_MS: u32 = 20;

/// What the flow engine hears about the caller's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceEvent {
    /// An utterance of normal loudness began.
    VoiceStart,
    /// That utterance ended (after `end_silence_ms` without activity).
    VoiceEnd,
    /// A speech-like utterance ended that never reached normal loudness.
    /// At most one per utterance, and never after a `VoiceStart`.
    TooQuiet,
    /// The line carries sustained loud noise. Reported once, then not again
    /// until the line has been clean for `clean_ms`. It cancels an open
    /// utterance (no `VoiceEnd` follows its `VoiceStart`), and no voice
    /// events are reported while the line stays noisy.
    Noise,
}

/// Classifier thresholds. Levels are in dBov (0 dBov = a full-scale sine),
/// durations in ms (rounded up to 20 ms frames). Defaults and the
/// measurements behind them are in the module documentation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceSettings {
    /// Frames below this are never activity, whatever the floor. Default -60.
    pub activity_dbov: f32,
    /// A voiced frame at or above this is speech of normal loudness. Default -30.
    pub voice_dbov: f32,
    /// A frame is active only this far above the background floor. Default 10.
    pub snr_margin_db: f32,
    /// Lag-one autocorrelation (normalised, -1..1) at or above which a frame
    /// counts as voiced: vowels are low-pass, hiss is not. Default 0.5.
    pub voicing: f32,
    /// Normal-loudness voiced time within an utterance before `VoiceStart`.
    /// Default 100.
    pub voice_start_ms: u32,
    /// Voiced time an utterance needs to be reported as `TooQuiet`; shorter
    /// ones are clicks and breaths and are dropped. Default 200.
    pub too_quiet_ms: u32,
    /// Inactive time that ends an utterance. Default 600.
    pub end_silence_ms: u32,
    /// The background floor is the minimum of smoothed frame energy over this
    /// window, kept in 100 ms blocks, at most 3000. Default 1000.
    pub floor_window_ms: u32,
    /// A floor at or above this is noise loud enough to drown speech. Default -35.
    pub noise_dbov: f32,
    /// How long the floor must stay that loud before `Noise` (on top of the
    /// floor window, which delays the floor's rise by its own length).
    /// Default 1000.
    pub noise_ms: u32,
    /// How long the line must stay below the noise level (less a 3 dB
    /// hysteresis) before `Noise` re-arms. Default 1000.
    pub clean_ms: u32,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        VoiceSettings {
            activity_dbov: -60.0,
            voice_dbov: -30.0,
            snr_margin_db: 10.0,
            voicing: 0.5,
            voice_start_ms: 100,
            too_quiet_ms: 200,
            end_silence_ms: 600,
            floor_window_ms: 1000,
            noise_dbov: -35.0,
            noise_ms: 1000,
            clean_ms: 1000,
        }
    }
}

/// Per-frame measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameFeatures {
    /// Mean square of the samples.
    pub energy: f32,
    /// Lag-one autocorrelation divided by energy (0 for a silent frame).
    pub correlation: f32,
}

impl FrameFeatures {
    /// Measures one frame of any length.
    pub fn measure(samples: &[i16]) -> FrameFeatures {
        // Two independent sums without a loop-carried sample keep this
        // vectorisable; products of two i16 always fit in i32.
        let product = |(&a, &b): (&i16, &i16)| i64::from(i32::from(a) * i32::from(b));
        let energy: i64 = samples.iter().zip(samples).map(product).sum();
        let lag1: i64 = samples
            .iter()
            .zip(samples.iter().skip(1))
            .map(product)
            .sum();
        let n = samples.len().max(1) as f32;
        let correlation = if energy > 0 {
            lag1 as f32 / energy as f32
        } else {
            0.0
        };
        FrameFeatures {
            energy: energy as f32 / n,
            correlation,
        }
    }

    /// Level in dBov; -120 for digital silence.
    pub fn dbov(&self) -> f32 {
        mean_square_to_dbov(self.energy)
    }
}

/// dBov of a mean square; -120 for zero.
pub fn mean_square_to_dbov(mean_square: f32) -> f32 {
    if mean_square > 0.0 {
        10.0 * (mean_square / FULL_SCALE_SINE_MS).log10()
    } else {
        -120.0
    }
}

/// Mean square of a dBov level.
pub fn dbov_to_mean_square(dbov: f32) -> f32 {
    FULL_SCALE_SINE_MS * 10f32.powf(dbov / 10.0)
}

fn frames_for(ms: u32) -> u32 {
    ms.div_ceil(FRAME_MS).max(1)
}

/// Minimum of recent smoothed energy, kept as 100 ms block minima so the
/// cost per frame is constant whatever the window.
#[derive(Debug, Clone)]
struct FloorTracker {
    blocks: [f32; MAX_FLOOR_BLOCKS],
    used: usize,
    next: usize,
    blocks_min: f32,
    current_min: f32,
    current_frames: u32,
}

impl FloorTracker {
    fn new(window_ms: u32) -> Self {
        let block_ms = FLOOR_BLOCK_FRAMES * FRAME_MS;
        let used = (window_ms.div_ceil(block_ms) as usize).clamp(1, MAX_FLOOR_BLOCKS);
        // The call starts from assumed silence: speech in the first second is
        // heard at once, while noise must fill the window before it counts.
        FloorTracker {
            blocks: [0.0; MAX_FLOOR_BLOCKS],
            used,
            next: 0,
            blocks_min: 0.0,
            current_min: f32::INFINITY,
            current_frames: 0,
        }
    }

    fn push(&mut self, energy: f32) {
        self.current_min = self.current_min.min(energy);
        self.current_frames += 1;
        if self.current_frames < FLOOR_BLOCK_FRAMES {
            return;
        }
        self.blocks[self.next] = self.current_min;
        self.next = (self.next + 1) % self.used;
        self.blocks_min = self.blocks[..self.used]
            .iter()
            .copied()
            .fold(f32::INFINITY, f32::min);
        self.current_min = f32::INFINITY;
        self.current_frames = 0;
    }

    fn level(&self) -> f32 {
        self.blocks_min.min(self.current_min)
    }

    /// Minimum over only the last few blocks: follows the line down quickly.
    fn recent_level(&self) -> f32 {
        (1..=RECENT_FLOOR_BLOCKS.min(self.used))
            .map(|back| self.blocks[(self.next + self.used - back) % self.used])
            .fold(self.current_min, f32::min)
    }
}

/// An utterance in progress.
#[derive(Debug, Clone, Copy, Default)]
struct Utterance {
    voiced_frames: u32,
    loud_frames: u32,
    inactive_run: u32,
    started: bool,
}

/// Thresholds converted once to the units the per-frame code compares.
#[derive(Debug, Clone, Copy)]
struct Limits {
    activity: f32,
    voice: f32,
    margin: f32,
    voicing: f32,
    noise: f32,
    clean: f32,
    voice_start_frames: u32,
    too_quiet_frames: u32,
    end_frames: u32,
    noise_frames: u32,
    clean_frames: u32,
}

impl Limits {
    fn new(s: &VoiceSettings) -> Limits {
        Limits {
            activity: dbov_to_mean_square(s.activity_dbov),
            voice: dbov_to_mean_square(s.voice_dbov),
            margin: 10f32.powf(s.snr_margin_db / 10.0),
            voicing: s.voicing,
            noise: dbov_to_mean_square(s.noise_dbov),
            clean: dbov_to_mean_square(s.noise_dbov - NOISE_HYSTERESIS_DB),
            voice_start_frames: frames_for(s.voice_start_ms),
            too_quiet_frames: frames_for(s.too_quiet_ms),
            end_frames: frames_for(s.end_silence_ms),
            noise_frames: frames_for(s.noise_ms),
            clean_frames: frames_for(s.clean_ms),
        }
    }
}

/// Per-call classifier state: about 200 bytes, no heap.
#[derive(Debug, Clone)]
pub struct VoiceClassifier {
    limits: Limits,
    floor: FloorTracker,
    previous_energy: f32,
    utterance: Option<Utterance>,
    noisy: bool,
    /// Frames the floor has been loud (while clean) or quiet (while noisy).
    noise_run: u32,
}

impl VoiceClassifier {
    /// A classifier for one call.
    pub fn new(settings: &VoiceSettings) -> Self {
        VoiceClassifier {
            limits: Limits::new(settings),
            floor: FloorTracker::new(settings.floor_window_ms),
            previous_energy: 0.0,
            utterance: None,
            noisy: false,
            noise_run: 0,
        }
    }

    /// Classifies the next 20 ms of the caller's audio. Lost packets should
    /// be fed as silent frames so that time keeps moving.
    pub fn push_frame(&mut self, frame: &[i16; FRAME_SAMPLES]) -> Option<VoiceEvent> {
        let features = FrameFeatures::measure(frame);
        // Two-frame smoothing keeps a single quiet frame inside babble from
        // pulling the floor down.
        let smoothed = 0.5 * (features.energy + self.previous_energy);
        self.previous_energy = features.energy;
        self.floor.push(smoothed);
        let floor = self.floor.level();

        if self.update_noise(floor, self.floor.recent_level()) {
            self.utterance = None;
            return Some(VoiceEvent::Noise);
        }
        if self.noisy {
            return None;
        }
        self.update_utterance(features, floor)
    }

    /// Whether the line is currently judged noisy.
    pub fn is_noisy(&self) -> bool {
        self.noisy
    }

    /// Whether a normal-loudness utterance is in progress (between
    /// `VoiceStart` and `VoiceEnd`).
    pub fn in_voice(&self) -> bool {
        self.utterance.is_some_and(|u| u.started)
    }

    /// Current background floor, in dBov.
    pub fn floor_dbov(&self) -> f32 {
        mean_square_to_dbov(self.floor.level())
    }

    /// Tracks the noise state; true when `Noise` is to be reported now.
    /// Noise is judged on the long floor, so speech with pauses never counts;
    /// its end on the short one, because the long floor would drop for a
    /// whole window after any brief pause in the noise.
    fn update_noise(&mut self, floor: f32, recent_floor: f32) -> bool {
        let l = &self.limits;
        if self.noisy {
            self.noise_run = if recent_floor < l.clean {
                self.noise_run + 1
            } else {
                0
            };
            if self.noise_run >= l.clean_frames {
                self.noisy = false;
                self.noise_run = 0;
            }
            return false;
        }
        self.noise_run = if floor >= l.noise {
            self.noise_run + 1
        } else {
            0
        };
        if self.noise_run < l.noise_frames {
            return false;
        }
        self.noisy = true;
        self.noise_run = 0;
        true
    }

    fn update_utterance(&mut self, f: FrameFeatures, floor: f32) -> Option<VoiceEvent> {
        let l = self.limits;
        let active = f.energy >= l.activity.max(floor * l.margin);
        let voiced = active && f.correlation >= l.voicing;
        let loud = voiced && f.energy >= l.voice;

        if !active {
            return self.inactive_frame();
        }
        let u = self.utterance.get_or_insert_with(Utterance::default);
        u.inactive_run = 0;
        u.voiced_frames += u32::from(voiced);
        u.loud_frames += u32::from(loud);
        if !u.started && u.loud_frames >= l.voice_start_frames {
            u.started = true;
            return Some(VoiceEvent::VoiceStart);
        }
        None
    }

    fn inactive_frame(&mut self) -> Option<VoiceEvent> {
        let u = self.utterance.as_mut()?;
        u.inactive_run += 1;
        if u.inactive_run < self.limits.end_frames {
            return None;
        }
        let u = self.utterance.take()?;
        if u.started {
            Some(VoiceEvent::VoiceEnd)
        } else if u.voiced_frames >= self.limits.too_quiet_frames {
            Some(VoiceEvent::TooQuiet)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Codec;
    use proptest::prelude::*;
    use std::path::Path;

    fn load(name: &str) -> Vec<i16> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/audio")
            .join(name);
        let mut reader = hound::WavReader::open(&path).expect("fixture exists");
        let spec = reader.spec();
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (8000, 1, 16)
        );
        reader
            .samples::<i16>()
            .collect::<Result<_, _>>()
            .expect("fixture reads")
    }

    fn scaled(samples: &[i16], db: f32) -> Vec<i16> {
        let gain = 10f32.powf(db / 20.0);
        samples
            .iter()
            .map(|&s| (f32::from(s) * gain).round() as i16)
            .collect()
    }

    fn mixed(a: &[i16], b: &[i16]) -> Vec<i16> {
        a.iter()
            .zip(b.iter().cycle())
            .map(|(&x, &y)| x.saturating_add(y))
            .collect()
    }

    fn frames(samples: &[i16]) -> impl Iterator<Item = [i16; FRAME_SAMPLES]> + '_ {
        samples
            .chunks_exact(FRAME_SAMPLES)
            .filter_map(|c| c.try_into().ok())
    }

    /// Events with the frame index each was reported on.
    fn classify_timed(samples: &[i16]) -> Vec<(usize, VoiceEvent)> {
        let mut c = VoiceClassifier::new(&VoiceSettings::default());
        frames(samples)
            .enumerate()
            .filter_map(|(i, f)| c.push_frame(&f).map(|e| (i, e)))
            .collect()
    }

    fn classify(samples: &[i16]) -> Vec<VoiceEvent> {
        classify_timed(samples)
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }

    fn through(codec: Codec, samples: &[i16]) -> Vec<i16> {
        let mut bytes = vec![0u8; samples.len()];
        codec.encode(samples, &mut bytes);
        let mut out = vec![0i16; samples.len()];
        codec.decode(&bytes, &mut out);
        out
    }

    fn silence(ms: usize) -> Vec<i16> {
        vec![0; ms * 8]
    }

    use VoiceEvent::*;

    #[test]
    fn speech_is_one_normal_utterance() {
        let speech = load("speech.wav");
        assert_eq!(classify(&speech), vec![VoiceStart, VoiceEnd]);
        for codec in [Codec::Pcmu, Codec::Pcma] {
            assert_eq!(
                classify(&through(codec, &speech)),
                vec![VoiceStart, VoiceEnd],
                "{codec:?}"
            );
        }
    }

    #[test]
    fn voice_start_comes_early_and_voice_end_after_the_hangover() {
        let speech = load("speech.wav");
        let first_loud = frames(&speech)
            .position(|f| FrameFeatures::measure(&f).dbov() > -35.0)
            .expect("speech has loud frames");
        let last_active = frames(&speech)
            .enumerate()
            .filter(|(_, f)| FrameFeatures::measure(f).dbov() > -60.0)
            .map(|(i, _)| i)
            .last()
            .expect("speech has active frames");
        let events = classify_timed(&speech);
        assert_eq!(events.len(), 2);
        assert!(
            events[0].0 <= first_loud + 10,
            "VoiceStart at frame {}",
            events[0].0
        );
        // 600 ms (30 frames) after the last active frame; the floor margin may
        // count the very last faint frame as inactive already.
        let end = events[1].0;
        assert!(
            (last_active + 28..=last_active + 30).contains(&end),
            "VoiceEnd at {end}, last active {last_active}"
        );
    }

    #[test]
    fn softer_normal_speech_is_still_voice() {
        let speech = load("speech.wav");
        for db in [-6.0, -12.0, -15.0] {
            assert_eq!(
                classify(&scaled(&speech, db)),
                vec![VoiceStart, VoiceEnd],
                "{db} dB"
            );
        }
    }

    #[test]
    fn quiet_speech_is_too_quiet_once() {
        let quiet = load("speech_quiet.wav");
        assert_eq!(classify(&quiet), vec![TooQuiet]);
        for codec in [Codec::Pcmu, Codec::Pcma] {
            assert_eq!(
                classify(&through(codec, &quiet)),
                vec![TooQuiet],
                "{codec:?}"
            );
        }
        // Two quiet utterances, two reports.
        let twice = [quiet.clone(), quiet].concat();
        assert_eq!(classify(&twice), vec![TooQuiet, TooQuiet]);
    }

    #[test]
    fn white_noise_is_noise_after_about_two_seconds() {
        let events = classify_timed(&load("white_noise.wav"));
        assert_eq!(
            events.iter().map(|&(_, e)| e).collect::<Vec<_>>(),
            vec![Noise]
        );
        let at_ms = events[0].0 * 20;
        assert!((1900..=2300).contains(&at_ms), "Noise at {at_ms} ms");
    }

    #[test]
    fn babble_is_noise() {
        // Babble is made of speech, so its first syllables are heard as voice:
        // VoiceStart may precede Noise, which then cancels the utterance.
        let events = classify(&load("babble.wav"));
        let noise_at = events
            .iter()
            .position(|&e| e == Noise)
            .expect("babble is noise");
        assert_eq!(events.iter().filter(|&&e| e == Noise).count(), 1);
        assert!(
            events[..noise_at].iter().all(|&e| e == VoiceStart),
            "{events:?}"
        );
        assert!(
            !events.contains(&VoiceEnd) && !events.contains(&TooQuiet),
            "{events:?}"
        );
    }

    #[test]
    fn silence_and_comfort_noise_are_nothing() {
        let quiet_line = load("silence.wav");
        assert_eq!(classify(&quiet_line), vec![]);
        assert_eq!(classify(&through(Codec::Pcmu, &quiet_line)), vec![]);
        assert_eq!(classify(&through(Codec::Pcma, &quiet_line)), vec![]);
    }

    #[test]
    fn speech_over_comfort_noise_is_voice() {
        let comfort = &load("silence.wav")[16_000..];
        let speech = load("speech.wav");
        assert_eq!(
            classify(&mixed(&speech, comfort)),
            vec![VoiceStart, VoiceEnd]
        );
        assert_eq!(
            classify(&mixed(&load("speech_quiet.wav"), comfort)),
            vec![TooQuiet]
        );
    }

    #[test]
    fn speech_over_moderate_noise_is_voice_not_noise() {
        // White noise at about -45 dBov: audible hiss, 28 dB under the speech.
        let hiss = scaled(&load("white_noise.wav"), -29.0);
        let line = [
            hiss.clone(),
            mixed(&load("speech.wav"), &hiss),
            hiss.clone(),
        ]
        .concat();
        assert_eq!(classify(&line), vec![VoiceStart, VoiceEnd]);
    }

    #[test]
    fn noise_is_reported_once_while_it_lasts_and_again_after_a_clean_spell() {
        let noise = load("white_noise.wav");
        let long_noise = noise.repeat(3);
        assert_eq!(classify(&long_noise), vec![Noise]);

        let short_gap = [noise.clone(), silence(400), noise.clone()].concat();
        assert_eq!(classify(&short_gap), vec![Noise], "400 ms is not clean");

        let clean_gap = [noise.clone(), silence(1500), noise.clone()].concat();
        assert_eq!(classify(&clean_gap), vec![Noise, Noise]);
    }

    #[test]
    fn voice_is_heard_again_once_the_noise_stops() {
        let line = [load("white_noise.wav"), silence(1200), load("speech.wav")].concat();
        assert_eq!(classify(&line), vec![Noise, VoiceStart, VoiceEnd]);
    }

    #[test]
    fn quiet_noise_is_not_noise() {
        // The same white noise at about -52 dBov: a hissy line, not a drowned one.
        assert_eq!(classify(&scaled(&load("white_noise.wav"), -36.0)), vec![]);
        // Babble 20 dB down sits under the noise level.
        assert!(!classify(&scaled(&load("babble.wav"), -20.0)).contains(&Noise));
    }

    #[test]
    fn settings_deserialize_with_defaults_and_reject_unknown_fields() {
        let s: VoiceSettings =
            serde_json::from_str(r#"{"voice_dbov": -30.5, "end_silence_ms": 800}"#).expect("valid");
        assert_eq!(s.voice_dbov, -30.5);
        assert_eq!(s.end_silence_ms, 800);
        assert_eq!(s.noise_dbov, VoiceSettings::default().noise_dbov);
        let empty: VoiceSettings = serde_json::from_str("{}").expect("valid");
        assert_eq!(empty, VoiceSettings::default());
        assert!(serde_json::from_str::<VoiceSettings>(r#"{"voice_db": -30}"#).is_err());
    }

    #[test]
    fn settings_change_the_verdict() {
        // The quiet fixture becomes normal speech if "normal" is lowered enough.
        let settings = VoiceSettings {
            voice_dbov: -50.0,
            ..VoiceSettings::default()
        };
        let mut c = VoiceClassifier::new(&settings);
        let events: Vec<VoiceEvent> = frames(&load("speech_quiet.wav"))
            .filter_map(|f| c.push_frame(&f))
            .collect();
        assert_eq!(events, vec![VoiceStart, VoiceEnd]);
    }

    #[test]
    fn dbov_reference_is_a_full_scale_sine() {
        let sine: Vec<i16> = (0..FRAME_SAMPLES)
            .map(|n| {
                (32767.0 * (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 8000.0).sin()) as i16
            })
            .collect();
        let f = FrameFeatures::measure(&sine);
        assert!(f.dbov().abs() < 0.1, "{}", f.dbov());
        assert!((dbov_to_mean_square(-20.0) / f.energy - 0.01).abs() < 0.001);
        assert_eq!(FrameFeatures::measure(&[0; 160]).dbov(), -120.0);
        // 1 kHz at 8 kHz: r1 = cos(2π/8) ≈ 0.707.
        assert!((f.correlation - 0.707).abs() < 0.02, "{}", f.correlation);
    }

    /// The numbers in the module documentation's table, for one fixture.
    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Levels {
        /// RMS over the whole clip.
        clip: f32,
        /// Median and 90th percentile of frames above -60 dBov.
        active_p50: f32,
        active_p90: f32,
        /// Loudest frame.
        max: f32,
        /// Median level of voiced active frames.
        voiced_p50: f32,
        /// Share of active frames that are voiced, 0..1.
        voiced_share: f32,
        /// Lowest and highest long floor once the first window has passed.
        floor_min: f32,
        floor_max: f32,
    }

    fn percentile(v: &mut [f32], p: f32) -> f32 {
        if v.is_empty() {
            return f32::NAN;
        }
        v.sort_by(f32::total_cmp);
        v[((v.len() - 1) as f32 * p).round() as usize]
    }

    fn measure(samples: &[i16]) -> Levels {
        let settings = VoiceSettings::default();
        let features: Vec<FrameFeatures> = frames(samples)
            .map(|f| FrameFeatures::measure(&f))
            .collect();
        let clip = features.iter().map(|f| f.energy).sum::<f32>() / features.len() as f32;
        let mut active: Vec<f32> = features
            .iter()
            .map(FrameFeatures::dbov)
            .filter(|&d| d >= settings.activity_dbov)
            .collect();
        let mut voiced: Vec<f32> = features
            .iter()
            .filter(|f| f.dbov() >= settings.activity_dbov && f.correlation >= settings.voicing)
            .map(FrameFeatures::dbov)
            .collect();
        let mut c = VoiceClassifier::new(&settings);
        let window = frames_for(settings.floor_window_ms) as usize + FLOOR_BLOCK_FRAMES as usize;
        let floors: Vec<f32> = frames(samples)
            .map(|f| {
                c.push_frame(&f);
                c.floor_dbov()
            })
            .skip(window)
            .collect();
        Levels {
            clip: mean_square_to_dbov(clip),
            active_p50: percentile(&mut active, 0.5),
            active_p90: percentile(&mut active, 0.9),
            max: features
                .iter()
                .map(FrameFeatures::dbov)
                .fold(-120.0, f32::max),
            voiced_p50: percentile(&mut voiced, 0.5),
            voiced_share: voiced.len() as f32 / active.len().max(1) as f32,
            floor_min: floors.iter().copied().fold(f32::INFINITY, f32::min),
            floor_max: floors.iter().copied().fold(-120.0, f32::max),
        }
    }

    /// The measurements table of the module documentation: fixture, levels,
    /// and the events with the frame they fall on.
    /// Events with the frame index they are reported on.
    type Timeline = &'static [(usize, VoiceEvent)];

    const TABLE: [(&str, Levels, Timeline); 5] = [
        (
            "speech.wav",
            Levels {
                clip: -17.9,
                active_p50: -19.3,
                active_p90: -12.0,
                max: -8.9,
                voiced_p50: -18.5,
                voiced_share: 0.81,
                floor_min: -120.0,
                floor_max: -35.7,
            },
            &[(29, VoiceStart), (250, VoiceEnd)],
        ),
        (
            "speech_quiet.wav",
            Levels {
                clip: -47.9,
                active_p50: -48.1,
                active_p90: -41.2,
                max: -38.9,
                voiced_p50: -47.5,
                voiced_share: 0.91,
                floor_min: -120.0,
                floor_max: -65.7,
            },
            &[(250, TooQuiet)],
        ),
        (
            "white_noise.wav",
            Levels {
                clip: -15.8,
                active_p50: -15.8,
                active_p90: -15.2,
                max: -14.6,
                voiced_p50: f32::NAN,
                voiced_share: 0.0,
                floor_min: -16.6,
                floor_max: -16.4,
            },
            &[(98, Noise)],
        ),
        (
            "babble.wav",
            Levels {
                clip: -16.0,
                active_p50: -16.7,
                active_p90: -13.5,
                max: -8.7,
                voiced_p50: -16.7,
                voiced_share: 1.0,
                floor_min: -27.4,
                floor_max: -19.1,
            },
            &[(4, VoiceStart), (98, Noise)],
        ),
        (
            "silence.wav",
            Levels {
                clip: -72.4,
                active_p50: f32::NAN,
                active_p90: f32::NAN,
                max: -69.0,
                voiced_p50: f32::NAN,
                voiced_share: 0.0,
                floor_min: -120.0,
                floor_max: -70.8,
            },
            &[],
        ),
    ];

    fn close(a: f32, b: f32, tolerance: f32) -> bool {
        (a.is_nan() && b.is_nan()) || (a - b).abs() <= tolerance
    }

    #[test]
    fn fixture_levels_match_the_documented_table() {
        for (name, want, events) in TABLE {
            let samples = load(name);
            let got = measure(&samples);
            println!("{name}: {got:?} {:?}", classify_timed(&samples));
            let pairs = [
                (got.clip, want.clip),
                (got.active_p50, want.active_p50),
                (got.active_p90, want.active_p90),
                (got.max, want.max),
                (got.voiced_p50, want.voiced_p50),
                (got.floor_min, want.floor_min),
                (got.floor_max, want.floor_max),
            ];
            for (g, w) in pairs {
                assert!(close(g, w, 0.1), "{name}: measured {got:?}, table {want:?}");
            }
            assert!(
                close(got.voiced_share, want.voiced_share, 0.01),
                "{name}: {got:?}"
            );
            assert_eq!(classify_timed(&samples), events.to_vec(), "{name}");
        }
    }

    #[test]
    fn thresholds_sit_where_the_table_says() {
        let speech = load("speech.wav");
        assert_eq!(
            classify(&scaled(&speech, -18.0)),
            vec![VoiceStart, VoiceEnd]
        );
        assert_eq!(classify(&scaled(&speech, -21.0)), vec![TooQuiet]);
        assert_eq!(classify(&scaled(&speech, -48.0)), vec![TooQuiet]);
        // Hot speech: its floor must not stay above the noise level long enough.
        assert_eq!(classify(&scaled(&speech, 9.0)), vec![VoiceStart, VoiceEnd]);

        let babble = load("babble.wav");
        assert!(classify(&scaled(&babble, -10.0)).contains(&Noise));
        assert!(!classify(&scaled(&babble, -12.0)).contains(&Noise));

        let noise = load("white_noise.wav");
        assert_eq!(classify(&scaled(&noise, -18.0)), vec![Noise]);
        assert_eq!(classify(&scaled(&noise, -21.0)), vec![]);
    }

    proptest! {
        #[test]
        fn arbitrary_audio_never_panics(
            samples in proptest::collection::vec(any::<i16>(), 0..(FRAME_SAMPLES * 60)),
        ) {
            let mut c = VoiceClassifier::new(&VoiceSettings::default());
            let mut open = false;
            for f in frames(&samples) {
                match c.push_frame(&f) {
                    Some(VoiceStart) => { prop_assert!(!open); open = true; }
                    Some(VoiceEnd) => { prop_assert!(open); open = false; }
                    Some(Noise) => open = false,
                    Some(TooQuiet) => prop_assert!(!open),
                    None => {}
                }
            }
        }
    }
}

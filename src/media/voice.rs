//! Voice classifier: turns the caller's 20 ms frames into the few events the
//! flow engine acts on (P-QUIET, P-NOISE, and voice for menus and recording).
//!
//! MEASUREMENTS_PLACEHOLDER

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
    /// Frames below this are never activity, whatever the floor.
    pub activity_dbov: f32,
    /// A voiced frame at or above this is speech of normal loudness.
    pub voice_dbov: f32,
    /// A frame is active only this far above the background floor.
    pub snr_margin_db: f32,
    /// Lag-one autocorrelation (normalised, -1..1) at or above which a frame
    /// counts as voiced: vowels are low-pass, hiss is not.
    pub voicing: f32,
    /// Normal-loudness voiced time within an utterance before `VoiceStart`.
    pub voice_start_ms: u32,
    /// Voiced time an utterance needs to be reported as `TooQuiet`; shorter
    /// ones are clicks and breaths and are dropped.
    pub too_quiet_ms: u32,
    /// Inactive time that ends an utterance.
    pub end_silence_ms: u32,
    /// The background floor is the minimum of smoothed frame energy over this window.
    pub floor_window_ms: u32,
    /// A floor at or above this is noise loud enough to drown speech.
    pub noise_dbov: f32,
    /// How long the floor must stay that loud before `Noise` (on top of the
    /// floor window, which delays the floor's rise by its own length).
    pub noise_ms: u32,
    /// How long the line must stay below the noise level (less a 3 dB
    /// hysteresis) before `Noise` re-arms.
    pub clean_ms: u32,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        VoiceSettings {
            activity_dbov: -60.0,
            voice_dbov: -35.0,
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
        let (mut energy, mut lag1) = (0i64, 0i64);
        let mut previous = 0i32;
        for &s in samples {
            let s = i32::from(s);
            energy += i64::from(s * s);
            lag1 += i64::from(s * previous);
            previous = s;
        }
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

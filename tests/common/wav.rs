//! WAV files: read and write them (hound), and split a recording into talk
//! spurts, so a test can check when prompts were heard.

use std::path::Path;

/// Mono audio as floats in -1..1 (several channels are averaged).
#[derive(Debug, Clone)]
pub struct Audio {
    pub rate: u32,
    pub samples: Vec<f32>,
}

impl Audio {
    pub fn duration(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate)
    }
}

/// Reads a 16-bit (or other integer / float) WAV as mono floats.
pub fn read_wav(path: impl AsRef<Path>) -> Audio {
    let path = path.as_ref();
    let mut r = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("cannot read WAV {}: {e}", path.display()));
    let spec = r.spec();
    let ch = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = (1i64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.expect("WAV sample") as f32 / scale)
                .collect()
        }
        hound::SampleFormat::Float => r.samples::<f32>().map(|s| s.expect("WAV sample")).collect(),
    };
    let samples = interleaved
        .chunks(ch)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect();
    Audio {
        rate: spec.sample_rate,
        samples,
    }
}

/// Writes 16-bit mono PCM.
pub fn write_wav(path: impl AsRef<Path>, rate: u32, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let path = path.as_ref();
    let mut w = hound::WavWriter::create(path, spec)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    for &s in samples {
        w.write_sample(s).expect("write WAV sample");
    }
    w.finalize().expect("finalize WAV");
}

/// A sine tone: `secs` seconds of `freq` Hz at `amplitude` (0..1 of full scale).
pub fn tone(rate: u32, freq: f64, secs: f64, amplitude: f64) -> Vec<i16> {
    let n = (secs * f64::from(rate)).round() as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            (amplitude * 32767.0 * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
        })
        .collect()
}

/// `secs` seconds of digital silence.
pub fn silence(rate: u32, secs: f64) -> Vec<i16> {
    vec![0; (secs * f64::from(rate)).round() as usize]
}

/// How [`talk_spurts`] cuts a recording.
#[derive(Debug, Clone, Copy)]
pub struct SpurtParams {
    /// Analysis frame length (20 ms: one RTP packet).
    pub frame_ms: u32,
    /// A frame whose RMS level is above this (dB full scale) is talk.
    pub threshold_dbfs: f64,
    /// A spurt ends after at least this long below the threshold; shorter
    /// gaps (pauses between words) stay inside the spurt.
    pub hangover_ms: u32,
    /// Spurts shorter than this are dropped (clicks); 0 keeps all.
    pub min_spurt_ms: u32,
}

impl Default for SpurtParams {
    fn default() -> Self {
        SpurtParams {
            frame_ms: 20,
            threshold_dbfs: -45.0,
            hangover_ms: 400,
            min_spurt_ms: 0,
        }
    }
}

/// One stretch of talk, in seconds from the start of the recording.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spurt {
    /// Start of the first frame above the threshold.
    pub start: f64,
    /// End of the last frame above the threshold.
    pub end: f64,
}

impl Spurt {
    pub fn duration(&self) -> f64 {
        self.end - self.start
    }
}

/// RMS level of each frame in dB full scale (-120 for digital silence).
pub fn frame_levels_dbfs(audio: &Audio, frame_ms: u32) -> Vec<f64> {
    let n = (audio.rate as usize * frame_ms as usize / 1000).max(1);
    audio
        .samples
        .chunks(n)
        .map(|f| {
            let ms = f.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / f.len() as f64;
            if ms <= 1e-12 {
                -120.0
            } else {
                10.0 * ms.log10()
            }
        })
        .collect()
}

/// Talk spurts of a WAV file, with [`SpurtParams::default`].
pub fn talk_spurts(path: impl AsRef<Path>) -> Vec<Spurt> {
    talk_spurts_with(&read_wav(path), SpurtParams::default())
}

/// Splits audio into talk spurts: a spurt starts at a frame above the
/// threshold and ends at the last such frame before a stretch of at least
/// `hangover_ms` below it (or the end of the audio).
pub fn talk_spurts_with(audio: &Audio, p: SpurtParams) -> Vec<Spurt> {
    let levels = frame_levels_dbfs(audio, p.frame_ms);
    let frame = f64::from(p.frame_ms) / 1000.0;
    let hang_frames = p.hangover_ms.div_ceil(p.frame_ms) as usize;
    let total = audio.duration();
    let mut out = Vec::new();
    let mut open: Option<(usize, usize)> = None; // (first loud, last loud)
    for (i, &db) in levels.iter().enumerate() {
        let loud = db > p.threshold_dbfs;
        open = match (open, loud) {
            (None, true) => Some((i, i)),
            (Some((s, _)), true) => Some((s, i)),
            (Some((s, e)), false) if i - e >= hang_frames => {
                out.push((s, e));
                None
            }
            (o, _) => o,
        };
    }
    if let Some(o) = open {
        out.push(o);
    }
    out.into_iter()
        .map(|(s, e)| Spurt {
            start: s as f64 * frame,
            end: ((e + 1) as f64 * frame).min(total),
        })
        .filter(|sp| sp.duration() * 1000.0 >= f64::from(p.min_spurt_ms))
        .collect()
}

/// Talk spurts of a WAV file, those closer than `gap` seconds joined into one: the
/// pauses inside one prompt (at commas) or between prompts played back to back.
pub fn talk_joined(path: impl AsRef<Path>, gap: f64) -> Vec<Spurt> {
    let mut out: Vec<Spurt> = Vec::new();
    for s in talk_spurts(path) {
        match out.last_mut() {
            Some(last) if s.start - last.end < gap => last.end = s.end,
            _ => out.push(s),
        }
    }
    out
}

/// "0.00–1.00 s, 6.00–8.00 s": for assertion messages.
pub fn describe(spurts: &[Spurt]) -> String {
    if spurts.is_empty() {
        return "no talk".into();
    }
    spurts
        .iter()
        .map(|s| format!("{:.2}–{:.2} s", s.start, s.end))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fails unless `actual` is within `tol` of `expected`, naming `what`.
pub fn assert_near(actual: f64, expected: f64, tol: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: {actual:.3} is not within ±{tol:.3} of {expected:.3}"
    );
}

//! Caller audio: the committed fixtures in `tests/fixtures/audio/` (8 kHz mono
//! 16-bit: speech, speech_quiet, white_noise, babble, silence), or audio made
//! at test time with sox and espeak-ng.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::tools::{require_tool, run_with_timeout};

/// A committed fixture, e.g. `fixture("speech.wav")`; fails if it is missing.
pub fn fixture(name: &str) -> PathBuf {
    let p = super::repo_path("tests/fixtures/audio").join(name);
    assert!(p.is_file(), "audio fixture {} is missing", p.display());
    p
}

/// Runs `sox ARGS` (60 s limit); fails the test on an error.
pub fn sox<S: AsRef<std::ffi::OsStr>>(args: &[S]) {
    require_tool("sox");
    let f = run_with_timeout(Command::new("sox").args(args), Duration::from_secs(60));
    assert!(f.success(), "sox failed ({:?}): {}", f.status, f.stderr);
}

/// Converts any audio file to telephone audio: 8 kHz mono 16-bit.
pub fn to_telephone(input: &Path, out: &Path) {
    sox(&[
        input.as_os_str(),
        "-r".as_ref(),
        "8000".as_ref(),
        "-c".as_ref(),
        "1".as_ref(),
        "-b".as_ref(),
        "16".as_ref(),
        out.as_os_str(),
    ]);
}

/// Mandarin speech from espeak-ng (`cmn` voice), as telephone audio.
pub fn speak_mandarin(text: &str, out: &Path) {
    require_tool("espeak-ng");
    let raw = out.with_extension("espeak.wav");
    let f = run_with_timeout(
        Command::new("espeak-ng")
            .args(["-v", "cmn", "-w"])
            .arg(&raw)
            .arg(text),
        Duration::from_secs(60),
    );
    assert!(
        f.success(),
        "espeak-ng failed ({:?}): {}",
        f.status,
        f.stderr
    );
    to_telephone(&raw, out);
    let _ = std::fs::remove_file(raw);
}

/// White noise, `secs` long, at `vol` (0..1) of full scale, 8 kHz mono 16-bit.
pub fn white_noise(out: &Path, secs: f64, vol: f64) {
    sox(&[
        "-n".as_ref(),
        "-r".as_ref(),
        "8000".as_ref(),
        "-c".as_ref(),
        "1".as_ref(),
        "-b".as_ref(),
        "16".as_ref(),
        out.as_os_str(),
        "synth".as_ref(),
        secs.to_string().as_ref(),
        "whitenoise".as_ref(),
        "vol".as_ref(),
        vol.to_string().as_ref(),
    ]);
}

/// `input` with `before` seconds of silence in front and `after` behind.
pub fn pad(input: &Path, out: &Path, before: f64, after: f64) {
    sox(&[
        input.as_os_str(),
        out.as_os_str(),
        "pad".as_ref(),
        before.to_string().as_ref(),
        after.to_string().as_ref(),
    ]);
}

/// `input` scaled by `factor` (0.02 makes a quiet caller).
pub fn scale(input: &Path, out: &Path, factor: f64) {
    sox(&[
        input.as_os_str(),
        out.as_os_str(),
        "vol".as_ref(),
        factor.to_string().as_ref(),
    ]);
}

/// The files one after another.
pub fn concat(inputs: &[&Path], out: &Path) {
    let mut args: Vec<&std::ffi::OsStr> = inputs.iter().map(|p| p.as_os_str()).collect();
    args.push(out.as_os_str());
    sox(&args);
}

//! What a caller hears, frame by frame: whether a PCMU frame is sound, and which
//! prompt a frame opens or closes.
//!
//! A prompt WAV has a few silent frames before its first sound and after its last
//! (espeak-ng leaves ~40-60 ms each side). The protocol's 5 s run from the end of one
//! prompt's playout to the start of the next, so the client, which only sees sound,
//! has to add them back. Hotline sends each prompt's frames bit for bit as encoded at
//! start, so the first and last sounding frames of every clip identify it exactly.
use hotline::media::Codec;
use hotline::media::g711::ulaw_decode;
use hotline::media::prompt::PromptCache;
use std::collections::HashMap;
use std::path::Path;

/// Decoded μ-law magnitude above which a sample is sound. Hotline's silence (0xFF)
/// decodes to 0; the quietest sounding frames of the prompts reach a few hundred.
const SOUND_LEVEL: u16 = 64;

pub const FRAME_NS: u64 = 20_000_000;

/// Sounding frames at each end of a clip that identify it.
const EDGE_FRAMES: usize = 10;

/// Whether a PCMU frame is sound, without decoding it. μ-law's magnitude falls as a
/// byte's low seven bits rise (0x7F and 0xFF are silence), so the loud bytes are those
/// whose low bits are below one mark, and a frame is judged 32 bytes to a vector
/// compare. Why not a look-up per byte: that was half of the load client's receiving
/// thread's own time, on the thread whose keeping up with hotline the overload verdict
/// rests on (perf, 2026-12-05).
pub struct Loudness {
    mark: u8,
}

impl Loudness {
    pub fn new() -> Loudness {
        let loud = |b: u8| ulaw_decode(b).unsigned_abs() > SOUND_LEVEL;
        let mark = (0..128u8).find(|&v| !loud(v)).unwrap_or(128);
        assert!(
            (0..=255u8).all(|b| loud(b) == ((b & 0x7F) < mark)),
            "μ-law loudness is not a mark on the low seven bits"
        );
        Loudness { mark }
    }

    pub fn sounding(&self, payload: &[u8]) -> bool {
        // No early exit inside a chunk: the fold becomes one compare of 32 bytes.
        payload.chunks(32).any(|c| {
            c.iter()
                .fold(false, |any, &b| any | ((b & 0x7F) < self.mark))
        })
    }
}

/// Cheap and good enough to tell the ~20,000 frames of the prompts apart.
pub fn frame_hash(p: &[u8]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15 ^ p.len() as u64;
    let mut chunks = p.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w))
            .wrapping_mul(0x0100_0000_01B3)
            .rotate_left(29);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
    }
    h
}

/// One end of a clip: which prompt it belongs to and how many silent frames lie
/// between its sound and its edge.
#[derive(Clone, Debug)]
pub struct Edge {
    pub prompt: String,
    pub silent_frames: u32,
}

pub struct Fingerprints {
    pub loud: Loudness,
    pub edges: Vec<Edge>,
    /// First sounding frame of a prompt's first clip → edge.
    starts: HashMap<u64, u32>,
    /// Last sounding frame of any clip → edge.
    ends: HashMap<u64, u32>,
    /// Longest silence inside any clip, in frames: the talk-spurt detector must bridge it.
    pub longest_inner_pause: usize,
}

/// `greeting.2` → `greeting`: clips of prompts with variables are numbered segments.
fn prompt_of(stem: &str) -> (&str, Option<u32>) {
    match stem.rsplit_once('.') {
        Some((p, n)) if n.parse::<u32>().is_ok() => (p, n.parse().ok()),
        _ => (stem, None),
    }
}

impl Fingerprints {
    pub fn load(dir: &Path) -> Result<Fingerprints, String> {
        let cache = PromptCache::load_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let loud = Loudness::new();
        let mut fp = Fingerprints {
            loud,
            edges: Vec::new(),
            starts: HashMap::new(),
            ends: HashMap::new(),
            longest_inner_pause: 0,
        };
        let mut starts: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut ends: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut ids: Vec<&str> = cache.ids().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(clip) = cache.get(id) else { continue };
            let n = clip.frame_count();
            let sounding: Vec<usize> = (0..n)
                .filter(|&i| fp.loud.sounding(clip.frame(Codec::Pcmu, i)))
                .collect();
            if sounding.is_empty() {
                continue;
            }
            for w in sounding.windows(2) {
                fp.longest_inner_pause = fp.longest_inner_pause.max(w[1] - w[0] - 1);
            }
            let (prompt, segment) = prompt_of(id);
            // The first and last few sounding frames, so that a frame hotline's pacer
            // skipped or the network lost still leaves the edge identified.
            let opening = segment.is_none_or(|s| s == 1);
            for &i in sounding.iter().take(EDGE_FRAMES) {
                if opening {
                    fp.edges.push(Edge {
                        prompt: prompt.to_owned(),
                        silent_frames: i as u32,
                    });
                    let e = fp.edges.len() as u32 - 1;
                    starts
                        .entry(frame_hash(clip.frame(Codec::Pcmu, i)))
                        .or_default()
                        .push(e);
                }
            }
            for &i in sounding.iter().rev().take(EDGE_FRAMES) {
                fp.edges.push(Edge {
                    prompt: prompt.to_owned(),
                    silent_frames: (n - 1 - i) as u32,
                });
                let e = fp.edges.len() as u32 - 1;
                ends.entry(frame_hash(clip.frame(Codec::Pcmu, i)))
                    .or_default()
                    .push(e);
            }
        }
        // Prompts that open alike (您好...) share frames: such a frame names no prompt.
        let edges = &fp.edges;
        let same = |v: &Vec<u32>| {
            let e0 = &edges[v[0] as usize];
            v.iter().all(|&i| {
                let e = &edges[i as usize];
                e.prompt == e0.prompt && e.silent_frames == e0.silent_frames
            })
        };
        fp.starts = starts
            .into_iter()
            .filter(|(_, v)| same(v))
            .map(|(h, v)| (h, v[0]))
            .collect();
        fp.ends = ends
            .into_iter()
            .filter(|(_, v)| same(v))
            .map(|(h, v)| (h, v[0]))
            .collect();
        if fp.starts.is_empty() {
            return Err(format!("no prompts with sound in {}", dir.display()));
        }
        Ok(fp)
    }

    pub fn start(&self, hash: u64) -> Option<u32> {
        self.starts.get(&hash).copied()
    }

    pub fn end(&self, hash: u64) -> Option<u32> {
        self.ends.get(&hash).copied()
    }

    pub fn edge(&self, i: Option<u32>) -> Option<&Edge> {
        i.and_then(|i| self.edges.get(i as usize))
    }

    /// Whether this frame is one of the first sounding frames of `prompt`.
    pub fn opens(&self, hash: u64, prompt: &str) -> bool {
        self.edge(self.start(hash))
            .is_some_and(|e| e.prompt == prompt)
    }
}

//! Per-packet CPU cost of the media core, against the 2 µs budget
//! (5 000 calls × 50 packets/s each way on 2 cores).
//!
//! `cargo bench --bench media` prints the median of several runs, in ns per
//! packet, for the receive path (RTP parse + G.711 decode + voice classifier)
//! and the send path (pacer tick + playout frame + RTP header write), plus
//! their parts, and checks that none of them allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hotline::media::dtmf::{DtmfDetector, DtmfKey, EventPackets};
use hotline::media::prompt::{Clip, Playout};
use hotline::media::rtp::{Pacer, RtpHeader, RtpPacket};
use hotline::media::voice::{VoiceClassifier, VoiceSettings};
use hotline::media::{Codec, FRAME_SAMPLES};

const RUNS: usize = 15;
const PACKETS_PER_RUN: usize = 200_000;

/// Counts heap allocations, so the bench can prove the packet paths make none.
struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Median ns per packet, and heap allocations over all runs.
struct Cost {
    ns: f64,
    allocations: usize,
}

/// Runs `body` on `PACKETS_PER_RUN` packets `RUNS` times.
fn per_packet(mut body: impl FnMut(usize)) -> Cost {
    let mut runs = [0f64; RUNS];
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for run in &mut runs {
        let start = Instant::now();
        for i in 0..PACKETS_PER_RUN {
            body(i);
        }
        *run = start.elapsed().as_nanos() as f64 / PACKETS_PER_RUN as f64;
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    runs.sort_by(f64::total_cmp);
    Cost {
        ns: runs[RUNS / 2],
        allocations,
    }
}

fn fixture(name: &str) -> Vec<i16> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audio")
        .join(name);
    let mut reader = hound::WavReader::open(&path).expect("fixture exists (run from the crate)");
    reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("fixture reads")
}

/// The fixtures as a stream of PCMU RTP packets, as a caller would send them.
fn caller_packets() -> Vec<Vec<u8>> {
    let audio: Vec<i16> = ["speech.wav", "babble.wav", "silence.wav", "white_noise.wav"]
        .iter()
        .flat_map(|name| fixture(name))
        .collect();
    audio
        .chunks_exact(FRAME_SAMPLES)
        .enumerate()
        .map(|(n, chunk)| {
            let mut payload = [0u8; FRAME_SAMPLES];
            Codec::Pcmu.encode(chunk, &mut payload);
            let header = RtpHeader {
                marker: n == 0,
                payload_type: Codec::Pcmu.payload_type(),
                sequence: n as u16,
                timestamp: (n * FRAME_SAMPLES) as u32,
                ssrc: 0x1234_5678,
            };
            let mut packet = vec![0u8; 12 + FRAME_SAMPLES];
            header.write(&payload, &mut packet).expect("fits");
            packet
        })
        .collect()
}

fn main() {
    let packets = caller_packets();
    let settings = VoiceSettings::default();

    let parse = per_packet(|i| {
        let p = RtpPacket::parse(black_box(&packets[i % packets.len()]));
        black_box(p.map(|p| p.payload.len()).ok());
    });

    let mut pcm = [0i16; FRAME_SAMPLES];
    let decode = per_packet(|i| {
        let bytes = &packets[i % packets.len()][12..];
        Codec::Pcmu.decode(black_box(bytes), &mut pcm);
        black_box(&pcm);
    });

    let frames: Vec<[i16; FRAME_SAMPLES]> = packets
        .iter()
        .map(|p| {
            let mut f = [0i16; FRAME_SAMPLES];
            Codec::Pcmu.decode(&p[12..], &mut f);
            f
        })
        .collect();
    let mut classifier = VoiceClassifier::new(&settings);
    let classify = per_packet(|i| {
        black_box(classifier.push_frame(black_box(&frames[i % frames.len()])));
    });

    let mut classifier = VoiceClassifier::new(&settings);
    let receive = per_packet(|i| {
        let Ok(packet) = RtpPacket::parse(black_box(&packets[i % packets.len()])) else {
            return;
        };
        let Some(codec) = Codec::from_payload_type(packet.payload_type) else {
            return;
        };
        let mut frame = [0i16; FRAME_SAMPLES];
        codec.decode(packet.payload, &mut frame);
        black_box(classifier.push_frame(&frame));
    });

    let dtmf_payloads: Vec<[u8; 4]> = DtmfKey::from_char('5')
        .map(|k| EventPackets::new(k, 100, 10).map(|p| p.payload).collect())
        .unwrap_or_default();
    let mut detector = DtmfDetector::new();
    let dtmf = per_packet(|i| {
        let press = (i / dtmf_payloads.len()) as u32;
        let payload = &dtmf_payloads[i % dtmf_payloads.len()];
        black_box(
            detector
                .on_packet(7, press * 1600, black_box(payload))
                .count(),
        );
    });

    let clip = std::sync::Arc::new(Clip::from_samples(&fixture("speech.wav")));
    let mut playout = Playout::new();
    let mut out = [0u8; 1500];
    let mut pacer = Pacer::new(Instant::now(), 0xCAFE, 1, 1);
    let send = per_packet(|_| {
        if !playout.is_playing() {
            playout.enqueue_clip(clip.clone());
            playout.enqueue_silence_ms(500);
        }
        let Some(tick) = pacer.poll(pacer.next_due()) else {
            return;
        };
        let frame = playout.next_frame(Codec::Pcma);
        let len = tick
            .header(Codec::Pcma.payload_type())
            .write(frame.payload, &mut out);
        black_box((len.ok(), frame.done, &out));
    });

    println!(
        "media per-packet cost, median of {RUNS} runs of {PACKETS_PER_RUN} packets \
         (allocations: total over all {} packets)",
        RUNS * PACKETS_PER_RUN
    );
    let rows = [
        ("rtp parse", &parse),
        ("g711 decode (160 B)", &decode),
        ("voice classify (20 ms frame)", &classify),
        ("dtmf detector", &dtmf),
        ("RECEIVE parse+decode+classify", &receive),
        ("SEND pacer+playout+header", &send),
    ];
    for (name, cost) in rows {
        println!(
            "  {name:<30} {:8.1} ns   {} allocations",
            cost.ns, cost.allocations
        );
    }
    let allocating: Vec<&str> = rows
        .iter()
        .filter(|(_, c)| c.allocations > 0)
        .map(|(n, _)| *n)
        .collect();
    assert!(
        allocating.is_empty(),
        "packet paths allocate: {allocating:?}"
    );
}

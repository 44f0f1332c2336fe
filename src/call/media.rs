//! One call's audio: the 20 ms send schedule, what arrives (G.711 voice, RFC 4733
//! keys), and the caller's recording. Owns no socket and no clock: the call task hands
//! it packets and the time, and sends what it returns.
use crate::flow::Event;
use crate::flow::catalogue::{Clip as FlowClip, Utterance};
use crate::media::dtmf::DtmfDetector;
use crate::media::prompt::{Cue, Playout, PromptCache};
use crate::media::rtp::{Pacer, RtpHeader, RtpPacket, is_rtcp};
use crate::media::voice::{VoiceClassifier, VoiceEvent, VoiceSettings};
use crate::media::{Codec, FRAME_SAMPLES};
use crate::sip::sdp;
use std::net::SocketAddr;
use std::time::Instant;

/// Largest RTP packet written: 12-byte header and one 160-byte G.711 frame.
pub const MAX_PACKET: usize = 12 + FRAME_SAMPLES;
/// Longest recording kept in memory before it is written (P-CMPL complaints are minutes).
const MAX_RECORDING_SAMPLES: usize = 8000 * 600;

pub fn media_codec(c: sdp::Codec) -> Codec {
    match c {
        sdp::Codec::Pcmu => Codec::Pcmu,
        sdp::Codec::Pcma => Codec::Pcma,
    }
}

/// When each utterance of a play request starts, in ms from the start of the request:
/// what the call record shows.
pub fn play_starts(cache: &PromptCache, utterances: &[Utterance]) -> Vec<u64> {
    let mut at_ms = 0u64;
    let mut starts = Vec::with_capacity(utterances.len());
    for u in utterances {
        starts.push(at_ms);
        for c in &u.clips {
            at_ms += match c {
                FlowClip::Audio(clip) => cache
                    .get(clip)
                    .map_or(0, |found| found.duration().as_millis() as u64),
                FlowClip::Pause(d) => d.as_millis() as u64,
            };
        }
    }
    starts
}

/// The negotiated stream: what to send, where, and what arrives as keys.
#[derive(Clone, Debug)]
pub struct Stream {
    pub codec: Codec,
    pub payload_type: u8,
    pub telephone_event: Option<u8>,
    pub remote: Option<SocketAddr>,
    pub send: bool,
}

impl Stream {
    pub fn from_negotiated(n: &sdp::Negotiated) -> Stream {
        Stream {
            codec: media_codec(n.codec),
            payload_type: n.payload_type,
            telephone_event: n.telephone_event,
            remote: n.remote_rtp,
            send: n.should_send(),
        }
    }
}

/// In this order (`repr(C)`): what a visit reads every frame first ([`MediaLeg::HOT`]
/// bytes, three cache lines), the detectors and the recording, read only when the caller
/// sends, after; a media thread fetches a leg's first lines ahead of its visit.
#[repr(C)]
pub struct MediaLeg {
    pub stream: Stream,
    pacer: Pacer,
    playout: Playout,
    /// The flow's play request now sounding; its PromptDone goes back to the flow.
    playing: Option<u64>,
    dtmf: DtmfDetector,
    voice: VoiceClassifier,
    recording: Option<Vec<i16>>,
}

/// What one [`MediaLeg::tick`] did.
pub struct Ticked {
    /// The flow's play request has finished sounding.
    pub done: Option<Event>,
    /// Frames the pacer dropped from the schedule, too late to be worth sending.
    pub skipped: u64,
}

/// What one received packet means for the flow.
#[derive(Default)]
pub struct Heard {
    pub events: Vec<Event>,
}

impl MediaLeg {
    pub fn new(stream: Stream, voice: &VoiceSettings, t0: Instant) -> MediaLeg {
        // RFC 3550 §5.1: random initial sequence number, timestamp and SSRC.
        let pacer = Pacer::new(t0, rand::random(), rand::random(), rand::random());
        MediaLeg {
            stream,
            pacer,
            playout: Playout::new(),
            playing: None,
            dtmf: DtmfDetector::new(),
            voice: VoiceClassifier::new(voice),
            recording: None,
        }
    }

    /// Queues a flow play request, replacing whatever still sounds (the flow asks for
    /// one thing at a time).
    pub fn play(&mut self, cache: &PromptCache, id: u64, utterances: &[Utterance]) {
        self.playout.clear();
        let mut cues: Vec<Cue<'_>> = Vec::new();
        for u in utterances {
            for c in &u.clips {
                match c {
                    FlowClip::Audio(clip) => {
                        if cache.contains(clip) {
                            cues.push(Cue::Clip(clip));
                        } else {
                            tracing::warn!(clip = %clip, "prompt clip not loaded; skipped");
                        }
                    }
                    FlowClip::Pause(d) => cues.push(Cue::SilenceMs(d.as_millis() as u32)),
                }
            }
        }
        if let Err(e) = self.playout.play(cache, &cues) {
            tracing::warn!(error = %e, "prompt not played");
        }
        self.playing = Some(id);
    }

    pub fn stop(&mut self) {
        self.playout.clear();
        self.playing = None;
    }

    /// The leading bytes a visit reads every frame (see the struct's order), which a
    /// media thread asks the cache for a few legs ahead: it visits a few hundred legs a
    /// slot, each cold since its last frame, and the first touch of each was two thirds
    /// of the visit loop's own time (perf, 2026-12-03).
    pub const HOT: usize = std::mem::offset_of!(MediaLeg, dtmf);

    /// The second step, a couple of legs later, once the leg's first lines have brought
    /// the playout cursor in: the clip queue it points to, a line of its own on the heap.
    pub fn prefetch_queue(&self) {
        self.playout.prefetch_queue();
    }

    /// Hands every frame due by `now` to `send` (its RTP header, its payload and when it
    /// was due: the packet is written where it is sent from) and says when a play
    /// request has finished sounding.
    pub fn tick(
        &mut self,
        now: Instant,
        mut send: impl FnMut(&RtpHeader, &[u8], Instant),
    ) -> Ticked {
        let mut done = None;
        let mut skipped = 0;
        while let Some(tick) = self.pacer.poll(now) {
            skipped += tick.skipped;
            let frame = self.playout.next_frame(self.stream.codec);
            if self.stream.send && self.stream.remote.is_some() {
                let header = tick.header(self.stream.payload_type);
                send(&header, frame.payload, self.pacer.due_of(tick.frame));
            }
            if frame.done
                && let Some(id) = self.playing.take()
            {
                done = Some(Event::PlayDone { id });
            }
        }
        // A play request with nothing audible (all clips missing) is done at once.
        if done.is_none()
            && !self.playout.is_playing()
            && let Some(id) = self.playing.take()
        {
            done = Some(Event::PlayDone { id });
        }
        Ticked { done, skipped }
    }

    /// Interprets one datagram from the caller.
    pub fn receive(&mut self, packet: &[u8], heard: &mut Heard) {
        if is_rtcp(packet) {
            return;
        }
        let Ok(p) = RtpPacket::parse(packet) else {
            return;
        };
        if Some(p.payload_type) == self.stream.telephone_event {
            for key in self.dtmf.on_packet(p.ssrc, p.timestamp, p.payload) {
                heard.events.push(Event::Dtmf(key.as_char()));
            }
            return;
        }
        if p.payload_type != self.stream.payload_type {
            return;
        }
        // Frames of other sizes are cut or padded to 20 ms: the classifier's unit. On the
        // stack, not in the leg: every packet overwrites all of it.
        let mut pcm = [0i16; FRAME_SAMPLES];
        let n = self
            .stream
            .codec
            .decode(&p.payload[..p.payload.len().min(FRAME_SAMPLES)], &mut pcm);
        if let Some(rec) = &mut self.recording
            && rec.len() < MAX_RECORDING_SAMPLES
        {
            rec.extend_from_slice(&pcm[..n]);
        }
        if let Some(v) = self.voice.push_frame(&pcm) {
            heard.events.push(match v {
                VoiceEvent::VoiceStart => Event::VoiceStart,
                VoiceEvent::VoiceEnd => Event::VoiceEnd,
                VoiceEvent::TooQuiet => Event::TooQuiet,
                VoiceEvent::Noise => Event::Noise,
            });
        }
    }

    pub fn start_recording(&mut self) {
        self.recording = Some(Vec::with_capacity(8000 * 30));
    }

    pub fn stop_recording(&mut self) -> Vec<i16> {
        self.recording.take().unwrap_or_default()
    }
}

/// Writes a caller's recording as 8 kHz 16-bit mono WAV (blocking: run it off the
/// call's task).
pub fn write_wav(path: &std::path::Path, samples: &[i16]) -> Result<(), hound::Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for s in samples {
        w.write_sample(*s)?;
    }
    w.finalize()
}

#!/usr/bin/env python3
"""pjcall.py: one headless SIP call from a real PJSIP stack (pjsua2), for tests.

Dials a SIP URI over UDP on 127.0.0.1, plays a WAV as the caller's voice (or
digital silence, still sent as RTP), sends RFC 4733 DTMF at given times after
the call is confirmed, optionally puts the call on hold and back with
re-INVITEs, records what the caller heard (8 kHz mono 16-bit WAV), hangs up
after a given time or waits for the far end's BYE, and writes a JSON report:

    {"confirmed_at": unix_s, "disconnected_at": unix_s, "last_status": code,
     "remote_hangup": bool, "dtmf_sent": [[key, t]], "error": null, ...}

(`t` is seconds after confirmation; extra keys: record_started_at, hold_at,
unhold_at, rtp_tx_packets, rtp_rx_packets, call_id, exit_code.)

With --follow-refer a REFER from the far end is accepted (202) and its
Refer-To called at once from the same account, as a phone's blind transfer does:
the report then says where (refer_to) and how that second call went
(transfer_confirmed_at, transfer_status, transfer_disconnected_at,
transfer_remote_hangup); the script waits for both calls to end. Without it a
REFER is refused with 603.

With --answer it is the callee instead: it listens on --bind:--local-port,
prints "pjcall: listening" on stderr, answers the first INVITE (180, then 200
after --answer-after seconds) and runs that call the same way (DTMF, record,
hang up or wait for the BYE). Exit code 1 if no call came within --max-time.

Exit codes: 0 the call ran as asked; 1 the call failed (not answered, DTMF
could not be sent, exception, ...); 2 bad arguments; 3 --max-time was reached
with the call still up (the caller then hangs up itself).

pjsua2 traps this script works around (see /work/shared/TEST-CLIENTS.md):
  * Threads: the library runs with uaConfig.threadCnt=0 and mainThreadOnly=True
    and this script polls libHandleEvents(), so every callback runs on the
    Python main thread.
  * No sound card: audDevManager().setNullDev() gives the conference bridge
    a clock without ALSA.
  * VAD: mediaConfig.noVad=True, or silence would not be sent as RTP at all.
    Without --play the caller plays a looped WAV of zeros, so RTP flows.
  * Exceptions raised inside callbacks are swallowed by SWIG: every callback
    is wrapped to print the traceback and record it in the report.
  * `for m in call.getInfo().media` iterates a temporary whose memory is
    freed: the CallInfo is kept in a variable first.
  * Recording happens at the bridge clock rate: clockRate=sndClockRate=8000,
    and the file is checked afterwards (sox resamples it if it is not 8 kHz
    mono 16-bit).
  * pjlib logs to stdout (fd 1), even before libInit applies a log config:
    fd 1 is pointed at stderr, and the report goes to the real stdout.
  * The wheel allows 4 calls a process (PJ_ETOOMANY on the 5th): this script
    makes exactly one.
  * The recorder writes its WAV header on destruction: it is destroyed
    before libDestroy().
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import wave

import pjsua2 as pj

RATE = 8000


def log(msg):
    print(f"pjcall: {msg}", file=sys.stderr, flush=True)


class State:
    """Everything the callbacks and the main loop share."""

    def __init__(self):
        self.confirmed_at = None  # unix seconds
        self.confirmed_mono = None  # monotonic seconds
        self.disconnected_at = None
        self.last_status = None
        self.we_hung_up = False
        self.remote_hangup = False
        self.errors = []
        self.record_started_at = None
        self.call_id = None
        self.ringing_mono = None
        self.refer_to = None
        self.transfer_call = None
        self.transfer_confirmed_at = None
        self.transfer_disconnected_at = None
        self.transfer_status = None
        self.transfer_remote_hangup = False

    def fail(self, msg):
        log(f"error: {msg}")
        self.errors.append(msg)


STATE = State()


def guarded(fn):
    """Callbacks' exceptions vanish inside SWIG: print and record them."""

    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - anything, or it is lost
            traceback.print_exc()
            STATE.fail(f"exception in {fn.__name__}: {exc!r}")
            return None

    return wrapper


class Call(pj.Call):
    def __init__(self, acc, player, recorder, call_id=pj.PJSUA_INVALID_ID, follow_refer=False):
        pj.Call.__init__(self, acc, call_id)
        self.account = acc
        self.player = player
        self.recorder = recorder
        self.follow_refer = follow_refer

    @guarded
    def onCallTransferRequest(self, prm):
        STATE.refer_to = prm.dstUri
        log(f"REFER to {prm.dstUri}")
        if not self.follow_refer or STATE.transfer_call is not None:
            prm.statusCode = 603
            return
        # The library places the new call; it needs our object for its callbacks.
        STATE.transfer_call = TransferredCall(self.account, self.player, self.recorder)
        prm.newCall = STATE.transfer_call

    @guarded
    def onCallTransferStatus(self, prm):
        log(f"transfer status {prm.statusCode} {prm.reason} final={prm.finalNotify}")

    @guarded
    def onCallState(self, prm):
        ci = self.getInfo()
        STATE.last_status = ci.lastStatusCode
        STATE.call_id = ci.callIdString
        log(f"state {ci.stateText} status {ci.lastStatusCode} {ci.lastReason}")
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and STATE.confirmed_at is None:
            STATE.confirmed_at = time.time()
            STATE.confirmed_mono = time.monotonic()
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            STATE.disconnected_at = time.time()
            # A BYE from the far end of a confirmed call that we did not end.
            STATE.remote_hangup = STATE.confirmed_at is not None and not STATE.we_hung_up

    @guarded
    def onCallMediaState(self, prm):
        ci = self.getInfo()  # keep it: iterating a temporary reads freed memory
        media = ci.media
        for mi in media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            log(f"media {mi.index} status {mi.status} dir {mi.dir}")
            # ACTIVE, or a hold either way (a recvonly offer answered without a
            # direction shows as REMOTE_HOLD): the stream exists, hook it up.
            if mi.status in (pj.PJSUA_CALL_MEDIA_NONE, pj.PJSUA_CALL_MEDIA_ERROR):
                continue
            am = self.getAudioMedia(mi.index)
            if self.player is not None:
                self.player.startTransmit(am)
            if self.recorder is not None:
                am.startTransmit(self.recorder)
                if STATE.record_started_at is None:
                    STATE.record_started_at = time.time()


class TransferredCall(Call):
    """The call a REFER asked for: its state goes to the transfer_* fields."""

    @guarded
    def onCallState(self, prm):
        ci = self.getInfo()
        STATE.transfer_status = ci.lastStatusCode
        log(f"transfer call: state {ci.stateText} status {ci.lastStatusCode} {ci.lastReason}")
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and STATE.transfer_confirmed_at is None:
            STATE.transfer_confirmed_at = time.time()
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            STATE.transfer_disconnected_at = time.time()
            STATE.transfer_remote_hangup = STATE.transfer_confirmed_at is not None


class Callee(pj.Account):
    """--answer: takes the first incoming call; later ones get 486."""

    def __init__(self):
        pj.Account.__init__(self)
        self.player = None
        self.recorder = None
        self.call = None

    @guarded
    def onIncomingCall(self, prm):
        call = Call(self, self.player, self.recorder, prm.callId)
        op = pj.CallOpParam()
        if self.call is not None:
            op.statusCode = 486
            call.hangup(op)
            return
        self.call = call
        op.statusCode = 180
        call.answer(op)
        STATE.ringing_mono = time.monotonic()
        log("incoming call: ringing")


def parse_dtmf(spec):
    """'1@12.5,2@20' -> [('1', 12.5), ('2', 20.0)], sorted by time."""
    out = []
    if not spec:
        return out
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, at = item.partition("@")
        if not sep or len(key) != 1 or key not in "0123456789*#ABCDabcd":
            raise ValueError(f"bad DTMF item {item!r}: want KEY@SECONDS, KEY one of 0-9*#A-D")
        out.append((key.upper(), float(at)))
    return sorted(out, key=lambda kv: kv[1])


def write_silence(path, seconds):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"\x00\x00" * int(RATE * seconds))


def pad_with_silence(src, dst, seconds):
    """Copy src and append `seconds` of silence (so a looped player is heard once)."""
    with wave.open(src, "rb") as r:
        params = r.getparams()
        frames = r.readframes(r.getnframes())
    with wave.open(dst, "wb") as w:
        w.setparams(params)
        w.writeframes(frames)
        w.writeframes(b"\x00" * (params.sampwidth * params.nchannels * int(params.framerate * seconds)))


def normalise_recording(path):
    """Make sure the recording is 8 kHz mono 16-bit; resample with sox if not."""
    try:
        with wave.open(path, "rb") as r:
            ok = r.getframerate() == RATE and r.getnchannels() == 1 and r.getsampwidth() == 2
    except (wave.Error, EOFError) as exc:
        STATE.fail(f"recording {path} unreadable: {exc}")
        return
    if ok:
        return
    if shutil.which("sox") is None:
        STATE.fail("recording is not 8 kHz mono 16-bit and sox is missing")
        return
    tmp = path + ".tmp.wav"
    subprocess.run(["sox", path, "-r", str(RATE), "-c", "1", "-b", "16", tmp], check=True, timeout=60)
    os.replace(tmp, path)


class StreamCounter:
    """RTP packet counters summed over the call's streams: a re-INVITE makes a
    new stream whose counters start again at zero."""

    def __init__(self):
        self.base = [0, 0]
        self.last = [0, 0]

    def poll(self, call):
        try:
            if not call.hasMedia():
                return
            stat = call.getStreamStat(0)
        except pj.Error:
            return
        now = [stat.rtcp.txStat.pkt, stat.rtcp.rxStat.pkt]
        for i in range(2):
            if now[i] < self.last[i]:
                self.base[i] += self.last[i]
            self.last[i] = now[i]

    def totals(self):
        return self.base[0] + self.last[0], self.base[1] + self.last[1]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", help="sip:USER@127.0.0.1:PORT (the caller's)")
    p.add_argument("--answer", action="store_true", help="be the callee: answer the first call that comes")
    p.add_argument("--answer-after", type=float, default=0.5, help="--answer: seconds of ringing before the 200")
    p.add_argument("--bind", default="127.0.0.1", help="local IP for SIP and RTP (a 127.0.0.x of its own)")
    p.add_argument("--play", help="WAV played as the caller's voice, looped (default: digital silence)")
    p.add_argument("--play-once", action="store_true", help="play --play once, then silence (instead of looping)")
    p.add_argument("--no-rtp", action="store_true", help="offer a=recvonly and send no RTP at all")
    p.add_argument("--dtmf", default="", help='RFC 4733 keys at seconds after confirmation: "1@12.5,2@20"')
    p.add_argument("--dtmf-duration-ms", type=int, default=160)
    p.add_argument("--follow-refer", action="store_true", help="accept a REFER and call its target (blind transfer)")
    p.add_argument("--hangup-after", type=float, help="caller hangs up this many seconds after confirmation")
    p.add_argument("--max-time", type=float, default=60.0, help="hard limit on the whole run, seconds")
    p.add_argument("--record", help="write what the caller heard to this WAV (8 kHz mono 16-bit)")
    p.add_argument("--reinvite-hold-at", type=float, help="re-INVITE to hold at this time, and back after 1 s")
    p.add_argument("--local-port", type=int, default=0, help="local SIP UDP port (0 = any)")
    p.add_argument("--rtp-port", type=int, default=4000, help="first local RTP port tried (next even ports if taken)")
    p.add_argument("--json", help="write the JSON report here (default: stdout)")
    p.add_argument("--user", default="pjcall", help="caller's user part in From")
    p.add_argument("--codecs", default="PCMU,PCMA", help="codecs offered, in order (others disabled)")
    p.add_argument("--log-level", type=int, default=1, help="pjsip log level to stderr (0-6)")
    return p.parse_args(argv)


def run(args, tmpdir):
    """Place the call. Returns the exit code; fills STATE."""
    dtmf_plan = parse_dtmf(args.dtmf)
    dtmf_sent = []
    report = {"dtmf_sent": dtmf_sent, "hold_at": None, "unhold_at": None}

    ep = pj.Endpoint()
    ep.libCreate()
    ep_cfg = pj.EpConfig()
    ep_cfg.uaConfig.threadCnt = 0
    ep_cfg.uaConfig.mainThreadOnly = True
    ep_cfg.uaConfig.maxCalls = 4
    ep_cfg.uaConfig.userAgent = "hotline-pjcall"
    ep_cfg.logConfig.level = args.log_level
    ep_cfg.logConfig.consoleLevel = args.log_level
    ep_cfg.medConfig.clockRate = RATE
    ep_cfg.medConfig.sndClockRate = RATE
    ep_cfg.medConfig.channelCount = 1
    ep_cfg.medConfig.noVad = True
    ep_cfg.medConfig.ecTailLen = 0
    ep.libInit(ep_cfg)

    tcfg = pj.TransportConfig()
    tcfg.port = args.local_port
    tcfg.boundAddress = args.bind
    tcfg.publicAddress = args.bind
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()

    wanted = [c.strip().upper() for c in args.codecs.split(",") if c.strip()]
    for info in ep.codecEnum2():
        name = info.codecId.split("/")[0].upper()
        prio = 255 - wanted.index(name) if name in wanted else 0
        ep.codecSetPriority(info.codecId, prio)

    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{args.user}@{args.bind}"
    acfg.mediaConfig.transportConfig.boundAddress = args.bind
    acfg.mediaConfig.transportConfig.publicAddress = args.bind
    acfg.mediaConfig.transportConfig.port = args.rtp_port
    acfg.natConfig.iceEnabled = False
    acfg.natConfig.sdpNatRewriteUse = 0
    acc = Callee() if args.answer else pj.Account()
    acc.create(acfg)

    player = None
    if not args.no_rtp:
        src = args.play
        if src is None:
            src = os.path.join(tmpdir, "silence.wav")
            write_silence(src, 1.0)
        elif args.play_once:
            padded = os.path.join(tmpdir, "padded.wav")
            pad_with_silence(src, padded, args.max_time + 5)
            src = padded
        player = pj.AudioMediaPlayer()
        player.createPlayer(src, 0)  # 0 = loop

    recorder = None
    if args.record:
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(args.record)

    if args.answer:
        acc.player, acc.recorder = player, recorder
        log("listening")
        end = time.monotonic() + args.max_time
        answered = False
        while time.monotonic() < end and STATE.disconnected_at is None:
            ep.libHandleEvents(10)
            if acc.call is not None and not answered and STATE.ringing_mono is not None:
                if time.monotonic() - STATE.ringing_mono >= args.answer_after:
                    op = pj.CallOpParam()
                    op.statusCode = 200
                    acc.call.answer(op)
                    answered = True
                    log("answered")
            if STATE.confirmed_mono is not None:
                break
        if acc.call is None:
            STATE.fail("no call came")
            del player, recorder
            ep.libDestroy()
            return 1, report
        call = acc.call
    else:
        call = Call(acc, player, recorder, follow_refer=args.follow_refer)
    prm = pj.CallOpParam(True)
    if args.no_rtp:
        prm.opt.flag |= pj.PJSUA_CALL_SET_MEDIA_DIR
        prm.opt.mediaDir = pj.IntVector([pj.PJMEDIA_DIR_DECODING])
    start = time.monotonic()
    deadline = start + args.max_time
    code = 0
    hold_state = None  # None -> "held" -> "unheld"
    next_stat = 0.0
    counter = StreamCounter()
    try:
        if not args.answer:
            if not args.target:
                raise pj.Error(0, "--target is needed to place a call", "", "", 0)
            call.makeCall(args.target, prm)
        while STATE.disconnected_at is None:
            ep.libHandleEvents(10)
            now = time.monotonic()
            if now >= deadline:
                STATE.fail(f"max-time {args.max_time}s reached before the call ended")
                code = 3
                break
            if STATE.confirmed_mono is None:
                continue
            if now >= next_stat:
                # Stream counters, polled: once the call is gone, so is its stream.
                next_stat = now + 0.2
                counter.poll(call)
            if STATE.we_hung_up:
                continue  # waiting for the BYE's answer
            t = now - STATE.confirmed_mono
            while dtmf_plan and dtmf_plan[0][1] <= t:
                key, _ = dtmf_plan.pop(0)
                dp = pj.CallSendDtmfParam()
                dp.digits = key
                dp.method = pj.PJSUA_DTMF_METHOD_RFC2833
                dp.duration = args.dtmf_duration_ms
                try:
                    call.sendDtmf(dp)
                    dtmf_sent.append([key, round(t, 3)])
                    log(f"DTMF {key} at {t:.3f}s")
                except pj.Error as exc:
                    STATE.fail(f"DTMF {key} at {t:.3f}s failed: {exc.info()}")
            if args.reinvite_hold_at is not None:
                if hold_state is None and t >= args.reinvite_hold_at:
                    call.setHold(pj.CallOpParam(True))
                    report["hold_at"] = round(t, 3)
                    hold_state = "held"
                    log(f"hold at {t:.3f}s")
                elif hold_state == "held" and t >= args.reinvite_hold_at + 1.0:
                    up = pj.CallOpParam(True)
                    up.opt.flag |= pj.PJSUA_CALL_UNHOLD
                    call.reinvite(up)
                    report["unhold_at"] = round(t, 3)
                    hold_state = "unheld"
                    log(f"unhold at {t:.3f}s")
            if args.hangup_after is not None and t >= args.hangup_after and not STATE.we_hung_up:
                STATE.we_hung_up = True
                counter.poll(call)
                log(f"hanging up at {t:.3f}s")
                call.hangup(pj.CallOpParam(True))
    except pj.Error as exc:
        STATE.fail(f"pjsua error: {exc.info()}")
        code = 1

    if STATE.disconnected_at is None:
        # Max time or error: end the call ourselves and let the BYE/CANCEL go out.
        STATE.we_hung_up = True
        try:
            call.hangup(pj.CallOpParam(True))
        except pj.Error:
            pass
        end = time.monotonic() + 2.0
        while STATE.disconnected_at is None and time.monotonic() < end:
            ep.libHandleEvents(10)

    # A transfer the REFER started: wait for it to end too (the far end's BYE).
    while (
        STATE.transfer_call is not None
        and STATE.transfer_disconnected_at is None
        and time.monotonic() < deadline
    ):
        ep.libHandleEvents(10)
    if STATE.transfer_call is not None and STATE.transfer_disconnected_at is None:
        STATE.fail(f"max-time {args.max_time}s reached before the transferred call ended")
        try:
            STATE.transfer_call.hangup(pj.CallOpParam(True))
        except pj.Error:
            pass
        end = time.monotonic() + 2.0
        while STATE.transfer_disconnected_at is None and time.monotonic() < end:
            ep.libHandleEvents(10)
        code = code or 3

    if STATE.confirmed_at is None and not STATE.errors:
        STATE.fail(f"call was not answered (last status {STATE.last_status})")
    if dtmf_plan and not STATE.errors:
        STATE.fail(f"call ended before DTMF {[k for k, _ in dtmf_plan]} could be sent")
    if args.hangup_after is not None and STATE.remote_hangup and not STATE.errors:
        log("note: the far end hung up before --hangup-after")

    report["rtp_tx_packets"], report["rtp_rx_packets"] = counter.totals()

    # Tear down in order: calls, then the player and the recorder (which writes
    # its WAV header when destroyed), then the library.
    call.player = call.recorder = None
    if STATE.transfer_call is not None:
        STATE.transfer_call.player = STATE.transfer_call.recorder = None
        STATE.transfer_call = None
    if args.answer:
        acc.call = acc.player = acc.recorder = None
    del call
    del player, recorder
    ep.libDestroy()
    del ep

    if args.record and os.path.exists(args.record):
        normalise_recording(args.record)
    elif args.record and STATE.confirmed_at is not None:
        STATE.fail(f"no recording written to {args.record}")

    if STATE.errors and code == 0:
        code = 1
    return code, report


def main(argv):
    try:
        args = parse_args(argv)
        parse_dtmf(args.dtmf)
    except (ValueError, SystemExit) as exc:
        if isinstance(exc, ValueError):
            log(str(exc))
        return 2
    # pjlib logs to file descriptor 1, some lines before any log config can
    # apply: point fd 1 at stderr and keep the real stdout for the report.
    sys.stdout.flush()
    report_fd = os.dup(1)
    os.dup2(2, 1)
    with tempfile.TemporaryDirectory(prefix="pjcall-") as tmpdir:
        try:
            code, report = run(args, tmpdir)
        except Exception as exc:  # noqa: BLE001 - always write the report
            traceback.print_exc()
            STATE.fail(f"exception: {exc!r}")
            code, report = 1, {"dtmf_sent": []}
    out = {
        "confirmed_at": STATE.confirmed_at,
        "disconnected_at": STATE.disconnected_at,
        "last_status": STATE.last_status,
        "remote_hangup": STATE.remote_hangup,
        "dtmf_sent": report.get("dtmf_sent", []),
        "error": "; ".join(STATE.errors) if STATE.errors else None,
        "record_started_at": STATE.record_started_at,
        "hold_at": report.get("hold_at"),
        "unhold_at": report.get("unhold_at"),
        "rtp_tx_packets": report.get("rtp_tx_packets"),
        "rtp_rx_packets": report.get("rtp_rx_packets"),
        "call_id": STATE.call_id,
        "exit_code": code,
        "refer_to": STATE.refer_to,
        "transfer_confirmed_at": STATE.transfer_confirmed_at,
        "transfer_disconnected_at": STATE.transfer_disconnected_at,
        "transfer_status": STATE.transfer_status,
        "transfer_remote_hangup": STATE.transfer_remote_hangup,
    }
    text = json.dumps(out, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        with os.fdopen(report_fd, "w") as f:
            f.write(text + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

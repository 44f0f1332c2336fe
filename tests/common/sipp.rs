//! SIPp as a UAS: a real SIP server that exists today, to prove the harness
//! (and, later, a peer for hotline's outbound legs).

use std::path::PathBuf;
use std::time::Duration;

use super::server::{Ready, Server, ServerCmd};
use super::tools::require_tool;

/// Which UAS scenario SIPp runs.
#[derive(Debug, Clone)]
pub enum UasScenario {
    /// SIPp's built-in `uas`: answers with PCMU, waits for the caller's BYE.
    Builtin,
    /// `tests/callers/sipp_uas_echo.xml`: answers with PCMU and
    /// telephone-event/101, echoes RTP (`-rtp_echo`), accepts hold/unhold
    /// re-INVITEs, waits for the caller's BYE.
    Echo,
    /// `tests/callers/sipp_uas_bye.xml`: answers, echoes RTP, sends BYE after 2 s.
    HangsUp,
    /// Any scenario file.
    File(PathBuf),
}

/// A SIPp UAS on 127.0.0.1:`sip_port`, media (and RTP echo) on `media_port`,
/// for `calls` calls, ending itself after `limit`. Ready when its SIP UDP port
/// is bound. `Server::wait_exit` then gives its verdict: 0 when every call
/// went through the scenario.
pub fn uas(
    scenario: UasScenario,
    sip_port: u16,
    media_port: u16,
    calls: u32,
    limit: Duration,
) -> Server {
    require_tool("sipp");
    let mut cmd = ServerCmd::new("sipp");
    cmd = match &scenario {
        UasScenario::Builtin => cmd.args(["-sn", "uas"]),
        UasScenario::Echo => cmd
            .arg("-sf")
            .arg(super::repo_path("tests/callers/sipp_uas_echo.xml")),
        UasScenario::HangsUp => cmd
            .arg("-sf")
            .arg(super::repo_path("tests/callers/sipp_uas_bye.xml")),
        UasScenario::File(p) => cmd.arg("-sf").arg(p),
    };
    let limit_s = limit.as_secs().max(1);
    cmd.args([
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-rtp_echo",
        "-nostdin",
        "-timeout_error",
    ])
    .args(["-p", &sip_port.to_string(), "-mp", &media_port.to_string()])
    .args(["-m", &calls.to_string(), "-timeout", &format!("{limit_s}s")])
    // Its screen and error logs go to a scratch folder, not the work tree.
    .current_dir(std::env::temp_dir())
    .ready(Ready::UdpBound(sip_port))
    .timeout(Duration::from_secs(10))
    .start()
}

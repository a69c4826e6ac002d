//! Issue 4, test 1 with linphone as the operator: the real `homeline` binary between SIPp
//! playing the PBX (`tests/calls/sipp/pbx_talk.xml`, streaming 1 kHz) and linphone-daemon 5.1
//! (liblinphone/belle-sip, a second softphone stack besides baresip) registered as `bob` with a
//! SHA-256 digest, auto-answering and playing a 660 Hz WAV into the call
//! (`incall-player-start`: the daemon has no sound card here, and sends only silence until it
//! plays a file). What homeline sends from its RTP ports is captured on `lo` with `dumpcap`
//! (`rtp_capture`) and decoded here: the PBX must get linphone's 660 Hz, linphone the PBX's
//! 1 kHz.
//!
//! linphone-daemon is configured from `tests/sip/linphone/linphonerc.in` (as in `sip_edge.rs`)
//! and driven over its control socket (`--pipe NAME` is the unix socket `/tmp/NAME`).
//! Everything of the test stays in `target/tmp/sip_edge/call_linphone/`. It takes about 10 s;
//! the peers come from `bash tests/run-all.sh`.

// Each test file uses a part of the shared harness.
#[allow(dead_code)]
mod rtp_capture;
#[allow(dead_code, unused_imports)]
mod sip_harness;

mod audio;
use audio::*;

#[allow(dead_code)]
mod call_setup;
use call_setup::*;

use rtp_capture::relay::{ByLeg, by_leg, relay_legs};
use rtp_capture::{Capture, g711_audio};
use sip_harness::{AGENT_IP, Background, Homeline, fill, free_udp_block, require, sip_dir};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long the PBX streams after homeline answers it, then hangs up.
const PBX_TALK_MS: u64 = 6000;

// ---- linphone-daemon ----

/// linphone-daemon registered at homeline, auto-answering, driven over its control socket;
/// killed (and its socket removed) when dropped.
struct Linphone {
    process: Background,
    socket: PathBuf,
    ctrl: Option<UnixStream>,
}

impl Linphone {
    fn start(h: &Homeline, user: &str) -> Linphone {
        require("linphone-daemon", "linphone-cli");
        let home = h.dir.join("linphone-home");
        // Without ~/.local/share/linphone the database cannot open and SIP never starts.
        for d in [".local/share/linphone", ".config", "run/pulse"] {
            std::fs::create_dir_all(home.join(d))
                .unwrap_or_else(|e| panic!("cannot create {d} in linphone's home: {e}"));
        }
        let (rtp_min, rtp_max) = sip_harness::rtp_range();
        let (video_min, video_max) = sip_harness::rtp_range();
        let template = sip_dir().join("linphone/linphonerc.in");
        let rc = fill(
            &std::fs::read_to_string(&template)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", template.display())),
            &[
                ("AGENT_IP", AGENT_IP.to_string()),
                ("SIP_PORT", free_udp_block(AGENT_IP, 1).to_string()),
                ("RTP_PORT_MIN", rtp_min.to_string()),
                ("RTP_PORT_MAX", rtp_max.to_string()),
                ("VIDEO_PORT_MIN", video_min.to_string()),
                ("VIDEO_PORT_MAX", video_max.to_string()),
                ("USER", user.to_string()),
                ("REGISTRAR", h.addr()),
                ("PASSWORD", PASSWORD.to_string()),
                ("EXPIRES", "60".to_string()),
            ],
        );
        // The daemon rewrites its --config: a fresh copy each run.
        let rc_path = h.dir.join("linphonerc");
        write(&rc_path, rc);
        // `--pipe NAME` listens on /tmp/NAME.
        let pipe = format!("homeline-test-linphone-{}", std::process::id());
        let socket = Path::new("/tmp").join(&pipe);
        let _ = std::fs::remove_file(&socket);
        let mut cmd = Command::new("linphone-daemon");
        cmd.arg("--config")
            .arg(&rc_path)
            .arg("--pipe")
            .arg(&pipe)
            .arg("--auto-answer")
            .arg("--disable-stats-events")
            .arg("--log")
            .arg(h.dir.join("linphone-daemon.log"))
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .env("PULSE_RUNTIME_PATH", home.join("run/pulse"));
        // The daemon crashes when its stdin closes: keep it open.
        let process = Background::start("linphone-daemon", cmd, h.dir.join("linphone.out"), true);
        let mut l = Linphone {
            process,
            socket,
            ctrl: None,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match UnixStream::connect(&l.socket) {
                Ok(s) => {
                    l.ctrl = Some(s);
                    break;
                }
                Err(e) => {
                    if Instant::now() >= deadline || l.process.exited().is_some() {
                        panic!(
                            "cannot reach linphone-daemon's socket {}: {e}\n{}",
                            l.socket.display(),
                            l.process.report()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        l
    }

    /// Sends one command; its response (read until 300 ms of silence, 5 s at most).
    fn command(&mut self, command: &str) -> String {
        let s = self.ctrl.as_mut().expect("linphone control socket");
        s.write_all(format!("{command}\n").as_bytes())
            .unwrap_or_else(|e| panic!("cannot send `{command}` to linphone-daemon: {e}"));
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Waits until `call-status` says `text` (e.g. `LinphoneCallStreamsRunning`); the
    /// daemon's events do not reach its stdout (buffered) while it is driven over `--pipe`.
    fn wait_call_status(&mut self, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.command("call-status").contains(text) {
                return true;
            }
            if Instant::now() >= deadline || self.process.exited().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn report(&mut self) -> String {
        self.process.report()
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        self.ctrl = None;
        self.process.kill();
        let _ = std::fs::remove_file(&self.socket);
    }
}

// ---- the test ----

#[test]
fn linphone_operator_answers_a_call_with_audio_both_ways() {
    let started = Instant::now();
    let mut h = start(
        "call_linphone",
        Queue {
            agents: &["bob"],
            // linphone answers either; SHA-256 first, as it prefers.
            digest_algorithms: r#"["SHA-256", "MD5"]"#,
            ..Queue::default()
        },
    );
    // linphone's player does not loop: longer than the call.
    let operator_wav = h.dir.join("tone660_s16.wav");
    write(&operator_wav, wav_s16(&tone(OPERATOR_HZ, 30.0, 0.5)));

    let mut bob = Linphone::start(&h, "bob");
    let registered = h
        .logs
        .wait_for(0, Duration::from_secs(10), |l| {
            l.is("registered", &[("user", "bob")])
        })
        .map(|(_, l)| l)
        .unwrap_or_else(|| {
            panic!(
                "linphone did not register as bob within 10 s\n{}\n{}",
                bob.report(),
                h.report()
            )
        });
    eprintln!(
        "linphone registered with {}",
        registered.field("algorithm").unwrap_or_default()
    );
    h.expect_event(
        0,
        WAIT,
        "operator state",
        &[("agent", "bob"), ("state", "available")],
    );

    let capture = Capture::start(&h, "call");
    let from = h.logs.len();
    let pbx = pbx(&h, "pbx_talk.xml")
        .arg("-d")
        .arg(&PBX_TALK_MS.to_string())
        .start(1);
    h.expect_event(
        from,
        WAIT,
        "operator state",
        &[("agent", "bob"), ("state", "on_call")],
    );
    if !bob.wait_call_status("StreamsRunning", WAIT) {
        panic!(
            "linphone's streams did not start after it answered\n{}\n{}",
            bob.report(),
            h.report()
        );
    }
    let played = bob.command(&format!("incall-player-start {}", operator_wav.display()));
    assert!(
        played.contains("Status: Ok"),
        "linphone-daemon refused incall-player-start: {played}\n{}",
        bob.report()
    );
    pbx.wait(&mut h);
    let packets = capture.stop();

    expect_answered(&mut h, from, "the call");
    let media = expect_media_report(&mut h, from);
    let counts = relay_legs(&media);
    // Where homeline sent each leg's media: the PBX's and linphone's RTP sockets; bridged:
    // what the PBX got once homeline sent anything to the operator (before, music on hold).
    let ByLeg {
        to_pbx_addr,
        to_operator_addr,
        to_operator,
        bridged_to_pbx,
        ..
    } = by_leg(&packets, &media);
    let heard_operator = g711_audio(to_operator.iter().copied());
    let heard_pbx = g711_audio(bridged_to_pbx.iter().copied());
    let mut pts: Vec<u8> = packets.iter().map(|p| p.pt).collect();
    pts.sort_unstable();
    pts.dedup();
    let summary = format!(
        "capture: {} RTP packets from homeline (payload types {pts:?}), {} to linphone at \
         {to_operator_addr:?} ({}), {} to the PBX at {to_pbx_addr:?} once bridged ({}); relay \
         PBX leg / operator leg: {counts:?}",
        packets.len(),
        to_operator.len(),
        describe_audio(&heard_operator, 8000),
        bridged_to_pbx.len(),
        describe_audio(&heard_pbx, 8000),
    );
    eprintln!("{summary}");
    let (a, b) =
        counts.unwrap_or_else(|| panic!("cannot read the relay report: {media}\n{}", h.report()));
    assert!(
        a.packets >= 100 && a.forwarded >= 100 && b.packets >= 100 && b.forwarded >= 100,
        "RTP did not flow both ways through the relay: {summary}\nrelay report: {media}"
    );
    assert!(
        to_operator.len() >= 100 && tone_share(&heard_operator, 8000, PBX_HZ) >= TONE_SHARE,
        "linphone did not get the PBX's {PBX_HZ} Hz: {summary}\n{}\n{}",
        bob.report(),
        h.report()
    );
    assert!(
        bridged_to_pbx.len() >= 100 && tone_share(&heard_pbx, 8000, OPERATOR_HZ) >= TONE_SHARE,
        "the PBX did not get linphone's {OPERATOR_HZ} Hz: {summary}\n{}\n{}",
        bob.report(),
        h.report()
    );
    assert!(
        bob.process.exited().is_none(),
        "linphone-daemon stopped: {}",
        bob.report()
    );
    let took = started.elapsed();
    eprintln!("took {took:?}");
    assert!(took < Duration::from_secs(40), "the test took {took:?}");
}

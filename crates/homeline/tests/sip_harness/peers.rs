//! Peers run against homeline: SIPp (one call to its end, or a UAS in the background) and any
//! other program in the background, each killed when its guard is dropped.

use super::{HOMELINE_IP, Homeline, free_port_pair, free_udp_block, require, sip_dir};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Hard limit on one SIPp run (SIPp's own `-timeout` is 20 s).
pub const SIPP_TIMEOUT: Duration = Duration::from_secs(25);

/// One SIPp instance, built up then run to its end or started in the background.
#[derive(Debug)]
pub struct Sipp {
    scenario: String,
    /// Where the scenario file is: `tests/sip/sipp` unless [`Sipp::scenario_dir`] says.
    scenario_dir: PathBuf,
    dir: PathBuf,
    tag: String,
    target: Option<String>,
    local_ip: String,
    tcp: bool,
    args: Vec<String>,
}

impl Sipp {
    pub(crate) fn new(scenario: &str, dir: &Path, n: usize) -> Sipp {
        require("sipp", "sip-tester");
        let stem = scenario.trim_end_matches(".xml");
        Sipp {
            scenario: scenario.into(),
            scenario_dir: sip_dir().join("sipp"),
            dir: dir.into(),
            tag: format!("sipp-{n:02}-{stem}"),
            target: None,
            local_ip: HOMELINE_IP.into(),
            tcp: false,
            args: Vec::new(),
        }
    }

    /// A SIPp that only listens (a UAS), with no target.
    pub fn uas(scenario: &str, dir: &Path, n: usize) -> Sipp {
        Sipp::new(scenario, dir, n)
    }

    /// Reads the scenario from `dir` instead of `tests/sip/sipp`.
    pub fn scenario_dir(mut self, dir: &Path) -> Self {
        self.scenario_dir = dir.into();
        self
    }

    pub(crate) fn target(mut self, addr: &str) -> Self {
        self.target = Some(addr.into());
        self
    }

    /// Runs from `ip` (`-i`).
    pub fn source_ip(mut self, ip: &str) -> Self {
        self.local_ip = ip.into();
        self
    }

    /// SIP over TCP (`-t t1`).
    pub fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }

    /// The user part of request URIs (`-s`).
    pub fn service(self, user: &str) -> Self {
        self.arg("-s").arg(user)
    }

    /// Digest credentials for `[authentication]` (`-au`, `-ap`).
    pub fn auth(self, user: &str, password: &str) -> Self {
        self.arg("-au").arg(user).arg("-ap").arg(password)
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }

    fn file(&self, what: &str) -> PathBuf {
        self.dir.join(format!("{}.{what}", self.tag))
    }

    fn command(&self, local_port: u16) -> Command {
        let mut c = Command::new("sipp");
        c.arg("-sf").arg(self.scenario_dir.join(&self.scenario));
        if let Some(t) = &self.target {
            c.arg(t);
        }
        c.args(["-i", &self.local_ip])
            .args(["-p", &local_port.to_string()])
            .args(["-cp", &free_udp_block("0.0.0.0", 1).to_string()])
            .args(["-mp", &free_udp_block(&self.local_ip, 4).to_string()])
            .args(["-t", if self.tcp { "t1" } else { "u1" }])
            .arg("-nostdin")
            .arg("-trace_err")
            .arg("-error_file")
            .arg(self.file("errors.log"))
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(self.file("messages.log"))
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        c
    }

    /// What SIPp left behind, for a failure message.
    fn report(&self) -> String {
        let mut out = String::new();
        for (what, limit) in [("errors.log", 6000), ("messages.log", 8000), ("out", 3000)] {
            let text = std::fs::read_to_string(self.file(what)).unwrap_or_default();
            let start = text.len().saturating_sub(limit);
            let start = (start..text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(text.len());
            let _ = writeln!(
                out,
                "--- {} (last {limit} bytes) ---\n{}",
                self.file(what).display(),
                &text[start..]
            );
        }
        out
    }

    /// Runs one call (`-m 1`) to its end; the test fails, with SIPp's traces and homeline's
    /// last lines, unless SIPp exits 0.
    #[track_caller]
    pub fn run(self, homeline: &mut Homeline) {
        self.start(1).wait(homeline);
    }

    /// Starts `calls` calls (`-m`) in the background; [`RunningSipp::wait`] waits for their
    /// end. SIPp gives up after 20 s (`-timeout`), and is killed if still running when the
    /// handle is dropped.
    pub fn start(self, calls: usize) -> RunningSipp {
        let local_port = if self.tcp {
            free_port_pair(&self.local_ip)
        } else {
            free_udp_block(&self.local_ip, 1)
        };
        let out = std::fs::File::create(self.file("out"))
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", self.file("out").display()));
        let err = out.try_clone().ok();
        let mut cmd = self.command(local_port);
        cmd.args([
            "-m",
            &calls.to_string(),
            "-timeout",
            "20s",
            "-timeout_error",
        ])
        .stdout(out);
        if let Some(err) = err {
            cmd.stderr(err);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sipp: {e}"));
        RunningSipp {
            child,
            started: Instant::now(),
            sipp: self,
        }
    }

    /// Starts SIPp with no call limit, listening on `local_ip:port` until the guard is
    /// dropped.
    pub fn spawn(self, port: u16) -> Background {
        let out = std::fs::File::create(self.file("out"))
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", self.file("out").display()));
        let mut cmd = self.command(port);
        cmd.stdout(out).stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sipp: {e}"));
        Background {
            child,
            name: format!("SIPp {}", self.scenario),
            output: self.file("out"),
            stdin: None,
        }
    }
}

/// SIPp running its calls in the background ([`Sipp::start`]), killed when dropped.
#[derive(Debug)]
pub struct RunningSipp {
    child: Child,
    started: Instant,
    sipp: Sipp,
}

impl RunningSipp {
    /// Waits for SIPp's end, at most [`SIPP_TIMEOUT`] after its start; `None`: still running.
    pub fn wait_status(&mut self) -> Option<ExitStatus> {
        let deadline = self.started + SIPP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => return Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return None;
                }
            }
        }
    }

    /// Whether it has exited, and how, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for SIPp's end; the test fails, with SIPp's traces and homeline's last lines,
    /// unless SIPp exits 0.
    #[track_caller]
    pub fn wait(mut self, homeline: &mut Homeline) {
        let status = self.wait_status();
        if status.is_some_and(|s| s.success()) {
            return;
        }
        let what = match status {
            Some(s) => format!("exited with {s}"),
            None => format!("did not finish within {SIPP_TIMEOUT:?} and was killed"),
        };
        panic!("{} {what}\n{}", self.describe(), self.report(homeline));
    }

    /// `SIPp SCENARIO (TAG, UDP)`.
    pub fn describe(&self) -> String {
        let s = &self.sipp;
        format!(
            "SIPp {} ({}{})",
            s.scenario,
            s.tag,
            if s.tcp { ", TCP" } else { ", UDP" }
        )
    }

    /// SIPp's traces and homeline's last lines, for a failure message.
    pub fn report(&self, homeline: &mut Homeline) -> String {
        format!("{}\n{}", self.sipp.report(), homeline.report())
    }

    /// SIPp's error log so far.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.sipp.file("errors.log")).unwrap_or_default()
    }

    /// SIPp's message trace so far.
    pub fn messages(&self) -> String {
        std::fs::read_to_string(self.sipp.file("messages.log")).unwrap_or_default()
    }
}

impl Drop for RunningSipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- background peers ----

/// A peer running in the background, killed when dropped.
#[derive(Debug)]
pub struct Background {
    child: Child,
    pub name: String,
    /// Where its stdout and stderr go.
    pub output: PathBuf,
    /// Held open: some peers (linphone-daemon) exit when their stdin closes.
    stdin: Option<ChildStdin>,
}

impl Background {
    /// Starts `cmd` with its output going to `output`.
    pub fn start(name: &str, mut cmd: Command, output: PathBuf, keep_stdin: bool) -> Background {
        let out = std::fs::File::create(&output)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", output.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot reopen {}: {e}", output.display()));
        cmd.stdout(out).stderr(err).stdin(if keep_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdin = child.stdin.take();
        Background {
            child,
            name: name.into(),
            output,
            stdin,
        }
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Its output so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.output).unwrap_or_default()).into_owned()
    }

    /// Stops it at once (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdin = None;
    }

    /// A report for a failure message.
    pub fn report(&mut self) -> String {
        let state = match self.exited() {
            Some(s) => format!("has exited ({s})"),
            None => "is still running".into(),
        };
        let text = self.output();
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        format!(
            "{} {state}; its output ({}):\n{}",
            self.name,
            self.output.display(),
            &text[start..]
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

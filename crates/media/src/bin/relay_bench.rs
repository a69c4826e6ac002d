//! Load test of the RTP relay on loopback; prints one JSON line.
//!
//! ```sh
//! cargo run --release -p homeline-media --bin relay-bench -- --calls 200 --seconds 10
//! ```
//!
//! Each call is one relay (its control task on a dedicated single-threaded runtime on its own OS
//! thread, its packets on the relay worker thread) between two load-generator endpoints, a "PBX" and an "agent", each sending 50 packets/s of
//! G.711 (172-byte RTP) to its relay leg and receiving the other's. The load generator runs on a
//! second single-threaded runtime on the main thread. Each payload carries the send time, so the
//! receiver measures the latency the relay adds (plus the load generator's own scheduling).
//!
//! Reported: packets relayed per second and CPU time per relayed packet, both over the
//! measuring window after a warm-up; CPU of the whole process (utime + stime from
//! `/proc/self/stat`, so load generator included) and of the relay's threads alone (the
//! runtime thread plus the `relay-worker` thread, from their `schedstat`, else `stat`; reported
//! as `relay_thread_*`); latency p50/p99/max; loss over the run.
//!
//! Options: `--calls N` (200), `--seconds S` (10), `--warmup S` (1), `--port-base P` (25000;
//! the relay uses `4 × calls` ports from there, 127.0.0.1 only).

use homeline_media::codec::Payloads;
use homeline_media::relay::{self, Control, LegMedia, PortAllocator, RelayConfig, RelayReport};
use homeline_media::rtp::{self, HeaderFields};
use homeline_media::{Codec, tone::FRAME_SAMPLES};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::{Instant as TokioInstant, MissedTickBehavior};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PACKET_LEN: usize = rtp::HEADER_LEN + FRAME_SAMPLES;
const DRAIN: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, Debug)]
struct Options {
    calls: usize,
    seconds: f64,
    warmup: f64,
    port_base: u16,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        calls: 200,
        seconds: 10.0,
        warmup: 1.0,
        port_base: 25000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(
                "usage: relay-bench [--calls N] [--seconds S] [--warmup S] [--port-base P]".into(),
            );
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = || format!("bad value for {flag}: {value}");
        match flag.as_str() {
            "--calls" => o.calls = value.parse().map_err(|_| bad())?,
            "--seconds" => o.seconds = value.parse().map_err(|_| bad())?,
            "--warmup" => o.warmup = value.parse().map_err(|_| bad())?,
            "--port-base" => o.port_base = value.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if o.calls == 0 || !positive(o.seconds) || !(positive(o.warmup) || o.warmup == 0.0) {
        return Err("--calls and --seconds must be positive, --warmup not negative".into());
    }
    Ok(o)
}

/// When each phase starts, shared by every endpoint.
#[derive(Clone, Copy, Debug)]
struct Plan {
    start: TokioInstant,
    measure_from: TokioInstant,
    stop_sending: TokioInstant,
    end: TokioInstant,
    /// Origin of the send timestamps carried in payloads.
    base: Instant,
}

#[derive(Debug, Default)]
struct EndpointResult {
    sent: u64,
    received: u64,
    received_in_window: u64,
    latencies_us: Vec<u32>,
}

/// One side of a call: sends 50 packets/s to `to` and receives the other side's.
async fn endpoint(
    sock: UdpSocket,
    to: SocketAddr,
    plan: Plan,
    offset: Duration,
    ssrc: u32,
) -> EndpointResult {
    let mut result = EndpointResult::default();
    let window = plan.stop_sending.duration_since(plan.measure_from);
    result
        .latencies_us
        .reserve((window.as_secs_f64() * 55.0) as usize);
    let mut tick = tokio::time::interval_at(plan.start + offset, Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let end = tokio::time::sleep_until(plan.end);
    tokio::pin!(end);
    let mut packet = [0xFFu8; PACKET_LEN];
    let mut buf = [0u8; 2048];
    let mut seq: u16 = 0;
    let mut sending = true;
    loop {
        tokio::select! {
            _ = tick.tick(), if sending => {
                if TokioInstant::now() >= plan.stop_sending {
                    sending = false;
                    continue;
                }
                let fields = HeaderFields {
                    marker: false,
                    payload_type: 0,
                    sequence: seq,
                    timestamp: u32::from(seq).wrapping_mul(160),
                    ssrc,
                };
                let _ = rtp::write_header(&mut packet, &fields);
                let stamp = plan.base.elapsed().as_nanos() as u64;
                packet[12..20].copy_from_slice(&stamp.to_be_bytes());
                if sock.send_to(&packet, to).await.is_ok() {
                    result.sent += 1;
                }
                seq = seq.wrapping_add(1);
            }
            r = sock.recv_from(&mut buf) => {
                let Ok((len, _)) = r else { continue };
                if len < 20 {
                    continue;
                }
                result.received += 1;
                let now = TokioInstant::now();
                if now >= plan.measure_from && now < plan.stop_sending {
                    result.received_in_window += 1;
                    let mut stamp = [0u8; 8];
                    stamp.copy_from_slice(&buf[12..20]);
                    let sent_ns = u64::from_be_bytes(stamp);
                    let now_ns = plan.base.elapsed().as_nanos() as u64;
                    let us = now_ns.saturating_sub(sent_ns) / 1000;
                    result.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            _ = &mut end => break,
        }
    }
    result
}

/// CPU time (user + system) of a /proc `stat` file, in seconds.
fn stat_cpu_seconds(path: &str, ticks_per_sec: f64) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    // fields after the command name, which is in parentheses and may hold spaces
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // field 14 (utime) and 15 (stime) of proc(5); `rest` starts at field 3
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / ticks_per_sec)
}

/// On-CPU time of a thread from its `schedstat` (nanoseconds, first field), in seconds.
fn schedstat_seconds(path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// The calling thread's id, from the `/proc/thread-self` link (`/proc/PID/task/TID`).
fn current_tid() -> Option<String> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

#[derive(Clone, Copy, Debug)]
struct CpuSample {
    process: f64,
    relay_thread: f64,
}

/// The relay's threads: the runtime thread its control tasks run on (`tid`) and the relay
/// worker that moves the packets (`relay-worker`, started by the first call).
fn relay_threads(tid: &str) -> Vec<String> {
    let mut threads = vec![tid.to_string()];
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let name = task.file_name().to_string_lossy().into_owned();
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "relay-worker" && name != tid {
            threads.push(name);
        }
    }
    threads
}

fn sample_cpu(threads: &[String], ticks: f64) -> CpuSample {
    let process = stat_cpu_seconds("/proc/self/stat", ticks).unwrap_or(f64::NAN);
    let relay_thread = threads
        .iter()
        .map(|tid| {
            schedstat_seconds(&format!("/proc/self/task/{tid}/schedstat"))
                .or_else(|| stat_cpu_seconds(&format!("/proc/self/task/{tid}/stat"), ticks))
                .unwrap_or(f64::NAN)
        })
        .sum();
    CpuSample {
        process,
        relay_thread,
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn media(remote: SocketAddr) -> LegMedia {
    LegMedia {
        remote_rtp: Some(remote),
        remote_rtcp: Some(SocketAddr::new(remote.ip(), remote.port().wrapping_add(1))),
        rtcp_mux: false,
        payloads: Payloads::ours(Codec::Pcmu),
    }
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("relay-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(o: Options) -> Result<String, String> {
    let ticks = clock_ticks_per_sec();
    // The relay runtime: one thread, all calls' control tasks (the packets go to the worker).
    let relay_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("relay runtime: {e}"))?;
    let relay_handle = relay_rt.handle().clone();
    let (tid_tx, tid_rx) = std_mpsc::channel();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let relay_thread = std::thread::Builder::new()
        .name("relay".into())
        .spawn(move || {
            let _ = tid_tx.send(current_tid());
            relay_rt.block_on(async {
                let _ = shutdown_rx.await;
            });
        })
        .map_err(|e| format!("relay thread: {e}"))?;
    let tid = tid_rx
        .recv()
        .ok()
        .flatten()
        .ok_or("cannot find the relay thread's id")?;

    let load_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("load runtime: {e}"))?;
    let result = load_rt.block_on(async move {
        let last = u32::from(o.port_base) + 4 * o.calls as u32 + 3;
        let last = u16::try_from(last).map_err(|_| "port range past 65535")?;
        let ports = PortAllocator::new(LO, o.port_base..=last).map_err(|e| e.to_string())?;
        let mut relays = Vec::with_capacity(o.calls);
        let mut sides = Vec::with_capacity(o.calls);
        for call in 0..o.calls {
            let pbx = UdpSocket::bind((LO, 0)).await.map_err(|e| e.to_string())?;
            let agent = UdpSocket::bind((LO, 0)).await.map_err(|e| e.to_string())?;
            let a = ports.allocate().map_err(|e| e.to_string())?;
            let b = ports.allocate().map_err(|e| e.to_string())?;
            let (a_addr, b_addr) = (a.rtp_addr(), b.rtp_addr());
            let config = RelayConfig {
                a: Some(media(pbx.local_addr().map_err(|e| e.to_string())?)),
                b: Some(media(agent.local_addr().map_err(|e| e.to_string())?)),
                seed: call as u64,
            };
            let spawned = {
                let _in_relay_runtime = relay_handle.enter();
                relay::spawn(config, a, b).map_err(|e| e.to_string())?
            };
            spawned
                .0
                .send(Control::Bridge)
                .await
                .map_err(|e| e.to_string())?;
            relays.push(spawned);
            sides.push(((pbx, a_addr), (agent, b_addr)));
        }
        // every relay has applied Bridge once it answers a report request
        for (handle, _) in &relays {
            handle.report().await.map_err(|e| e.to_string())?;
        }
        eprintln!(
            "relay-bench: {} calls set up; running {} s after {} s warm-up",
            o.calls, o.seconds, o.warmup
        );

        let start = TokioInstant::now() + Duration::from_millis(50);
        let measure_from = start + Duration::from_secs_f64(o.warmup);
        let stop_sending = measure_from + Duration::from_secs_f64(o.seconds);
        let plan = Plan {
            start,
            measure_from,
            stop_sending,
            end: stop_sending + DRAIN,
            base: Instant::now(),
        };
        let mut endpoints = Vec::with_capacity(2 * o.calls);
        for (i, ((pbx, a_addr), (agent, b_addr))) in sides.into_iter().enumerate() {
            // spread the calls' packets evenly over each 20 ms
            let offset = Duration::from_micros((20_000 * i / o.calls) as u64);
            endpoints.push(tokio::spawn(endpoint(
                pbx,
                a_addr,
                plan,
                offset,
                2 * i as u32,
            )));
            let offset_b = offset + Duration::from_millis(10);
            endpoints.push(tokio::spawn(endpoint(
                agent,
                b_addr,
                plan,
                offset_b,
                2 * i as u32 + 1,
            )));
        }
        tokio::time::sleep_until(measure_from).await;
        let threads = relay_threads(&tid);
        let cpu0 = sample_cpu(&threads, ticks);
        tokio::time::sleep_until(stop_sending).await;
        let cpu1 = sample_cpu(&threads, ticks);

        let mut total = EndpointResult::default();
        for e in endpoints {
            let r = e.await.map_err(|e| e.to_string())?;
            total.sent += r.sent;
            total.received += r.received;
            total.received_in_window += r.received_in_window;
            total.latencies_us.extend(r.latencies_us);
        }
        let mut reports: Vec<RelayReport> = Vec::with_capacity(o.calls);
        for (handle, task) in relays {
            let _ = handle.send(Control::Stop).await;
            reports.push(task.await.map_err(|e| e.to_string())?);
        }
        Ok::<_, String>((total, reports, cpu0, cpu1))
    });
    let _ = shutdown_tx.send(());
    let _ = relay_thread.join();
    let (mut total, reports, cpu0, cpu1) = result?;

    let window = o.seconds;
    let relayed = total.received_in_window as f64;
    total.latencies_us.sort_unstable();
    let forwarded: u64 = reports
        .iter()
        .map(|r| r.a.counters.forwarded + r.b.counters.forwarded)
        .sum();
    let send_errors: u64 = reports
        .iter()
        .map(|r| r.a.counters.send_errors + r.b.counters.send_errors)
        .sum();
    let lost_by_rtp: u64 = reports
        .iter()
        .map(|r| r.a.stats.lost + r.b.stats.lost)
        .sum();
    let mean_mos = reports
        .iter()
        .map(|r| r.a.stats.mos + r.b.stats.mos)
        .sum::<f64>()
        / (2 * reports.len()) as f64;
    let per_packet_us = |seconds: f64| {
        if relayed > 0.0 {
            seconds * 1e6 / relayed
        } else {
            f64::NAN
        }
    };
    let loss = if total.sent > 0 {
        1.0 - total.received as f64 / total.sent as f64
    } else {
        0.0
    };
    let json = format!(
        concat!(
            "{{\"bench\":\"relay\",\"calls\":{},\"seconds\":{},\"warmup_seconds\":{},",
            "\"packets_sent\":{},\"packets_received\":{},\"relay_forwarded\":{},",
            "\"relay_send_errors\":{},\"relayed_per_sec\":{:.0},",
            "\"process_cpu_us_per_packet\":{:.3},\"relay_thread_cpu_us_per_packet\":{:.3},",
            "\"relay_thread_cpu_share\":{:.3},\"latency_us_p50\":{},\"latency_us_p99\":{},",
            "\"latency_us_max\":{},\"loss\":{:.6},\"rtp_lost\":{},\"mean_mos\":{:.3}}}"
        ),
        o.calls,
        o.seconds,
        o.warmup,
        total.sent,
        total.received,
        forwarded,
        send_errors,
        relayed / window,
        per_packet_us(cpu1.process - cpu0.process),
        per_packet_us(cpu1.relay_thread - cpu0.relay_thread),
        (cpu1.relay_thread - cpu0.relay_thread) / window,
        percentile(&total.latencies_us, 50.0),
        percentile(&total.latencies_us, 99.0),
        total.latencies_us.last().copied().unwrap_or(0),
        loss,
        lost_by_rtp,
        mean_mos,
    );
    Ok(json.replace("NaN", "null"))
}

//! RTP on `lo`, for the tests that check what homeline sends (`calls.rs`, `hold.rs`,
//! `dtmf.rs`, `linphone_call.rs`): `dumpcap` capturing what homeline sends from its RTP ports,
//! read back with every RTP header field and decoded (G.711), a pcap writer for the packets
//! SIPp replays (`<exec play_pcap_audio=...>`), and ([`relay`]) the relay report of a call's
//! `call media ended` line, which says where each leg's packets went.

pub mod relay;

use crate::audio::{unalaw, unulaw};
use crate::sip_harness::{Homeline, require};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One RTP packet seen on `lo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtp {
    pub src: (Ipv4Addr, u16),
    pub dst: (Ipv4Addr, u16),
    pub marker: bool,
    pub pt: u8,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

/// An RFC 4733 telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub code: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl Rtp {
    /// The payload read as a telephone event.
    pub fn event(&self) -> Option<Event> {
        match self.payload.as_slice() {
            [code, flags, d0, d1] => Some(Event {
                code: *code,
                end: flags & 0x80 != 0,
                volume: flags & 0x3F,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            _ => None,
        }
    }
}

/// The audio of the PCMU packets (PT 0) among `packets`, in capture order.
pub fn pcmu_audio<'a>(packets: impl IntoIterator<Item = &'a Rtp>) -> Vec<i16> {
    packets
        .into_iter()
        .filter(|p| p.pt == 0)
        .flat_map(|p| p.payload.iter().map(|&b| unulaw(b)))
        .collect()
}

/// The audio of the G.711 packets (PT 0 or 8) among `packets`, in capture order.
pub fn g711_audio<'a>(packets: impl IntoIterator<Item = &'a Rtp>) -> Vec<i16> {
    packets
        .into_iter()
        .flat_map(|p| -> Vec<i16> {
            match p.pt {
                0 => p.payload.iter().map(|&b| unulaw(b)).collect(),
                8 => p.payload.iter().map(|&b| unalaw(b)).collect(),
                _ => Vec::new(),
            }
        })
        .collect()
}

/// `dumpcap` capturing UDP from homeline's RTP ports on `lo`; read with [`Capture::stop`],
/// killed when dropped.
pub struct Capture {
    child: Child,
    path: PathBuf,
    log: PathBuf,
}

impl Capture {
    pub fn start(h: &Homeline, name: &str) -> Capture {
        require("dumpcap", "tshark");
        let path = h.dir.join(format!("{name}.pcap"));
        let log = h.dir.join(format!("{name}.dumpcap.log"));
        let out = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let (min, max) = h.rtp_ports;
        let child = Command::new("dumpcap")
            .args(["-i", "lo", "-P", "-f"])
            .arg(format!("udp src portrange {min}-{max}"))
            .arg("-w")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dumpcap: {e}"));
        let mut c = Capture { child, path, log };
        // dumpcap says "Capturing on 'Loopback: lo'" once it captures.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let said = std::fs::read_to_string(&c.log).unwrap_or_default();
            if said.contains("Capturing on") {
                break;
            }
            if let Ok(Some(status)) = c.child.try_wait() {
                panic!(
                    "dumpcap exited ({status}): {said}\n(capturing on `lo` needs root, or \
                     `dpkg-reconfigure wireshark-common` and membership of group wireshark)"
                );
            }
            assert!(
                Instant::now() < deadline,
                "dumpcap did not start capturing within 5 s: {said}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
        c
    }

    /// Stops the capture (SIGINT: dumpcap writes out what it has) and reads its RTP packets.
    pub fn stop(mut self) -> Vec<Rtp> {
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        read_pcap(&self.path)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The RTP packets (version 2, UDP over IPv4, no RTCP) of a pcap file of `lo`.
pub fn read_pcap(path: &Path) -> Vec<Rtp> {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(bytes.len() >= 24, "{}: no pcap header", path.display());
    let le = match &bytes[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        other => panic!("{}: not a pcap file (magic {other:02x?})", path.display()),
    };
    let u32_at = |i: usize| {
        let b = [bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let link_header = match u32_at(20) {
        1 => 14,
        113 => 16,
        276 => 20,
        0 => 4,
        other => panic!("{}: link type {other} not handled", path.display()),
    };
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let caplen = u32_at(at + 8) as usize;
        let start = at + 16;
        let end = (start + caplen).min(bytes.len());
        at = start + caplen;
        if let Some(p) = bytes
            .get(start..end)
            .and_then(|f| parse_frame(f, link_header))
        {
            out.push(p);
        }
    }
    out
}

fn parse_frame(frame: &[u8], link_header: usize) -> Option<Rtp> {
    let ip = frame.get(link_header..)?;
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 17 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0F) * 4;
    let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let udp = ip.get(ihl..)?;
    let src_port = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let dst_port = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    let rtp = udp.get(8..)?;
    if rtp.len() < 12 || rtp[0] >> 6 != 2 || (200..=204).contains(&rtp[1]) {
        return None;
    }
    let mut head = 12 + 4 * usize::from(rtp[0] & 0x0F);
    if rtp[0] & 0x10 != 0 {
        let ext = rtp.get(head..head + 4)?;
        head += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    let mut tail = rtp.len();
    if rtp[0] & 0x20 != 0 {
        tail = tail.saturating_sub(usize::from(rtp[rtp.len() - 1]));
    }
    Some(Rtp {
        src: (src_ip, src_port),
        dst: (dst_ip, dst_port),
        marker: rtp[1] & 0x80 != 0,
        pt: rtp[1] & 0x7F,
        seq: u16::from_be_bytes([rtp[2], rtp[3]]),
        ts: u32::from_be_bytes([rtp[4], rtp[5], rtp[6], rtp[7]]),
        ssrc: u32::from_be_bytes([rtp[8], rtp[9], rtp[10], rtp[11]]),
        payload: rtp.get(head..tail)?.to_vec(),
    })
}

/// The RFC 4733 packets of one DTMF event as a sender following §2.5 sends them, one each
/// 20 ms: `code` lasting `packets` × 20 ms, the last packet three times with the E bit.
pub fn event_packets(code: u8, pt: u8, packets: u16, seq: u16, ts: u32, ssrc: u32) -> Vec<Rtp> {
    let mut out = Vec::new();
    let any = (Ipv4Addr::LOCALHOST, 0);
    for i in 1..=packets + 2 {
        let end = i >= packets;
        let duration = 160 * i.min(packets);
        let mut payload = vec![code, (u8::from(end) << 7) | 10];
        payload.extend_from_slice(&duration.to_be_bytes());
        out.push(Rtp {
            src: any,
            dst: any,
            marker: i == 1,
            pt,
            seq: seq.wrapping_add(i - 1),
            ts,
            ssrc,
            payload,
        });
    }
    out
}

/// Writes `packets` into a pcap file (Ethernet, IPv4, UDP from port 4000 to 5000), one each
/// 20 ms, for SIPp's `play_pcap_audio` (which keeps only the UDP payload and the timing).
pub fn write_pcap(path: &Path, packets: &[Rtp]) {
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32.to_le_bytes(), [2, 0, 4, 0], [0; 4], [0; 4]] {
        out.extend_from_slice(&v);
    }
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (i, p) in packets.iter().enumerate() {
        let mut rtp = vec![0x80, (u8::from(p.marker) << 7) | p.pt];
        rtp.extend_from_slice(&p.seq.to_be_bytes());
        rtp.extend_from_slice(&p.ts.to_be_bytes());
        rtp.extend_from_slice(&p.ssrc.to_be_bytes());
        rtp.extend_from_slice(&p.payload);
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        let sum = ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum::<u32>();
        let sum = (sum & 0xFFFF) + (sum >> 16);
        let checksum = !((sum & 0xFFFF) + (sum >> 16)) as u16;
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&4000u16.to_be_bytes());
        frame.extend_from_slice(&5000u16.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(&rtp);
        let micros = i as u32 * 20_000;
        out.extend_from_slice(&(micros / 1_000_000).to_le_bytes());
        out.extend_from_slice(&(micros % 1_000_000).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    std::fs::write(path, out).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

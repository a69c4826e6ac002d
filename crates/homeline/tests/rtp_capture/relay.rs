//! The relay report of a `call media ended` line (the `media` field, Debug text of the
//! relay's report with a `LegReport` for the PBX leg `a` and one for the operator leg `b`),
//! and the captured packets sorted by the leg they went to.

use super::Rtp;
use std::net::SocketAddr;

/// Packets received, lost and forwarded on one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegMedia {
    pub packets: u64,
    pub lost: u64,
    pub forwarded: u64,
}

/// The text of the PBX leg (`a`) and of the operator leg (`b`), in either order.
fn leg_texts(report: &str) -> Option<(&str, &str)> {
    let a = report.find("a: LegReport")?;
    let b = report.find("b: LegReport")?;
    Some(if a < b {
        (&report[a..b], &report[b..])
    } else {
        (&report[a..], &report[b..a])
    })
}

/// Where homeline sent the PBX leg's (`a`) and the operator leg's (`b`) RTP: the
/// `remote_rtp` addresses of the report.
pub fn relay_remotes(report: &str) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let remote = |text: &str| -> Option<SocketAddr> {
        let at = text.find("remote_rtp: Some(")? + "remote_rtp: Some(".len();
        let end = text[at..].find(')')? + at;
        text[at..end].parse().ok()
    };
    match leg_texts(report) {
        Some((a, b)) => (remote(a), remote(b)),
        None => (None, None),
    }
}

/// The PBX leg (`a`) and the operator leg (`b`) of the report.
pub fn relay_legs(report: &str) -> Option<(LegMedia, LegMedia)> {
    let number = |text: &str, key: &str| -> Option<u64> {
        let at = text.find(&format!("{key}: "))? + key.len() + 2;
        let digits: String = text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let leg = |text: &str| -> Option<LegMedia> {
        Some(LegMedia {
            packets: number(text, "packets")?,
            lost: number(text, "lost")?,
            forwarded: number(text, "forwarded")?,
        })
    };
    let (a, b) = leg_texts(report)?;
    Some((leg(a)?, leg(b)?))
}

/// What homeline sent each leg of one call, told apart by the report's `remote_rtp`
/// addresses.
pub struct ByLeg<'a> {
    pub to_pbx_addr: Option<SocketAddr>,
    pub to_operator_addr: Option<SocketAddr>,
    pub to_operator: Vec<&'a Rtp>,
    pub to_pbx: Vec<&'a Rtp>,
    /// What the PBX got once homeline sent anything to the operator (before: music on hold).
    pub bridged_to_pbx: Vec<&'a Rtp>,
}

/// Sorts `packets` (captured in order) by leg, with the relay `report` of their call.
pub fn by_leg<'a>(packets: &'a [Rtp], report: &str) -> ByLeg<'a> {
    let (to_pbx_addr, to_operator_addr) = relay_remotes(report);
    let sent_to =
        |p: &Rtp, to: Option<SocketAddr>| to.is_some_and(|a| a == SocketAddr::from(p.dst));
    let to = |from: usize, addr| {
        packets[from..]
            .iter()
            .filter(|p| sent_to(p, addr))
            .collect()
    };
    let bridged_to_pbx = match packets.iter().position(|p| sent_to(p, to_operator_addr)) {
        Some(i) => to(i, to_pbx_addr),
        None => Vec::new(),
    };
    ByLeg {
        to_pbx_addr,
        to_operator_addr,
        to_operator: to(0, to_operator_addr),
        to_pbx: to(0, to_pbx_addr),
        bridged_to_pbx,
    }
}

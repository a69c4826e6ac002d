//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760): challenges with
//! `SHA-256` and `MD5`, `qop=auth`, self-validating nonces that expire, nonce-count replay
//! protection and constant-time comparison. Pure: the caller passes the time and randomness.
//!
//! A nonce is `ts:16 hex | salt:16 hex | mac:32 hex`, where `mac` is the first 16 bytes of
//! SHA-256 over a per-process secret, the realm, `ts` and `salt`: any instance can tell a
//! nonce it issued from a forged one without storing it. The last nonce-count seen per nonce
//! is kept (bounded) to refuse replays.

use md5::Md5;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;
use subtle::ConstantTimeEq;

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// The `algorithm=` token.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn parse(s: &str) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Lower-case hex digest of `parts` joined by `:`.
    pub fn hash(self, parts: &[&str]) -> String {
        fn feed<D: sha2::Digest>(mut d: D, parts: &[&str]) -> String {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p.as_bytes());
            }
            hex(&d.finalize())
        }
        match self {
            Algorithm::Md5 => feed(Md5::new(), parts),
            Algorithm::Sha256 => feed(Sha256::new(), parts),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `H(username:realm:password)`, what a registrar may store instead of the password.
pub fn ha1(algorithm: Algorithm, user: &str, realm: &str, password: &str) -> String {
    algorithm.hash(&[user, realm, password])
}

/// Where the verifier finds a user's HA1 for an algorithm.
pub trait Credentials {
    /// Lower-case hex `H(user:realm:password)` for `algorithm`, or `None` if the user is
    /// unknown (or has no secret for that algorithm).
    fn ha1(&self, user: &str, algorithm: Algorithm) -> Option<String>;
}

/// Why a request's credentials were not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No usable `Authorization` header: challenge.
    Missing,
    /// The header is not a well-formed digest response for this realm: `400`/challenge.
    Malformed(&'static str),
    /// The nonce has expired (or is no longer tracked) but was ours: challenge with
    /// `stale=true`.
    Stale,
    /// Wrong password, unknown user, forged nonce or replayed nonce-count: `403`. The same
    /// answer in every case, so users cannot be enumerated.
    Rejected,
}

/// The parameters of a `Digest` credentials header.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DigestResponse {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub opaque: Option<String>,
}

/// Parses `Digest k=v, k="v", ...` (parameter names case-insensitive, quoted strings with
/// backslash escapes). `None` when it is not a digest header.
pub fn parse_credentials(header: &str) -> Option<DigestResponse> {
    let rest = header.trim_start();
    let (scheme, mut rest) = rest.split_at(rest.find(char::is_whitespace)?);
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut out = DigestResponse::default();
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.is_empty() {
            break;
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => v.push(chars.next()?.1),
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => v.push(c),
                }
            }
            rest = &quoted[end? + 1..];
            value = v;
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        let slot = match name.to_ascii_lowercase().as_str() {
            "username" => &mut out.username,
            "realm" => &mut out.realm,
            "nonce" => &mut out.nonce,
            "uri" => &mut out.uri,
            "response" => &mut out.response,
            "algorithm" => out.algorithm.insert(String::new()),
            "cnonce" => out.cnonce.insert(String::new()),
            "qop" => out.qop.insert(String::new()),
            "nc" => out.nc.insert(String::new()),
            "opaque" => out.opaque.insert(String::new()),
            _ => continue,
        };
        *slot = value;
    }
    Some(out)
}

/// The `Authorization` (or `Proxy-Authorization`) value answering `challenge`, a
/// `WWW-Authenticate`/`Proxy-Authenticate` value, for a request `method` to `uri` as `user`
/// with `password`: how homeline authenticates to a PBX that challenges it. `None` if the
/// challenge is not a digest challenge in MD5 or SHA-256.
pub fn answer_challenge(
    challenge: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Option<String> {
    let c = parse_credentials(challenge)?;
    if c.nonce.is_empty() {
        return None;
    }
    let algorithm = match c.algorithm.as_deref() {
        None => Algorithm::Md5,
        Some(a) => Algorithm::parse(a)?,
    };
    let ha1 = ha1(algorithm, user, &c.realm, password);
    let ha2 = algorithm.hash(&[method, uri]);
    let auth = c
        .qop
        .as_deref()
        .is_some_and(|q| q.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth")));
    let nc = format!("{nc:08x}");
    let quote = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", algorithm={}",
        quote(user),
        quote(&c.realm),
        quote(&c.nonce),
        quote(uri),
        algorithm.token()
    );
    let response = if auth {
        let _ = write!(out, ", qop=auth, nc={nc}, cnonce=\"{}\"", quote(cnonce));
        algorithm.hash(&[&ha1, &c.nonce, &nc, cnonce, "auth", &ha2])
    } else {
        algorithm.hash(&[&ha1, &c.nonce, &ha2])
    };
    let _ = write!(out, ", response=\"{response}\"");
    if let Some(opaque) = &c.opaque {
        let _ = write!(out, ", opaque=\"{}\"", quote(opaque));
    }
    Some(out)
}

/// Issues challenges and verifies responses for one realm.
#[derive(Debug)]
pub struct DigestAuthority {
    realm: String,
    secret: [u8; 32],
    nonce_ttl_secs: u64,
    /// Last nonce-count seen per live nonce, with the nonce's issue time.
    counts: HashMap<String, (u32, u64)>,
    max_tracked: usize,
    /// A fixed HA1 checked against when the user is unknown, so the work and the answer are
    /// the same as for a wrong password.
    decoy: String,
}

impl DigestAuthority {
    /// An authority for `realm` signing nonces with `secret` (random per process) that stay
    /// valid for `nonce_ttl_secs`.
    pub fn new(realm: impl Into<String>, secret: [u8; 32], nonce_ttl_secs: u64) -> Self {
        let realm = realm.into();
        let decoy = Algorithm::Sha256.hash(&[&hex(&secret), &realm]);
        DigestAuthority {
            realm,
            secret,
            nonce_ttl_secs,
            counts: HashMap::new(),
            max_tracked: 200_000,
            decoy,
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac(&self, ts: &str, salt: &str) -> String {
        let mut d = Sha256::new();
        d.update(self.secret);
        d.update(self.realm.as_bytes());
        d.update(ts.as_bytes());
        d.update(salt.as_bytes());
        hex(&d.finalize()[..16])
    }

    /// A fresh nonce issued at `now_secs` with random `salt`.
    pub fn nonce(&mut self, now_secs: u64, salt: u64) -> String {
        let ts = format!("{now_secs:016x}");
        let salt = format!("{salt:016x}");
        let nonce = format!("{ts}{salt}{}", self.mac(&ts, &salt));
        if self.counts.len() >= self.max_tracked {
            let ttl = self.nonce_ttl_secs;
            self.counts
                .retain(|_, (_, issued)| now_secs.saturating_sub(*issued) <= ttl);
            if self.counts.len() >= self.max_tracked {
                self.counts.clear();
            }
        }
        self.counts.insert(nonce.clone(), (0, now_secs));
        nonce
    }

    /// `WWW-Authenticate` values for a new challenge, one per algorithm in order of
    /// preference (RFC 8760: SHA-256 before MD5), sharing one nonce.
    pub fn challenge(
        &mut self,
        now_secs: u64,
        salt: u64,
        stale: bool,
        algorithms: &[Algorithm],
    ) -> Vec<String> {
        let nonce = self.nonce(now_secs, salt);
        let stale = if stale { ", stale=true" } else { "" };
        algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}",
                    self.realm,
                    a.token()
                )
            })
            .collect()
    }

    /// Checks the credentials header `header` of a request with `method` at `now_secs`;
    /// returns the authenticated user name and the algorithm used.
    pub fn verify(
        &mut self,
        now_secs: u64,
        method: &str,
        header: Option<&str>,
        creds: &impl Credentials,
    ) -> Result<(String, Algorithm), AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let r = parse_credentials(header).ok_or(AuthError::Malformed("not a Digest header"))?;
        if r.username.is_empty() || r.nonce.is_empty() || r.response.is_empty() {
            return Err(AuthError::Malformed("missing username, nonce or response"));
        }
        if r.realm != self.realm {
            return Err(AuthError::Missing);
        }
        let algorithm = match r.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(a).ok_or(AuthError::Malformed("unsupported algorithm"))?,
        };
        if !r
            .qop
            .as_deref()
            .is_some_and(|q| q.eq_ignore_ascii_case("auth"))
        {
            return Err(AuthError::Malformed("qop=auth required"));
        }
        let (Some(cnonce), Some(nc)) = (r.cnonce.as_deref(), r.nc.as_deref()) else {
            return Err(AuthError::Malformed("qop=auth without cnonce or nc"));
        };
        let nc_value = u32::from_str_radix(nc, 16).map_err(|_| AuthError::Malformed("bad nc"))?;
        // Authenticity of the nonce, before anything else.
        if r.nonce.len() != 64 || !r.nonce.is_ascii() {
            return Err(AuthError::Rejected);
        }
        let (ts, rest) = r.nonce.split_at(16);
        let (salt, mac) = rest.split_at(16);
        if !bool::from(self.mac(ts, salt).as_bytes().ct_eq(mac.as_bytes())) {
            return Err(AuthError::Rejected);
        }
        let issued = u64::from_str_radix(ts, 16).map_err(|_| AuthError::Rejected)?;
        // The response, against the user's HA1 or the decoy.
        let known = creds.ha1(&r.username, algorithm);
        let ha1 = known.as_deref().unwrap_or(&self.decoy);
        let ha2 = algorithm.hash(&[method, &r.uri]);
        let expected = algorithm.hash(&[ha1, &r.nonce, nc, cnonce, "auth", &ha2]);
        let given = r.response.to_ascii_lowercase();
        let matches = bool::from(expected.as_bytes().ct_eq(given.as_bytes()));
        if !matches || known.is_none() {
            return Err(AuthError::Rejected);
        }
        // Right password: now freshness and replay.
        let expired = now_secs.saturating_sub(issued) > self.nonce_ttl_secs;
        match self.counts.get_mut(&r.nonce) {
            _ if expired => {
                self.counts.remove(&r.nonce);
                Err(AuthError::Stale)
            }
            None => Err(AuthError::Stale),
            Some((last, _)) if nc_value <= *last => Err(AuthError::Rejected),
            Some((last, _)) => {
                *last = nc_value;
                Ok((r.username, algorithm))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Users;
    impl Credentials for Users {
        fn ha1(&self, user: &str, algorithm: Algorithm) -> Option<String> {
            (user == "alice").then(|| ha1(algorithm, "alice", "example.org", "secret"))
        }
    }

    fn answer(alg: Algorithm, nonce: &str, password: &str, nc: &str, user: &str) -> String {
        let ha1 = ha1(alg, user, "example.org", password);
        let ha2 = alg.hash(&["REGISTER", "sip:example.org"]);
        let resp = alg.hash(&[&ha1, nonce, nc, "abc", "auth", &ha2]);
        format!(
            "Digest username=\"{user}\", realm=\"example.org\", nonce=\"{nonce}\", uri=\"sip:example.org\", response=\"{resp}\", algorithm={}, cnonce=\"abc\", qop=auth, nc={nc}",
            alg.token()
        )
    }

    fn authority() -> DigestAuthority {
        DigestAuthority::new("example.org", [7; 32], 300)
    }

    #[test]
    fn known_vector_md5_rfc2617_style() {
        // RFC 2617 §3.5 example, with the HTTP method and URI it uses.
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let ha2 = Algorithm::Md5.hash(&["GET", "/dir/index.html"]);
        let r = Algorithm::Md5.hash(&[
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "00000001",
            "0a4f113b",
            "auth",
            &ha2,
        ]);
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn known_vector_sha256_rfc7616() {
        // RFC 7616 §3.9.1.
        let ha1 = ha1(
            Algorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        let ha2 = Algorithm::Sha256.hash(&["GET", "/dir/index.html"]);
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let r = Algorithm::Sha256.hash(&[
            &ha1,
            nonce,
            "00000001",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            "auth",
            &ha2,
        ]);
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn both_algorithms_succeed_and_replay_is_refused() {
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let mut auth = authority();
            let ch = auth.challenge(1000, 1, false, &[Algorithm::Sha256, Algorithm::Md5]);
            assert_eq!(ch.len(), 2);
            assert!(ch[0].contains("algorithm=SHA-256") && ch[1].contains("algorithm=MD5"));
            let nonce = auth.nonce(1000, 2);
            let h = answer(alg, &nonce, "secret", "00000001", "alice");
            assert_eq!(
                auth.verify(1001, "REGISTER", Some(&h), &Users),
                Ok(("alice".into(), alg))
            );
            assert_eq!(
                auth.verify(1001, "REGISTER", Some(&h), &Users),
                Err(AuthError::Rejected),
                "replay"
            );
            let h2 = answer(alg, &nonce, "secret", "00000002", "alice");
            assert_eq!(
                auth.verify(1002, "REGISTER", Some(&h2), &Users),
                Ok(("alice".into(), alg))
            );
        }
    }

    #[test]
    fn wrong_password_and_unknown_user_look_the_same() {
        let mut auth = authority();
        let nonce = auth.nonce(1000, 3);
        let wrong = answer(Algorithm::Md5, &nonce, "nope", "00000001", "alice");
        let unknown = answer(Algorithm::Md5, &nonce, "secret", "00000001", "mallory");
        assert_eq!(
            auth.verify(1000, "REGISTER", Some(&wrong), &Users),
            Err(AuthError::Rejected)
        );
        assert_eq!(
            auth.verify(1000, "REGISTER", Some(&unknown), &Users),
            Err(AuthError::Rejected)
        );
    }

    #[test]
    fn expired_nonce_is_stale_and_forged_nonce_rejected() {
        let mut auth = authority();
        let nonce = auth.nonce(1000, 4);
        let h = answer(Algorithm::Sha256, &nonce, "secret", "00000001", "alice");
        assert_eq!(
            auth.verify(1301, "REGISTER", Some(&h), &Users),
            Err(AuthError::Stale)
        );
        let mut forged = nonce.clone();
        forged.replace_range(0..1, "f");
        let h = answer(Algorithm::Sha256, &forged, "secret", "00000001", "alice");
        assert_eq!(
            auth.verify(1000, "REGISTER", Some(&h), &Users),
            Err(AuthError::Rejected)
        );
        // A nonce from another process (another secret) is not ours.
        let mut other = DigestAuthority::new("example.org", [8; 32], 300);
        let theirs = other.nonce(1000, 5);
        let h = answer(Algorithm::Sha256, &theirs, "secret", "00000001", "alice");
        assert_eq!(
            auth.verify(1000, "REGISTER", Some(&h), &Users),
            Err(AuthError::Rejected)
        );
    }

    #[test]
    fn malformed_headers_do_not_panic() {
        let mut auth = authority();
        for h in [
            "",
            "Digest",
            "Basic abc",
            "Digest username=",
            "Digest username=\"a",
            "Digest ,,,,",
            "Digest username=\"a\", nonce=\"x\", response=\"y\", realm=\"example.org\", qop=auth, nc=zz, cnonce=\"c\"",
            "Digest username=\"a\", nonce=\"é\", response=\"y\", realm=\"example.org\", qop=auth, nc=1, cnonce=\"c\"",
        ] {
            assert!(auth.verify(0, "REGISTER", Some(h), &Users).is_err(), "{h}");
        }
        assert_eq!(
            auth.verify(0, "REGISTER", None, &Users),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn parses_quoted_escaped_and_case_insensitive_params() {
        let r = parse_credentials("digest USERNAME=\"a\\\"b\",Realm=r , nc=00000001,qop=auth")
            .expect("digest");
        assert_eq!(r.username, "a\"b");
        assert_eq!(r.realm, "r");
        assert_eq!(r.nc.as_deref(), Some("00000001"));
        assert_eq!(r.qop.as_deref(), Some("auth"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_credentials_never_panic(h in "\\PC{0,200}") {
            let _ = parse_credentials(&h);
            let mut auth = authority();
            let _ = auth.verify(0, "REGISTER", Some(&h), &Users);
        }

        #[test]
        fn digest_like_credentials_never_panic(h in "[Dd]igest( *,? *(username|realm|nonce|uri|response|qop|nc|cnonce|algorithm|opaque)=(\"[^\"]{0,70}\"?|[a-zA-Z0-9-]{0,70}))*") {
            let _ = parse_credentials(&h);
            let mut auth = authority();
            let _ = auth.verify(0, "REGISTER", Some(&h), &Users);
        }
    }

    #[test]
    fn answers_our_own_challenges_in_both_algorithms() {
        for alg in [Algorithm::Sha256, Algorithm::Md5] {
            let mut auth = authority();
            let ch = auth.challenge(10, 9, false, &[alg]);
            let h = answer_challenge(
                &ch[0],
                "REGISTER",
                "sip:example.org",
                "alice",
                "secret",
                "c0ffee",
                1,
            )
            .expect("answerable");
            assert_eq!(
                auth.verify(10, "REGISTER", Some(&h), &Users),
                Ok(("alice".into(), alg))
            );
            let wrong = answer_challenge(
                &ch[0],
                "REGISTER",
                "sip:example.org",
                "alice",
                "nope",
                "c0ffee",
                2,
            )
            .expect("answerable");
            assert_eq!(
                auth.verify(10, "REGISTER", Some(&wrong), &Users),
                Err(AuthError::Rejected)
            );
        }
        assert!(answer_challenge("Basic realm=x", "OPTIONS", "sip:x", "u", "p", "c", 1).is_none());
        assert!(
            answer_challenge(
                "Digest realm=\"x\", nonce=\"n\", algorithm=SHA-512",
                "OPTIONS",
                "sip:x",
                "u",
                "p",
                "c",
                1
            )
            .is_none()
        );
        // RFC 2069 style (no qop): still answered.
        let h = answer_challenge(
            "Digest realm=\"x\", nonce=\"n\"",
            "OPTIONS",
            "sip:x",
            "u",
            "p",
            "c",
            1,
        )
        .expect("md5");
        assert!(h.contains("algorithm=MD5") && !h.contains("qop"));
    }
}

//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760: SHA-256).
//!
//! Nonces carry their own proof: `hex(issued).hex(salt).hex(mac)`, the MAC a SHA-256
//! over a random secret drawn at start, the issue time, a random salt, the realm and
//! what the nonce was issued for ([`Scope`]: the source address and port, the method and
//! the user). Any nonce we issued is recognised without a table, and only from the
//! socket and for the request it answered. A right response to a nonce past its lifetime
//! is stale: the phone is challenged again with `stale=true` (RFC 7616 §3.3) and retries
//! without asking its user.
//!
//! Replays are refused (RFC 7616 §3.4): each nonce with an accepted response remembers
//! the highest nonce count (`nc`) it was used with, and a response with the same or a
//! lower count is refused, so a (nonce, cnonce, nc) is never accepted twice; a nonce
//! used without `qop` is good once. The table holds only nonces that were answered
//! right, and forgets each at the end of its lifetime ([`DigestAuth::sweep`]).

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use md5::Md5;
use sha2::{Digest, Sha256};

/// A digest algorithm (RFC 8760 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5, RFC 2617's default: what every phone can answer.
    Md5,
    /// SHA-256 (RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The name in challenges and credentials: `MD5`, `SHA-256`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// The algorithm with this name (case-insensitive), if we implement it.
    pub fn parse(name: &str) -> Option<Algorithm> {
        [Algorithm::Md5, Algorithm::Sha256]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

/// The parameters of an `Authorization` (or `Proxy-Authorization`) header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `username`
    pub username: String,
    /// `realm`
    pub realm: String,
    /// `nonce`
    pub nonce: String,
    /// `uri`, the digest URI as the client wrote it.
    pub uri: String,
    /// `response`
    pub response: String,
    /// `algorithm`, MD5 when absent.
    pub algorithm: Option<String>,
    /// `cnonce`
    pub cnonce: Option<String>,
    /// `nc`
    pub nc: Option<String>,
    /// `qop`
    pub qop: Option<String>,
}

impl Credentials {
    /// Parses `Digest username="..", realm="..", ...`; `None` if it is not a digest header.
    pub fn parse(header: &str) -> Option<Credentials> {
        let rest = header.trim();
        let rest = rest
            .get(..6)
            .filter(|s| s.eq_ignore_ascii_case("digest"))
            .map(|_| &rest[6..])?;
        let mut credentials = Credentials::default();
        for (name, value) in params(rest) {
            let slot = match name.to_ascii_lowercase().as_str() {
                "username" => &mut credentials.username,
                "realm" => &mut credentials.realm,
                "nonce" => &mut credentials.nonce,
                "uri" => &mut credentials.uri,
                "response" => &mut credentials.response,
                "algorithm" => {
                    credentials.algorithm = Some(value);
                    continue;
                }
                "cnonce" => {
                    credentials.cnonce = Some(value);
                    continue;
                }
                "nc" => {
                    credentials.nc = Some(value);
                    continue;
                }
                "qop" => {
                    credentials.qop = Some(value);
                    continue;
                }
                _ => continue,
            };
            *slot = value;
        }
        Some(credentials)
    }
}

/// `name=value` or `name="quoted, value"` pairs separated by commas.
fn params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    out
}

/// Why credentials were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The response is right but the nonce is too old: challenge again with `stale=true`
    /// (RFC 7616 §3.3) so that the phone retries without asking its user.
    #[error("stale nonce")]
    Stale,
    /// The nonce is not one we issued for this source and request (another process, a
    /// forgery, or a response overheard and replayed from elsewhere).
    #[error("unknown nonce")]
    UnknownNonce,
    /// Another realm.
    #[error("wrong realm")]
    WrongRealm,
    /// An algorithm this user is not offered.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The response does not match: wrong password, or tampered parameters.
    #[error("wrong response")]
    WrongResponse,
    /// qop=auth without cnonce or nc, or an nc that is not 8 hex digits.
    #[error("incomplete credentials")]
    Incomplete,
    /// A right response whose nonce count was already used with this nonce, or is lower
    /// than one already used (RFC 7616 §3.4: replay protection): a replay.
    #[error("replayed nonce count")]
    Replayed,
}

/// What a nonce is issued for, and so the only request it can authenticate: a nonce
/// handed to one source for one user's REGISTER is useless from another socket, for
/// another user or for another method (RFC 7616 §5.5 leaves the binding to the server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope<'a> {
    /// Where the challenged request came from (address and port).
    pub source: SocketAddr,
    /// The challenged request's method.
    pub method: &'a str,
    /// The user the request is for (a REGISTER's To user); empty when unknown at
    /// challenge time (a trunk's INVITE).
    pub user: &'a str,
}

/// How many nonces with a verified use are remembered at most. Only a right response
/// adds one, so only holders of a password can grow the table; past the bound a nonce
/// is treated as stale and the phone takes a new one.
const MAX_TRACKED_NONCES: usize = 1 << 18;

/// The highest nonce count seen with one nonce (RFC 7616 §3.4).
#[derive(Clone, Copy, Debug)]
struct NonceUse {
    /// When the nonce stops being accepted (seconds since the epoch).
    expires: u64,
    /// The highest `nc` accepted; 0 for a nonce used without qop (single use).
    last_count: u32,
}

/// Issues challenges and checks answers for one realm.
#[derive(Debug)]
pub struct DigestAuth {
    realm: String,
    secret: [u8; 32],
    lifetime: Duration,
    /// Nonces with at least one accepted response, for replay protection.
    used: DashMap<String, NonceUse>,
}

impl DigestAuth {
    /// A realm with a fresh random secret; nonces live `lifetime`.
    pub fn new(realm: impl Into<String>, lifetime: Duration) -> Self {
        let mut secret = [0u8; 32];
        fill_random(&mut secret);
        DigestAuth {
            realm: realm.into(),
            secret,
            lifetime,
            used: DashMap::new(),
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// How long a nonce is accepted.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn mac(&self, issued: u64, salt: u64, scope: &Scope<'_>) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.secret);
        hasher.update(issued.to_be_bytes());
        hasher.update(salt.to_be_bytes());
        for part in [
            self.realm.as_str(),
            &scope.source.to_string(),
            scope.method,
            scope.user,
        ] {
            // Length-prefixed, so that no two scopes hash the same bytes.
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        hex::encode(&hasher.finalize()[..16])
    }

    /// A new nonce for `scope`, issued at `now` (seconds since the epoch): the issue
    /// time, a random salt and a MAC over both and the scope. Any nonce we issued is
    /// recognised without a table, and only for the scope it was issued for.
    pub fn nonce(&self, now: u64, scope: &Scope<'_>) -> String {
        let mut salt = [0u8; 8];
        fill_random(&mut salt);
        let salt = u64::from_be_bytes(salt);
        format!("{now:x}.{salt:016x}.{}", self.mac(now, salt, scope))
    }

    /// The issue time of a nonce we issued for `scope`.
    fn issued(&self, nonce: &str, scope: &Scope<'_>) -> Result<u64, DigestError> {
        let mut parts = nonce.split('.');
        let (Some(issued), Some(salt), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(DigestError::UnknownNonce);
        };
        let issued = u64::from_str_radix(issued, 16).map_err(|_| DigestError::UnknownNonce)?;
        let salt = u64::from_str_radix(salt, 16).map_err(|_| DigestError::UnknownNonce)?;
        if !constant_time_eq(mac.as_bytes(), self.mac(issued, salt, scope).as_bytes()) {
            return Err(DigestError::UnknownNonce);
        }
        Ok(issued)
    }

    /// `WWW-Authenticate` values for `scope`, one per algorithm in the order given (RFC
    /// 8760 §2.4: most preferred first), all with the same new nonce.
    pub fn challenges(
        &self,
        now: u64,
        scope: &Scope<'_>,
        algorithms: &[Algorithm],
        stale: bool,
    ) -> Vec<String> {
        let nonce = self.nonce(now, scope);
        algorithms
            .iter()
            .map(|algorithm| {
                let mut value = format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                    self.realm,
                    algorithm.name()
                );
                if stale {
                    value.push_str(", stale=true");
                }
                value
            })
            .collect()
    }

    /// Checks credentials for a request in `scope` against the user's password, with
    /// one of `algorithms`, at `now` (seconds since the epoch). A success is remembered:
    /// the same nonce count, or a lower one, is refused afterwards as a replay.
    pub fn verify(
        &self,
        credentials: &Credentials,
        scope: &Scope<'_>,
        password: &str,
        algorithms: &[Algorithm],
        now: u64,
    ) -> Result<(), DigestError> {
        if credentials.realm != self.realm {
            return Err(DigestError::WrongRealm);
        }
        let algorithm = match credentials.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(name) => Algorithm::parse(name).ok_or(DigestError::UnsupportedAlgorithm)?,
        };
        if !algorithms.contains(&algorithm) {
            return Err(DigestError::UnsupportedAlgorithm);
        }
        let issued = self.issued(&credentials.nonce, scope)?;
        let count = match (&credentials.qop, &credentials.nc) {
            (Some(_), Some(nc)) if nc.len() == 8 => {
                u32::from_str_radix(nc, 16).map_err(|_| DigestError::Incomplete)?
            }
            (Some(_), _) => return Err(DigestError::Incomplete),
            (None, _) => 0,
        };
        let expected = response(algorithm, credentials, scope.method, password)?;
        if !constant_time_eq(
            expected.as_bytes(),
            credentials.response.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(DigestError::WrongResponse);
        }
        // RFC 7616 §3.3: a right answer to a nonce past its lifetime is stale, not wrong.
        let expires = issued.saturating_add(self.lifetime.as_secs());
        if now > expires || issued > now.saturating_add(60) {
            return Err(DigestError::Stale);
        }
        if self.used.len() >= MAX_TRACKED_NONCES && !self.used.contains_key(&credentials.nonce) {
            return Err(DigestError::Stale);
        }
        // RFC 7616 §3.4: the nonce count must grow with each request on one nonce; without
        // qop there is no count, so the nonce is good once.
        let mut entry = self
            .used
            .entry(credentials.nonce.clone())
            .or_insert(NonceUse {
                expires,
                last_count: u32::MAX,
            });
        let fresh = entry.last_count == u32::MAX;
        if !fresh && (count == 0 || count <= entry.last_count) {
            return Err(DigestError::Replayed);
        }
        entry.last_count = count;
        Ok(())
    }

    /// Forgets the nonces past their lifetime (their responses are stale anyway).
    pub fn sweep(&self, now: u64) {
        self.used.retain(|_, nonce| nonce.expires >= now);
    }

    /// A password nobody knows, to check an unknown user's response exactly as a known
    /// one's (the same work, the same outcome as a wrong password).
    pub fn decoy_password(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.secret);
        hasher.update(b"decoy");
        hex::encode(&hasher.finalize()[..16])
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Fills `buf` from the operating system's random source. Without one the process cannot
/// issue unguessable nonces, so it stops.
pub(crate) fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source");
}

/// A user's secret and the algorithms it is challenged with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The password.
    pub password: String,
    /// The algorithms offered to this user, in order; `None`: the edge's default.
    pub algorithms: Option<Vec<Algorithm>>,
}

/// Why a request's credentials count as a failed attempt (a guess, or a replay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// A known user's response is wrong.
    WrongPassword,
    /// A response for a user that does not exist (answered exactly as a wrong password).
    UnknownUser,
    /// A right response whose nonce count was used before.
    Replayed,
    /// Credentials for another user than the one the request is for.
    OtherUser,
}

impl AuthFailure {
    /// A stable word for logs (and the fail2ban filter in `deploy/`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::WrongPassword => "wrong-password",
            AuthFailure::UnknownUser => "unknown-user",
            AuthFailure::Replayed => "replayed",
            AuthFailure::OtherUser => "other-user",
        }
    }
}

/// What to do with a request, given its credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials are right and fresh.
    Accepted,
    /// No credentials, or a nonce that is stale or not ours for this request: challenge
    /// (with `stale=true` if so); nothing was guessed.
    Challenge {
        /// The response was right but its nonce too old.
        stale: bool,
    },
    /// A failed attempt: challenge again, and count it.
    Failed(AuthFailure),
    /// Credentials that cannot be checked: 400 with this reason.
    Malformed(&'static str),
}

impl DigestAuth {
    /// Judges a request's `Authorization` for `scope`. `account` is the user's, `None`
    /// for a user that does not exist: that one is checked against a password nobody
    /// knows, so that it costs the same work and gets the same answer as a wrong
    /// password. `algorithms` are those offered when the account names none.
    pub fn check(
        &self,
        credentials: Option<&Credentials>,
        scope: &Scope<'_>,
        account: Option<&Account>,
        algorithms: &[Algorithm],
        now: u64,
    ) -> Verdict {
        let Some(credentials) = credentials else {
            return Verdict::Challenge { stale: false };
        };
        let (password, offered) = match account {
            Some(account) => (
                account.password.clone(),
                account.algorithms.as_deref().unwrap_or(algorithms),
            ),
            None => (self.decoy_password(), algorithms),
        };
        match self.verify(credentials, scope, &password, offered, now) {
            Ok(()) if account.is_some() => Verdict::Accepted,
            Ok(()) | Err(DigestError::WrongResponse) if account.is_none() => {
                Verdict::Failed(AuthFailure::UnknownUser)
            }
            Ok(()) | Err(DigestError::WrongResponse) => Verdict::Failed(AuthFailure::WrongPassword),
            Err(DigestError::Replayed) => Verdict::Failed(AuthFailure::Replayed),
            Err(DigestError::Stale) => Verdict::Challenge { stale: true },
            Err(DigestError::UnknownNonce | DigestError::WrongRealm) => {
                Verdict::Challenge { stale: false }
            }
            Err(DigestError::UnsupportedAlgorithm) => {
                Verdict::Malformed("Bad Request (unsupported digest algorithm)")
            }
            Err(DigestError::Incomplete) => {
                Verdict::Malformed("Bad Request (qop without cnonce or an 8-digit nc)")
            }
        }
    }
}

/// The digest response (RFC 7616 §3.4.1).
fn response(
    algorithm: Algorithm,
    c: &Credentials,
    method: &str,
    password: &str,
) -> Result<String, DigestError> {
    let ha1 = algorithm.hash(&format!("{}:{}:{password}", c.username, c.realm));
    let ha2 = algorithm.hash(&format!("{method}:{}", c.uri));
    let mut data = String::new();
    match c.qop.as_deref() {
        Some(qop) => {
            let (Some(nc), Some(cnonce)) = (&c.nc, &c.cnonce) else {
                return Err(DigestError::Incomplete);
            };
            let _ = write!(data, "{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", c.nonce);
        }
        None => {
            let _ = write!(data, "{ha1}:{}:{ha2}", c.nonce);
        }
    }
    Ok(algorithm.hash(&data))
}

/// Seconds since the Unix epoch: the clock of nonces.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2617_example_response() {
        // RFC 2617 §3.5, with qop=auth (HTTP, but the computation is the same).
        let c = Credentials {
            username: "Mufasa".into(),
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            uri: "/dir/index.html".into(),
            response: String::new(),
            algorithm: None,
            cnonce: Some("0a4f113b".into()),
            nc: Some("00000001".into()),
            qop: Some("auth".into()),
        };
        assert_eq!(
            response(Algorithm::Md5, &c, "GET", "Circle Of Life").unwrap(),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    #[test]
    fn rfc_7616_sha256_example_response() {
        // RFC 7616 §3.9.1, SHA-256.
        let c = Credentials {
            username: "Mufasa".into(),
            realm: "http-auth@example.org".into(),
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
            uri: "/dir/index.html".into(),
            response: String::new(),
            algorithm: Some("SHA-256".into()),
            cnonce: Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ".into()),
            nc: Some("00000001".into()),
            qop: Some("auth".into()),
        };
        assert_eq!(
            response(Algorithm::Sha256, &c, "GET", "Circle of Life").unwrap(),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

    fn scope(port: u16) -> Scope<'static> {
        Scope {
            source: SocketAddr::from(([127, 0, 0, 1], port)),
            method: "REGISTER",
            user: "anna",
        }
    }

    fn answer(
        auth: &DigestAuth,
        algorithm: Algorithm,
        nonce: &str,
        nc: u32,
        password: &str,
    ) -> Credentials {
        let mut c = Credentials {
            username: "anna".into(),
            realm: auth.realm().into(),
            nonce: nonce.into(),
            uri: "sip:127.0.0.1".into(),
            response: String::new(),
            algorithm: Some(algorithm.name().into()),
            cnonce: Some("abc".into()),
            nc: Some(format!("{nc:08x}")),
            qop: Some("auth".into()),
        };
        c.response = response(algorithm, &c, "REGISTER", password).unwrap();
        c
    }

    #[test]
    fn verifies_our_nonces_and_refuses_the_rest() {
        let auth = DigestAuth::new("amico", Duration::from_secs(300));
        let now = 1_800_000_000;
        let here = scope(5062);
        for algorithm in ALL {
            let nonce = auth.nonce(now, &here);
            let c = answer(&auth, algorithm, &nonce, 1, "secret");
            assert_eq!(
                auth.verify(&c, &here, "wrong", &ALL, now + 10),
                Err(DigestError::WrongResponse)
            );
            let invite = Scope {
                method: "INVITE",
                ..here
            };
            assert_eq!(
                auth.verify(&c, &invite, "secret", &ALL, now + 10),
                Err(DigestError::UnknownNonce),
                "a REGISTER's nonce does not authenticate an INVITE"
            );
            assert_eq!(
                auth.verify(&c, &here, "secret", &[Algorithm::Md5], now + 10),
                if algorithm == Algorithm::Md5 {
                    Ok(())
                } else {
                    Err(DigestError::UnsupportedAlgorithm)
                }
            );
            let c = answer(&auth, algorithm, &auth.nonce(now, &here), 1, "secret");
            assert_eq!(
                auth.verify(&c, &here, "secret", &ALL, now + 301),
                Err(DigestError::Stale)
            );
            assert_eq!(
                auth.verify(&c, &here, "wrong", &ALL, now + 301),
                Err(DigestError::WrongResponse),
                "stale only for a right response (RFC 7616 §3.3)"
            );
        }
        let forged = answer(
            &auth,
            Algorithm::Md5,
            &format!("{now:x}.1.00ff"),
            1,
            "secret",
        );
        assert_eq!(
            auth.verify(&forged, &here, "secret", &ALL, now),
            Err(DigestError::UnknownNonce)
        );
        let other = DigestAuth::new("amico", Duration::from_secs(300));
        let theirs = answer(
            &other,
            Algorithm::Md5,
            &other.nonce(now, &here),
            1,
            "secret",
        );
        assert_eq!(
            auth.verify(&theirs, &here, "secret", &ALL, now),
            Err(DigestError::UnknownNonce)
        );
        assert_ne!(auth.nonce(now, &here), auth.nonce(now, &here), "salted");
    }

    #[test]
    fn a_response_is_good_once_and_only_from_where_it_was_challenged() {
        let auth = DigestAuth::new("amico", Duration::from_secs(30));
        let now = 1_800_000_000;
        let here = scope(5062);
        let nonce = auth.nonce(now, &here);
        let first = answer(&auth, Algorithm::Md5, &nonce, 1, "secret");
        assert_eq!(auth.verify(&first, &here, "secret", &ALL, now), Ok(()));
        // The same Authorization again: from the phone's own socket, or another one.
        assert_eq!(
            auth.verify(&first, &here, "secret", &ALL, now + 1),
            Err(DigestError::Replayed)
        );
        assert_eq!(
            auth.verify(&first, &scope(6000), "secret", &ALL, now + 1),
            Err(DigestError::UnknownNonce)
        );
        // The phone's next request on the same nonce counts up: fine, then not again.
        let third = answer(&auth, Algorithm::Md5, &nonce, 3, "secret");
        assert_eq!(auth.verify(&third, &here, "secret", &ALL, now + 2), Ok(()));
        let second = answer(&auth, Algorithm::Md5, &nonce, 2, "secret");
        assert_eq!(
            auth.verify(&second, &here, "secret", &ALL, now + 2),
            Err(DigestError::Replayed),
            "a decreasing nonce count"
        );
        // Without qop a nonce is good once.
        let nonce = auth.nonce(now, &here);
        let mut bare = answer(&auth, Algorithm::Md5, &nonce, 1, "secret");
        (bare.qop, bare.nc, bare.cnonce) = (None, None, None);
        bare.response = response(Algorithm::Md5, &bare, "REGISTER", "secret").unwrap();
        assert_eq!(auth.verify(&bare, &here, "secret", &ALL, now), Ok(()));
        assert_eq!(
            auth.verify(&bare, &here, "secret", &ALL, now),
            Err(DigestError::Replayed)
        );
        // A count that is not 8 hex digits is refused before anything is remembered.
        let mut odd = answer(&auth, Algorithm::Md5, &auth.nonce(now, &here), 1, "secret");
        odd.nc = Some("1".into());
        assert_eq!(
            auth.verify(&odd, &here, "secret", &ALL, now),
            Err(DigestError::Incomplete)
        );
        // The table forgets nonces at the end of their lifetime.
        assert_eq!(auth.used.len(), 2);
        auth.sweep(now + 31);
        assert!(auth.used.is_empty());
    }

    #[test]
    fn parses_authorization_headers() {
        let header = r#"Digest username="anna", realm="amico",nonce="6f.ab", uri="sip:127.0.0.1:5060", response="0123", algorithm=SHA-256, cnonce="x,y", qop=auth, nc=00000001"#;
        let c = Credentials::parse(header).unwrap();
        assert_eq!(c.username, "anna");
        assert_eq!(c.uri, "sip:127.0.0.1:5060");
        assert_eq!(c.cnonce.as_deref(), Some("x,y"));
        assert_eq!(c.algorithm.as_deref(), Some("SHA-256"));
        assert_eq!(c.nc.as_deref(), Some("00000001"));
        assert!(Credentials::parse("Basic YWxhZGRpbjpvcGVuc2VzYW1l").is_none());
        let auth = DigestAuth::new("amico", Duration::from_secs(60));
        let challenges = auth.challenges(100, &scope(1), &ALL, true);
        assert!(
            challenges[0].contains("algorithm=SHA-256") && challenges[0].ends_with("stale=true")
        );
        assert!(challenges[1].contains("algorithm=MD5"));
        let md5 = auth.challenges(100, &scope(1), &[Algorithm::Md5], false);
        assert_eq!(md5.len(), 1);
        assert!(md5[0].contains("algorithm=MD5") && !md5[0].contains("stale"));
        assert_eq!(Algorithm::parse("sha-256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::parse("SHA-512-256"), None);
    }
}

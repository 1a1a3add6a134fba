//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760: SHA-256).
//!
//! Nonces are stateless: `hex(issued) . hex(mac)` with the MAC a SHA-256 over a secret
//! drawn at start, the issue time and the realm. Any nonce we issued is recognised
//! without keeping a table, and one older than its lifetime is stale: the client is
//! challenged again with `stale=true` (RFC 7616 §3.3) and retries without asking its
//! user. Nonce counts are not tracked, so a captured response can be replayed within the
//! nonce's lifetime; the lifetime is kept short (five minutes by default).

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::Md5;
use sha2::{Digest, Sha256};

/// A digest algorithm (RFC 8760 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5, RFC 2617's default, still what most phones send.
    Md5,
    /// SHA-256 (RFC 8760), offered first.
    Sha256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
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
    /// The nonce is ours but too old: challenge again with `stale=true`.
    #[error("stale nonce")]
    Stale,
    /// The nonce is not one we issued.
    #[error("unknown nonce")]
    UnknownNonce,
    /// Another realm.
    #[error("wrong realm")]
    WrongRealm,
    /// An algorithm we do not offer.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The response does not match: wrong password, or tampered parameters.
    #[error("wrong response")]
    WrongResponse,
    /// qop=auth without cnonce or nc.
    #[error("incomplete credentials")]
    Incomplete,
}

/// Issues challenges and checks answers for one realm.
#[derive(Clone, Debug)]
pub struct DigestAuth {
    realm: String,
    secret: [u8; 32],
    lifetime: Duration,
}

impl DigestAuth {
    /// A realm with a fresh secret; nonces live `lifetime`.
    pub fn new(realm: impl Into<String>, lifetime: Duration) -> Self {
        let mut secret = [0u8; 32];
        // Uniqueness per process is what matters: the time and the address of a stack
        // value, mixed through SHA-256, are enough to tell runs apart.
        let seed = format!(
            "{:?}{:p}{}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            &secret,
            std::process::id()
        );
        secret.copy_from_slice(&Sha256::digest(seed.as_bytes()));
        DigestAuth {
            realm: realm.into(),
            secret,
            lifetime,
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac(&self, issued: u64) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.secret);
        hasher.update(issued.to_be_bytes());
        hasher.update(self.realm.as_bytes());
        hex::encode(&hasher.finalize()[..16])
    }

    /// A nonce issued at `now` (seconds since the epoch).
    pub fn nonce(&self, now: u64) -> String {
        format!("{now:x}.{}", self.mac(now))
    }

    fn check_nonce(&self, nonce: &str, now: u64) -> Result<(), DigestError> {
        let (issued, mac) = nonce.split_once('.').ok_or(DigestError::UnknownNonce)?;
        let issued = u64::from_str_radix(issued, 16).map_err(|_| DigestError::UnknownNonce)?;
        if mac != self.mac(issued) {
            return Err(DigestError::UnknownNonce);
        }
        if now.saturating_sub(issued) > self.lifetime.as_secs() || issued > now + 60 {
            return Err(DigestError::Stale);
        }
        Ok(())
    }

    /// `WWW-Authenticate` values, SHA-256 first then MD5 (RFC 8760 §2.4: one challenge
    /// per algorithm, most preferred first).
    pub fn challenges(&self, now: u64, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now);
        [Algorithm::Sha256, Algorithm::Md5]
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

    /// Checks credentials for `method` against the user's password.
    pub fn verify(
        &self,
        credentials: &Credentials,
        method: &str,
        password: &str,
        now: u64,
    ) -> Result<(), DigestError> {
        if credentials.realm != self.realm {
            return Err(DigestError::WrongRealm);
        }
        let algorithm = match credentials
            .algorithm
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("MD5") => Algorithm::Md5,
            Some("SHA-256") => Algorithm::Sha256,
            Some(_) => return Err(DigestError::UnsupportedAlgorithm),
        };
        self.check_nonce(&credentials.nonce, now)?;
        let expected = response(algorithm, credentials, method, password)?;
        if expected.eq_ignore_ascii_case(&credentials.response) {
            Ok(())
        } else {
            Err(DigestError::WrongResponse)
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

    fn answer(auth: &DigestAuth, algorithm: Algorithm, nonce: &str, password: &str) -> Credentials {
        let mut c = Credentials {
            username: "anna".into(),
            realm: auth.realm().into(),
            nonce: nonce.into(),
            uri: "sip:127.0.0.1".into(),
            response: String::new(),
            algorithm: Some(algorithm.name().into()),
            cnonce: Some("abc".into()),
            nc: Some("00000001".into()),
            qop: Some("auth".into()),
        };
        c.response = response(algorithm, &c, "REGISTER", password).unwrap();
        c
    }

    #[test]
    fn verifies_our_nonces_and_refuses_the_rest() {
        let auth = DigestAuth::new("amico", Duration::from_secs(300));
        let now = 1_800_000_000;
        let nonce = auth.nonce(now);
        for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
            let c = answer(&auth, algorithm, &nonce, "secret");
            assert_eq!(auth.verify(&c, "REGISTER", "secret", now + 10), Ok(()));
            assert_eq!(
                auth.verify(&c, "REGISTER", "wrong", now + 10),
                Err(DigestError::WrongResponse)
            );
            assert_eq!(
                auth.verify(&c, "INVITE", "secret", now + 10),
                Err(DigestError::WrongResponse)
            );
            assert_eq!(
                auth.verify(&c, "REGISTER", "secret", now + 301),
                Err(DigestError::Stale)
            );
        }
        let forged = answer(&auth, Algorithm::Md5, &format!("{now:x}.00ff"), "secret");
        assert_eq!(
            auth.verify(&forged, "REGISTER", "secret", now),
            Err(DigestError::UnknownNonce)
        );
        let other = DigestAuth::new("amico", Duration::from_secs(300));
        let theirs = answer(&other, Algorithm::Md5, &other.nonce(now), "secret");
        assert_eq!(
            auth.verify(&theirs, "REGISTER", "secret", now),
            Err(DigestError::UnknownNonce)
        );
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
        let challenges = DigestAuth::new("amico", Duration::from_secs(60)).challenges(100, true);
        assert!(
            challenges[0].contains("algorithm=SHA-256") && challenges[0].ends_with("stale=true")
        );
        assert!(challenges[1].contains("algorithm=MD5"));
    }
}

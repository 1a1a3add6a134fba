//! HTTP digest credentials for a SIP REGISTER (RFC 3261 §22.4, RFC 7616, RFC 2617):
//! read a `WWW-Authenticate` challenge, answer it with an `Authorization` value.

use md5::Md5;
use sha2::{Digest, Sha256};

/// A digest challenge's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    realm: String,
    nonce: String,
    opaque: Option<String>,
    algorithm: Algorithm,
    /// Whether `qop` offers `auth` (RFC 7616 §3.3).
    qop_auth: bool,
}

/// The hash a challenge names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn hash(self, text: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(text.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(text.as_bytes())),
        }
    }
}

/// The `name=value` pairs of a challenge, values unquoted.
fn parameters(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        pairs.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    pairs
}

impl Challenge {
    /// Reads one `WWW-Authenticate` value; `None` when it is not a digest challenge with
    /// an algorithm we can answer (MD5 or SHA-256, RFC 7616 §3.3; MD5 when absent).
    pub(crate) fn parse(value: &str) -> Option<Challenge> {
        let (scheme, rest) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let pairs = parameters(rest);
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let algorithm = match get("algorithm").as_deref() {
            None => Algorithm::Md5,
            Some(name) if name.eq_ignore_ascii_case("MD5") => Algorithm::Md5,
            Some(name) if name.eq_ignore_ascii_case("SHA-256") => Algorithm::Sha256,
            Some(_) => return None,
        };
        Some(Challenge {
            realm: get("realm")?,
            nonce: get("nonce")?,
            opaque: get("opaque"),
            algorithm,
            qop_auth: get("qop").is_some_and(|qop| {
                qop.split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"))
            }),
        })
    }

    /// The first challenge of `values` we can answer (RFC 8760 §2.4: the server lists its
    /// preferred first).
    pub(crate) fn first<'a>(values: impl Iterator<Item = &'a str>) -> Option<Challenge> {
        values.into_iter().find_map(Challenge::parse)
    }

    /// The `Authorization` value for `method uri` as `user` with `password`; `nc` is the
    /// nonce count (RFC 7616 §3.4: counts up per request on the same nonce), `cnonce`
    /// the client's nonce.
    pub(crate) fn authorization(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let hash = |text: &str| self.algorithm.hash(text);
        // RFC 7616 §3.4.2, §3.4.3 (RFC 2617 §3.2.2.1 without qop).
        let ha1 = hash(&format!("{user}:{}:{password}", self.realm));
        let ha2 = hash(&format!("{method}:{uri}"));
        let nc = format!("{nc:08x}");
        let mut value = if self.qop_auth {
            let response = hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce));
            format!(
                "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
                 response=\"{response}\", algorithm={}, cnonce=\"{cnonce}\", qop=auth, nc={nc}",
                self.realm,
                self.nonce,
                self.algorithm.name()
            )
        } else {
            let response = hash(&format!("{ha1}:{}:{ha2}", self.nonce));
            format!(
                "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
                 response=\"{response}\", algorithm={}",
                self.realm,
                self.nonce,
                self.algorithm.name()
            )
        };
        if let Some(opaque) = &self.opaque {
            value.push_str(&format!(", opaque=\"{opaque}\""));
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response_of(authorization: &str) -> String {
        parameters(authorization.strip_prefix("Digest ").unwrap())
            .into_iter()
            .find(|(n, _)| n == "response")
            .unwrap()
            .1
    }

    #[test]
    fn answers_the_rfc_2617_example() {
        // RFC 2617 §3.5: Mufasa / "Circle Of Life", qop=auth.
        let challenge = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        let value = challenge.authorization(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert_eq!(response_of(&value), "6629fae49393a05397450978507c4ef1");
        assert!(value.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
        assert!(value.contains("nc=00000001"));
    }

    #[test]
    fn answers_the_rfc_7616_sha_256_example() {
        // RFC 7616 §3.9.1.
        let challenge = Challenge::parse(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
             algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        )
        .unwrap();
        let value = challenge.authorization(
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            1,
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        );
        assert_eq!(
            response_of(&value),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn picks_the_first_challenge_it_can_answer() {
        let values = [
            "Basic realm=\"x\"",
            "Digest realm=\"amico\", nonce=\"n1\", algorithm=SHA-512-256, qop=\"auth\"",
            "Digest realm=\"amico\", nonce=\"n2\", algorithm=MD5, qop=\"auth\"",
        ];
        let challenge = Challenge::first(values.into_iter()).unwrap();
        assert_eq!(challenge.nonce, "n2");
        assert_eq!(challenge.algorithm, Algorithm::Md5);
        assert!(Challenge::parse("Digest nonce=\"n\"").is_none(), "no realm");
    }
}

//! The registrar: agents REGISTER their phones with digest credentials (RFC 3261 §10).
//!
//! One binding per agent: the most recent contact wins (an agent has one phone in the
//! queue at a time). The binding keeps the contact URI exactly as the phone wrote it and
//! the address and transport the REGISTER came from: calls to the agent go to that
//! address, which is what a phone behind NAT can be reached on (the spirit of RFC 5626).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use crate::digest::{Account, Algorithm, AuthFailure, Credentials, DigestAuth, Scope, Verdict};

/// The transport a message came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2).
    Tls,
    /// WebSocket (RFC 7118), a browser's.
    Ws,
}

impl Transport {
    /// The stack's name for it.
    pub(crate) fn stack(self) -> rsipstack::sip::Transport {
        match self {
            Transport::Udp => rsipstack::sip::Transport::Udp,
            Transport::Tcp => rsipstack::sip::Transport::Tcp,
            Transport::Tls => rsipstack::sip::Transport::Tls,
            Transport::Ws => rsipstack::sip::Transport::Ws,
        }
    }
}

/// Where an agent's phone can be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI, as the phone wrote it.
    pub contact: String,
    /// The address the REGISTER came from.
    pub source: SocketAddr,
    /// Its transport.
    pub transport: Transport,
    /// When the binding lapses unless refreshed.
    pub expires_at: Instant,
}

/// What the edge extracted from a REGISTER.
#[derive(Clone, Debug, Default)]
pub struct RegisterRequest {
    /// The user part of the To URI: the agent's SIP username (the address of record).
    pub user: String,
    /// The Authorization header, if any.
    pub authorization: Option<String>,
    /// Contact header values, as received (each may hold several contacts).
    pub contacts: Vec<String>,
    /// The Expires header.
    pub expires: Option<u32>,
}

impl RegisterRequest {
    /// What the registrar reads of a REGISTER; `None` when its To has no user part.
    pub fn from_request(request: &rsipstack::sip::Request) -> Option<RegisterRequest> {
        use rsipstack::sip::prelude::*;
        let to = request.to_header().ok()?.value().to_owned();
        Some(RegisterRequest {
            user: uri_user(&to)?.to_owned(),
            authorization: request.authorization_header().map(|h| h.value().to_owned()),
            contacts: request
                .contact_headers()
                .iter()
                .map(|c| c.value().to_owned())
                .collect(),
            expires: request
                .expires_header()
                .and_then(|h| h.value().trim().parse().ok()),
        })
    }
}

/// What to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// 401 with these WWW-Authenticate values; `failure` when the request was a failed
    /// attempt (to be counted and throttled), `None` when it merely had no fresh
    /// credentials. A user that does not exist gets exactly what an agent gets.
    Challenge {
        /// WWW-Authenticate values.
        challenges: Vec<String>,
        /// Why this was a failed attempt, if it was one.
        failure: Option<AuthFailure>,
    },
    /// 403: the credentials are for another user than the To header's.
    Forbidden(AuthFailure),
    /// 400 with this reason.
    BadRequest(String),
    /// 423 Interval Too Brief, with the minimum (RFC 3261 §10.3 step 7).
    IntervalTooBrief(u32),
    /// 200 with this contact and expiry; `new` when the agent was not registered before.
    Registered {
        /// The username.
        user: String,
        /// The binding.
        binding: Binding,
        /// Granted expiry in seconds.
        expires: u32,
        /// Whether the agent was logged out before.
        new: bool,
    },
    /// 200, binding removed (Expires: 0); `was_registered` tells if there was one.
    Unregistered {
        /// The username.
        user: String,
        /// Whether a binding was removed.
        was_registered: bool,
    },
    /// 200 to a query (no Contact): the current binding, if any.
    Query(Option<Binding>),
}

/// Registrar settings.
#[derive(Clone, Debug)]
pub struct RegistrarConfig {
    /// Shortest registration accepted.
    pub min_expires: u32,
    /// Longest granted; longer requests are cut to it.
    pub max_expires: u32,
    /// Granted when the phone names none.
    pub default_expires: u32,
    /// The digest algorithms offered, in order, to agents that name none of their own
    /// and to names that are not agents.
    pub algorithms: Vec<Algorithm>,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 30,
            max_expires: 3600,
            default_expires: 600,
            algorithms: vec![Algorithm::Md5],
        }
    }
}

/// Agents' credentials and current bindings.
#[derive(Debug)]
pub struct Registrar {
    /// Agents' accounts by SIP username; replaced whole on a configuration reload.
    accounts: arc_swap::ArcSwap<HashMap<String, Account>>,
    bindings: DashMap<String, Binding>,
    auth: DigestAuth,
    config: RegistrarConfig,
}

impl Registrar {
    /// A registrar for these users (username → account).
    pub fn new(
        accounts: HashMap<String, Account>,
        auth: DigestAuth,
        config: RegistrarConfig,
    ) -> Self {
        Registrar {
            accounts: arc_swap::ArcSwap::from_pointee(accounts),
            bindings: DashMap::new(),
            auth,
            config,
        }
    }

    /// Takes a new set of users (a configuration reload). Users no longer in it lose their
    /// binding; their names are returned so the application can log them out.
    pub fn set_accounts(&self, accounts: HashMap<String, Account>) -> Vec<String> {
        let gone: Vec<String> = self
            .bindings
            .iter()
            .map(|b| b.key().clone())
            .filter(|user| !accounts.contains_key(user))
            .collect();
        self.accounts.store(std::sync::Arc::new(accounts));
        for user in &gone {
            self.bindings.remove(user);
        }
        gone
    }

    /// Handles a REGISTER from `source` at `now` (`unix_now` for nonces).
    ///
    /// A name that is not an agent is challenged and refused exactly as an agent with a
    /// wrong password: a stranger learns nothing about who exists.
    pub fn register(
        &self,
        request: &RegisterRequest,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
        unix_now: u64,
    ) -> RegisterOutcome {
        let accounts = self.accounts.load();
        let account = accounts.get(&request.user);
        let scope = Scope {
            source,
            method: "REGISTER",
            user: &request.user,
        };
        let algorithms = account
            .and_then(|a| a.algorithms.as_deref())
            .unwrap_or(&self.config.algorithms);
        let challenge = |stale, failure| RegisterOutcome::Challenge {
            challenges: self.auth.challenges(unix_now, &scope, algorithms, stale),
            failure,
        };
        let credentials = request
            .authorization
            .as_deref()
            .and_then(Credentials::parse);
        if credentials
            .as_ref()
            .is_some_and(|c| c.username != request.user)
        {
            return RegisterOutcome::Forbidden(AuthFailure::OtherUser);
        }
        match self.auth.check(
            credentials.as_ref(),
            &scope,
            account,
            &self.config.algorithms,
            unix_now,
        ) {
            Verdict::Accepted => {}
            Verdict::Challenge { stale } => return challenge(stale, None),
            Verdict::Failed(failure) => return challenge(false, Some(failure)),
            Verdict::Malformed(reason) => return RegisterOutcome::BadRequest(reason.into()),
        }

        let contacts: Vec<Contact> = request
            .contacts
            .iter()
            .flat_map(|value| split_contacts(value))
            .collect();
        if contacts.is_empty() {
            return RegisterOutcome::Query(self.binding(&request.user));
        }
        if contacts.iter().any(|c| c.uri == "*") {
            // RFC 3261 §10.3 step 6: "*" only with Expires: 0 and alone.
            if request.expires != Some(0) || contacts.len() > 1 {
                return RegisterOutcome::BadRequest(
                    "Bad Request (Contact * needs Expires: 0)".into(),
                );
            }
            return self.unregister(&request.user);
        }
        // The last contact is the phone's current one.
        let contact = contacts.last().expect("not empty");
        let asked = contact
            .expires
            .or(request.expires)
            .unwrap_or(self.config.default_expires);
        if asked == 0 {
            return self.unregister(&request.user);
        }
        if asked < self.config.min_expires {
            return RegisterOutcome::IntervalTooBrief(self.config.min_expires);
        }
        let expires = asked.min(self.config.max_expires);
        let binding = Binding {
            contact: contact.uri.clone(),
            source,
            transport,
            expires_at: now + Duration::from_secs(u64::from(expires)),
        };
        let new = self
            .bindings
            .insert(request.user.clone(), binding.clone())
            .is_none();
        RegisterOutcome::Registered {
            user: request.user.clone(),
            binding,
            expires,
            new,
        }
    }

    fn unregister(&self, user: &str) -> RegisterOutcome {
        let was_registered = self.bindings.remove(user).is_some();
        RegisterOutcome::Unregistered {
            user: user.to_owned(),
            was_registered,
        }
    }

    /// The agent's current binding.
    pub fn binding(&self, user: &str) -> Option<Binding> {
        self.bindings.get(user).map(|b| b.clone())
    }

    /// Removes and names the bindings that lapsed by `now`.
    pub fn expire(&self, now: Instant) -> Vec<String> {
        let lapsed: Vec<String> = self
            .bindings
            .iter()
            .filter(|b| b.expires_at <= now)
            .map(|b| b.key().clone())
            .collect();
        lapsed
            .into_iter()
            .filter(|user| {
                self.bindings
                    .remove_if(user, |_, b| b.expires_at <= now)
                    .is_some()
            })
            .collect()
    }

    /// Every binding, for probing.
    pub fn bindings(&self) -> Vec<(String, Binding)> {
        self.bindings
            .iter()
            .map(|b| (b.key().clone(), b.value().clone()))
            .collect()
    }

    /// Removes an agent's binding if it is still `binding` (its phone is dead); true if
    /// removed.
    pub fn drop_binding_if(&self, user: &str, binding: &Binding) -> bool {
        self.bindings
            .remove_if(user, |_, current| current == binding)
            .is_some()
    }

    /// Removes an agent's binding (its phone is dead); true if there was one.
    pub fn drop_binding(&self, user: &str) -> bool {
        self.bindings.remove(user).is_some()
    }

    /// The digest authenticator (trunks use the same realm).
    pub fn auth(&self) -> &DigestAuth {
        &self.auth
    }
}

/// One contact of a Contact header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Contact {
    pub(crate) uri: String,
    pub(crate) expires: Option<u32>,
}

/// Splits `"Anna" <sip:anna@h;ob>;expires=60, <sip:b@h>` into contacts, respecting quotes
/// and angle brackets (RFC 3261 §20.10).
pub(crate) fn split_contacts(value: &str) -> Vec<Contact> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            // The URI ends at the first '>' after '<': parameters such as +sip.instance
            // (RFC 5626) carry angle brackets of their own.
            let close = part
                .find('<')
                .and_then(|open| part[open..].find('>').map(|c| (open, open + c)));
            let (uri, params) = match close {
                Some((open, close)) => (&part[open + 1..close], &part[close + 1..]),
                // Without brackets, parameters after ';' belong to the header (§20).
                _ => match part.split_once(';') {
                    Some((uri, params)) => (uri, params),
                    None => (part, ""),
                },
            };
            let expires = params
                .split(';')
                .filter_map(|p| p.trim().split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("expires"))
                .and_then(|(_, v)| v.trim().parse().ok());
            Contact {
                uri: uri.trim().to_owned(),
                expires,
            }
        })
        .collect()
}

/// The user part of a SIP URI in a header value: `"Anna" <sip:anna@host;x>;tag=1` → `anna`.
pub fn uri_user(value: &str) -> Option<&str> {
    let uri = match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.split(';').next().unwrap_or(value),
    };
    let rest = uri
        .trim()
        .strip_prefix("sips:")
        .or_else(|| uri.trim().strip_prefix("sip:"))?;
    let (user, _) = rest.split_once('@')?;
    let user = user.split(':').next().unwrap_or(user);
    (!user.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::unix_now;

    #[test]
    fn contacts_are_split_and_kept_as_written() {
        let contacts = split_contacts(
            r#""Anna, desk" <sip:anna@127.0.0.1:5062;ob>;expires=60, sip:b@h;expires=5"#,
        );
        assert_eq!(
            contacts,
            [
                Contact {
                    uri: "sip:anna@127.0.0.1:5062;ob".into(),
                    expires: Some(60)
                },
                Contact {
                    uri: "sip:b@h".into(),
                    expires: Some(5)
                },
            ]
        );
        assert_eq!(
            split_contacts("*"),
            [Contact {
                uri: "*".into(),
                expires: None
            }]
        );
        assert_eq!(
            uri_user(r#""Anna" <sip:anna@127.0.0.1;transport=tcp>;tag=9"#),
            Some("anna")
        );
        assert_eq!(uri_user("sip:%2B390521@pbx"), Some("%2B390521"));
        assert_eq!(uri_user("<sip:127.0.0.1>"), None);
    }

    fn registrar() -> Registrar {
        let accounts = HashMap::from([(
            "anna".to_owned(),
            Account {
                password: "secret".into(),
                algorithms: None,
            },
        )]);
        Registrar::new(
            accounts,
            DigestAuth::new("amico", Duration::from_secs(300)),
            RegistrarConfig::default(),
        )
    }

    const SOURCE: &str = "127.0.0.1:5062";

    /// A REGISTER answering a fresh challenge as a phone would: MD5 with qop=auth.
    fn answered(
        registrar: &Registrar,
        user: &str,
        password: &str,
        contacts: &[&str],
        expires: Option<u32>,
    ) -> RegisterRequest {
        let scope = Scope {
            source: SOURCE.parse().unwrap(),
            method: "REGISTER",
            user,
        };
        let nonce = registrar.auth().nonce(unix_now(), &scope);
        let md5 = |text: String| hex::encode(<md5::Md5 as sha2::Digest>::digest(text.as_bytes()));
        let ha1 = md5(format!("{user}:amico:{password}"));
        let ha2 = md5("REGISTER:sip:127.0.0.1".into());
        let response = md5(format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
        RegisterRequest {
            user: user.into(),
            authorization: Some(format!(
                r#"Digest username="{user}", realm="amico", nonce="{nonce}", uri="sip:127.0.0.1", response="{response}", qop=auth, nc=00000001, cnonce="c0ffee""#
            )),
            contacts: contacts.iter().map(|c| (*c).to_owned()).collect(),
            expires,
        }
    }

    fn authorized(
        registrar: &Registrar,
        contacts: &[&str],
        expires: Option<u32>,
    ) -> RegisterRequest {
        answered(registrar, "anna", "secret", contacts, expires)
    }

    /// The challenge's headers without the nonce, which is new each time.
    fn without_nonce(outcome: &RegisterOutcome) -> (Vec<String>, Option<AuthFailure>) {
        match outcome {
            RegisterOutcome::Challenge {
                challenges,
                failure,
            } => (
                challenges
                    .iter()
                    .map(|c| {
                        let start = c.find("nonce=\"").unwrap();
                        let end = start + 7 + c[start + 7..].find('"').unwrap();
                        format!("{}{}", &c[..start], &c[end + 1..])
                    })
                    .collect(),
                *failure,
            ),
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    #[test]
    fn strangers_get_what_agents_get() {
        let registrar = registrar();
        let source: SocketAddr = SOURCE.parse().unwrap();
        let now = Instant::now();
        let ask = |user: &str| RegisterRequest {
            user: user.into(),
            contacts: vec![format!("<sip:{user}@{SOURCE}>")],
            ..Default::default()
        };
        let agent = registrar.register(&ask("anna"), source, Transport::Udp, now, unix_now());
        let stranger = registrar.register(&ask("mallory"), source, Transport::Udp, now, unix_now());
        assert_eq!(without_nonce(&agent), without_nonce(&stranger));
        assert_eq!(without_nonce(&agent).1, None);

        let wrong = answered(&registrar, "anna", "guess", &["<sip:anna@h>"], None);
        let unknown = answered(&registrar, "mallory", "guess", &["<sip:mallory@h>"], None);
        let wrong = registrar.register(&wrong, source, Transport::Udp, now, unix_now());
        let unknown = registrar.register(&unknown, source, Transport::Udp, now, unix_now());
        assert_eq!(without_nonce(&wrong).0, without_nonce(&unknown).0);
        assert_eq!(without_nonce(&wrong).1, Some(AuthFailure::WrongPassword));
        assert_eq!(without_nonce(&unknown).1, Some(AuthFailure::UnknownUser));
    }

    #[test]
    fn an_overheard_register_cannot_be_replayed() {
        let registrar = registrar();
        let source: SocketAddr = SOURCE.parse().unwrap();
        let now = Instant::now();
        let request = authorized(&registrar, &["<sip:anna@127.0.0.1:5062>"], None);
        assert!(matches!(
            registrar.register(&request, source, Transport::Udp, now, unix_now()),
            RegisterOutcome::Registered { .. }
        ));
        // The same Authorization with another Contact, from another socket and from the
        // phone's own address.
        let mut stolen = request.clone();
        stolen.contacts = vec!["<sip:anna@127.0.0.1:6666>".into()];
        let elsewhere: SocketAddr = "127.0.0.1:6666".parse().unwrap();
        assert_eq!(
            without_nonce(&registrar.register(&stolen, elsewhere, Transport::Udp, now, unix_now()))
                .1,
            None,
            "a nonce from elsewhere is just not ours: challenged"
        );
        assert_eq!(
            without_nonce(&registrar.register(&stolen, source, Transport::Udp, now, unix_now())).1,
            Some(AuthFailure::Replayed)
        );
        assert_eq!(
            registrar.binding("anna").unwrap().contact,
            "sip:anna@127.0.0.1:5062"
        );
    }

    #[test]
    fn register_refresh_expire_and_remove() {
        let registrar = registrar();
        let source: SocketAddr = SOURCE.parse().unwrap();
        let now = Instant::now();
        let unanswered = RegisterRequest {
            user: "anna".into(),
            contacts: vec!["<sip:anna@127.0.0.1:5062>".into()],
            ..Default::default()
        };
        assert!(matches!(
            registrar.register(&unanswered, source, Transport::Udp, now, unix_now()),
            RegisterOutcome::Challenge { challenges, failure: None } if challenges.len() == 1
        ));
        let mut other = authorized(&registrar, &["<sip:anna@h>"], None);
        other.user = "bruno".into();
        assert_eq!(
            registrar.register(&other, source, Transport::Udp, now, unix_now()),
            RegisterOutcome::Forbidden(AuthFailure::OtherUser)
        );

        let request = authorized(&registrar, &["<sip:anna@127.0.0.1:5062>;expires=120"], None);
        match registrar.register(&request, source, Transport::Udp, now, unix_now()) {
            RegisterOutcome::Registered {
                user,
                binding,
                expires,
                new,
            } => {
                assert_eq!((user.as_str(), expires, new), ("anna", 120, true));
                assert_eq!(binding.contact, "sip:anna@127.0.0.1:5062");
            }
            other => panic!("{other:?}"),
        }
        let refresh = authorized(&registrar, &["<sip:anna@127.0.0.1:5062>"], Some(100_000));
        assert!(matches!(
            registrar.register(&refresh, source, Transport::Udp, now, unix_now()),
            RegisterOutcome::Registered {
                expires: 3600,
                new: false,
                ..
            }
        ));
        let brief = authorized(&registrar, &["<sip:anna@127.0.0.1:5062>"], Some(5));
        assert_eq!(
            registrar.register(&brief, source, Transport::Udp, now, unix_now()),
            RegisterOutcome::IntervalTooBrief(30)
        );
        assert!(registrar.expire(now + Duration::from_secs(3599)).is_empty());
        assert_eq!(registrar.expire(now + Duration::from_secs(3600)), ["anna"]);
        assert_eq!(registrar.binding("anna"), None);

        let again = authorized(&registrar, &["<sip:anna@127.0.0.1:5062>"], None);
        assert!(matches!(
            registrar.register(&again, source, Transport::Tcp, now, unix_now()),
            RegisterOutcome::Registered {
                expires: 600,
                new: true,
                ..
            }
        ));
        let wildcard = authorized(&registrar, &["*"], Some(0));
        assert_eq!(
            registrar.register(&wildcard, source, Transport::Udp, now, unix_now()),
            RegisterOutcome::Unregistered {
                user: "anna".into(),
                was_registered: true
            }
        );
        let bad_wildcard = authorized(&registrar, &["*"], Some(60));
        assert!(matches!(
            registrar.register(&bad_wildcard, source, Transport::Udp, now, unix_now()),
            RegisterOutcome::BadRequest(_)
        ));
    }
}

//! The API's tokens, from `[[api.tokens]]`: who each secret stands for. Replaced whole
//! by a reload.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::config::{Scope, TokenSection};

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Principal {
    /// A supervisor token, by its name.
    Supervisor(String),
    /// An agent token: its name and its agent's.
    Agent { token: String, agent: String },
}

/// The configured tokens, by the SHA-256 of their secret (compared as digests, so the
/// time a lookup takes says nothing about the secret).
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    by_digest: HashMap<[u8; 32], Principal>,
}

impl Tokens {
    pub(crate) fn new(tokens: &[TokenSection]) -> Tokens {
        let by_digest = tokens
            .iter()
            .map(|t| {
                let principal = match (t.scope, &t.agent) {
                    (Scope::Agent, Some(agent)) => Principal::Agent {
                        token: t.name.clone(),
                        agent: agent.clone(),
                    },
                    _ => Principal::Supervisor(t.name.clone()),
                };
                (digest(&t.token), principal)
            })
            .collect();
        Tokens { by_digest }
    }

    /// Who `secret` stands for, if anyone.
    pub(crate) fn find(&self, secret: &str) -> Option<Principal> {
        self.by_digest.get(&digest(secret)).cloned()
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

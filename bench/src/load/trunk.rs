//! The trunk side: one caller per call, a UAC from the address the ACD trusts as a trunk.
//!
//! A caller sends an INVITE with an SDP offer to `sip:DID@ACD` and a From whose user part
//! (`load-PID-N`) names the call, so that the agent side can tell which call rings it (an ACD
//! that passes the caller's identity on, as Amico does, keeps it). Then it ACKs the 200
//! (RFC 3261 §13.2.2.4), answers the ACD's BYE (§15.1.2), and hangs up itself with a BYE
//! (§15.1.1) if its patience runs out before an agent answers.
//!
//! With `--survey-vote`, once the agent hung up the caller stays for the ACD's survey and
//! presses its key (an RFC 4733 event) after the chosen delay, then waits for the ACD's BYE.
//!
//! Patience counts from the ACD's 200: the caller waits answered, in the queue, as in an
//! ACD that answers first and plays music; an ACD that rings the trunk until an agent
//! answers is not abandoned on (no CANCEL is sent).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use super::endpoint::{Dialog, Endpoint, Failure, branch, unique};
use super::message::{tag_of, uri_of};
use super::report::record;
use super::{Shared, Track};

/// The SDP offer of call `n` (RFC 4566, RFC 3264 §5): PCMU, PCMA and telephone-event
/// towards the trunk side's media socket.
fn offer(endpoint: &Endpoint, port: u16, n: u64) -> String {
    let ip = endpoint.local.ip();
    format!(
        "v=0\r\no=amico-load {n} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// The user part of call `n`'s From: `load-PID-N`, so that two runs against one ACD do
/// not take each other's calls for their own.
pub(crate) fn caller_user(n: u64) -> String {
    format!("load-{:x}-{n}", std::process::id())
}

/// The call number a From's user part names, if it is one of this run's.
pub(crate) fn call_number(user: &str) -> Option<u64> {
    let prefix = format!("load-{:x}-", std::process::id());
    user.strip_prefix(&prefix)?.parse().ok()
}

/// Removes the call from the correlation table when the caller's task ends, however it
/// ends.
struct Forget<'a> {
    shared: &'a Shared,
    n: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Ok(mut calls) = self.shared.calls.lock() {
            calls.remove(&self.n);
        }
        self.shared.trunk_media.stop(self.n);
    }
}

/// What the caller knows of its dialog once the ACD answered (RFC 3261 §12.1.2).
struct Answered {
    /// Our From and the To with the ACD's tag.
    from: String,
    to: String,
    /// The remote target: the 200's Contact.
    target: String,
    /// The route set: the 200's Record-Route, reversed.
    routes: Vec<String>,
    /// Our ACK, resent for each retransmitted 200.
    ack: String,
    /// The ACD's SDP answer.
    sdp: String,
    /// The call's number.
    n: u64,
}

/// Places call `n` and follows it to its end, recording what happened.
pub(crate) async fn call(
    shared: Arc<Shared>,
    endpoint: Arc<Endpoint>,
    n: u64,
    patience: Option<Duration>,
    vote: Option<(char, Duration)>,
) {
    let call_id = format!("load-{}@amico-load", unique());
    let mut dialog = endpoint.dialog(&call_id);
    let track = Arc::new(Track::new());
    shared.calls.lock().expect("calls").insert(n, track.clone());
    let _forget = Forget { shared: &shared, n };

    let local = endpoint.local;
    let request_uri = endpoint.server_uri(Some(&shared.options.did));
    let to = format!("sip:{}@{}", shared.options.did, endpoint.server);
    let via = endpoint.via();
    let user = caller_user(n);
    let contact = endpoint.contact_uri(&user);
    let from = format!("\"amico-load\" <sip:{user}@{local}>;tag={}", unique());
    let sdp = offer(&endpoint, shared.trunk_media.port, n);
    let invite_branch = branch();
    let invite = format!(
        "INVITE {request_uri} SIP/2.0\r\nVia: {via};branch={invite_branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: {from}\r\nTo: <{to}>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\nContact: <{contact}>\r\nUser-Agent: amico-load\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    shared.recorder.lock().expect("recorder").offered += 1;
    let sent = Instant::now();
    // The agent side measures the route from this instant.
    track.sent.set(sent).ok();
    let response = match dialog.transact(&invite, 1, "INVITE", |_| {}).await {
        Ok(response) => response,
        Err(Failure::Timeout) => return shared.fail("timeout"),
        Err(Failure::Closed) => return shared.fail("closed"),
    };
    let code = response.code().unwrap_or(0);
    let to = response.header("to").unwrap_or_default().to_owned();
    if code >= 300 {
        // RFC 3261 §17.1.1.3: a non-2xx final response is ACKed within the transaction:
        // same branch, the To of the response.
        let ack = format!(
            "ACK {request_uri} SIP/2.0\r\nVia: {via};branch={invite_branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        );
        endpoint.send(&ack).await;
        return shared.fail(code.to_string());
    }
    let answered_at = response.received;
    track.answered.set(answered_at).ok();
    {
        let mut recorder = shared.recorder.lock().expect("recorder");
        recorder.answered += 1;
        record(
            &mut recorder.setup,
            answered_at.saturating_duration_since(sent),
        );
    }
    if tag_of(&to).is_none() {
        return shared.fail("2xx without a To tag");
    }
    // RFC 3264 §5: our INVITE had the offer, so its 2xx must carry the answer.
    if response.body.is_empty() {
        return shared.fail("2xx without an SDP answer");
    }
    let target = response
        .header("contact")
        .map(|contact| uri_of(contact).to_owned())
        .unwrap_or_else(|| request_uri.clone());
    let mut routes: Vec<String> = response
        .headers("record-route")
        .flat_map(|value| value.split(','))
        .map(|route| route.trim().to_owned())
        .collect();
    routes.reverse();
    // RFC 3261 §13.2.2.4: the ACK of a 2xx is its own transaction, to the remote target.
    let ack = request(
        &endpoint, &call_id, "ACK", 1, &target, &from, &to, &routes, "",
    );
    endpoint.send(&ack).await;
    let answered = Answered {
        from,
        to,
        target,
        routes,
        ack,
        sdp: response.body.clone(),
        n,
    };
    converse(
        &shared,
        &mut dialog,
        &track,
        &answered,
        answered_at,
        patience,
        vote,
    )
    .await;
}

/// A request inside the dialog (RFC 3261 §12.2.1.1).
#[allow(clippy::too_many_arguments)]
fn request(
    endpoint: &Endpoint,
    call_id: &str,
    method: &str,
    cseq: u32,
    target: &str,
    from: &str,
    to: &str,
    routes: &[String],
    extra: &str,
) -> String {
    let mut text = format!(
        "{method} {target} SIP/2.0\r\nVia: {};branch={};rport\r\n\
         Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n",
        endpoint.via(),
        branch()
    );
    for route in routes {
        text.push_str(&format!("Route: {route}\r\n"));
    }
    text.push_str(extra);
    text.push_str("Content-Length: 0\r\n\r\n");
    text
}

/// From the ACD's answer to the end of the call: wait for the ACD's BYE, or hang up when
/// patience runs out before an agent answers; with a `vote`, press its key that long
/// after the agent hung up.
async fn converse(
    shared: &Shared,
    dialog: &mut Dialog,
    track: &Track,
    answered: &Answered,
    answered_at: Instant,
    patience: Option<Duration>,
    mut vote: Option<(char, Duration)>,
) {
    let endpoint = dialog.endpoint.clone();
    let give_up = patience.map(|patience| answered_at + patience);
    // Every loop is bounded: a call that outlives this is the drain's to count.
    let cap = answered_at + Duration::from_secs(4 * 3600);
    let mut streaming = false;
    let mut vote_at: Option<Instant> = None;
    loop {
        let connected = track.connected.load(Ordering::Acquire);
        let agent_left = track.agent_left.load(Ordering::Acquire);
        if agent_left && vote_at.is_none() {
            vote_at = vote.map(|(_, after)| Instant::now() + after);
        }
        if connected && !streaming {
            // Measured here, not by the agent: the agent's ACK may be seen before this
            // task took its own 200.
            if let Some(at) = track.connected_at.get() {
                let mut recorder = shared.recorder.lock().expect("recorder");
                record(
                    &mut recorder.wait,
                    at.saturating_duration_since(answered_at),
                );
            }
            // The caller speaks once an agent answered (see `media`).
            if shared.options.rtp {
                shared.trunk_media.start(answered.n, &answered.sdp);
            }
            streaming = true;
        }
        let patience_at = give_up.filter(|_| !connected);
        let message = tokio::select! {
            message = dialog.next(cap) => message,
            _ = track.connect.notified(), if !connected => continue,
            _ = track.leave.notified(), if connected && !agent_left => continue,
            _ = sleep_until(vote_at.unwrap_or(cap)), if vote.is_some() && vote_at.is_some() => {
                if let Some((key, _)) = vote.take()
                    && shared.trunk_media.press(answered.n, key, &answered.sdp).await
                {
                    shared.recorder.lock().expect("recorder").votes += 1;
                }
                continue;
            }
            _ = sleep_until(patience_at.unwrap_or(cap)), if patience_at.is_some() => {
                return abandon(shared, dialog, answered, answered_at).await;
            }
        };
        let Some(message) = message else {
            return shared.fail("timeout");
        };
        match message.method() {
            Some("BYE") => {
                let ok = message.response(200, "OK", None, "", "");
                dialog.reply(&message, &ok).await;
                if track.connected.load(Ordering::Acquire) {
                    shared.recorder.lock().expect("recorder").completed += 1;
                } else {
                    shared.fail("ended by the ACD before an agent answered");
                }
                return;
            }
            Some("INVITE") => {
                // RFC 3261 §14.2: a re-INVITE (a hold, a new media path) gets our offer again.
                let sdp = offer(&endpoint, shared.trunk_media.port, 0);
                let contact = format!("Contact: <{}>\r\n", endpoint.contact_uri("load"));
                let ok = message.response(200, "OK", None, &contact, &sdp);
                dialog.reply(&message, &ok).await;
            }
            Some("ACK") => {}
            Some(_) => {
                let ok = message.response(200, "OK", None, "", "");
                dialog.reply(&message, &ok).await;
            }
            // RFC 3261 §13.2.2.4: a retransmitted 2xx is ACKed again.
            None if message.answers(1, "INVITE") => endpoint.send(&answered.ack).await,
            None => {}
        }
    }
}

/// The caller hangs up before an agent answered (RFC 3261 §15.1.1).
async fn abandon(shared: &Shared, dialog: &mut Dialog, answered: &Answered, answered_at: Instant) {
    let endpoint = dialog.endpoint.clone();
    let bye = request(
        &endpoint,
        &dialog.call_id,
        "BYE",
        2,
        &answered.target,
        &answered.from,
        &answered.to,
        &answered.routes,
        "",
    );
    {
        let mut recorder = shared.recorder.lock().expect("recorder");
        recorder.abandoned += 1;
        record(&mut recorder.abandon_wait, answered_at.elapsed());
    }
    // The abandon is counted whatever the BYE's fate; its answer only ends the dialog.
    let _ = dialog.transact(&bye, 2, "BYE", |_| {}).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_names_its_call_and_only_this_run_reads_it() {
        assert_eq!(call_number(&caller_user(42)), Some(42));
        assert_eq!(call_number("load-0-42"), None);
        assert_eq!(call_number("anna"), None);
    }
}

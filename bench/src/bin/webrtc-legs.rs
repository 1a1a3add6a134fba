//! How many browser agent legs one Amico media engine carries: N calls, each a plain-RTP
//! caller bridged to a WebRTC (DTLS-SRTP, ICE-lite) agent leg, 50 G.711 packets a second
//! each way on each leg, the way Amico bridges a trunk caller to a browser agent.
//!
//! ```text
//! cargo run --release -p amico-bench --bin webrtc-legs -- --legs 1000 --seconds 20
//! ```
//!
//! Two processes, so that the figures are the server's alone: this one is the load (one
//! plain RTP socket and one str0m session per leg, full ICE like a browser), and it starts
//! itself again with `--serve` as the server: amico-media's `MediaSession`s on a caller
//! socket each, bridged with `bridge_agent(AgentLeg::WebRtc)` to legs of one
//! `WebRtcEndpoint`, on a two-worker Tokio runtime as `amico run` has. They exchange the
//! SDP over the server's stdin and stdout. Once every leg's DTLS is up and a warm-up has
//! passed, the server measures its own CPU time (`/proc/self/stat`) and RSS over the window
//! while the load counts what each side received.
//!
//! Loopback only; bounded by `--legs` and `--seconds`.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use amico_media::{
    AgentLeg, AudioFormat, Codec, Direction, MediaCounters, MediaSession, RemoteMedia, RtpSocket,
    SessionConfig, WebRtcEndpoint,
};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use str0m::change::SdpOffer;
use str0m::format::Codec as RtcCodec;
use str0m::media::MediaKind;
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;
const FRAME: Duration = Duration::from_millis(20);

struct Options {
    legs: usize,
    seconds: u64,
    warmup: u64,
}

fn options() -> anyhow::Result<(bool, Options)> {
    let mut serve = false;
    let mut options = Options {
        legs: 100,
        seconds: 20,
        warmup: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> anyhow::Result<u64> {
            args.next()
                .with_context(|| format!("{name} needs a value"))?
                .parse()
                .with_context(|| format!("{name} must be a whole number"))
        };
        match arg.as_str() {
            "--serve" => serve = true,
            "--legs" => options.legs = value("--legs")? as usize,
            "--seconds" => options.seconds = value("--seconds")?,
            "--warmup" => options.warmup = value("--warmup")?,
            other => bail!("unknown argument {other} (--legs N --seconds S --warmup S)"),
        }
    }
    if !(1..=5000).contains(&options.legs) {
        bail!("--legs must be 1 to 5000");
    }
    if !(1..=600).contains(&options.seconds) {
        bail!("--seconds must be 1 to 600");
    }
    Ok((serve, options))
}

fn main() -> anyhow::Result<()> {
    let (serve, options) = options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if serve {
        runtime.block_on(server())
    } else {
        runtime.block_on(load(options))
    }
}

// ---------------------------------------------------------------------------------------
// The server: Amico's media engine

/// CPU seconds this process has used (user + system), from `/proc/self/stat`.
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("/proc/self/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// Resident memory in KiB, from `/proc/self/status`.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn say(line: Value) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Reads commands on stdin: `{"leg": CALLER_ADDR}` makes a call (the reply has the caller
/// port and the browser offer), `{"answer": N, "sdp": …}` bridges it, `{"measure": S}`
/// measures S seconds.
async fn server() -> anyhow::Result<()> {
    let counters = Arc::new(MediaCounters::default());
    let endpoint = WebRtcEndpoint::bind(SocketAddr::from((LOOPBACK, 0)), counters.clone())?;
    let rss_idle = rss_kib();
    let config = SessionConfig {
        rtp_timeout: None,
        ..SessionConfig::default()
    };
    let mut sessions: Vec<(MediaSession, Option<amico_media::WebRtcLeg>)> = Vec::new();
    let (lines, mut commands) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = commands.recv().await {
        let command: Value = serde_json::from_str(&line)?;
        if let Some(caller) = command["leg"].as_str() {
            let socket = RtpSocket::bind(SocketAddr::from((LOOPBACK, 0)))?;
            let port = socket.local_addr().port();
            let remote = RemoteMedia {
                addr: caller.parse()?,
                format: AudioFormat::new(Codec::Pcmu, Some(101)),
                direction: Direction::SendRecv,
            };
            let (session, events) = MediaSession::start(socket, remote, config, counters.clone());
            // Nothing reads the events here (no keys are pressed); dropping the receiver
            // only discards them.
            drop(events);
            let mut leg = endpoint.create_leg(&[Codec::Pcmu, Codec::Pcma])?;
            let offer = leg.create_offer()?;
            sessions.push((session, Some(leg)));
            say(json!({ "port": port, "offer": offer }));
        } else if let Some(n) = command["answer"].as_u64() {
            let (session, leg) = sessions.get_mut(n as usize).context("no such leg")?;
            let mut leg = leg.take().context("answered twice")?;
            leg.accept_answer(command["sdp"].as_str().context("sdp")?)?;
            session.bridge_agent(AgentLeg::WebRtc(leg));
            say(json!({ "bridged": n }));
        } else if let Some(seconds) = command["measure"].as_u64() {
            let (relayed, cpu, started) =
                (counters.packets_relayed(), cpu_seconds()?, Instant::now());
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            let wall = started.elapsed().as_secs_f64();
            say(json!({
                "cpu_seconds": cpu_seconds()? - cpu,
                "wall_seconds": wall,
                "relayed": counters.packets_relayed() - relayed,
                "dropped": amico_media::DropReason::ALL
                    .iter()
                    .map(|reason| (reason.as_str().to_owned(), counters.packets_dropped(*reason).into()))
                    .filter(|(_, count): &(String, Value)| count != &Value::from(0))
                    .collect::<serde_json::Map<_, _>>(),
                "rss_kib": rss_kib(),
                "rss_idle_kib": rss_idle,
                "sessions": counters.sessions_active(),
            }));
        } else {
            bail!("unknown command {line}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The load: callers and browsers

#[derive(Default)]
struct Tally {
    connected: AtomicUsize,
    caller_received: AtomicU64,
    browser_received: AtomicU64,
}

/// 20 ms of a 440 Hz tone at -20 dBov in µ-law, so that nothing downstream skips silence.
fn g711_frame() -> Vec<u8> {
    let samples: Vec<i16> = (0..160)
        .map(|n| (3277.0 * (std::f64::consts::TAU * 440.0 * f64::from(n) / 8000.0).sin()) as i16)
        .collect();
    let mut frame = Vec::new();
    amico_media::g711::encode(Codec::Pcmu, &samples, &mut frame);
    frame
}

async fn load(options: Options) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the server process")?;
    let mut to_server = child.stdin.take().context("stdin")?;
    let mut from_server = BufReader::new(child.stdout.take().context("stdout")?);
    let mut ask = move |command: Value| -> anyhow::Result<Value> {
        writeln!(to_server, "{command}")?;
        to_server.flush()?;
        let mut line = String::new();
        if from_server.read_line(&mut line)? == 0 {
            bail!("the server process ended");
        }
        Ok(serde_json::from_str(&line)?)
    };

    let tally = Arc::new(Tally::default());
    let frame: Arc<[u8]> = g711_frame().into();
    let started = Instant::now();
    for n in 0..options.legs {
        let caller = UdpSocket::bind(SocketAddr::from((LOOPBACK, 0))).await?;
        let reply = ask(json!({ "leg": caller.local_addr()?.to_string() }))?;
        let port = reply["port"].as_u64().context("port")? as u16;
        let offer = reply["offer"].as_str().context("offer")?;
        let browser = UdpSocket::bind(SocketAddr::from((LOOPBACK, 0))).await?;
        let mut rtc = browser_rtc(browser.local_addr()?);
        let answer = rtc
            .sdp_api()
            .accept_offer(SdpOffer::from_sdp_string(offer)?)?
            .to_sdp_string();
        ask(json!({ "answer": n, "sdp": answer }))?;
        tokio::spawn(run_caller(
            caller,
            SocketAddr::from((LOOPBACK, port)),
            frame.clone(),
            tally.clone(),
        ));
        tokio::spawn(run_browser(rtc, browser, frame.clone(), tally.clone()));
        if (n + 1) % 100 == 0 {
            eprintln!("webrtc-legs: {} legs set up", n + 1);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while tally.connected.load(Ordering::Relaxed) < options.legs {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} legs connected (ICE and DTLS) within 60 s",
                tally.connected.load(Ordering::Relaxed),
                options.legs
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "webrtc-legs: {} legs connected in {:.1} s; warming up {} s, measuring {} s",
        options.legs,
        started.elapsed().as_secs_f64(),
        options.warmup,
        options.seconds
    );
    tokio::time::sleep(Duration::from_secs(options.warmup)).await;
    let (caller_before, browser_before) = (
        tally.caller_received.load(Ordering::Relaxed),
        tally.browser_received.load(Ordering::Relaxed),
    );
    let measured = tokio::task::spawn_blocking({
        let seconds = options.seconds;
        move || ask(json!({ "measure": seconds }))
    })
    .await??;
    let caller_got = tally.caller_received.load(Ordering::Relaxed) - caller_before;
    let browser_got = tally.browser_received.load(Ordering::Relaxed) - browser_before;
    let wall = measured["wall_seconds"].as_f64().unwrap_or(1.0);
    let cpu = measured["cpu_seconds"].as_f64().unwrap_or(0.0);
    let expected = options.legs as f64 * 50.0 * wall;
    let rss = measured["rss_kib"].as_u64().unwrap_or(0);
    let idle = measured["rss_idle_kib"].as_u64().unwrap_or(0);
    let report = json!({
        "legs": options.legs,
        "seconds": wall,
        "server_cores": cpu / wall,
        "server_cpu_per_leg_percent_of_a_core": 100.0 * cpu / wall / options.legs as f64,
        "server_rss_mib": rss as f64 / 1024.0,
        "server_rss_per_leg_kib": (rss.saturating_sub(idle)) as f64 / options.legs as f64,
        "relayed_per_second": measured["relayed"].as_u64().unwrap_or(0) as f64 / wall,
        "caller_received_share": caller_got as f64 / expected,
        "browser_received_share": browser_got as f64 / expected,
        "server_dropped": measured["dropped"],
    });
    println!("{report:#}");
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

/// A browser's side: full ICE, PCMU, in RTP mode.
fn browser_rtc(addr: SocketAddr) -> Rtc {
    let mut config = Rtc::builder().clear_codecs().set_rtp_mode(true);
    config.codec_config().enable_pcmu(true, false);
    let mut rtc = config.build(Instant::now());
    rtc.add_local_candidate(Candidate::host(addr, "udp").expect("a loopback candidate"));
    rtc
}

async fn run_caller(socket: UdpSocket, server: SocketAddr, frame: Arc<[u8]>, tally: Arc<Tally>) {
    let mut packet = vec![0u8; 12 + frame.len()];
    packet[0] = 0x80;
    packet[8..12].copy_from_slice(&0x5EED_0000u32.to_be_bytes());
    packet[12..].copy_from_slice(&frame);
    let mut interval = tokio::time::interval(FRAME);
    let mut buffer = [0u8; 2048];
    let (mut sequence, mut timestamp) = (0u16, 0u32);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                packet[2..4].copy_from_slice(&sequence.to_be_bytes());
                packet[4..8].copy_from_slice(&timestamp.to_be_bytes());
                let _ = socket.send_to(&packet, server).await;
                sequence = sequence.wrapping_add(1);
                timestamp = timestamp.wrapping_add(160);
            }
            received = socket.recv_from(&mut buffer) => {
                if received.is_ok() {
                    tally.caller_received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

async fn run_browser(mut rtc: Rtc, socket: UdpSocket, frame: Arc<[u8]>, tally: Arc<Tally>) {
    let local = socket.local_addr().expect("bound");
    let mut buffer = vec![0u8; 2048];
    let mut mid = None;
    let mut connected = false;
    let mut next_frame = tokio::time::Instant::now();
    let (mut sequence, mut timestamp) = (1u64, 0u32);
    let pt = rtc
        .codec_config()
        .find(|p| p.spec().codec == RtcCodec::PCMU)
        .map(|p| p.pt())
        .expect("PCMU");
    loop {
        // Drain str0m to its timeout (its run-loop contract).
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(at)) => break at,
                Ok(Output::Transmit(transmit)) => {
                    let _ = socket.try_send_to(&transmit.contents, transmit.destination);
                }
                Ok(Output::Event(Event::Connected)) => {
                    connected = true;
                    tally.connected.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Output::Event(Event::MediaAdded(added))) if added.kind == MediaKind::Audio => {
                    mid = Some(added.mid);
                }
                Ok(Output::Event(Event::RtpPacket(_))) => {
                    tally.browser_received.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Output::Event(_)) => {}
                Err(error) => {
                    eprintln!("webrtc-legs: a browser leg failed: {error}");
                    return;
                }
            }
        };
        let wake = tokio::time::Instant::from_std(timeout);
        let wake = if connected {
            wake.min(next_frame)
        } else {
            wake
        };
        tokio::select! {
            received = socket.recv_from(&mut buffer) => {
                let Ok((len, source)) = received else { continue };
                if let Ok(receive) = Receive::new(Protocol::Udp, source, local, &buffer[..len]) {
                    let _ = rtc.handle_input(Input::Receive(Instant::now(), receive));
                }
            }
            () = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if connected && tokio::time::Instant::now() >= next_frame {
                    next_frame += FRAME;
                    if let Some(mid) = mid
                        && let Some(stream) = rtc.direct_api().stream_tx_by_mid(mid, None)
                    {
                        stream.write_rtp(RtpWrite::new(pt, SeqNo::from(sequence), timestamp, now, frame.clone()));
                        sequence += 1;
                        timestamp = timestamp.wrapping_add(160);
                    }
                }
                let _ = rtc.handle_input(Input::Timeout(now));
            }
        }
    }
}

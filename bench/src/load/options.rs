//! What a load run does, from the command line: every bad argument is an error that
//! names it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use amico_core::simulator::random::Rng;

/// A time drawn per call: fixed, or exponential with a mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dist {
    /// Always this many seconds.
    Fixed(f64),
    /// Exponential with this mean, in seconds.
    Exponential(f64),
}

impl Dist {
    /// Reads `1.5` (fixed) or `exp:1.5` (exponential mean) seconds.
    pub fn parse(text: &str) -> Result<Dist, String> {
        let (exponential, number) = match text.strip_prefix("exp:") {
            Some(mean) => (true, mean),
            None => (false, text),
        };
        let seconds: f64 = number
            .parse()
            .map_err(|_| format!("'{text}' is not seconds (e.g. 1.5) or exp:MEAN"))?;
        if !(seconds.is_finite() && (0.0..=86_400.0).contains(&seconds)) {
            return Err(format!("'{text}' must be 0 to 86400 seconds"));
        }
        Ok(if exponential {
            Dist::Exponential(seconds)
        } else {
            Dist::Fixed(seconds)
        })
    }

    /// One draw.
    pub fn sample(self, rng: &mut Rng) -> Duration {
        let seconds = match self {
            Dist::Fixed(seconds) => seconds,
            Dist::Exponential(mean) => rng.exponential(mean),
        };
        Duration::from_secs_f64(seconds.clamp(0.0, 86_400.0))
    }

    /// The mean, in seconds.
    pub fn mean(self) -> f64 {
        match self {
            Dist::Fixed(seconds) | Dist::Exponential(seconds) => seconds,
        }
    }
}

/// How the SIP messages travel (RFC 3261 §18): the trunk and every agent's phone alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// A datagram socket each, with the retransmissions of RFC 3261 §17.
    #[default]
    Udp,
    /// A TCP connection each: no retransmissions (§17.1.1.2), framing by Content-Length
    /// (§18.3).
    Tcp,
    /// TCP under TLS (§26.2), the ACD's certificate checked against `--tls-ca`.
    Tls,
}

impl Transport {
    /// Reads `udp`, `tcp` or `tls`.
    pub fn parse(text: &str) -> Result<Transport, String> {
        match text.to_ascii_lowercase().as_str() {
            "udp" => Ok(Transport::Udp),
            "tcp" => Ok(Transport::Tcp),
            "tls" => Ok(Transport::Tls),
            _ => Err(format!("--transport '{text}' is not udp, tcp or tls")),
        }
    }

    /// The name in lower case, as in a URI's `transport` parameter (RFC 3261 §19.1.1).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// Whether the transport delivers every message itself (no retransmissions).
    pub fn reliable(self) -> bool {
        self != Transport::Udp
    }
}

/// A load run's settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// The ACD's SIP address for `transport`.
    pub target: SocketAddr,
    /// How SIP travels, for the trunk and the agents.
    pub transport: Transport,
    /// With TLS: the certificates (PEM) the ACD's must chain to.
    pub tls_ca: Option<std::path::PathBuf>,
    /// With TLS: the name the ACD's certificate must bear (default: the target's IP
    /// address).
    pub tls_name: Option<String>,
    /// The number the trunk calls (`sip:DID@TARGET`).
    pub did: String,
    /// Arrivals a second (Poisson).
    pub rate: f64,
    /// At most this many calls.
    pub calls: Option<u64>,
    /// Arrivals stop after this long.
    pub duration: Duration,
    /// How many agents register.
    pub agents: usize,
    /// The first agent's number: agents are `first..first+agents`.
    pub first_agent: usize,
    /// The agents' user names, `{n}` replaced by the agent's number.
    pub agent_user: String,
    /// The agents' passwords, `{n}` replaced likewise.
    pub agent_password: String,
    /// How long an agent's phone rings before it answers.
    pub answer_after: Dist,
    /// How long an agent talks before hanging up.
    pub talk: Dist,
    /// How long a caller waits for an agent before hanging up (`None`: forever).
    pub patience: Option<Dist>,
    /// The keys a caller may press for the post-call survey once its agent hung up (one
    /// drawn per call; empty: nobody votes), as RFC 4733 telephone-events.
    pub survey_keys: Vec<char>,
    /// How long after the agent's BYE the caller presses its key.
    pub vote_after: Dist,
    /// The address the load's sockets bind to.
    pub local: IpAddr,
    /// How long calls in progress may take to end once arrivals stop.
    pub drain: Duration,
    /// Registrations asked for (seconds; RFC 3261 §10.2.1.1).
    pub expires: u32,
    /// The server's process, for its CPU time and memory from /proc.
    pub server_pid: Option<u32>,
    /// With `server_pid`: how long to keep watching the server once the agents left,
    /// for its memory and CPU at rest after the load.
    pub settle: Duration,
    /// The seed of the arrival and duration draws.
    pub seed: u64,
    /// Print the report as JSON.
    pub json: bool,
    /// Print a progress line on stderr every second.
    pub progress: bool,
    /// The threads amico-load runs on. One by default: on the server's machine every
    /// wake-up handed between two threads of the generator is CPU the server does not get.
    pub threads: usize,
    /// Send RTP both ways on every connected call: G.711 at 50 packets a second.
    pub rtp: bool,
    /// Whether a target that is not a loopback address is allowed.
    pub allow_remote: bool,
    /// A step ramp: runs at `from`, `from + step`, ... up to `to` calls a second, each
    /// for `duration` (and at most `calls`), stopping after the first step that
    /// completes fewer than 99.9 % of its calls: the knee.
    pub ramp: Option<Ramp>,
    /// An hourly profile instead of one rate: each entry's rate for `step`, one after
    /// the other; arrivals end with the profile.
    pub profile: Option<Profile>,
}

/// Arrival rates that change over the run: a contact centre's day by the hour, played
/// at real speed (`step` an hour) or compressed.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Calls a second in each step, in order (0: nobody calls then).
    pub rates: Vec<f64>,
    /// How long each rate lasts.
    pub step: Duration,
}

impl Profile {
    /// Reads `R1,R2,...` calls a second, one per step.
    pub fn parse(text: &str, step: Duration) -> Result<Profile, String> {
        let rates: Vec<f64> = text
            .split(',')
            .map(|r| {
                r.trim().parse::<f64>().map_err(|_| {
                    format!("--profile '{text}': '{r}' is not calls a second (e.g. 2,5,12,8)")
                })
            })
            .collect::<Result<_, _>>()?;
        if rates.len() > 168 {
            return Err(format!(
                "--profile '{text}' has {} steps, at most 168 (a week of hours)",
                rates.len()
            ));
        }
        if rates
            .iter()
            .any(|r| !(r.is_finite() && (0.0..=100_000.0).contains(r)))
        {
            return Err(format!(
                "--profile '{text}': each rate must be 0 to 100000 calls a second"
            ));
        }
        if rates.iter().all(|r| *r == 0.0) {
            return Err(format!("--profile '{text}': every rate is 0"));
        }
        Ok(Profile { rates, step })
    }

    /// How long the profile lasts.
    pub fn length(&self) -> Duration {
        self.step * self.rates.len() as u32
    }

    /// The mean rate over the whole profile.
    pub fn mean_rate(&self) -> f64 {
        self.rates.iter().sum::<f64>() / self.rates.len() as f64
    }

    /// The next arrival after `after` seconds from the start, in seconds, or `None` past
    /// the profile's end. Within a step arrivals are Poisson at its rate; a draw that
    /// crosses into the next step starts again there at the next rate, which the
    /// exponential's lack of memory makes exact (a piecewise-constant-rate Poisson
    /// process).
    pub fn next_arrival(
        &self,
        after: f64,
        rng: &mut amico_core::simulator::random::Rng,
    ) -> Option<f64> {
        let step = self.step.as_secs_f64();
        let mut at = after;
        loop {
            let index = (at / step).floor() as usize;
            let rate = *self.rates.get(index)?;
            let end = (index + 1) as f64 * step;
            if rate > 0.0 {
                let next = at + rng.exponential(1.0 / rate);
                if next < end {
                    return Some(next);
                }
            }
            at = end;
        }
    }
}

/// A step ramp's rates, calls a second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ramp {
    /// The first step's rate.
    pub from: f64,
    /// What each step adds.
    pub step: f64,
    /// The last step's rate, at most.
    pub to: f64,
}

impl Ramp {
    /// Reads `FROM:STEP:TO`.
    pub fn parse(text: &str) -> Result<Ramp, String> {
        let bad =
            || format!("--ramp '{text}' is not FROM:STEP:TO calls a second (e.g. 100:100:1000)");
        let numbers: Vec<f64> = text
            .split(':')
            .map(|n| n.parse::<f64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let [from, step, to] = numbers[..] else {
            return Err(bad());
        };
        if !(from > 0.0 && step > 0.0 && to >= from && to <= 100_000.0) {
            return Err(format!(
                "--ramp '{text}': FROM and STEP must be above 0 and TO at least FROM, at most 100000"
            ));
        }
        if (to - from) / step > 1_000.0 {
            return Err(format!("--ramp '{text}' has more than 1000 steps"));
        }
        Ok(Ramp { from, step, to })
    }

    /// The rates in order.
    pub fn rates(&self) -> Vec<f64> {
        let steps = ((self.to - self.from) / self.step + 1e-9).floor() as usize;
        (0..=steps)
            .map(|i| self.from + self.step * i as f64)
            .collect()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: SocketAddr::from((Ipv4Addr::LOCALHOST, 5060)),
            transport: Transport::Udp,
            tls_ca: None,
            tls_name: None,
            did: "100".into(),
            rate: 10.0,
            calls: None,
            duration: Duration::from_secs(10),
            agents: 10,
            first_agent: 1,
            agent_user: "agent{n}".into(),
            agent_password: "secret-{n}".into(),
            answer_after: Dist::Fixed(0.0),
            talk: Dist::Fixed(1.0),
            patience: None,
            survey_keys: Vec::new(),
            vote_after: Dist::Fixed(1.0),
            local: IpAddr::V4(Ipv4Addr::LOCALHOST),
            drain: Duration::from_secs(30),
            expires: 600,
            server_pid: None,
            settle: Duration::ZERO,
            seed: 1,
            json: false,
            progress: true,
            threads: 1,
            rtp: false,
            allow_remote: false,
            ramp: None,
            profile: None,
        }
    }
}

/// The usage text.
pub const USAGE: &str = "\
amico-load: both sides of a contact centre against a SIP ACD over UDP, TCP or TLS

  --target HOST:PORT      the ACD (default 127.0.0.1:5060)
  --transport T           udp (default), tcp or tls: the trunk and every agent
  --tls-ca FILE           with tls: the certificates (PEM) the ACD's must chain to
  --tls-name NAME         with tls: the name in the ACD's certificate (default the
                          target's address)
  --did NUMBER            the number the trunk calls (default 100)
  --rate CALLS_PER_SEC    Poisson arrivals (default 10)
  --ramp FROM:STEP:TO     a step ramp instead: each rate for --duration, stopping after
                          the first step under 99.9 % completed (the knee)
  --profile R1,R2,...     an hourly profile instead: each rate (calls/s) for
                          --profile-step, one after the other (Poisson within each)
  --profile-step SECS     how long each profile rate lasts (default 3600: an hour)
  --calls N               at most N calls
  --duration SECS         arrivals stop after SECS (default 10)
  --agents N              agents that register (default 10)
  --first-agent N         the first agent's number (default 1)
  --agent-user PATTERN    agent user names, {n} is the number (default agent{n})
  --agent-password PAT    agent passwords (default secret-{n})
  --answer-after T        ring time before an agent answers (default 0)
  --talk T                talk time before the agent hangs up (default 1)
  --patience T            a caller hangs up if no agent answered by then (default none)
                          T is seconds (1.5) or an exponential mean (exp:1.5)
  --survey-vote KEYS      after the agent hangs up, the caller presses one of KEYS (drawn
                          per call, e.g. 1 or 123) as an RFC 4733 event: the survey vote
  --vote-after T          how long after the agent's BYE it presses (default 1)
  --drain SECS            time for calls to end after arrivals stop (default 30)
  --expires SECS          registration lifetime asked for (default 600)
  --server-pid PID        read the server's CPU and memory from /proc/PID
  --settle SECS           then watch it SECS more after the load (memory given back?)
  --seed N                arrival and duration draws (default 1)
  --local IP              address to bind (default 127.0.0.1)
  --allow-remote          allow a target that is not a loopback address
  --rtp                   RTP both ways on connected calls (G.711, 50 packets/s)
  --threads N             threads amico-load runs on (default 1; 2 for a run that
                          measures RTP jitter)
  --json                  print the report as JSON
  --quiet                 no progress line
";

impl Options {
    /// Reads the arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut options = Options::default();
        let mut local_given = false;
        let mut profile: Option<String> = None;
        let mut profile_step = Duration::from_secs(3_600);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            fn number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, String> {
                text.parse()
                    .map_err(|_| format!("{name} '{text}' is not a number"))
            }
            fn dist(name: &str, text: &str) -> Result<Dist, String> {
                Dist::parse(text).map_err(|why| format!("{name}: {why}"))
            }
            match arg.as_str() {
                "--target" => {
                    let text = value("--target")?;
                    options.target = text.parse().map_err(|_| {
                        format!("--target '{text}' is not an IP address and port (127.0.0.1:5060)")
                    })?;
                }
                "--transport" => options.transport = Transport::parse(&value("--transport")?)?,
                "--tls-ca" => options.tls_ca = Some(value("--tls-ca")?.into()),
                "--tls-name" => options.tls_name = Some(value("--tls-name")?),
                "--did" => options.did = value("--did")?,
                "--ramp" => options.ramp = Some(Ramp::parse(&value("--ramp")?)?),
                "--profile" => profile = Some(value("--profile")?),
                "--profile-step" => {
                    let secs: f64 = number("--profile-step", &value("--profile-step")?)?;
                    if !(secs.is_finite() && (0.1..=3_600.0).contains(&secs)) {
                        return Err("--profile-step must be 0.1 to 3600 seconds".into());
                    }
                    profile_step = Duration::from_secs_f64(secs);
                }
                "--rate" => options.rate = number("--rate", &value("--rate")?)?,
                "--calls" => options.calls = Some(number("--calls", &value("--calls")?)?),
                "--duration" => {
                    let secs: f64 = number("--duration", &value("--duration")?)?;
                    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
                        return Err("--duration must be above 0 and at most 86400 seconds".into());
                    }
                    options.duration = Duration::from_secs_f64(secs);
                }
                "--agents" => options.agents = number("--agents", &value("--agents")?)?,
                "--first-agent" => {
                    options.first_agent = number("--first-agent", &value("--first-agent")?)?
                }
                "--agent-user" => options.agent_user = value("--agent-user")?,
                "--agent-password" => options.agent_password = value("--agent-password")?,
                "--answer-after" => {
                    options.answer_after = dist("--answer-after", &value("--answer-after")?)?
                }
                "--talk" => options.talk = dist("--talk", &value("--talk")?)?,
                "--patience" => {
                    let text = value("--patience")?;
                    options.patience = match text.as_str() {
                        "none" => None,
                        _ => Some(dist("--patience", &text)?),
                    };
                }
                "--survey-vote" => {
                    let keys = value("--survey-vote")?;
                    if keys.is_empty()
                        || keys.len() > 16
                        || !keys
                            .chars()
                            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'))
                    {
                        return Err(format!(
                            "--survey-vote '{keys}' is not 1 to 16 keys of 0-9, *, #, A-D"
                        ));
                    }
                    options.survey_keys = keys.chars().collect();
                }
                "--vote-after" => {
                    options.vote_after = dist("--vote-after", &value("--vote-after")?)?
                }
                "--drain" => {
                    let secs: u64 = number("--drain", &value("--drain")?)?;
                    if secs > 3_600 {
                        return Err("--drain must be at most 3600 seconds".into());
                    }
                    options.drain = Duration::from_secs(secs);
                }
                "--expires" => options.expires = number("--expires", &value("--expires")?)?,
                "--server-pid" => {
                    let text = value("--server-pid")?;
                    let pid: u32 = number("--server-pid", &text)?;
                    if !std::path::Path::new(&format!("/proc/{pid}/stat")).exists() {
                        return Err(format!("--server-pid {pid}: no such process in /proc"));
                    }
                    options.server_pid = Some(pid);
                }
                "--settle" => {
                    let secs: u64 = number("--settle", &value("--settle")?)?;
                    if secs > 3_600 {
                        return Err("--settle must be at most 3600 seconds".into());
                    }
                    options.settle = Duration::from_secs(secs);
                }
                "--seed" => options.seed = number("--seed", &value("--seed")?)?,
                "--local" => {
                    let text = value("--local")?;
                    options.local = text
                        .parse()
                        .map_err(|_| format!("--local '{text}' is not an IP address"))?;
                    local_given = true;
                }
                "--threads" => {
                    options.threads = number("--threads", &value("--threads")?)?;
                    if !(1..=64).contains(&options.threads) {
                        return Err(format!("--threads {} must be 1 to 64", options.threads));
                    }
                }
                "--allow-remote" => options.allow_remote = true,
                "--json" => options.json = true,
                "--rtp" => options.rtp = true,
                "--quiet" => options.progress = false,
                "--help" | "-h" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown argument '{other}'; --help lists them")),
            }
        }
        if !(options.rate.is_finite() && options.rate > 0.0 && options.rate <= 100_000.0) {
            return Err(format!(
                "--rate {} must be above 0 and at most 100000 calls a second",
                options.rate
            ));
        }
        if let Some(text) = profile {
            if options.ramp.is_some() {
                return Err("--profile and --ramp are two kinds of run: give one".into());
            }
            options.profile = Some(Profile::parse(&text, profile_step)?);
        }
        match (&options.tls_ca, options.transport) {
            (None, Transport::Tls) => {
                return Err(
                    "--transport tls needs --tls-ca: the certificates (PEM) the ACD's \
                            must chain to"
                        .into(),
                );
            }
            (Some(ca), Transport::Tls) if !ca.is_file() => {
                return Err(format!("--tls-ca '{}' is not a file", ca.display()));
            }
            (Some(_), Transport::Udp | Transport::Tcp) => {
                return Err("--tls-ca is for --transport tls".into());
            }
            _ => {}
        }
        if options.tls_name.is_some() && options.transport != Transport::Tls {
            return Err("--tls-name is for --transport tls".into());
        }
        if options.calls == Some(0) {
            return Err("--calls must be at least 1".into());
        }
        if !(1..=20_000).contains(&options.agents) {
            return Err(format!("--agents {} must be 1 to 20000", options.agents));
        }
        if !options.agent_user.contains("{n}") {
            return Err(format!(
                "--agent-user '{}' must contain {{n}}: every agent needs its own name",
                options.agent_user
            ));
        }
        if !options.settle.is_zero() && options.server_pid.is_none() {
            return Err("--settle watches the server: give --server-pid too".into());
        }
        if !(30..=86_400).contains(&options.expires) {
            return Err(format!("--expires {} must be 30 to 86400", options.expires));
        }
        if options.did.is_empty() || options.did.contains(['@', ' ', '<', '>', ';']) {
            return Err(format!(
                "--did '{}' is not a number or user part",
                options.did
            ));
        }
        if !options.target.ip().is_loopback() && !options.allow_remote {
            return Err(format!(
                "--target {} is not a loopback address: amico-load sends real load, \
                 pass --allow-remote to aim it at another machine",
                options.target
            ));
        }
        if !options.target.ip().is_loopback() && !local_given {
            return Err(format!(
                "--target {} is remote: give --local with this machine's address on that network",
                options.target
            ));
        }
        if options.target.ip().is_ipv4() != options.local.is_ipv4() {
            return Err(format!(
                "--local {} and --target {} are not of the same IP version",
                options.local, options.target
            ));
        }
        Ok(options)
    }

    /// Agent `i`'s (0-based) user name and password.
    pub fn agent(&self, i: usize) -> (String, String) {
        let n = (self.first_agent + i).to_string();
        (
            self.agent_user.replace("{n}", &n),
            self.agent_password.replace("{n}", &n),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn reads_every_option() {
        let options = parse(&[
            "--target",
            "127.0.0.1:5099",
            "--rate",
            "5",
            "--calls",
            "20",
            "--agents",
            "3",
            "--talk",
            "exp:0.5",
            "--answer-after",
            "0.1",
            "--patience",
            "30",
            "--json",
            "--quiet",
            "--rtp",
            "--transport",
            "TCP",
            "--survey-vote",
            "12",
            "--vote-after",
            "exp:2",
            "--threads",
            "2",
        ])
        .unwrap();
        assert_eq!(options.threads, 2);
        assert_eq!(options.target.port(), 5099);
        assert_eq!(options.transport, Transport::Tcp);
        assert_eq!(options.survey_keys, ['1', '2']);
        assert_eq!(options.vote_after, Dist::Exponential(2.0));
        assert_eq!(options.calls, Some(20));
        assert_eq!(options.talk, Dist::Exponential(0.5));
        assert_eq!(options.answer_after, Dist::Fixed(0.1));
        assert_eq!(options.patience, Some(Dist::Fixed(30.0)));
        assert!(options.json && !options.progress && options.rtp);
        assert_eq!(
            options.agent(2),
            ("agent3".to_owned(), "secret-3".to_owned())
        );
    }

    #[test]
    fn every_bad_argument_is_named() {
        for (args, named) in [
            (&["--rate", "0"][..], "--rate"),
            (&["--rate", "fast"], "--rate"),
            (&["--calls", "0"], "--calls"),
            (&["--agents", "0"], "--agents"),
            (&["--talk", "exp:-1"], "--talk"),
            (&["--target", "localhost"], "--target"),
            (&["--target", "192.0.2.1:5060"], "--allow-remote"),
            (&["--target", "192.0.2.1:5060", "--allow-remote"], "--local"),
            (&["--agent-user", "anna"], "--agent-user"),
            (&["--duration"], "--duration"),
            (&["--server-pid", "4000000000"], "--server-pid"),
            (&["--frobnicate"], "--frobnicate"),
            (&["--threads", "0"], "--threads"),
            (&["--threads", "many"], "--threads"),
            (&["--settle", "5"], "--server-pid"),
            (&["--transport", "sctp"], "--transport"),
            (&["--survey-vote", "yes"], "--survey-vote"),
            (&["--vote-after", "soon"], "--vote-after"),
            (&["--transport", "tls"], "--tls-ca"),
            (
                &["--transport", "tls", "--tls-ca", "/nonexistent.pem"],
                "--tls-ca",
            ),
            (&["--tls-ca", "/etc/hostname"], "--tls-ca"),
            (&["--transport", "tcp", "--tls-name", "pbx"], "--tls-name"),
        ] {
            let error = parse(args).unwrap_err();
            assert!(error.contains(named), "{args:?}: {error}");
        }
    }

    #[test]
    fn reads_a_profile_and_places_no_call_where_its_rate_is_zero() {
        let options = parse(&["--profile", "50, 0,200", "--profile-step", "2"]).unwrap();
        let profile = options.profile.unwrap();
        assert_eq!(profile.rates, [50.0, 0.0, 200.0]);
        assert_eq!(profile.length(), Duration::from_secs(6));
        let mut rng = Rng::new(3);
        let (mut at, mut counts) = (0.0, [0u32; 3]);
        while let Some(next) = profile.next_arrival(at, &mut rng) {
            assert!(next > at && next < 6.0, "{next}");
            counts[(next / 2.0) as usize] += 1;
            at = next;
        }
        // Poisson counts over 2 s: mean 100 and 400, sd 10 and 20.
        assert_eq!(counts[1], 0, "{counts:?}");
        assert!((60..=140).contains(&counts[0]), "{counts:?}");
        assert!((320..=480).contains(&counts[2]), "{counts:?}");
        for bad in ["", "1,x", "0,0", "-1,2"] {
            let error = parse(&["--profile", bad]).unwrap_err();
            assert!(error.contains("--profile"), "{bad}: {error}");
        }
        let error = parse(&["--profile", "1,2", "--ramp", "1:1:2"]).unwrap_err();
        assert!(error.contains("--ramp"), "{error}");
    }

    #[test]
    fn reads_a_ramp() {
        let options = parse(&["--ramp", "100:100:450"]).unwrap();
        assert_eq!(options.ramp.unwrap().rates(), [100.0, 200.0, 300.0, 400.0]);
        assert_eq!(Ramp::parse("5:5:10").unwrap().rates(), [5.0, 10.0]);
        for bad in ["100", "a:b:c", "0:1:2", "10:1:5", "1:0.001:100000"] {
            let error = parse(&["--ramp", bad]).unwrap_err();
            assert!(error.contains("--ramp"), "{bad}: {error}");
        }
    }

    #[test]
    fn draws_fixed_and_exponential_times() {
        let mut rng = Rng::new(1);
        assert_eq!(
            Dist::Fixed(0.25).sample(&mut rng),
            Duration::from_millis(250)
        );
        let n = 20_000;
        let total: f64 = (0..n)
            .map(|_| Dist::Exponential(2.0).sample(&mut rng).as_secs_f64())
            .sum();
        let mean = total / n as f64;
        assert!((1.9..2.1).contains(&mean), "{mean}");
    }
}

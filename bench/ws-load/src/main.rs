//! `ws-load`: the load generator of `bench/ws.sh`. It holds N WebSocket
//! clients in one chat room of a server (the bench app in the container, or
//! `bench-native`), measures what the server's memory and CPU do with them
//! idle, then how long a message takes to fan out to the room.
//!
//! ```text
//! ws-load --url ws://127.0.0.1:8080/bench/ws/room --pid PID \
//!         [--clients 10000] [--fanout 1000] [--messages 200] [--rate 50] \
//!         [--idle-secs 5] [--concurrency 64]
//! ```
//!
//! 1. Reads the server's RSS, then opens N connections to room `all`
//!    (`URL/all`), at most `concurrency` handshakes at once, each retried.
//! 2. Waits until every client is subscribed: a probe is published to the
//!    room every 250 ms until each client has received one.
//! 3. After a second's settling, reads the RSS again (the difference over N
//!    is the cost of an idle connection) and the server's CPU time over
//!    `idle-secs`.
//! 4. Fan-out: one client publishes `messages` messages at `rate` per
//!    second, each carrying its send time; every client receives them all,
//!    the first K (`fanout`) record arrival − send. The server's CPU time
//!    meanwhile, over the messages delivered, is its cost per delivery.
//! 5. If N > K: the first K clients leave and K new ones join a room of
//!    their own, and step 4 runs again in that room of K (while the other
//!    N − K connections stay open): the fan-out latency to K clients.
//!
//! Each step prints one line, `ws-load STEP key=value ...`, for the script.
//! Latencies are in milliseconds, sizes in KiB or bytes as their names say.

mod clients;
mod measure;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clients::{Clients, FanOut, Shared};

/// The command line.
struct Args {
    url: String,
    pid: u32,
    clients: usize,
    fanout: usize,
    messages: usize,
    rate: f64,
    idle: Duration,
    concurrency: usize,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut args = Args {
            url: String::new(),
            pid: 0,
            clients: 10_000,
            fanout: 1_000,
            messages: 200,
            rate: 50.0,
            idle: Duration::from_secs(5),
            concurrency: 64,
        };
        let mut words = std::env::args().skip(1);
        while let Some(flag) = words.next() {
            let value = words.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<f64>()
                    .map_err(|_| format!("{flag}: not a number: {value}"))
            };
            match flag.as_str() {
                "--url" => args.url = value.trim_end_matches('/').to_owned(),
                "--pid" => args.pid = number()? as u32,
                "--clients" => args.clients = number()? as usize,
                "--fanout" => args.fanout = number()? as usize,
                "--messages" => args.messages = number()? as usize,
                "--rate" => args.rate = number()?,
                "--idle-secs" => args.idle = Duration::from_secs_f64(number()?),
                "--concurrency" => args.concurrency = number()? as usize,
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        match () {
            () if args.url.is_empty() || args.pid == 0 => Err("--url and --pid are required".into()),
            () if args.clients == 0 || args.fanout == 0 || args.messages == 0 => {
                Err("--clients, --fanout and --messages must be at least 1".into())
            }
            () if args.rate <= 0.0 || args.concurrency == 0 => Err("--rate and --concurrency must be positive".into()),
            () => Ok(args),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("ws-load: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ws-load: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let shared = Arc::new(Shared::new());
    let server = measure::Process(args.pid);
    let rss_before = server.rss_kb()?;
    let fanout = args.fanout.min(args.clients);

    let started = Instant::now();
    let mut room = Clients::connect(
        &shared,
        &format!("{}/all", args.url),
        args.clients,
        fanout,
        args.concurrency,
    )
    .await;
    println!(
        "ws-load connect clients={} connected={} failed={} retries={} secs={:.1}",
        args.clients,
        room.len(),
        args.clients - room.len(),
        room.retries,
        started.elapsed().as_secs_f64()
    );
    if room.is_empty() {
        return Err("no connection succeeded".into());
    }
    let subscribed = room.wait_subscribed(&shared, room.len()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    idle(args, &shared, &server, rss_before, subscribed).await?;

    let ticks = server.cpu_ticks()?;
    let all = room.fan_out(&shared, args.messages, args.rate, fanout).await;
    print_fan_out(&all, args.rate, server.cpu_ticks()? - ticks);
    if args.clients > fanout {
        let mut small = room.split_off_first(fanout);
        small.leave(&shared).await;
        small = Clients::connect(&shared, &format!("{}/few", args.url), fanout, fanout, args.concurrency).await;
        room.retries += small.retries;
        small.wait_subscribed(&shared, small.len()).await;
        let ticks = server.cpu_ticks()?;
        let few = small.fan_out(&shared, args.messages, args.rate, small.len()).await;
        print_fan_out(&few, args.rate, server.cpu_ticks()? - ticks);
    }
    println!(
        "ws-load end open={} rss_kb={} closes={}",
        shared.open(),
        server.rss_kb()?,
        shared.closes()
    );
    Ok(())
}

/// Step 3: RSS and CPU with every connection idle.
async fn idle(
    args: &Args,
    shared: &Shared,
    server: &measure::Process,
    rss_before: u64,
    subscribed: usize,
) -> Result<(), String> {
    let rss_idle = server.rss_kb()?;
    let held = shared.open();
    let ticks_before = server.cpu_ticks()?;
    tokio::time::sleep(args.idle).await;
    let ticks = server.cpu_ticks()? - ticks_before;
    let cpu_pct = 100.0 * ticks as f64 / measure::TICKS_PER_SECOND / args.idle.as_secs_f64();
    let per_connection = (rss_idle.saturating_sub(rss_before) * 1024)
        .checked_div(held as u64)
        .unwrap_or(0);
    println!(
        "ws-load idle held={held} subscribed={subscribed} still_open={} rss_before_kb={rss_before} rss_idle_kb={rss_idle} \
         per_connection_bytes={per_connection} cpu_pct={cpu_pct:.2} idle_secs={}",
        shared.open(),
        args.idle.as_secs_f64()
    );
    Ok(())
}

/// One fan-out run's line; `ticks`: the server's CPU time during it.
fn print_fan_out(f: &FanOut, rate: f64, ticks: u64) {
    let ms = |q: f64| measure::percentile(&f.latencies_us, q) as f64 / 1000.0;
    let cpu_secs = ticks as f64 / measure::TICKS_PER_SECOND;
    println!(
        "ws-load fanout room={} recorders={} messages={} rate={rate} delivered={} expected={} \
         room_delivered={} room_expected={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} secs={:.2} lost={} \
         cpu_secs={cpu_secs:.2} cpu_us_per_delivery={:.2}",
        f.members,
        f.recorders,
        f.messages,
        f.latencies_us.len(),
        f.messages * f.recorders,
        f.delivered,
        f.messages * f.members,
        ms(0.50),
        ms(0.99),
        ms(1.0),
        f.secs,
        f.lost,
        1e6 * cpu_secs / f.delivered.max(1) as f64
    );
}

//! What the component costs: size, per-event overhead, throughput, memory, instantiation.
//!
//! ```sh
//! cargo bench --bench provisioner                              # prints the tables
//! cargo bench --bench provisioner -- --markdown BENCHMARKS.md  # and writes them there
//! ```
//!
//! The release `.wasm` (built by the harness exactly as `spin build` builds it) runs in the
//! harness's Spin-like host, in a child process of its own so that its resident set is its
//! own, with a fresh instance per request; the fake kube-apiserver and the load generator run
//! in this process. All traffic stays on 127.0.0.1. Options: `--requests N` per latency path
//! (default 10000), `--seconds S` per throughput run (default 8), `--quick` (1000 requests,
//! 2 s: a smoke run, not a measurement).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use podgateway_test_harness::host::{HostOptions, InstanceSample, InstanceStats};
use podgateway_test_harness::load::{Connection, Load, MakeRequest, Post};
use podgateway_test_harness::{FakeKube, SpinApp, SpinHost, component};

const BUDGET_BYTES: u64 = 1 << 20;
const PENDING: &str = "io.podgateway.client.pending";
/// Set in the child process that runs the host; its value is the fake API server's URL.
const HOST_ROLE: &str = "PODGATEWAY_BENCH_HOST_API";
const HOST_WASM: &str = "PODGATEWAY_BENCH_HOST_WASM";
const WARMUP: usize = 300;
const RESULTS_START: &str = "<!-- benchmark results: start (written by `cargo bench --bench provisioner -- --markdown BENCHMARKS.md`) -->";
const RESULTS_END: &str = "<!-- benchmark results: end -->";

fn main() -> anyhow::Result<()> {
    if let Ok(api_url) = std::env::var(HOST_ROLE) {
        return host_process(&api_url);
    }
    let options = Options::parse()?;
    let report = run(&options)?;
    print!("{report}");
    if let Some(path) = &options.markdown {
        write_markdown(path, &report)?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}

struct Options {
    requests: usize,
    seconds: f64,
    markdown: Option<PathBuf>,
}

impl Options {
    fn parse() -> anyhow::Result<Self> {
        let mut options = Options { requests: 10_000, seconds: 8.0, markdown: None };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--requests" => options.requests = args.next().context("--requests N")?.parse()?,
                "--seconds" => options.seconds = args.next().context("--seconds S")?.parse()?,
                "--markdown" => options.markdown = Some(args.next().context("--markdown PATH")?.into()),
                "--quick" => (options.requests, options.seconds) = (1000, 2.0),
                // `cargo bench` passes `--bench`; a filter may follow it.
                "--bench" => {}
                other if other.starts_with('-') => bail!("unknown option {other}"),
                _ => {}
            }
        }
        Ok(options)
    }
}

// ---------------------------------------------------------------------------------------
// The host, in a child process. It answers one-line commands on stdin; EOF ends it.

fn host_process(api_url: &str) -> anyhow::Result<()> {
    let wasm = std::env::var(HOST_WASM).context(HOST_WASM)?;
    let app = spin_app(api_url)?;
    let stats = Arc::new(InstanceStats::default());
    let started = Instant::now();
    let options = HostOptions { keep_logs: false, stats: Some(stats.clone()) };
    let host = SpinHost::start_with(&wasm, app, options)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {} {}", host.base_url(), started.elapsed().as_micros())?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        match line?.trim() {
            "samples" => {
                let samples = stats.take();
                writeln!(out, "samples {}", samples.len())?;
                for s in samples {
                    writeln!(
                        out,
                        "{} {} {}",
                        s.instantiate.as_nanos(),
                        s.run.as_nanos(),
                        s.peak_memory_bytes
                    )?;
                }
            }
            "memory" => {
                let (rss, hwm) = memory_kib();
                writeln!(out, "memory {rss} {hwm}")?;
            }
            // Linux: "5" resets the peak resident set (VmHWM) to the current one.
            "reset-peak" => {
                writeln!(out, "reset-peak {}", std::fs::write("/proc/self/clear_refs", "5").is_ok())?
            }
            other => writeln!(out, "unknown command {other:?}")?,
        }
        out.flush()?;
    }
    drop(host);
    Ok(())
}

/// spin.toml's application, with the fake API server and its token.
fn spin_app(api_url: &str) -> anyhow::Result<SpinApp> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("spin.toml");
    SpinApp::from_manifest(manifest, [("k8s_api_url", api_url), ("k8s_token", FakeKube::TOKEN)])
}

/// VmRSS and VmHWM of this process, KiB.
fn memory_kib() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The parent's handle on the host process.
struct HostProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    base_url: String,
    startup: Duration,
}

impl HostProcess {
    fn spawn(wasm: &Path, api_url: &str) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(HOST_ROLE, api_url)
            .env(HOST_WASM, wasm)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the host process")?;
        let stdin = child.stdin.take().context("host stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("host stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let mut words = line.split_whitespace();
        ensure!(words.next() == Some("ready"), "the host process did not start: {line:?}");
        let base_url = words.next().context("host URL")?.to_owned();
        let startup = Duration::from_micros(words.next().context("startup")?.parse()?);
        Ok(Self { child, stdin, stdout, base_url, startup })
    }

    fn command(&mut self, command: &str) -> anyhow::Result<String> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line.trim().to_owned())
    }

    /// The instances measured since the last call, once the guests still running are done.
    fn samples(&mut self) -> anyhow::Result<Vec<InstanceSample>> {
        std::thread::sleep(Duration::from_millis(100));
        let header = self.command("samples")?;
        let count: usize = header.strip_prefix("samples ").context("samples")?.parse()?;
        let mut samples = Vec::with_capacity(count);
        let mut line = String::new();
        for _ in 0..count {
            line.clear();
            self.stdout.read_line(&mut line)?;
            let numbers: Vec<u64> = line.split_whitespace().map(str::parse).collect::<Result<_, _>>()?;
            ensure!(numbers.len() == 3, "bad sample line {line:?}");
            samples.push(InstanceSample {
                instantiate: Duration::from_nanos(numbers[0]),
                run: Duration::from_nanos(numbers[1]),
                peak_memory_bytes: numbers[2] as usize,
            });
        }
        Ok(samples)
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory(&mut self) -> anyhow::Result<(u64, u64)> {
        let reply = self.command("memory")?;
        let mut words = reply.split_whitespace().skip(1);
        Ok((words.next().context("rss")?.parse()?, words.next().context("hwm")?.parse()?))
    }

    fn reset_peak(&mut self) -> anyhow::Result<bool> {
        Ok(self.command("reset-peak")? == "reset-peak true")
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        // Closing stdin ends the host; do not wait for long.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// The measurements.

fn run(options: &Options) -> anyhow::Result<String> {
    let started = Instant::now();
    let mut report = String::new();
    let load_at_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    eprintln!("building the release component (as `spin build` does)...");
    let wasm = component::release_component()?;
    let size = std::fs::metadata(&wasm)?.len();

    let kube = FakeKube::start_empty();
    kube.add_namespace("default");
    kube.add_token(FakeKube::TOKEN, FakeKube::USER);
    kube.grant(FakeKube::USER, &["create", "get"], Some("default"));

    eprintln!("starting the host process (compiles the component once)...");
    let mut host = HostProcess::spawn(&wasm, &kube.url())?;
    let (idle_rss, _) = host.memory()?;

    writeln!(report, "{}", machine_section(options, &load_at_start))?;
    writeln!(report, "### Component size\n")?;
    writeln!(report, "| artifact | bytes | budget |")?;
    writeln!(report, "|---|---:|---:|")?;
    writeln!(
        report,
        "| `target/wasm32-wasip2/release/podgateway_client_provisioner.wasm` | {} | {} ({}) |\n",
        thousands(size),
        thousands(BUDGET_BYTES),
        if size <= BUDGET_BYTES { "met" } else { "**over**" }
    )?;

    // Per-event overhead, one connection, one request at a time.
    let mut connection = Connection::open(&host.base_url)?;
    let paths = [Case::Unknown, Case::Created, Case::Redelivered, Case::Failed];
    let mut latency_rows = Vec::new();
    let mut instance_rows = Vec::new();
    for path in paths {
        eprintln!("latency: {} ({} requests)...", path.name(), options.requests);
        // Warm-up: its own ids; the redelivery warm-up redelivers the created warm-up's. No
        // pause between it and the measurement (a pause makes the next request slower).
        host.samples()?;
        for i in 0..WARMUP {
            let answer = connection.post(&path.post(&format!("warm-{i}")))?;
            ensure!(answer.status == path.status(), "{}: warm-up answered {}", path.name(), answer.status);
        }
        kube.take_requests();
        let mut samples = Vec::with_capacity(options.requests);
        let mut unexpected = 0;
        let mut api_connections = BTreeSet::new();
        for i in 0..options.requests {
            let answer = connection.post(&path.post(&format!("lat-{i}")))?;
            let calls = kube.take_requests();
            let statuses: Vec<u16> = calls.iter().filter_map(|c| c.status).collect();
            if answer.status != path.status() || statuses != path.api_statuses() {
                unexpected += 1;
            }
            api_connections.extend(calls.iter().map(|c| c.connection));
            let server: Duration = calls.iter().map(|c| c.server_time).sum();
            samples.push((answer.latency, server));
        }
        // One request at a time: the host records instances in request order.
        let mut instances = host.samples()?;
        instances.drain(..WARMUP.min(instances.len()));
        latency_rows.push((path, samples, unexpected, api_connections.len()));
        instance_rows.push((path, instances));
    }
    kube.clear_pods();
    let (after_latency_rss, _) = host.memory()?;

    writeln!(
        report,
        "### Per-event overhead (one request at a time, keep-alive connection, fresh instance per request)\n"
    )?;
    writeln!(
        report,
        "Overhead = latency seen by the client − time the fake API server spent on the request's API calls. \
         {} requests per path after {WARMUP} warm-up requests; times in ms. The host keeps its outbound \
         connections to the API open, as Spin does; the last column counts the connections those requests \
         used.\n",
        thousands(options.requests as u64)
    )?;
    writeln!(
        report,
        "| path | API calls | client latency p50 / p99 / max | API server time p50 / p99 / max | **overhead p50 / p99 / max** | unexpected answers | API connections |"
    )?;
    writeln!(report, "|---|---|---|---|---|---:|---:|")?;
    for (path, samples, unexpected, api_connections) in &latency_rows {
        let latency = Stats::of(samples.iter().map(|s| s.0));
        let server = Stats::of(samples.iter().map(|s| s.1));
        let overhead = Stats::of(samples.iter().map(|s| s.0.saturating_sub(s.1)));
        writeln!(
            report,
            "| {} | {} | {} | {} | **{}** | {unexpected} | {api_connections} |",
            path.name(),
            path.calls(),
            latency.ms3(),
            server.ms3(),
            overhead.ms3()
        )?;
    }
    writeln!(report)?;

    writeln!(report, "### Instances (measured by the host, per request)\n")?;
    writeln!(
        report,
        "Instantiation = `ProxyPre::instantiate_async` of the pre-compiled, pre-linked component into a new `Store`; \
         run = instantiation + the guest's `handle` call; peak linear memory = the largest size the instance's memory \
         was given (a `ResourceLimiter` on the `Store`). Times in ms.\n"
    )?;
    writeln!(
        report,
        "| path | instances | instantiation p50 / p99 / max | run p50 / p99 / max | peak linear memory (max) |"
    )?;
    writeln!(report, "|---|---:|---|---|---:|")?;
    for (path, instances) in &instance_rows {
        let instantiate = Stats::of(instances.iter().map(|s| s.instantiate));
        let run = Stats::of(instances.iter().map(|s| s.run));
        let peak = instances.iter().map(|s| s.peak_memory_bytes).max().unwrap_or(0);
        writeln!(
            report,
            "| {} | {} | {} | {} | {} KiB |",
            path.name(),
            thousands(instances.len() as u64),
            instantiate.ms3(),
            run.ms3(),
            thousands(peak as u64 / 1024)
        )?;
    }
    writeln!(report)?;

    // Throughput.
    let mut throughput_rows = Vec::new();
    let mut memory_rows = Vec::new();
    for api_latency in [Duration::ZERO, Duration::from_millis(20)] {
        kube.set_latency(api_latency);
        for concurrency in [1, 4, 16, 64] {
            eprintln!("throughput: API +{} ms, concurrency {concurrency}...", api_latency.as_millis());
            let peak_reset = concurrency == 64 && host.reset_peak()?;
            let tag = format!("tp{}-c{concurrency}", api_latency.as_millis());
            let make: MakeRequest = Arc::new(move |i| Case::Created.post(&format!("{tag}-{i}")));
            let mut load = Load::connect(&host.base_url, concurrency)?;
            load.warm_up(&make)?;
            kube.take_requests();
            let run = load.run_for(Duration::from_secs_f64(options.seconds), &make)?;
            let created = kube.take_requests().iter().filter(|c| c.status == Some(201)).count();
            kube.clear_pods();
            let instances = host.samples()?;
            let not_200 = run.answers.iter().filter(|a| a.status != 200).count();
            if concurrency == 64 {
                let (rss, hwm) = host.memory()?;
                memory_rows.push((api_latency, rss, peak_reset.then_some(hwm), instances.len()));
            }
            throughput_rows.push((api_latency, concurrency, run, created, not_200));
        }
    }
    kube.set_latency(Duration::ZERO);

    writeln!(report, "### Throughput (pending → created, distinct ids, {} s per run)\n", options.seconds)?;
    writeln!(
        report,
        "Each of *c* keep-alive connections sends its next event as soon as it has the answer. \
         Before each run, every connection sends one event that is not counted (a warm-up). \
         The load generator, the fake API server and the host share the machine's cores.\n"
    )?;
    writeln!(
        report,
        "| API latency | concurrency | events/s | pods created | client latency p50 / p99 / max (ms) | non-200 / errors |"
    )?;
    writeln!(report, "|---|---:|---:|---:|---|---:|")?;
    for (api_latency, concurrency, run, created, not_200) in &throughput_rows {
        let latency = Stats::of(run.answers.iter().map(|a| a.latency));
        writeln!(
            report,
            "| +{} ms | {concurrency} | {:.0} | {} | {} | {not_200} / {} |",
            api_latency.as_millis(),
            run.throughput(),
            thousands(*created as u64),
            latency.ms3(),
            run.errors
        )?;
    }
    writeln!(report)?;

    writeln!(report, "### Host process memory\n")?;
    writeln!(report, "| when | resident set |")?;
    writeln!(report, "|---|---:|")?;
    writeln!(
        report,
        "| idle, component compiled and pre-instantiated (startup {:.0} ms) | {} MiB |",
        host.startup.as_secs_f64() * 1e3,
        mib(idle_rss)
    )?;
    writeln!(report, "| after the latency runs | {} MiB |", mib(after_latency_rss))?;
    for (api_latency, rss, hwm, _) in &memory_rows {
        let peak = hwm.map_or("n/a".to_owned(), |hwm| format!("{} MiB", mib(hwm)));
        writeln!(
            report,
            "| concurrency 64, API +{} ms: peak (VmHWM) during the run | {peak} |",
            api_latency.as_millis()
        )?;
        writeln!(
            report,
            "| concurrency 64, API +{} ms: after the run (VmRSS) | {} MiB |",
            api_latency.as_millis(),
            mib(*rss)
        )?;
    }
    writeln!(report)?;
    let load_at_end = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    writeln!(
        report,
        "Load average (1/5/15 min) before: {}; after: {}.\n",
        first3(&load_at_start),
        first3(&load_at_end)
    )?;
    writeln!(report, "Benchmark run time, build excluded: {:.0} s.\n", started.elapsed().as_secs_f64())?;
    Ok(report)
}

/// The four request paths of the per-event measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Unknown,
    Created,
    Redelivered,
    Failed,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Unknown => "unknown type → 204",
            Case::Created => "pending → created",
            Case::Redelivered => "pending → AlreadyExists → GET (redelivery)",
            Case::Failed => "pending → failed (invalid gateway)",
        }
    }

    fn calls(self) -> &'static str {
        match self {
            Case::Unknown | Case::Failed => "none",
            Case::Created => "POST 201",
            Case::Redelivered => "POST 409, GET 200",
        }
    }

    fn status(self) -> u16 {
        if self == Case::Unknown { 204 } else { 200 }
    }

    fn api_statuses(self) -> &'static [u16] {
        match self {
            Case::Unknown | Case::Failed => &[],
            Case::Created => &[201],
            Case::Redelivered => &[409, 200],
        }
    }

    /// The event; the redelivery uses the created path's ids again.
    fn post(self, id: &str) -> Post {
        let (event_type, data) = match self {
            Case::Unknown => ("com.example.other", r#"{"gateway_name":"foo"}"#),
            Case::Created | Case::Redelivered => (PENDING, r#"{"gateway_name":"foo"}"#),
            Case::Failed => (PENDING, r#"{"gateway_name":"not valid!"}"#),
        };
        let source = match self {
            Case::Failed => "urn:bench:failed",
            Case::Unknown => "urn:bench:unknown",
            _ => "urn:bench",
        };
        Post {
            headers: [
                ("ce-specversion", "1.0"),
                ("ce-id", id),
                ("ce-source", source),
                ("ce-type", event_type),
                ("content-type", "application/json"),
            ]
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
            body: data.as_bytes().to_vec().into(),
        }
    }
}

/// Nearest-rank percentiles of a set of durations.
struct Stats {
    sorted: Vec<Duration>,
}

impl Stats {
    fn of(values: impl Iterator<Item = Duration>) -> Self {
        let mut sorted: Vec<Duration> = values.collect();
        sorted.sort();
        Self { sorted }
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    /// `p50 / p99 / max` in ms.
    fn ms3(&self) -> String {
        let ms = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1e3);
        format!(
            "{} / {} / {}",
            ms(self.percentile(50.0)),
            ms(self.percentile(99.0)),
            ms(self.percentile(100.0))
        )
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn first3(loadavg: &str) -> String {
    loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn machine_section(options: &Options, loadavg: &str) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned()))
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let command_output = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".into())
    };
    let commit = command_output("git", &["rev-parse", "--short=12", "HEAD"]);
    let dirty = !command_output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let rustc = command_output("rustc", &["--version"]);
    let kernel = command_output("uname", &["-sr"]);
    let mut fields = BTreeMap::new();
    fields.insert(
        "1 machine",
        format!("{cpu}, {cores} cores, {:.0} GiB, {kernel}", mem_kib as f64 / 1048576.0),
    );
    fields.insert("2 commit", format!("`{commit}`{}", if dirty { " + uncommitted changes" } else { "" }));
    fields.insert("3 toolchain", rustc);
    fields.insert(
        "4 command",
        format!(
            "`cargo bench --bench provisioner -- --markdown BENCHMARKS.md` ({} requests per path, {} s per throughput run)",
            thousands(options.requests as u64),
            options.seconds
        ),
    );
    fields.insert("5 load average at start", first3(loadavg));
    let mut out = String::from("| | |\n|---|---|\n");
    for (key, value) in fields {
        let _ = writeln!(out, "| {} | {value} |", &key[2..]);
    }
    out
}

/// Replaces the results between the markers of an existing file, or writes a new one.
fn write_markdown(path: &Path, report: &str) -> anyhow::Result<()> {
    let block = format!("{RESULTS_START}\n\n{report}{RESULTS_END}\n");
    let text = match std::fs::read_to_string(path) {
        Ok(existing) => match (existing.find(RESULTS_START), existing.find(RESULTS_END)) {
            (Some(start), Some(end)) if start < end => {
                let after = &existing[end + RESULTS_END.len()..];
                format!("{}{block}{}", &existing[..start], after.strip_prefix('\n').unwrap_or(after))
            }
            _ => format!("{existing}\n{block}"),
        },
        Err(_) => block,
    };
    std::fs::write(path, text)?;
    Ok(())
}

//! What the component costs: size, per-event overhead, throughput, memory, instantiation,
//! under the harness's Spin-like host and under each real Spin CLI, side by side.
//!
//! ```sh
//! SPIN_BIN=../shared/tools/spin,../shared/tools/spin-3.6.3 \
//!   cargo bench --bench provisioner -- --markdown BENCHMARKS.md   # and writes them there
//! cargo bench --bench provisioner                                # prints the tables
//! ```
//!
//! The release `.wasm` (built by the harness exactly as `spin build` builds it) runs, one host
//! after the other, in the harness's Spin-like host (in a child process of its own, so that its
//! resident set is its own) and in `spin up` of each Spin CLI of `$SPIN_BIN` (else `spin` on
//! `PATH`), each with a fresh instance per request; the fake kube-apiserver and the load
//! generator run in this process and are the same for every host. All traffic stays on
//! 127.0.0.1. Options: `--requests N` per latency path (default 10000), `--seconds S` per
//! throughput run (default 8), `--quick` (1000 requests, 2 s: a smoke run, not a measurement).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use podgateway_test_harness::host::{HostOptions, InstanceSample, InstanceStats};
use podgateway_test_harness::load::{Connection, Load, LoadRun, MakeRequest, Post};
use podgateway_test_harness::spin_cli::{SpinBinary, SpinUp};
use podgateway_test_harness::{FakeKube, SpinApp, SpinHost, component, manifest};

const BUDGET_BYTES: u64 = 1 << 20;
const PENDING: &str = "io.podgateway.client.pending";
/// Set in the child process that runs the harness host; its value is the fake API server's URL.
const HOST_ROLE: &str = "PODGATEWAY_BENCH_HOST_API";
const HOST_WASM: &str = "PODGATEWAY_BENCH_HOST_WASM";
/// Variables beyond [`variables`] for the harness host process, `name=value` per line.
const HOST_VARIABLES: &str = "PODGATEWAY_BENCH_HOST_VARIABLES";
const WARMUP: usize = 300;
const CONCURRENCY: [usize; 4] = [1, 4, 16, 64];
/// `spin up` options that take one suspect out of Spin's per-request work each.
const SPIN_VARIANTS: [(&str, &[&str]); 3] = [
    ("as above", &[]),
    ("`--disable-pooling` (on-demand instance allocator)", &["--disable-pooling"]),
    ("`--quiet` (component output not echoed to the terminal; still in the log file)", &["--quiet"]),
];
const API_LATENCY: [Duration; 2] = [Duration::ZERO, Duration::from_millis(20)];
/// Sender authentication as `deploy/` turns it on: the audience, and the Trigger whose token
/// the broker sends.
const AUTH_AUDIENCE: &str = "podgateway-client-provisioner";
const SENDER_NAMESPACE: &str = "podgateway-system";
const SENDER: &str = "client-provisioner-oidc-eventing.knative.dev-trigger";
/// The sender's token, issued by the fake API server once it runs.
static SENDER_TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
const RESULTS_START: &str = "<!-- benchmark results: start (written by `cargo bench --bench provisioner -- --markdown BENCHMARKS.md`) -->";
const RESULTS_END: &str = "<!-- benchmark results: end -->";

fn main() -> anyhow::Result<()> {
    if let Ok(api_url) = std::env::var(HOST_ROLE) {
        return host_process(&api_url);
    }
    let (options, markdown) = Options::parse()?;
    let report = run(&options)?;
    print!("{report}");
    if let Some(path) = &markdown {
        write_markdown(path, &report)?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Options {
    requests: usize,
    seconds: f64,
}

impl Options {
    /// The options, and where to write the Markdown results, if anywhere.
    fn parse() -> anyhow::Result<(Self, Option<PathBuf>)> {
        let mut options = Options { requests: 10_000, seconds: 8.0 };
        let mut markdown = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--requests" => options.requests = args.next().context("--requests N")?.parse()?,
                "--seconds" => options.seconds = args.next().context("--seconds S")?.parse()?,
                "--markdown" => markdown = Some(PathBuf::from(args.next().context("--markdown PATH")?)),
                "--quick" => (options.requests, options.seconds) = (1000, 2.0),
                // `cargo bench` passes `--bench`; a filter may follow it.
                "--bench" => {}
                other if other.starts_with('-') => bail!("unknown option {other}"),
                _ => {}
            }
        }
        Ok((options, markdown))
    }
}

// ---------------------------------------------------------------------------------------
// The harness host, in a child process. It answers `samples` on stdin; EOF ends it.

fn host_process(api_url: &str) -> anyhow::Result<()> {
    let wasm = std::env::var(HOST_WASM).context(HOST_WASM)?;
    let extra = std::env::var(HOST_VARIABLES).unwrap_or_default();
    let extra: Vec<(&str, &str)> = extra.lines().filter_map(|line| line.split_once('=')).collect();
    let app = spin_app(api_url, &extra)?;
    let stats = Arc::new(InstanceStats::default());
    let options = HostOptions { keep_logs: false, stats: Some(stats.clone()) };
    let host = SpinHost::start_with(&wasm, app, options)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", host.base_url())?;
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
            other => writeln!(out, "unknown command {other:?}")?,
        }
        out.flush()?;
    }
    drop(host);
    Ok(())
}

/// The variables every host gets: the fake API server and its token, and `extra`.
fn variables(api_url: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = vec![("k8s_api_url".into(), api_url.into()), ("k8s_token".into(), FakeKube::TOKEN.into())];
    all.extend(extra.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
    all
}

fn manifest_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("spin.toml")
}

/// spin.toml's application, with the fake API server and its token.
fn spin_app(api_url: &str, extra: &[(&str, &str)]) -> anyhow::Result<SpinApp> {
    SpinApp::from_manifest(manifest_path(), variables(api_url, extra))
}

/// The parent's handle on the harness host process.
struct HostProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    base_url: String,
}

impl HostProcess {
    fn spawn(wasm: &Path, api_url: &str, extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        let extra: Vec<String> = extra.iter().map(|(name, value)| format!("{name}={value}")).collect();
        let mut child = Command::new(std::env::current_exe()?)
            .env(HOST_ROLE, api_url)
            .env(HOST_WASM, wasm)
            .env(HOST_VARIABLES, extra.join("\n"))
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
        Ok(Self { child, stdin, stdout, base_url })
    }

    /// The instances measured since the last call, once the guests still running are done.
    fn samples(&mut self) -> anyhow::Result<Vec<InstanceSample>> {
        std::thread::sleep(Duration::from_millis(100));
        writeln!(self.stdin, "samples")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let count: usize = line.trim().strip_prefix("samples ").context("samples")?.parse()?;
        let mut samples = Vec::with_capacity(count);
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
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A host under measurement.
enum Host {
    Harness(HostProcess),
    Spin(SpinUp),
}

impl Host {
    fn base_url(&self) -> String {
        match self {
            Host::Harness(host) => host.base_url.clone(),
            Host::Spin(spin) => spin.base_url(),
        }
    }

    /// The host's processes: the harness process, or `spin up` and its trigger process.
    fn pids(&self) -> Vec<u32> {
        match self {
            Host::Harness(host) => vec![host.child.id()],
            Host::Spin(spin) => spin.pids(),
        }
    }

    /// Per-instance measurements, which only the harness host can make.
    fn samples(&mut self) -> anyhow::Result<Option<Vec<InstanceSample>>> {
        match self {
            Host::Harness(host) => host.samples().map(Some),
            Host::Spin(_) => Ok(None),
        }
    }

    /// VmRSS and VmHWM summed over the host's processes, KiB (Linux).
    fn memory_kib(&self) -> Option<(u64, u64)> {
        let mut total = (0, 0);
        for pid in self.pids() {
            let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let field = |name: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(name))
                    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            };
            total = (total.0 + field("VmRSS:")?, total.1 + field("VmHWM:")?);
        }
        Some(total)
    }

    /// Linux: "5" resets the peak resident set (VmHWM) to the current one.
    fn reset_peak(&self) -> bool {
        self.pids().iter().all(|pid| std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok())
    }
}

/// Which host, and how to start it.
#[derive(Clone)]
enum HostKind {
    Harness,
    Spin(SpinBinary),
}

impl HostKind {
    fn title(&self) -> String {
        match self {
            HostKind::Harness => "harness (wasmtime 48)".into(),
            HostKind::Spin(binary) => format!("Spin {}", binary.version),
        }
    }

    /// The host, with `extra` variables.
    fn start(&self, wasm: &Path, api_url: &str, extra: &[(&str, &str)]) -> anyhow::Result<Host> {
        match self {
            HostKind::Harness => Ok(Host::Harness(HostProcess::spawn(wasm, api_url, extra)?)),
            HostKind::Spin(binary) => Ok(Host::Spin(start_spin(binary, wasm, api_url, &[], extra)?)),
        }
    }
}

/// `spin up` of the project's spin.toml, with `options` added to its command line.
fn start_spin(
    binary: &SpinBinary,
    wasm: &Path,
    api_url: &str,
    options: &[&str],
    extra: &[(&str, &str)],
) -> anyhow::Result<SpinUp> {
    let text = std::fs::read_to_string(manifest_path())?;
    let text = manifest::with_source(&text, wasm, None)?;
    SpinUp::start_with(binary, &text, &variables(api_url, extra), options)
}

// ---------------------------------------------------------------------------------------
// The measurements.

/// One latency path's requests: (client latency, the API server's time on its calls).
struct LatencyRow {
    case: Case,
    samples: Vec<(Duration, Duration)>,
    unexpected: usize,
    api_connections: usize,
    /// The harness host's per-instance figures (none for real Spin).
    instances: Option<Vec<InstanceSample>>,
}

struct ThroughputRow {
    api_latency: Duration,
    concurrency: usize,
    run: LoadRun,
    created: usize,
    not_200: usize,
}

/// Everything measured under one host.
struct HostResults {
    title: String,
    latency: Vec<LatencyRow>,
    throughput: Vec<ThroughputRow>,
    /// (when, resident set in KiB; `None` where it could not be read)
    memory: Vec<(String, Option<u64>)>,
}

fn run(options: &Options) -> anyhow::Result<String> {
    let started = Instant::now();
    let load_at_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    eprintln!("building the release component (as `spin build` does)...");
    let wasm = component::release_component()?;
    let size = std::fs::metadata(&wasm)?.len();

    let kube = FakeKube::start_empty();
    kube.add_namespace("default");
    // Routed by a pod-gateway release, as in a cluster: the created path is create + gate removal.
    kube.label_namespace("default", "routed-gateway", "true");
    kube.add_webhook(podgateway_test_harness::PodGatewayWebhook::chart_7("foo"));
    kube.add_token(FakeKube::TOKEN, FakeKube::USER);
    kube.grant(FakeKube::USER, &podgateway_client_provisioner::kube::POD_VERBS, Some("default"));
    kube.grant_on(FakeKube::USER, "authentication.k8s.io", "tokenreviews", &["create"], None);
    let token = kube.issue_token(SENDER_NAMESPACE, SENDER, &[AUTH_AUDIENCE], Duration::from_secs(6 * 3600));
    SENDER_TOKEN.set(token).map_err(|_| anyhow::anyhow!("the sender token is set once"))?;

    let spins = SpinBinary::from_env()?;
    if spins.is_empty() {
        eprintln!("no Spin CLI ($SPIN_BIN or spin on PATH): measuring the harness host only");
    }
    let kinds = std::iter::once(HostKind::Harness).chain(spins.iter().cloned().map(HostKind::Spin));
    let mut results = Vec::new();
    let mut authenticated = Vec::new();
    for kind in kinds {
        eprintln!("== {} ==", kind.title());
        let starting = Instant::now();
        let mut host = kind.start(&wasm, &kube.url(), &[])?;
        let startup = starting.elapsed();
        results.push(measure(&kind, startup, &mut host, &kube, options)?);
        drop(host);
        let mut rows = Vec::new();
        for case in [Case::CreatedSenderRemembered, Case::CreatedSenderReviewed] {
            eprintln!("== {}, {} ==", kind.title(), case.name());
            let mut host = kind.start(&wasm, &kube.url(), &case.auth_variables())?;
            let quick = Options { requests: options.requests / 4, ..*options };
            rows.extend(latency_rows(&mut host, &kube, &quick, &[case])?);
            kube.clear_pods();
        }
        authenticated.push((kind.title(), rows));
    }
    let mut variants = Vec::new();
    for binary in &spins {
        for (name, spin_options) in SPIN_VARIANTS {
            eprintln!("== Spin {}, {name} ==", binary.version);
            let mut host = Host::Spin(start_spin(binary, &wasm, &kube.url(), spin_options, &[])?);
            let quick = Options { requests: options.requests / 4, ..*options };
            variants.push((
                format!("Spin {}", binary.version),
                name,
                latency_rows(&mut host, &kube, &quick, &Case::PATHS)?,
            ));
            kube.clear_pods();
        }
    }

    let mut report = String::new();
    writeln!(report, "{}", machine_section(options, &load_at_start, &spins))?;
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
    overhead_section(&mut report, &results, options)?;
    authentication_section(&mut report, &results, &authenticated, options)?;
    variants_section(&mut report, &variants, options)?;
    instances_section(&mut report, &results)?;
    throughput_section(&mut report, &results, options)?;
    memory_section(&mut report, &results)?;
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

fn measure(
    kind: &HostKind,
    startup: Duration,
    host: &mut Host,
    kube: &FakeKube,
    options: &Options,
) -> anyhow::Result<HostResults> {
    let mut memory = vec![(
        format!("idle, component compiled and ready (startup {:.0} ms)", startup.as_secs_f64() * 1e3),
        host.memory_kib().map(|(rss, _)| rss),
    )];
    let latency = latency_rows(host, kube, options, &Case::PATHS)?;
    kube.clear_pods();
    memory.push(("after the latency runs".into(), host.memory_kib().map(|(rss, _)| rss)));
    let throughput = throughput_rows(host, kube, options, &mut memory)?;
    Ok(HostResults { title: kind.title(), latency, throughput, memory })
}

/// Per-event latency, one connection, one request at a time, for each path.
fn latency_rows(
    host: &mut Host,
    kube: &FakeKube,
    options: &Options,
    cases: &[Case],
) -> anyhow::Result<Vec<LatencyRow>> {
    let mut connection = Connection::open(&host.base_url())?;
    let mut rows = Vec::new();
    for &case in cases {
        eprintln!("latency: {} ({} requests)...", case.name(), options.requests);
        // Warm-up: its own ids; the redelivery warm-up redelivers the created warm-up's. No
        // pause between it and the measurement (a pause makes the next request slower).
        host.samples()?;
        for i in 0..WARMUP {
            let answer = connection.post(&case.post(&format!("warm-{i}")))?;
            ensure!(answer.status == case.status(), "{}: warm-up answered {}", case.name(), answer.status);
        }
        kube.take_requests();
        let mut samples = Vec::with_capacity(options.requests);
        let mut unexpected = 0;
        let mut api_connections = BTreeSet::new();
        for i in 0..options.requests {
            let answer = connection.post(&case.post(&format!("lat-{i}")))?;
            let calls = kube.take_requests();
            let statuses: Vec<u16> = calls.iter().filter_map(|c| c.status).collect();
            if answer.status != case.status() || statuses != case.api_statuses() {
                unexpected += 1;
            }
            api_connections.extend(calls.iter().map(|c| c.connection));
            let server: Duration = calls.iter().map(|c| c.server_time).sum();
            samples.push((answer.latency, server));
        }
        // One request at a time: the host records instances in request order.
        let instances = host.samples()?.map(|mut instances| {
            instances.drain(..WARMUP.min(instances.len()));
            instances
        });
        rows.push(LatencyRow {
            case,
            samples,
            unexpected,
            api_connections: api_connections.len(),
            instances,
        });
    }
    Ok(rows)
}

/// Pending → created at each API latency and concurrency; adds the memory rows at 64.
fn throughput_rows(
    host: &mut Host,
    kube: &FakeKube,
    options: &Options,
    memory: &mut Vec<(String, Option<u64>)>,
) -> anyhow::Result<Vec<ThroughputRow>> {
    let mut rows = Vec::new();
    for api_latency in API_LATENCY {
        kube.set_latency(api_latency);
        for concurrency in CONCURRENCY {
            eprintln!("throughput: API +{} ms, concurrency {concurrency}...", api_latency.as_millis());
            let peak_reset = concurrency == 64 && host.reset_peak();
            let tag = format!("tp{}-c{concurrency}", api_latency.as_millis());
            let make: MakeRequest = Arc::new(move |i| Case::Created.post(&format!("{tag}-{i}")));
            let mut load = Load::connect(&host.base_url(), concurrency)?;
            load.warm_up(&make)?;
            kube.take_requests();
            let run = load.run_for(Duration::from_secs_f64(options.seconds), &make)?;
            let created = kube.take_requests().iter().filter(|c| c.status == Some(201)).count();
            kube.clear_pods();
            host.samples()?;
            let not_200 = run.answers.iter().filter(|a| a.status != 200).count();
            if concurrency == 64 {
                let figures = host.memory_kib();
                let ms = api_latency.as_millis();
                memory.push((
                    format!("concurrency 64, API +{ms} ms: peak (VmHWM) during the run"),
                    figures.filter(|_| peak_reset).map(|(_, hwm)| hwm),
                ));
                memory.push((
                    format!("concurrency 64, API +{ms} ms: after the run (VmRSS)"),
                    figures.map(|(rss, _)| rss),
                ));
            }
            rows.push(ThroughputRow { api_latency, concurrency, run, created, not_200 });
        }
    }
    kube.set_latency(Duration::ZERO);
    Ok(rows)
}

// ---------------------------------------------------------------------------------------
// The report.

fn overhead_section(report: &mut String, results: &[HostResults], options: &Options) -> anyhow::Result<()> {
    writeln!(
        report,
        "### Per-event overhead (one request at a time, keep-alive connection, fresh instance per request)\n"
    )?;
    writeln!(
        report,
        "Overhead = latency seen by the client − time the fake API server spent on the request's API calls. \
         {} requests per path after {WARMUP} warm-up requests; times in ms, p50 / p99 / max.\n",
        thousands(options.requests as u64)
    )?;
    let titles: Vec<&str> = results.iter().map(|r| r.title.as_str()).collect();
    writeln!(
        report,
        "| path | API calls | {} |",
        titles.iter().map(|t| format!("**{t}**")).collect::<Vec<_>>().join(" | ")
    )?;
    writeln!(report, "|---|---|{}", "---|".repeat(titles.len()))?;
    let Some(first) = results.first() else { return Ok(()) };
    for (i, row) in first.latency.iter().enumerate() {
        let cells: Vec<String> = results
            .iter()
            .map(|r| Stats::of(r.latency[i].samples.iter().map(|s| s.0.saturating_sub(s.1))).ms3())
            .collect();
        writeln!(report, "| {} | {} | {} |", row.case.name(), row.case.calls(), cells.join(" | "))?;
    }
    writeln!(report)?;
    for result in results {
        writeln!(
            report,
            "**{}**: the host keeps its outbound connections to the API open; the last column counts the connections a path's requests used.\n",
            result.title
        )?;
        writeln!(
            report,
            "| path | client latency | API server time | overhead | unexpected answers | API connections |"
        )?;
        writeln!(report, "|---|---|---|---|---:|---:|")?;
        for row in &result.latency {
            let latency = Stats::of(row.samples.iter().map(|s| s.0));
            let server = Stats::of(row.samples.iter().map(|s| s.1));
            let overhead = Stats::of(row.samples.iter().map(|s| s.0.saturating_sub(s.1)));
            writeln!(
                report,
                "| {} | {} | {} | {} | {} | {} |",
                row.case.name(),
                latency.ms3(),
                server.ms3(),
                overhead.ms3(),
                row.unexpected,
                row.api_connections
            )?;
        }
        writeln!(report)?;
    }
    Ok(())
}

fn authentication_section(
    report: &mut String,
    results: &[HostResults],
    authenticated: &[(String, Vec<LatencyRow>)],
    options: &Options,
) -> anyhow::Result<()> {
    writeln!(report, "### Sender authentication: what it costs per event\n")?;
    writeln!(
        report,
        "pending → created with `auth_audience` set and the sender's token in `Authorization` (a Trigger's \
         service-account token, as the broker sends it), each host started again with those variables; {} \
         requests per path after {WARMUP} warm-up requests (the warm-up reviews the token once). Overhead in ms, \
         p50 / p99 / max; the API server's time, the TokenReview's included, is not in it.\n",
        thousands((options.requests / 4) as u64)
    )?;
    writeln!(report, "| host | no authentication | {} |", Case::AUTH.map(|c| c.name()).join(" | "))?;
    writeln!(report, "|---|---|{}", "---|".repeat(Case::AUTH.len()))?;
    writeln!(
        report,
        "| API calls per event | {} | {} |",
        Case::Created.calls(),
        Case::AUTH.map(|c| c.calls()).join(" | ")
    )?;
    for ((title, rows), result) in authenticated.iter().zip(results) {
        let overhead =
            |row: &LatencyRow| Stats::of(row.samples.iter().map(|s| s.0.saturating_sub(s.1))).ms3();
        let plain =
            result.latency.iter().find(|row| row.case == Case::Created).map(overhead).unwrap_or_default();
        let cells: Vec<String> = rows.iter().map(overhead).collect();
        writeln!(report, "| {title} | {plain} | {} |", cells.join(" | "))?;
    }
    let unexpected: usize = authenticated.iter().flat_map(|(_, rows)| rows).map(|row| row.unexpected).sum();
    writeln!(
        report,
        "\nUnexpected answers or API calls in these runs: {unexpected} (every remembered request made no TokenReview, \
         every reviewed one exactly one).\n"
    )?;
    Ok(())
}

fn variants_section(
    report: &mut String,
    variants: &[(String, &str, Vec<LatencyRow>)],
    options: &Options,
) -> anyhow::Result<()> {
    if variants.is_empty() {
        return Ok(());
    }
    writeln!(report, "### Where real Spin spends the time: one suspect off at a time\n")?;
    writeln!(
        report,
        "Per-event overhead (ms, p50 / p99 / max) under `spin up` started with other options, {} requests per path, \
         each variant a fresh `spin up` measured right after the others.\n",
        thousands((options.requests / 4) as u64)
    )?;
    let Some((_, _, first)) = variants.first() else { return Ok(()) };
    let cases: Vec<Case> = first.iter().map(|row| row.case).collect();
    writeln!(
        report,
        "| Spin | variant | {} |",
        cases.iter().map(|c| c.name()).collect::<Vec<_>>().join(" | ")
    )?;
    writeln!(report, "|---|---|{}", "---|".repeat(cases.len()))?;
    for (spin, variant, rows) in variants {
        let cells: Vec<String> = rows
            .iter()
            .map(|row| Stats::of(row.samples.iter().map(|s| s.0.saturating_sub(s.1))).ms3())
            .collect();
        writeln!(report, "| {spin} | {variant} | {} |", cells.join(" | "))?;
    }
    writeln!(report)?;
    Ok(())
}

fn instances_section(report: &mut String, results: &[HostResults]) -> anyhow::Result<()> {
    for result in results {
        if result.latency.iter().all(|row| row.instances.is_none()) {
            continue;
        }
        writeln!(
            report,
            "### Instances under the {} host (measured by the host, per request)\n",
            result.title
        )?;
        writeln!(
            report,
            "Instantiation = `ProxyPre::instantiate_async` of the pre-compiled, pre-linked component into a new `Store`; \
             run = instantiation + the guest's `handle` call; peak linear memory = the largest size the instance's memory \
             was given (a `ResourceLimiter` on the `Store`). Times in ms. Spin does not expose these.\n"
        )?;
        writeln!(
            report,
            "| path | instances | instantiation p50 / p99 / max | run p50 / p99 / max | peak linear memory (max) |"
        )?;
        writeln!(report, "|---|---:|---|---|---:|")?;
        for row in &result.latency {
            let instances = row.instances.as_deref().unwrap_or_default();
            let instantiate = Stats::of(instances.iter().map(|s| s.instantiate));
            let run = Stats::of(instances.iter().map(|s| s.run));
            let peak = instances.iter().map(|s| s.peak_memory_bytes).max().unwrap_or(0);
            writeln!(
                report,
                "| {} | {} | {} | {} | {} KiB |",
                row.case.name(),
                thousands(instances.len() as u64),
                instantiate.ms3(),
                run.ms3(),
                thousands(peak as u64 / 1024)
            )?;
        }
        writeln!(report)?;
    }
    Ok(())
}

fn throughput_section(report: &mut String, results: &[HostResults], options: &Options) -> anyhow::Result<()> {
    writeln!(report, "### Throughput (pending → created, distinct ids, {} s per run)\n", options.seconds)?;
    writeln!(
        report,
        "Each of *c* keep-alive connections sends its next event as soon as it has the answer. \
         Before each run, every connection sends one event that is not counted (a warm-up). \
         The load generator, the fake API server and the host share the machine's cores. \
         Cells: events/s (client latency p50 in ms).\n"
    )?;
    let titles: Vec<&str> = results.iter().map(|r| r.title.as_str()).collect();
    writeln!(
        report,
        "| API latency | concurrency | {} |",
        titles.iter().map(|t| format!("**{t}**")).collect::<Vec<_>>().join(" | ")
    )?;
    writeln!(report, "|---|---:|{}", "---:|".repeat(titles.len()))?;
    let Some(first) = results.first() else { return Ok(()) };
    for (i, row) in first.throughput.iter().enumerate() {
        let cells: Vec<String> = results
            .iter()
            .map(|r| {
                let row = &r.throughput[i];
                let p50 = Stats::of(row.run.answers.iter().map(|a| a.latency)).percentile(50.0);
                format!("{:.0} ({:.1})", row.run.throughput(), p50.as_secs_f64() * 1e3)
            })
            .collect();
        writeln!(
            report,
            "| +{} ms | {} | {} |",
            row.api_latency.as_millis(),
            row.concurrency,
            cells.join(" | ")
        )?;
    }
    writeln!(report)?;
    for result in results {
        writeln!(report, "**{}**:\n", result.title)?;
        writeln!(
            report,
            "| API latency | concurrency | events/s | pods created | client latency p50 / p99 / max (ms) | non-200 / errors |"
        )?;
        writeln!(report, "|---|---:|---:|---:|---|---:|")?;
        for row in &result.throughput {
            let latency = Stats::of(row.run.answers.iter().map(|a| a.latency));
            writeln!(
                report,
                "| +{} ms | {} | {:.0} | {} | {} | {} / {} |",
                row.api_latency.as_millis(),
                row.concurrency,
                row.run.throughput(),
                thousands(row.created as u64),
                latency.ms3(),
                row.not_200,
                row.run.errors
            )?;
        }
        writeln!(report)?;
    }
    Ok(())
}

fn memory_section(report: &mut String, results: &[HostResults]) -> anyhow::Result<()> {
    writeln!(report, "### Host process memory (resident set)\n")?;
    writeln!(
        report,
        "For real Spin, the sum of its two processes: `spin up` and the `spin trigger http` process it \
         starts, which serves. VmHWM is each process's own peak, summed.\n"
    )?;
    let titles: Vec<&str> = results.iter().map(|r| r.title.as_str()).collect();
    writeln!(report, "| when | {} |", titles.join(" | "))?;
    writeln!(report, "|---|{}", "---:|".repeat(titles.len()))?;
    let Some(first) = results.first() else { return Ok(()) };
    for (i, (when, _)) in first.memory.iter().enumerate() {
        // The startup time differs per host: name it in each cell of the first row.
        let when = if i == 0 { "idle, component compiled and ready (startup)" } else { when.as_str() };
        let cells: Vec<String> = results
            .iter()
            .map(|r| {
                let (label, kib) = &r.memory[i];
                let figure = kib.map_or("n/a".to_owned(), |kib| format!("{} MiB", mib(kib)));
                match (i, label.split_once("(startup ")) {
                    (0, Some((_, startup))) => format!("{figure} ({})", startup.trim_end_matches(')')),
                    _ => figure,
                }
            })
            .collect();
        writeln!(report, "| {when} | {} |", cells.join(" | "))?;
    }
    writeln!(report)?;
    Ok(())
}

/// The four request paths of the per-event measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Unknown,
    Created,
    Redelivered,
    Failed,
    /// Created, with the sender's token remembered in the key-value store.
    CreatedSenderRemembered,
    /// Created, with the sender's token reviewed on every request (`auth_cache_seconds = 0`).
    CreatedSenderReviewed,
}

impl Case {
    /// The paths measured without authentication.
    const PATHS: [Case; 4] = [Case::Unknown, Case::Created, Case::Redelivered, Case::Failed];
    const AUTH: [Case; 2] = [Case::CreatedSenderRemembered, Case::CreatedSenderReviewed];

    fn name(self) -> &'static str {
        match self {
            Case::Unknown => "unknown type → 204",
            Case::Created => "pending → created, gate removed",
            Case::Redelivered => "pending → AlreadyExists → GET (redelivery)",
            Case::Failed => "pending → failed (invalid gateway)",
            Case::CreatedSenderRemembered => "sender's token remembered (`auth_cache_seconds` 300)",
            Case::CreatedSenderReviewed => "sender's token reviewed every time (`auth_cache_seconds` 0)",
        }
    }

    fn calls(self) -> &'static str {
        match self {
            Case::Unknown | Case::Failed => "none",
            Case::Created | Case::CreatedSenderRemembered => "POST 201, PATCH 200",
            Case::Redelivered => "POST 409, GET 200",
            Case::CreatedSenderReviewed => "TokenReview 201, POST 201, PATCH 200",
        }
    }

    /// The variables of a host for this case.
    fn auth_variables(self) -> Vec<(&'static str, &'static str)> {
        let cache_seconds = if self == Case::CreatedSenderReviewed { "0" } else { "300" };
        vec![("auth_audience", AUTH_AUDIENCE), ("auth_cache_seconds", cache_seconds)]
    }

    fn status(self) -> u16 {
        if self == Case::Unknown { 204 } else { 200 }
    }

    fn api_statuses(self) -> &'static [u16] {
        match self {
            Case::Unknown | Case::Failed => &[],
            Case::Created | Case::CreatedSenderRemembered => &[201, 200],
            Case::Redelivered => &[409, 200],
            Case::CreatedSenderReviewed => &[201, 201, 200],
        }
    }

    /// The event; the redelivery uses the created path's ids again.
    fn post(self, id: &str) -> Post {
        let (event_type, data) = match self {
            Case::Unknown => ("com.example.other", r#"{"gateway_name":"foo"}"#),
            Case::Created
            | Case::Redelivered
            | Case::CreatedSenderRemembered
            | Case::CreatedSenderReviewed => (PENDING, r#"{"gateway_name":"foo"}"#),
            Case::Failed => (PENDING, r#"{"gateway_name":"not valid!"}"#),
        };
        let source = match self {
            Case::Failed => "urn:bench:failed",
            Case::Unknown => "urn:bench:unknown",
            _ => "urn:bench",
        };
        let mut headers: Vec<(String, String)> = [
            ("ce-specversion", "1.0"),
            ("ce-id", id),
            ("ce-source", source),
            ("ce-type", event_type),
            ("content-type", "application/json"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
        if Case::AUTH.contains(&self) {
            let token = SENDER_TOKEN.get().map_or("", String::as_str);
            headers.push(("authorization".into(), format!("Bearer {token}")));
        }
        Post { headers, body: data.as_bytes().to_vec().into() }
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

fn machine_section(options: &Options, loadavg: &str, spins: &[SpinBinary]) -> String {
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
            "`SPIN_BIN=… cargo bench --bench provisioner -- --markdown BENCHMARKS.md` ({} requests per path, {} s per throughput run)",
            thousands(options.requests as u64),
            options.seconds
        ),
    );
    fields.insert("5 load average at start", first3(loadavg));
    let spins: Vec<String> = spins
        .iter()
        .map(|s| {
            format!(
                "Spin {} (`{}`: {})",
                s.version,
                s.path.display(),
                command_output(&s.path.to_string_lossy(), &["--version"])
            )
        })
        .collect();
    fields.insert(
        "6 real Spin",
        if spins.is_empty() {
            "none found ($SPIN_BIN or spin on PATH): not measured".into()
        } else {
            spins.join("; ")
        },
    );
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

//! The `snoopsim` command line.

use clap::{Parser, Subcommand, ValueEnum};
use snoopsim::run::{run_loaded, RunOptions};
use snoopsim::scenario::values::{GenNumber, Lanes, PayloadSize};
use snoopsim::scenario::{self, Loaded};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit code for a bad scenario or bad arguments (clap uses 2 for usage errors too).
const EXIT_BAD_INPUT: u8 = 2;
/// Exit code for a failed run or an unwritable report.
const EXIT_FAILED: u8 = 1;

/// The showcase that `snoopsim demo` runs (also shipped as a scenario file).
const DEMO: &str = include_str!("../../scenarios/demo-mps-sweep.json");

#[derive(Parser, Debug)]
#[command(
    name = "snoopsim",
    version,
    about = "Cycle-level simulator of PCIe DMA through an IOMMU into MESI CPU caches",
    long_about = "Cycle-level, discrete-event simulator of PCIe TLPs flowing through an IOMMU \
into a MESI-coherent CPU cache hierarchy. It measures DMA latency and throughput and, byte by \
byte, the corruption that No-Snoop DMA, IOMMU snoop control and CPU cache flushes cause or \
prevent.",
    after_help = "Examples:
  snoopsim demo                                   run the built-in showcase
  snoopsim run scenarios/stream-write-gen3x8.json  run a scenario, print a summary
  snoopsim run scenarios/*.json --out results      run several, reports into results/
  snoopsim run s.json --format json --reproducible print the JSON report, wall_ms = 0
  snoopsim run sweep.json --format csv             print the variants side by side as CSV
  snoopsim validate scenarios/*.json               check files without running them
  snoopsim tlp decode '40001001 0100000f 00001000 78563412'
                                                   the fields of a TLP (add --json for JSON)
  snoopsim tlp encode '{\"kind\":\"MRd64\",\"requester_id\":\"01:00.0\",\"tag\":5,
                        \"length_dw\":16,\"address\":\"0x1_0000_0000\"}'
  snoopsim link-model --gen 3 --lanes 8 --mps 256 --mrrs 512
                                                   analytic DMA bandwidth per transfer size
  snoopsim verify                                  check the MESI protocol (release build)
  snoopsim bench engine                            events per second of the engine

Exit codes: 0 success, 2 bad input (the message names file:line:column and JSON path),
1 a run or a report write failed."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run scenarios and write a JSON and a CSV report for each into --out.
    Run {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Directory for the JSON and CSV reports (created if missing).
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// What to print on stdout.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Write wall_ms as 0 so the same scenario gives a byte-identical report.
        #[arg(long)]
        reproducible: bool,
    },
    /// Check scenario files without running them.
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Run the built-in showcase and print its summary.
    Demo {
        /// Directory for the JSON report.
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
    /// Decode or encode TLP wire bytes (PCIe Base Specification 6.0, §2.2).
    Tlp {
        #[command(subcommand)]
        what: TlpWhat,
    },
    /// Analytic effective DMA bandwidth of one link, per transfer size.
    #[command(name = "link-model")]
    LinkModel(LinkModelArgs),
    /// Check the cache coherence protocol: exhaustive exploration of small configurations
    /// and a seeded random tester (use a release build).
    Verify {
        /// Operations deep to explore (the default explores about 220 000 states).
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=40))]
        depth: u64,
        /// Explore snooped DMA only (proves the invariants; no hazard may appear).
        #[arg(long)]
        snooped_only: bool,
        /// Operations for the random tester (0 to skip it).
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(0..=1_000_000_000))]
        random_ops: u64,
        /// Seed of the random tester.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Benchmarks (use a release build).
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand, Debug)]
enum TlpWhat {
    /// Print the fields of a TLP given as hex (spaces, underscores, newlines and 0x allowed).
    Decode {
        /// The TLP's bytes in hex, header DWs then payload (and ECRC when TD is set).
        hex: String,
        /// Print JSON (which `tlp encode` accepts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the wire bytes of a TLP described in JSON (the fields `tlp decode --json` prints).
    Encode {
        /// The TLP as JSON, e.g. '{"kind": "MRd32", "requester_id": "01:00.0", "length_dw": 1, "address": "0x1000"}'.
        json: String,
    },
}

#[derive(clap::Args, Debug)]
struct LinkModelArgs {
    /// PCIe generation, 1 to 6.
    #[arg(long, value_parser = parse_value::<GenNumber, u32>)]
    gen: u32,
    /// Link width: 1, 2, 4, 8, 12, 16 or 32.
    #[arg(long, value_parser = parse_value::<Lanes, u32>)]
    lanes: u32,
    /// Max_Payload_Size in bytes.
    #[arg(long, default_value_t = 256, value_parser = parse_value::<PayloadSize, u32>)]
    mps: u32,
    /// Max_Read_Request_Size in bytes.
    #[arg(long, default_value_t = 512, value_parser = parse_value::<PayloadSize, u32>)]
    mrrs: u32,
    /// Transfer sizes in bytes, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "64,128,256,512,1024,1500,2048,4096",
        value_parser = clap::value_parser!(u64).range(1..=67_108_864)
    )]
    sizes: Vec<u64>,
    /// Requests carry 64-bit addresses (4-DW headers).
    #[arg(long)]
    addr64: bool,
    /// TLPs received per Ack DLLP.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    ack_every: u32,
    /// TLPs' credits freed per UpdateFC DLLP.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    update_fc_every: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Parses a number and checks it with the scenario format's own range type.
fn parse_value<T, N>(s: &str) -> Result<N, String>
where
    N: std::str::FromStr,
    T: TryFrom<N, Error = String> + Into<N>,
{
    let n: N = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number"))?;
    T::try_from(n).map(Into::into)
}

#[derive(Subcommand, Debug)]
enum BenchWhat {
    /// Events per second: the bare queue and a whole simulation, median of --runs runs.
    Engine {
        /// Timed runs of each figure.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
        /// Events per run of the bare-queue figure.
        #[arg(long, default_value_t = 5_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
        events: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A readable summary.
    Text,
    /// The JSON report.
    Json,
    /// The variants side by side as CSV (one header row, one row per variant).
    Csv,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenarios,
            out,
            format,
            reproducible,
        } => run(&scenarios, &out, format, RunOptions { reproducible }),
        Command::Validate { scenarios } => validate(&scenarios),
        Command::Demo { out } => demo(&out),
        Command::LinkModel(args) => link_model(&args),
        Command::Verify {
            depth,
            snooped_only,
            random_ops,
            seed,
        } => verify(depth as usize, snooped_only, random_ops, seed),
        Command::Tlp { what } => {
            let out = match what {
                TlpWhat::Decode { hex, json } => snoopsim::tlp_cli::decode_hex(&hex, json),
                TlpWhat::Encode { json } => snoopsim::tlp_cli::encode_json(&json),
            };
            match out {
                Ok(text) => {
                    print!("{text}");
                    if !text.ends_with('\n') {
                        println!();
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_BAD_INPUT)
                }
            }
        }
        Command::Bench {
            what: BenchWhat::Engine { runs, events, json },
        } => bench(runs as usize, events, json),
    }
}

/// Loads every file; prints every error; `None` if any failed.
fn load_all(files: &[PathBuf]) -> Option<Vec<Loaded>> {
    let mut ok = Vec::new();
    let mut failed = false;
    for f in files {
        match scenario::load(f) {
            Ok(l) => ok.push(l),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    (!failed).then_some(ok)
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let Some(loaded) = load_all(files) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    for l in &loaded {
        println!(
            "ok: {} ({}, {} variant{})",
            l.file.display(),
            l.scenario.name,
            l.variants.len(),
            if l.variants.len() == 1 { "" } else { "s" }
        );
    }
    ExitCode::SUCCESS
}

/// A file stem from a scenario name: letters, digits, '-', '_' and '.' kept, others '_'.
fn file_stem(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match s.trim_matches('.') {
        "" => "scenario".to_owned(),
        t => t.to_owned(),
    }
}

fn run_one(l: &Loaded, out: &Path, format: Format, opts: RunOptions) -> Result<(), String> {
    let report = run_loaded(l, opts).map_err(|e| format!("{}: {e}", l.file.display()))?;
    for v in &report.variants {
        if v.sim.stop_reason.is_early() {
            eprintln!(
                "warning: {}: variant {} stopped early ({}); its figures cover part of the workload",
                l.file.display(),
                v.name,
                v.sim.stop_reason
            );
        }
    }
    let stem = file_stem(&report.scenario);
    let json_path = reports::write_report_json(out, &stem, &report).map_err(|e| e.to_string())?;
    let csv = reports::render_csv(&report);
    let csv_path = out.join(format!("{stem}.csv"));
    reports::write_atomic(&csv_path, csv.as_bytes()).map_err(|e| e.to_string())?;
    match format {
        Format::Text => {
            print!("{}", reports::render_text(&report));
            println!("report: {}, {}", json_path.display(), csv_path.display());
        }
        Format::Json => print!("{}", reports::render_json(&report)),
        Format::Csv => print!("{csv}"),
    }
    Ok(())
}

fn run(files: &[PathBuf], out: &Path, format: Format, opts: RunOptions) -> ExitCode {
    let Some(loaded) = load_all(files) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let mut code = ExitCode::SUCCESS;
    for (i, l) in loaded.iter().enumerate() {
        if i > 0 && format == Format::Text {
            println!();
        }
        if let Err(e) = run_one(l, out, format, opts) {
            eprintln!("error: {e}");
            code = ExitCode::from(EXIT_FAILED);
        }
    }
    code
}

fn demo(out: &Path) -> ExitCode {
    let loaded = match scenario::parse(Path::new("<built-in demo>"), DEMO) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: the built-in demo is broken: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match run_one(&loaded, out, Format::Text, RunOptions::default()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn verify(depth: usize, snooped_only: bool, random_ops: u64, seed: u64) -> ExitCode {
    use cache::verify;
    let config = verify::ExploreConfig {
        depth,
        no_snoop: !snooped_only,
        ..verify::ExploreConfig::default()
    };
    let t = std::time::Instant::now();
    let explored = verify::explore(&config);
    println!("{explored}");
    println!("(explored in {:.1} s)", t.elapsed().as_secs_f64());
    let mut failed = !explored.violations.is_empty();
    if snooped_only && !explored.hazards.is_empty() {
        eprintln!("error: a hazard was reached with snooped DMA only");
        failed = true;
    }
    if random_ops > 0 {
        let t = std::time::Instant::now();
        let r = verify::random(&verify::RandomConfig {
            seed,
            ops: random_ops,
            ..verify::RandomConfig::default()
        });
        let secs = t.elapsed().as_secs_f64();
        println!("\n{r}");
        println!(
            "({} operations in {secs:.1} s, {:.0} per second)",
            r.ops,
            r.ops as f64 / secs
        );
        failed |= !r.violations.is_empty();
    }
    if failed {
        eprintln!("error: the protocol check found violations");
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

fn link_model(a: &LinkModelArgs) -> ExitCode {
    let link = pcie::LinkGen::from_number(a.gen).and_then(|gen| {
        let dllp = pcie::DllpPolicy {
            ack_every: a.ack_every,
            update_fc_every: a.update_fc_every,
        };
        pcie::LinkConfig::new(gen, a.lanes, model_core::Span::ZERO, dllp)
    });
    let link = match link {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let params = pcie::bandwidth::Params {
        link,
        mps: a.mps,
        mrrs: a.mrrs,
        addr64: a.addr64,
    };
    let rows: Vec<_> = a.sizes.iter().map(|s| params.row(*s)).collect();
    if a.json {
        let v = serde_json::json!({
            "gen": a.gen, "lanes": a.lanes, "mps": a.mps, "mrrs": a.mrrs,
            "addr64": a.addr64, "ack_every": a.ack_every, "update_fc_every": a.update_fc_every,
            "raw_gbps": link.raw_gbps(), "data_gbps": link.data_gbps(), "rows": rows,
        });
        println!("{v:#}");
        return ExitCode::SUCCESS;
    }
    println!(
        "PCIe Gen{} x{}, MPS {}, MRRS {}, {} headers, Ack every {} and UpdateFC every {} TLPs",
        a.gen,
        a.lanes,
        a.mps,
        a.mrrs,
        if a.addr64 { "4-DW" } else { "3-DW" },
        a.ack_every,
        a.update_fc_every
    );
    println!(
        "raw {:.3} GB/s per direction after line encoding; {:.3} GB/s after {}",
        link.raw_gbps(),
        link.data_gbps(),
        if link.gen.flit_mode() {
            "flit overhead"
        } else {
            "SKP ordered sets"
        }
    );
    println!("effective payload bandwidth, GB/s (transfers start 4 KiB-aligned):");
    println!(
        "  {:>8}  {:>8}  {:>8}  {:>8}",
        "size", "write", "read", "mixed"
    );
    for r in &rows {
        println!(
            "  {:>8}  {:>8.3}  {:>8.3}  {:>8.3}",
            r.size, r.write_gbps, r.read_gbps, r.mixed_gbps
        );
    }
    ExitCode::SUCCESS
}

fn bench(runs: usize, events: u64, json: bool) -> ExitCode {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; benchmark figures need `cargo run --release`");
    }
    let queue = snoopsim::bench::queue(events, 64, runs);
    let (system, system_vtd) = match snoopsim::bench::system(runs)
        .and_then(|s| Ok((s, snoopsim::bench::system_vtd(runs)?)))
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    if json {
        let v = serde_json::json!({ "runs": runs, "figures": [queue, system, system_vtd] });
        println!("{v:#}");
    } else {
        println!("engine benchmark, {runs} runs each (events per wall-clock second)");
        for f in [&queue, &system, &system_vtd] {
            let all: Vec<String> = f.runs.iter().map(|r| format!("{:.2}M", r / 1e6)).collect();
            println!(
                "  {:<10} median {:>7.2} M events/s over {} events/run  [{}]",
                f.name,
                f.median / 1e6,
                f.events,
                all.join(", ")
            );
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("ns write/stale read"), "ns_write_stale_read");
        assert_eq!(file_stem(".."), "scenario");
        assert_eq!(file_stem("a.b-c_d"), "a.b-c_d");
    }
}

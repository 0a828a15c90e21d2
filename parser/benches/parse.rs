//! Parse-and-validate throughput on a large generated flight, against pulldown-cmark alone.
//!
//! Run with `cargo bench -p murmur-parser --bench parse`.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use murmur_parser::Dag;

const AGENTS: usize = 10_000;
/// Agents per chain: the first of each chain fans in from earlier chains (or is a root).
const CHAIN: usize = 40;

/// A tiny deterministic generator (64-bit LCG), so the flight is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next()).unwrap_or(0) % bound.max(1)
    }
}

const STEMS: [&str; 8] = [
    "plan", "build", "test", "review", "deploy", "lint", "docs", "audit",
];

fn slug(index: usize) -> String {
    format!("{}-{index:05}", STEMS[index % STEMS.len()])
}

/// The `needs` of every agent: chains of `CHAIN` agents, fan-ins of 3-5 earlier agents every
/// tenth agent and at each chain start, and an occasional independent root.
fn needs_of(rng: &mut Lcg) -> Vec<Vec<usize>> {
    let mut needs: Vec<Vec<usize>> = Vec::with_capacity(AGENTS);
    for index in 0..AGENTS {
        let chain_start = index % CHAIN == 0;
        let fan_in = index >= 5 && (index % 10 == 0 || chain_start) && index % 1000 != 0;
        let mut mine = Vec::new();
        if fan_in {
            let wanted = 3 + rng.below(3);
            while mine.len() < wanted {
                // Mostly recent agents, sometimes anything earlier.
                let candidate = if rng.below(4) == 0 {
                    rng.below(index)
                } else {
                    index - 1 - rng.below(index.min(200))
                };
                if !mine.contains(&candidate) {
                    mine.push(candidate);
                }
            }
        } else if !chain_start {
            mine.push(index - 1);
        }
        needs.push(mine);
    }
    needs
}

/// A flight of `AGENTS` agents exercising every part of the parser that scales with size.
fn generate() -> String {
    let mut rng = Lcg(0x5eed_f1a7);
    let needs = needs_of(&mut rng);
    let mut text = String::with_capacity(AGENTS * 400);
    text.push_str(
        "---\nworkspace: bench-team\nmax_concurrent: 4\ntags: [bench, large]\ninputs:\n  target:\n    description: module to work on\n    required: true\n  depth:\n    default: \"shallow\"\n---\n\n",
    );
    text.push_str(
        "# Ten thousand agents\n\nNotes shown to every agent: keep the public API stable.\n\n",
    );
    for (index, upstream) in needs.iter().enumerate() {
        let me = slug(index);
        let _ = writeln!(text, "## {me}");
        if !upstream.is_empty() {
            let list: Vec<String> = upstream.iter().map(|&u| slug(u)).collect();
            let _ = writeln!(text, "> needs: {}", list.join(", "));
        }
        if index % 97 == 3 {
            text.push_str("> gate: ci, review\n");
        }
        if index % 53 == 7 {
            text.push_str("> out: pr\n");
        }
        if index % 11 == 0 {
            text.push_str("> persona: architect\n");
        }
        let _ = writeln!(
            text,
            "\nWork item {index}: carry the change forward in *{me}* and keep the tests green.\nRead the module carefully before touching it, then write a short plan."
        );
        for &up in upstream {
            let _ = writeln!(
                text,
                "Use the result of {}: ${{{{ needs.{}.response }}}}",
                slug(up),
                slug(up)
            );
        }
        // A reference two hops up: still upstream, but not a direct `needs`.
        if let Some(&grand) = upstream.first().and_then(|&up| needs[up].first()) {
            let _ = writeln!(
                text,
                "Also consider ${{{{ needs.{}.branch }}}}.",
                slug(grand)
            );
        }
        if index % 7 == 0 {
            text.push_str("Focus on ${{ inputs.target }} at ${{ inputs.depth }} depth.\n");
        }
        text.push_str("\n- check the edge cases\n- update `the docs` where needed\n");
        if index % 20 == 0 {
            text.push_str("\n```sh\ncargo test --workspace # ${{ github.sha }}\n```\n");
        }
        text.push('\n');
    }
    text
}

fn parse_and_validate(text: &str) -> usize {
    let parsed = murmur_parser::parse(text, "bench");
    let flight = parsed.flight.as_ref().map_or(0, |flight| {
        Dag::build(&flight.agents).map_or(0, |dag| dag.topological_order().len())
    });
    flight + parsed.diagnostics.len()
}

fn bench(c: &mut Criterion) {
    let text = generate();
    let parsed = murmur_parser::parse(&text, "bench");
    assert!(
        parsed.is_valid(),
        "the generated flight must be valid: {:?}",
        parsed.errors().take(5).collect::<Vec<_>>()
    );
    let flight = parsed.flight.expect("a valid flight has a flight");
    assert_eq!(flight.agents.len(), AGENTS);
    let dag = Dag::build(&flight.agents).expect("the generated flight is acyclic");
    assert_eq!(dag.topological_order().len(), AGENTS);

    c.bench_function("parse_and_validate_10k", |b| {
        b.iter(|| parse_and_validate(black_box(&text)));
    });
    c.bench_function("pulldown_cmark_iterate_10k", |b| {
        b.iter(|| {
            pulldown_cmark::Parser::new(black_box(&text))
                .into_offset_iter()
                .count()
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);

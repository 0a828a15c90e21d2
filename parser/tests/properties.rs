//! Property tests over generated flights: cycle detection agrees with a topological sort, and
//! every valid flight survives a trip through its JSON form unchanged.

use petgraph::algo::toposort;
use petgraph::graph::DiGraph;
use proptest::prelude::*;

/// A generated graph: `edges[i]` lists the agents that agent `i` needs.
fn graphs() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..12)
        .prop_flat_map(|n| proptest::collection::vec(proptest::collection::vec(0..n, 0..3), n))
}

fn render(edges: &[Vec<usize>], forward_only: bool) -> String {
    let mut text = String::from(
        "---\ninputs:\n  goal: { default: ship }\n---\n\n# Generated\n\nNotes for ${{ inputs.goal }}.\n",
    );
    for (index, needs) in edges.iter().enumerate() {
        text.push_str(&format!("\n## agent-{index}\n"));
        let needs: Vec<String> = needs
            .iter()
            .filter(|&&up| !forward_only || up < index)
            .map(|up| format!("agent-{up}"))
            .collect();
        if !needs.is_empty() {
            text.push_str(&format!("> needs: {}\n", needs.join(", ")));
        }
        text.push_str(&format!("\nDo step {index}."));
        if let Some(first) = needs.first() {
            text.push_str(&format!(" Use ${{{{ needs.{first}.response }}}}."));
        }
        text.push('\n');
    }
    text
}

fn has_cycle(edges: &[Vec<usize>]) -> bool {
    let mut graph = DiGraph::<(), ()>::new();
    let nodes: Vec<_> = edges.iter().map(|_| graph.add_node(())).collect();
    for (index, needs) in edges.iter().enumerate() {
        for &up in needs {
            graph.update_edge(nodes[up], nodes[index], ());
        }
    }
    toposort(&graph, None).is_err()
}

proptest! {
    #[test]
    fn cycle_diagnostics_agree_with_toposort(edges in graphs()) {
        let parsed = murmur_parser::parse(&render(&edges, false), "generated");
        let reported = parsed.errors().any(|d| d.code == murmur_parser::Code::Cycle);
        prop_assert_eq!(reported, has_cycle(&edges));
        let flight = parsed.flight.expect("generated flights are readable");
        prop_assert_eq!(murmur_parser::Dag::build(&flight.agents).is_err(), has_cycle(&edges));
    }

    #[test]
    fn valid_flights_round_trip_through_json(edges in graphs()) {
        let parsed = murmur_parser::parse(&render(&edges, true), "generated");
        prop_assert!(parsed.is_valid(), "{:?}", parsed.diagnostics);
        let flight = parsed.flight.expect("valid");
        let json = serde_json::to_string(&flight).expect("serialises");
        let back: murmur_parser::Flight = serde_json::from_str(&json).expect("deserialises");
        prop_assert_eq!(back, flight);
    }

    #[test]
    fn parsing_never_panics(text in "(?s)[-#>:a-z0-9 \\n`${}\\[\\],\"]{0,400}") {
        let _ = murmur_parser::parse(&text, "fuzz");
    }
}

proptest! {
    #[test]
    fn crlf_and_bom_read_the_same(edges in graphs()) {
        let text = render(&edges, true);
        let windows = format!("\u{feff}{}", text.replace('\n', "\r\n"));
        let plain = murmur_parser::parse(&text, "generated");
        let converted = murmur_parser::parse(&windows, "generated");
        prop_assert_eq!(&plain.flight, &converted.flight);
        let lines = |p: &murmur_parser::Parsed| p.diagnostics.iter().map(|d| (d.code, d.line, d.column)).collect::<Vec<_>>();
        prop_assert_eq!(lines(&plain), lines(&converted));
    }
}

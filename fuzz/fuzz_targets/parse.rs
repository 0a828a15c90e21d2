//! Any bytes, read as (lossy) UTF-8, must parse without panicking. When the flight is valid,
//! its DAG must build, every view of the DAG must render, and the flight must survive a trip
//! through its JSON form unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use murmur_parser::{Dag, Flight, graph};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = murmur_parser::parse(&text, "fuzz");
    if !parsed.is_valid() {
        return;
    }
    let Some(flight) = parsed.flight else {
        return;
    };

    let dag = match Dag::build(&flight.agents) {
        Ok(dag) => dag,
        Err(cycle) => panic!("a valid flight has a cycle: {cycle:?}"),
    };
    assert_eq!(dag.topological_order().len(), flight.agents.len());
    assert_eq!(dag.remaining_path_lengths().len(), flight.agents.len());
    assert_eq!(dag.depths().len(), flight.agents.len());
    let _ = graph::mermaid(&flight, &dag);
    let _ = graph::dot(&flight, &dag);
    let _ = graph::text(&flight, &dag);

    let json = serde_json::to_string(&flight).expect("a flight serializes to JSON");
    let back: Flight = serde_json::from_str(&json).expect("a flight's JSON deserializes");
    assert_eq!(
        back, flight,
        "the flight changed in a JSON round trip: {json}"
    );
});

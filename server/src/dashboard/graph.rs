//! The DAG as the pages draw it: one node per agent with its `needs` and `continues` edges,
//! and for a run the fan-out instances the engine created, each named with its template.
//! Instances are found by replaying the run's events through the engine's own model, so the
//! page groups exactly the agents the engine made (slug collisions and all).

use std::collections::HashMap;

use murmur_engine::model::{AgentKind, RunPolicy};
use murmur_engine::store::EventRow;
use murmur_engine::{Event, RunModel};
use murmur_parser::{Dag, Flight};
use serde::Serialize;

/// One agent of the graph.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub slug: String,
    /// For a fan-out instance: its template's slug (the node the page groups it under).
    pub template: Option<String>,
    /// For an instance: the item it works on.
    pub item: Option<String>,
    pub needs: Vec<String>,
    pub continues: Option<String>,
    /// `ci`, `review`, `approve`, `merge`, in order.
    pub gates: Vec<String>,
    /// The template's `each`, as written.
    pub each: Option<String>,
    /// With a run: waits for a person at its `approve` gate.
    pub awaiting_approval: bool,
}

/// The flight's agents, without a run.
pub fn of_flight(flight: &Flight) -> Vec<Node> {
    flight.agents.iter().map(node_of).collect()
}

fn node_of(agent: &murmur_parser::Agent) -> Node {
    Node {
        slug: agent.slug.clone(),
        template: None,
        item: None,
        needs: agent.needs.clone(),
        continues: agent.continues.clone(),
        gates: agent
            .gate
            .iter()
            .map(|g| gate_name(*g).to_owned())
            .collect(),
        each: agent.each.clone(),
        awaiting_approval: false,
    }
}

fn gate_name(gate: murmur_parser::Gate) -> &'static str {
    match gate {
        murmur_parser::Gate::Ci => "ci",
        murmur_parser::Gate::Review => "review",
        murmur_parser::Gate::Approve => "approve",
        murmur_parser::Gate::Merge => "merge",
    }
}

/// The run's agents: the flight's, then the instances its events created.
pub fn of_run(flight: &Flight, rows: &[EventRow]) -> Vec<Node> {
    let mut nodes = of_flight(flight);
    let events: Vec<Event> = rows
        .iter()
        .filter(|row| row.kind != "agent_output")
        .filter_map(|row| serde_json::from_str(&row.data).ok())
        .collect();
    if let Ok(dag) = Dag::build(&flight.agents) {
        let mut model = RunModel::new(&flight.agents, &dag, RunPolicy::of(&flight.frontmatter));
        for event in &events {
            // A refused event changes nothing in the model; the page shows what replays.
            let _ = model.apply(event);
        }
        let agents = model.agents();
        for agent in agents.iter().skip(flight.agents.len()) {
            if let AgentKind::Instance { template, item } = &agent.kind {
                let template = &nodes[*template];
                nodes.push(Node {
                    slug: agent.slug.clone(),
                    template: Some(template.slug.clone()),
                    item: Some(item.clone()),
                    each: None,
                    ..template.clone()
                });
            }
        }
    }
    let waiting = awaiting_approval(&events);
    for node in &mut nodes {
        node.awaiting_approval = waiting.get(&node.slug).copied().unwrap_or(false);
    }
    nodes
}

/// Per agent, whether its latest gate event opened an `approve` gate.
fn awaiting_approval(events: &[Event]) -> HashMap<String, bool> {
    let mut waiting = HashMap::new();
    for event in events {
        match event {
            Event::GateOpened { slug, gate, .. } => {
                let approve = *gate == murmur_engine::event::GateKind::Approve;
                waiting.insert(slug.clone(), approve);
            }
            Event::GatePassed { slug, .. }
            | Event::GateFailed { slug, .. }
            | Event::AgentCanceled { slug }
            | Event::AgentStarted { slug, .. } => {
                waiting.insert(slug.clone(), false);
            }
            Event::RunCanceled { .. } => waiting.clear(),
            _ => {}
        }
    }
    waiting
}

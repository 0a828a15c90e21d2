//! Text renderings of a flight's DAG: Mermaid, Graphviz DOT and a plain outline.

use std::fmt::Write;

use crate::dag::{Dag, Edge};
use crate::flight::{Agent, Flight};

/// The label of the single agent of a zero-agent flight.
pub const ROOT: &str = "root";

pub fn mermaid(flight: &Flight, dag: &Dag) -> String {
    let mut out = String::from("flowchart TD\n");
    if flight.is_zero_agent() {
        let _ = writeln!(out, "    {ROOT}[\"{}\"]", escape_mermaid(&flight.title));
        return out;
    }
    for agent in &flight.agents {
        let _ = writeln!(
            out,
            "    {}[\"{}\"]",
            node_id(&agent.slug),
            escape_mermaid(&label(agent))
        );
    }
    for (index, agent) in flight.agents.iter().enumerate() {
        for (up, edge) in dag.upstreams(index) {
            let from = node_id(&flight.agents[up].slug);
            let to = node_id(&agent.slug);
            match edge {
                Edge::Needs => writeln!(out, "    {from} --> {to}"),
                Edge::Continues => writeln!(out, "    {from} -. continues .-> {to}"),
            }
            .ok();
        }
    }
    out
}

pub fn dot(flight: &Flight, dag: &Dag) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n    rankdir=TB;\n    node [shape=box];\n",
        escape_dot(&flight.title)
    );
    if flight.is_zero_agent() {
        let _ = writeln!(out, "    \"{ROOT}\";");
    }
    for agent in &flight.agents {
        let _ = writeln!(
            out,
            "    \"{}\" [label=\"{}\"];",
            agent.slug,
            escape_dot(&label(agent))
        );
    }
    for (index, agent) in flight.agents.iter().enumerate() {
        for (up, edge) in dag.upstreams(index) {
            let style = match edge {
                Edge::Needs => "",
                Edge::Continues => " [style=dashed, label=\"continues\"]",
            };
            let _ = writeln!(
                out,
                "    \"{}\" -> \"{}\"{style};",
                flight.agents[up].slug, agent.slug
            );
        }
    }
    out.push_str("}\n");
    out
}

/// One line per agent in run order, indented by depth, with what it waits for.
pub fn text(flight: &Flight, dag: &Dag) -> String {
    let mut out = format!("{}\n", flight.title);
    if flight.is_zero_agent() {
        let _ = writeln!(
            out,
            "  {ROOT} (zero-agent flight: one agent does the whole job)"
        );
        return out;
    }
    let depths = dag.depths();
    for &index in dag.topological_order() {
        let agent = &flight.agents[index];
        let indent = "  ".repeat(depths[index] + 1);
        let mut line = format!("{indent}{}", label(agent));
        let waits: Vec<String> = dag
            .upstreams(index)
            .iter()
            .map(|(up, edge)| match edge {
                Edge::Needs => flight.agents[*up].slug.clone(),
                Edge::Continues => format!("continues {}", flight.agents[*up].slug),
            })
            .collect();
        if !waits.is_empty() {
            let _ = write!(line, "  <- {}", waits.join(", "));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn label(agent: &Agent) -> String {
    let mut label = agent.slug.clone();
    if let Some(each) = &agent.each {
        let _ = write!(label, " (each: {each})");
    }
    if !agent.gate.is_empty() {
        let gates: Vec<String> = agent
            .gate
            .iter()
            .map(|g| format!("{g:?}").to_lowercase())
            .collect();
        let _ = write!(label, " [gate: {}]", gates.join(", "));
    }
    if let Some(out) = &agent.out {
        let _ = write!(label, " -> {out}");
    }
    label
}

fn node_id(slug: &str) -> String {
    format!("a_{}", slug.replace('-', "_"))
}

fn escape_mermaid(text: &str) -> String {
    text.replace('"', "#quot;")
}

fn escape_dot(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

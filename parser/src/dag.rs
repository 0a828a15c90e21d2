//! The flight as a petgraph DAG: edges run from an upstream agent to the agent that waits for it.

use petgraph::Direction;
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use rustc_hash::FxHashMap;

use crate::flight::Agent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Needs,
    Continues,
}

/// Node weights are indexes into the flight's agent list.
#[derive(Debug, Clone)]
pub struct Dag {
    graph: DiGraph<usize, Edge>,
    order: Vec<usize>,
}

/// Agents that wait for each other, in flow order, the first repeated at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<usize>);

impl Dag {
    /// Builds the graph; unknown upstream names are skipped (validation reports them).
    pub fn build(agents: &[Agent]) -> Result<Self, Cycle> {
        let graph = graph_of(agents);
        match toposort(&graph, None) {
            Ok(nodes) => Ok(Self {
                order: nodes.into_iter().map(|n| graph[n]).collect(),
                graph,
            }),
            Err(_) => Err(find_cycles(agents)
                .into_iter()
                .next()
                .unwrap_or(Cycle(Vec::new()))),
        }
    }

    /// Agent indexes with every upstream before its downstreams.
    pub fn topological_order(&self) -> &[usize] {
        &self.order
    }

    pub fn upstreams(&self, agent: usize) -> Vec<(usize, Edge)> {
        self.neighbours(agent, Direction::Incoming)
    }

    pub fn downstreams(&self, agent: usize) -> Vec<(usize, Edge)> {
        self.neighbours(agent, Direction::Outgoing)
    }

    fn neighbours(&self, agent: usize, direction: Direction) -> Vec<(usize, Edge)> {
        let mut found: Vec<(usize, Edge)> = self
            .graph
            .edges_directed(NodeIndex::new(agent), direction)
            .map(|edge| {
                let other = match direction {
                    Direction::Incoming => edge.source(),
                    Direction::Outgoing => edge.target(),
                };
                (self.graph[other], *edge.weight())
            })
            .collect();
        found.sort_unstable_by_key(|(index, _)| *index);
        found
    }

    /// For each agent, the number of agents on the longest path from it to the end of the graph
    /// (itself included): the scheduler starts the agent with the most work behind it first.
    pub fn remaining_path_lengths(&self) -> Vec<usize> {
        let mut lengths = vec![1; self.graph.node_count()];
        for &agent in self.order.iter().rev() {
            let longest_after = self
                .downstreams(agent)
                .iter()
                .map(|(next, _)| lengths[*next])
                .max()
                .unwrap_or(0);
            lengths[agent] = 1 + longest_after;
        }
        lengths
    }

    /// How deep each agent sits: 0 for roots, else one more than its deepest upstream.
    pub fn depths(&self) -> Vec<usize> {
        let mut depths = vec![0; self.graph.node_count()];
        for &agent in &self.order {
            depths[agent] = self
                .upstreams(agent)
                .iter()
                .map(|(up, _)| depths[*up] + 1)
                .max()
                .unwrap_or(0);
        }
        depths
    }
}

fn graph_of(agents: &[Agent]) -> DiGraph<usize, Edge> {
    let links = agents.iter().map(|agent| agent.upstreams().count()).sum();
    let mut graph = DiGraph::with_capacity(agents.len(), links);
    for index in 0..agents.len() {
        graph.add_node(index);
    }
    // Fx rather than SipHash: slugs are short, and this map is rebuilt for every graph.
    let mut by_slug: FxHashMap<&str, usize> = FxHashMap::default();
    by_slug.reserve(agents.len());
    by_slug.extend(agents.iter().enumerate().map(|(i, a)| (a.slug.as_str(), i)));
    for (index, agent) in agents.iter().enumerate() {
        let edges = agent
            .needs
            .iter()
            .map(|slug| (slug, Edge::Needs))
            .chain(agent.continues.iter().map(|slug| (slug, Edge::Continues)));
        for (slug, kind) in edges {
            if let Some(&upstream) = by_slug.get(slug.as_str()) {
                graph.add_edge(NodeIndex::new(upstream), NodeIndex::new(index), kind);
            }
        }
    }
    graph
}

/// Whether any agent waits, directly or not, for itself. `upstreams[i]` lists the agents
/// that agent `i` waits for. A depth-first walk over plain index lists: cheap enough to run on
/// every parse, where [`find_cycles`] builds a graph to name the cycles.
pub(crate) fn has_cycle(upstreams: &[Vec<usize>]) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unseen,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::Unseen; upstreams.len()];
    // The walk's current path: each agent with how many of its upstreams were visited so far.
    let mut path: Vec<(usize, usize)> = Vec::new();
    for start in 0..upstreams.len() {
        if marks[start] != Mark::Unseen {
            continue;
        }
        marks[start] = Mark::OnPath;
        path.push((start, 0));
        while let Some((agent, visited)) = path.last_mut() {
            let Some(&up) = upstreams[*agent].get(*visited) else {
                marks[*agent] = Mark::Done;
                path.pop();
                continue;
            };
            *visited += 1;
            match marks[up] {
                Mark::OnPath => return true,
                Mark::Unseen => {
                    marks[up] = Mark::OnPath;
                    path.push((up, 0));
                }
                Mark::Done => {}
            }
        }
    }
    false
}

/// One concrete cycle per strongly connected component that has one.
pub fn find_cycles(agents: &[Agent]) -> Vec<Cycle> {
    let graph = graph_of(agents);
    let mut cycles: Vec<Cycle> = tarjan_scc(&graph)
        .into_iter()
        .filter(|component| component.len() > 1 || graph.contains_edge(component[0], component[0]))
        .map(|component| cycle_within(&graph, &component))
        .collect();
    cycles.sort_by_key(|cycle| cycle.0.first().copied());
    cycles
}

/// Depth-first from the component's first agent (in document order) back to itself.
fn cycle_within(graph: &DiGraph<usize, Edge>, component: &[NodeIndex]) -> Cycle {
    let start = *component.iter().min().expect("components are never empty");
    let mut path = vec![start];
    let mut visited = vec![start];
    while let Some(&current) = path.last() {
        let mut next_steps: Vec<NodeIndex> = graph
            .neighbors_directed(current, Direction::Outgoing)
            .filter(|n| component.contains(n))
            .collect();
        if next_steps.contains(&start) {
            path.push(start);
            break;
        }
        next_steps.retain(|n| !visited.contains(n));
        match next_steps.into_iter().min() {
            Some(n) => {
                visited.push(n);
                path.push(n);
            }
            None => {
                path.pop();
            }
        }
    }
    Cycle(path.into_iter().map(|n| graph[n]).collect())
}

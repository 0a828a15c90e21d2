//! Fan-out (`each`): a template agent resolves its item list once, records it, and becomes
//! one instance per item; it completes when every instance has.

use std::cmp::Reverse;

use murmur_parser::{Agent, FanOut, instance_slug};

use super::{AgentModel, RunModel};
use crate::event::Event;

/// Where an agent sits in a fan-out.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentKind {
    Plain,
    /// An `each` agent. `items` is known from the start for an inline list, otherwise once the
    /// list was resolved (by the engine or a planning agent) and recorded.
    Template {
        items: Option<Vec<String>>,
        instances: Vec<usize>,
    },
    Instance {
        template: usize,
        item: String,
    },
}

impl AgentKind {
    pub fn of(agent: &Agent) -> Self {
        match agent.fan_out() {
            None => AgentKind::Plain,
            Some(FanOut::Items(items)) => AgentKind::Template {
                items: Some(items),
                instances: Vec::new(),
            },
            Some(FanOut::FromValue(_) | FanOut::Describe(_)) => AgentKind::Template {
                items: None,
                instances: Vec::new(),
            },
        }
    }
}

impl RunModel {
    /// A template's item list when no work is needed to know it: inline, or recorded before
    /// (a retried or resumed template never resolves its list again).
    pub(super) fn known_items(&self, index: usize) -> Option<&[String]> {
        match &self.agents[index].kind {
            AgentKind::Template {
                items: Some(items), ..
            } => Some(items),
            _ => None,
        }
    }

    /// The instances of a template, in item order; empty for any other agent.
    pub fn instances(&self, index: usize) -> &[usize] {
        match &self.agents[index].kind {
            AgentKind::Template { instances, .. } => instances,
            _ => &[],
        }
    }

    /// After `AgentExpanded`: records the items and, the first time, creates the instances.
    pub(super) fn expand(&mut self, index: usize, event: &Event) {
        let Event::AgentExpanded { items, .. } = event else {
            return;
        };
        let AgentKind::Template {
            items: known,
            instances,
        } = &mut self.agents[index].kind
        else {
            return;
        };
        *known = Some(items.clone());
        if !instances.is_empty() || items.is_empty() {
            return;
        }
        let created: Vec<usize> = items
            .iter()
            .map(|item| self.add_instance(index, item))
            .collect();
        if let AgentKind::Template { instances, .. } = &mut self.agents[index].kind {
            *instances = created;
        }
    }

    fn add_instance(&mut self, template: usize, item: &str) -> usize {
        let slug = self.unused_slug(instance_slug(&self.agents[template].slug, item));
        let index = self.agents.len();
        let kind = AgentKind::Instance {
            template,
            item: item.to_owned(),
        };
        self.agents.push(AgentModel::new(slug.clone(), kind));
        self.by_slug.insert(slug, index);
        // Its upstreams are the template's, all done: the instance is ready at once.
        self.upstream.push(self.upstream[template].clone());
        self.downstream.push(Vec::new());
        self.priority.push(self.priority[template]);
        self.gate_lists.push(self.gate_lists[template].clone());
        self.budgets.push(self.budgets[template]);
        let rest = self.rest_of(template);
        if self.rests.len() == index {
            self.rests.push(rest);
        }
        self.inherit_pool(template, index);
        self.waiting_on.push(0);
        self.ready.insert((Reverse(self.priority[index]), index));
        index
    }

    /// Two items may fold into one slug (`Auth` and `auth`): later ones get `-2`, `-3`, ….
    fn unused_slug(&self, wanted: String) -> String {
        if !self.by_slug.contains_key(&wanted) {
            return wanted;
        }
        (2..)
            .map(|n| format!("{wanted}-{n}"))
            .find(|slug| !self.by_slug.contains_key(slug))
            .unwrap_or(wanted)
    }

    /// A fanned-out template once every instance finished: it succeeds with their answers when
    /// they all succeeded, and fails otherwise.
    pub(super) fn fan_in(&self, index: usize) -> Option<Event> {
        let template = &self.agents[index];
        let instances = self.instances(index);
        if instances
            .iter()
            .any(|&i| !self.agents[i].state.is_terminal())
        {
            return None;
        }
        let slug = template.slug.clone();
        let attempt = template.attempt;
        let unfinished = instances
            .iter()
            .map(|&i| &self.agents[i])
            .find(|instance| !instance.state.is_done());
        Some(match unfinished {
            None => Event::AgentSucceeded {
                slug,
                attempt,
                response: self.fan_in_response(instances),
                delivered: Default::default(),
            },
            Some(instance) => Event::AgentFailed {
                slug,
                attempt,
                error: format!("instance `{}` {}", instance.slug, instance.state),
            },
        })
    }

    /// The template's answer: each instance's, under its slug.
    fn fan_in_response(&self, instances: &[usize]) -> String {
        instances
            .iter()
            .map(|&i| &self.agents[i])
            .map(|instance| {
                format!(
                    "### {}\n\n{}\n",
                    instance.slug,
                    instance.response.as_deref().unwrap_or_default().trim()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

//! `murmur sleep` and `murmur wake`, recorded from any process: a request the driving process
//! carries out (it alone changes which machines its agents hold).

use super::Driver;
use crate::event::Event;
use crate::executor::Error;
use crate::state::AgentState;

impl Driver<'_> {
    /// Asks an idle agent's machine to sleep now (`sleep: true`), or a sleeping one to wake.
    pub async fn request_rest_now(&mut self, slug: &str, sleep: bool) -> Result<(), Error> {
        let index = self
            .model
            .index_of(slug)
            .ok_or_else(|| Error::NoAgent(slug.to_owned()))?;
        let agent = &self.model.agents()[index];
        let (wanted, event) = if sleep {
            (
                AgentState::Idle,
                Event::SleepRequested {
                    slug: agent.slug.clone(),
                },
            )
        } else {
            (
                AgentState::Sleeping,
                Event::WakeRequested {
                    slug: agent.slug.clone(),
                },
            )
        };
        if agent.state != wanted {
            return Err(Error::NotResting {
                slug: slug.to_owned(),
                state: agent.state,
                wanted,
            });
        }
        let mut batch = self.batch();
        self.stage(&mut batch, vec![event])?;
        self.checkpoint(batch).await
    }
}

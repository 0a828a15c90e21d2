//! Which pool each agent's machine comes from, and the machines the run holds in each. Pools
//! are numbers here (the driver names them); a model told nothing runs every agent on pool 0.

use super::RunModel;

impl RunModel {
    /// The pool of each flight agent (fan-out instances run on their template's).
    pub fn with_pools(mut self, pools: Vec<usize>) -> Self {
        let count = pools.iter().max().map_or(1, |&last| last + 1);
        self.pools = pools;
        self.running_in = vec![0; count];
        self
    }

    /// The pool agent `index` runs on.
    pub fn pool_of(&self, index: usize) -> usize {
        self.pools.get(index).copied().unwrap_or(0)
    }

    /// How many pools the run's agents use.
    pub fn pool_count(&self) -> usize {
        self.running_in.len()
    }

    /// Machines this run holds in each pool: running attempts and open checks.
    pub fn machines_in_use_by_pool(&self) -> Vec<usize> {
        if self.pool_count() == 1 {
            return vec![self.machines_in_use()];
        }
        let mut in_use = self.running_in.clone();
        for &index in &self.checking {
            if !self.holds_slot(index) && self.holds_machine(index) {
                in_use[self.pool_of(index)] += 1;
            }
        }
        in_use
    }

    /// A new instance of `template` runs on its pool.
    pub(super) fn inherit_pool(&mut self, template: usize, index: usize) {
        if self.pools.len() == index && !self.pools.is_empty() {
            self.pools.push(self.pool_of(template));
        }
    }

    /// Agent `index` started or stopped holding its slot.
    pub(super) fn count_slot(&mut self, index: usize, held: bool) {
        let pool = self.pool_of(index);
        if held {
            self.running_in[pool] += 1;
        } else {
            self.running_in[pool] -= 1;
        }
    }
}

//! Trying a placement's locations (subnets, zones) in order while they have no capacity.

use std::future::Future;

use crate::Error;

/// A location passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub location: String,
    pub reason: String,
}

/// Calls `attempt` for each location in turn until one succeeds or fails for a reason other
/// than capacity; returns its result with the locations skipped on the way. When every
/// location is out of capacity, the last capacity error is returned.
pub async fn try_locations<'l, T, F, Fut>(
    locations: &'l [String],
    mut attempt: F,
) -> Result<(T, Vec<Skipped>), Error>
where
    F: FnMut(&'l str) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut skipped = Vec::new();
    let mut last = None;
    for location in locations {
        match attempt(location).await {
            Ok(value) => return Ok((value, skipped)),
            Err(error) if error.is_capacity() => {
                skipped.push(Skipped {
                    location: location.clone(),
                    reason: error.to_string(),
                });
                last = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(last.unwrap_or_else(|| Error::Config {
        placement: String::new(),
        key: "locations".into(),
        problem: "is empty: name at least one subnet or zone".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity(location: &str) -> Error {
        Error::Capacity {
            location: location.into(),
            code: "InsufficientInstanceCapacity".into(),
            message: "none left".into(),
        }
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        // The attempts below never wait, so one poll with a no-op waker finishes them.
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(value) => value,
            std::task::Poll::Pending => panic!("an attempt that never waits is pending"),
        }
    }

    #[test]
    fn a_capacity_error_moves_on_to_the_next_location() {
        let locations = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let result = block_on(try_locations(&locations, |location| async move {
            if location == "a" {
                Err(capacity(location))
            } else {
                Ok(location.to_owned())
            }
        }));
        let (chosen, skipped) = result.expect("b has room");
        assert_eq!(chosen, "b");
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].location, "a");
        assert!(skipped[0].reason.contains("InsufficientInstanceCapacity"));
    }

    #[test]
    fn other_errors_stop_at_once_and_all_full_returns_the_last() {
        let locations = vec!["a".to_owned(), "b".to_owned()];
        let denied = block_on(try_locations(&locations, |_| async {
            Err::<(), _>(Error::Api {
                action: "RunInstances".into(),
                code: "InvalidAMIID.Malformed".into(),
                message: "bad".into(),
            })
        }));
        assert!(matches!(denied, Err(Error::Api { .. })));
        let full = block_on(try_locations(&locations, |l| async move {
            Err::<(), _>(capacity(l))
        }));
        assert!(matches!(full, Err(Error::Capacity { location, .. }) if location == "b"));
        let none = block_on(try_locations(
            &[],
            |l| async move { Err::<(), _>(capacity(l)) },
        ));
        assert!(matches!(none, Err(Error::Config { .. })));
    }
}

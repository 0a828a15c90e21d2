//! Pull requests on GitHub through its REST API (`POST /repos/{owner}/{repo}/pulls`).

use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("GitHub answered {status} to the pull request for {head}: {message}")]
    Refused {
        status: u16,
        head: String,
        message: String,
    },
    #[error("cannot reach GitHub's API at {api}: {reason}")]
    Unreachable { api: String, reason: String },
}

/// `owner/repo` of a GitHub remote URL (https, ssh or scp-like), else `None`.
pub fn repository_of(remote: &str) -> Option<(String, String)> {
    let path = remote
        .strip_prefix("https://github.com/")
        .or_else(|| remote.strip_prefix("ssh://git@github.com/"))
        .or_else(|| remote.strip_prefix("git@github.com:"))?;
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    let (owner, repo) = path.split_once('/')?;
    (!owner.is_empty() && !repo.is_empty() && !repo.contains('/'))
        .then(|| (owner.to_owned(), repo.to_owned()))
}

/// What to open: `head` is the pushed branch, `base` the branch to merge into.
pub struct NewPullRequest<'a> {
    pub api: &'a str,
    pub token: &'a str,
    pub owner: &'a str,
    pub repo: &'a str,
    pub title: &'a str,
    pub head: &'a str,
    pub base: &'a str,
    pub body: &'a str,
}

/// Opens the pull request and returns its web address. When one is already open for the
/// branch (a retried attempt), that one's address is returned.
pub async fn open(request: NewPullRequest<'_>) -> Result<String, Error> {
    let url = format!(
        "{}/repos/{}/{}/pulls",
        request.api.trim_end_matches('/'),
        request.owner,
        request.repo
    );
    let body = json!({"title": request.title, "head": request.head, "base": request.base, "body": request.body});
    let auth = format!("Bearer {}", request.token);
    let api = request.api.to_owned();
    let head = request.head.to_owned();
    let existing = format!("{url}?head={}:{}&state=open", request.owner, request.head);
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let unreachable = |e: ureq::Error| Error::Unreachable {
            api: api.clone(),
            reason: e.to_string(),
        };
        let mut response = agent
            .post(&url)
            .header("Authorization", &auth)
            .header("Accept", "application/vnd.github+json")
            .header("User-Agent", "murmur")
            .send_json(&body)
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let answer: Value = response.body_mut().read_json().unwrap_or(Value::Null);
        if status == 201 {
            return Ok(answer["html_url"].as_str().unwrap_or_default().to_owned());
        }
        if status == 422 {
            let mut found = agent
                .get(&existing)
                .header("Authorization", &auth)
                .header("User-Agent", "murmur")
                .call()
                .map_err(unreachable)?;
            let open: Value = found.body_mut().read_json().unwrap_or(Value::Null);
            if let Some(url) = open[0]["html_url"].as_str() {
                return Ok(url.to_owned());
            }
        }
        let message = answer["message"]
            .as_str()
            .unwrap_or("no message")
            .to_owned();
        Err(Error::Refused {
            status,
            head,
            message,
        })
    })
    .await
    .map_err(|e| Error::Unreachable {
        api: String::new(),
        reason: e.to_string(),
    })?
}

/// `(owner, repo, number)` of a pull request's web address.
pub fn pull_of(url: &str) -> Option<(String, String, u64)> {
    let path = url.strip_prefix("https://github.com/")?;
    let mut parts = path.trim_end_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(owner), Some(repo), Some("pull"), Some(number)) => {
            Some((owner.to_owned(), repo.to_owned(), number.parse().ok()?))
        }
        _ => None,
    }
}

/// Merges a pull request (`PUT /repos/{owner}/{repo}/pulls/{number}/merge`). One that is
/// already merged counts as merged, so a repeated gate check is harmless.
pub async fn merge(api: &str, token: &str, pull_url: &str) -> Result<(), Error> {
    let refused = |status: u16, message: String| Error::Refused {
        status,
        head: pull_url.to_owned(),
        message,
    };
    let (owner, repo, number) =
        pull_of(pull_url).ok_or_else(|| refused(0, "not a GitHub pull request address".into()))?;
    let base = format!(
        "{}/repos/{owner}/{repo}/pulls/{number}",
        api.trim_end_matches('/')
    );
    let auth = format!("Bearer {token}");
    let api = api.to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent
            .put(&format!("{base}/merge"))
            .header("Authorization", &auth)
            .header("Accept", "application/vnd.github+json")
            .header("User-Agent", "murmur")
            .send_json(json!({"merge_method": "merge"}))
            .map_err(|e| Error::Unreachable {
                api: api.clone(),
                reason: e.to_string(),
            })?;
        let status = response.status().as_u16();
        let body: Value = response.body_mut().read_json().unwrap_or(Value::Null);
        Ok::<_, Error>((status, body))
    })
    .await
    .map_err(|e| Error::Unreachable {
        api: String::new(),
        reason: e.to_string(),
    })??;
    match answer {
        (200, _) => Ok(()),
        (status, body) => {
            let message = body["message"].as_str().unwrap_or("no message").to_owned();
            if message.contains("already merged") {
                return Ok(());
            }
            Err(refused(status, message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{pull_of, repository_of};

    #[test]
    fn reads_pull_request_addresses() {
        assert_eq!(
            pull_of("https://github.com/acme/api/pull/42"),
            Some(("acme".into(), "api".into(), 42))
        );
        assert_eq!(pull_of("https://github.com/acme/api/issues/42"), None);
        assert_eq!(pull_of("local:abc"), None);
    }

    #[test]
    fn recognises_github_remotes() {
        let acme = Some(("acme".to_owned(), "api".to_owned()));
        assert_eq!(repository_of("https://github.com/acme/api.git"), acme);
        assert_eq!(repository_of("https://github.com/acme/api"), acme);
        assert_eq!(repository_of("git@github.com:acme/api.git"), acme);
        assert_eq!(repository_of("ssh://git@github.com/acme/api.git"), acme);
        assert_eq!(repository_of("https://gitlab.com/acme/api.git"), None);
        assert_eq!(repository_of("/srv/git/api.git"), None);
    }
}

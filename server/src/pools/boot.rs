//! A VM's boot: the script that starts `murmur worker` on it, and the one-time bootstrap
//! credential the script carries (user-data is readable from inside the VM, so the credential
//! is worth nothing once the worker has exchanged it for the machine's own).

/// The boot script of a machine of `pool`: EC2 user-data or the GCE `startup-script`. The
/// credential goes in the environment, not on the command line other processes can read.
pub fn script(server_url: &str, bootstrap: &str, pool: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # Murmur: this VM is a machine of pool {pool}; its worker connects out to the server.\n\
         # The credential below registers it once and is refused afterwards.\n\
         MURMUR_WORKER_TOKEN={token}\n\
         export MURMUR_WORKER_TOKEN\n\
         exec murmur worker --server {url} --pool {quoted_pool}\n",
        pool = pool.escape_debug(),
        token = quote(bootstrap),
        url = quote(server_url),
        quoted_pool = quote(pool),
    )
}

/// A fresh bootstrap credential.
pub fn credential() -> String {
    format!("murb_{}", uuid::Uuid::new_v4().simple())
}

/// `text` as one word of `sh`, whatever it holds.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_keeps_hostile_values_single_words() {
        let script = script("http://h:1/'; rm -rf / #", "murb_x", "p$(id)");
        let exec = script.lines().last().expect("exec line");
        assert_eq!(
            exec,
            r"exec murmur worker --server 'http://h:1/'\''; rm -rf / #' --pool 'p$(id)'"
        );
        assert!(script.contains("MURMUR_WORKER_TOKEN='murb_x'\n"));
        assert!(
            !exec.contains("murb_x"),
            "the credential is not an argument"
        );
    }

    #[test]
    fn credentials_differ() {
        assert_ne!(credential(), credential());
        assert!(credential().starts_with("murb_"));
    }
}

//! The dashboard in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over WebDriver against the real `murmur serve` binary. It logs in,
//! watches runs change live, reads a live log, approves a gate, cancels and retries a run,
//! checks that hostile agent output shows as text, and times a 1,000-agent run's page.
//! Screenshots of each page go to `target/dashboard-screenshots/`. Every wait is for a DOM
//! condition, with a deadline.

#[path = "dashboard/proxy.rs"]
mod proxy;
mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use support::{http, serve, setup};

const DEADLINE: Duration = Duration::from_secs(90);

/// `build` prints, waits for `GO`, prints again and answers with hostile markup; `ship` waits
/// for a person's approval.
fn gate_flight(go: &Path) -> String {
    format!(
        "---\nruntime: exec\n---\n# Gate\n\n## build\n> command: echo 'first line'; echo '<script>window.pwned=1</script>'; until [ -e {go} ]; do sleep 0.05; done; echo 'second line'; echo; echo '<img src=x onerror=\"window.pwned=2\">'\n\n## ship\n> needs: build\n> gate: approve\n> command: echo shipped\n",
        go = go.display()
    )
}

fn hold_flight(release: &Path) -> String {
    format!(
        "---\nruntime: exec\n---\n# Hold\n\n## hold\n> command: until [ -e {} ]; do sleep 0.05; done; echo released\n",
        release.display()
    )
}

/// About 1,000 lines a second for three seconds.
const CHATTY: &str = "---\nruntime: exec\n---\n# Chatty\n\n## talk\n> command: i=0; while [ $i -lt 30 ]; do seq 100 | sed \"s/^/tick $i /\"; i=$((i+1)); sleep 0.1; done; echo done\n";

/// Prints 1 to 19, waits for the file `cut`, prints 20 to 40.
fn count_flight(cut: &Path) -> String {
    format!(
        "---\nruntime: exec\n---\n# Count\n\n## count\n> command: i=1; while [ $i -le 40 ]; do echo \"count $i\"; i=$((i+1)); if [ $i -eq 20 ]; then until [ -e {} ]; do sleep 0.05; done; fi; done; echo counted\n",
        cut.display()
    )
}

const FAN: &str = "---\nruntime: exec\n---\n# Fan\n\n## plan\n> command: seq 1 1000\n\n## part\n> needs: plan\n> each: ${{ needs.plan.response }}\n> command: echo part\n\n## sum\n> needs: part\n> command: echo sum\n";

/// A chromedriver on a free local port, ended when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (apt-get install chromium chromium-driver)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let line = lines
                .next()
                .expect("chromedriver says it started")
                .expect("line");
            if line.contains("started successfully") {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Page {
    client: Client,
    base: String,
    shots: PathBuf,
}

impl Page {
    async fn open(driver: &Driver, base: String) -> Self {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a browser session");
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots");
        std::fs::create_dir_all(&shots).expect("screenshot folder");
        Self {
            client,
            base,
            shots,
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("navigate");
    }

    async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(DEADLINE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` within {DEADLINE:?}: {e}"))
    }

    /// Waits for a line of the agent log containing `text`.
    async fn wait_log(&self, text: &str) {
        let xpath = format!("//div[@id='log']/div[contains(., '{text}')]");
        self.client
            .wait()
            .at_most(DEADLINE)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no log line `{text}`: {e}"));
    }

    /// Clicks what `css` finds; an element redrawn between finding and clicking (the run
    /// page redraws its graph as the run changes) is found again.
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let clicked = self.wait(css).await.click().await;
            match clicked {
                Ok(()) => return,
                Err(error) if Instant::now() < deadline && error.to_string().contains("stale") => {}
                Err(error) => panic!("click {css}: {error}"),
            }
        }
    }

    async fn script(&self, js: &str) -> Value {
        self.client.execute(js, vec![]).await.expect("script")
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// The run id of the run page the browser shows.
    async fn run_id(&self) -> String {
        self.wait("#run-status").await;
        let url = self.client.current_url().await.expect("url");
        url.path().trim_start_matches("/runs/").to_owned()
    }
}

fn start(address: &str, token: &str, flight: &str) -> String {
    let auth = format!("Bearer {token}");
    let (status, body) = http(
        address,
        "POST",
        &format!("/v1/flights/{flight}/runs"),
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(status, 202, "{body}");
    let value: Value = serde_json::from_str(&body).expect("json");
    value["run_id"].as_str().expect("run_id").to_owned()
}

/// Reads the run's event stream to its end: the run has ended.
fn wait_run(address: &str, token: &str, id: &str) -> String {
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Accept", "text/event-stream"),
    ];
    http(
        address,
        "GET",
        &format!("/v1/runs/{id}/events"),
        &headers,
        "",
    )
    .1
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_in_a_real_browser() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (go, release) = (dir.path().join("go"), dir.path().join("release"));
    let (repo, token) = setup(&gate_flight(&go));
    let flights = repo.path().join(".murmur/flights");
    std::fs::write(flights.join("hold.md"), hold_flight(&release)).expect("flight");
    std::fs::write(flights.join("chatty.md"), CHATTY).expect("flight");
    std::fs::write(flights.join("fan.md"), FAN).expect("flight");
    let cut = dir.path().join("cut");
    std::fs::write(flights.join("count.md"), count_flight(&cut)).expect("flight");
    let (mut server, address) = serve(repo.path());
    let driver = Driver::start();
    let page = Page::open(&driver, format!("http://{address}")).await;

    log_in(&page, &token).await;
    let held = runs_appear_live(&page, &address, &token).await;
    approve_from_the_page(&page, &go).await;
    cancel_and_retry(&page, &held, &release).await;
    a_busy_log_keeps_the_page_responsive(&page, &address, &token).await;
    a_dropped_stream_resumes_where_it_broke_off(&page, &address, &token, &cut).await;
    a_thousand_agents_load_quickly(&page, &address, &token).await;
    runs_filter(&page, &held).await;
    page.goto("/machines").await;
    page.wait("tr[data-pool='local']").await;
    page.shot("machines").await;

    page.client.close().await.expect("close the browser");
    drop(driver);
    server.kill().expect("stop");
    server.wait().expect("reaped");
}

async fn log_in(page: &Page, token: &str) {
    page.goto("/").await;
    let field = page.wait("#token").await;
    page.shot("login").await;
    field.send_keys(token).await.expect("type the token");
    page.click("#login").await;
    page.wait("#runs").await;
    let url = page.client.current_url().await.expect("url");
    assert!(
        !url.as_str().contains(token),
        "the token never sits in a URL: {url}"
    );
    let cookie = page.script("return document.cookie").await;
    assert_eq!(
        cookie,
        json!(""),
        "the session cookie is HttpOnly: scripts cannot read it"
    );
}

/// A run started elsewhere shows on the open runs page without a reload.
async fn runs_appear_live(page: &Page, address: &str, token: &str) -> String {
    page.script("window.notReloaded = true").await;
    let id = start(address, token, "hold");
    page.wait(&format!("tr[data-run='{id}'][data-status='running']"))
        .await;
    assert_eq!(
        page.script("return window.notReloaded === true").await,
        json!(true)
    );
    page.shot("runs").await;
    page.goto("/flights").await;
    page.wait("tr[data-flight='job']").await;
    page.shot("flights").await;
    id
}

async fn approve_from_the_page(page: &Page, go: &Path) {
    page.goto("/flights/job").await;
    page.wait("#diagnostics").await;
    page.shot("flight").await;
    page.click("#start-run").await;
    let id = page.run_id().await;
    page.click("g[data-slug='build'][data-state='running']")
        .await;
    page.wait_log("first line").await;
    page.script("window.notReloaded = true").await;
    page.shot("run-running").await;
    std::fs::write(go, "go\n").expect("release build");
    page.wait_log("second line").await;
    page.wait("g[data-slug='build'][data-state='completed']")
        .await;
    page.wait("g[data-slug='ship'][data-state='checks-pending'].approval")
        .await;
    assert_eq!(
        page.script("return window.notReloaded === true").await,
        json!(true),
        "live, not reloaded"
    );
    // Hostile output is text: nothing ran, no element was made of it.
    page.wait_log("<script>window.pwned=1</script>").await;
    let response = page.wait("#response").await.text().await.expect("text");
    assert!(response.contains("<img src=x onerror="), "{response}");
    let harmless = "return window.pwned === undefined && document.querySelectorAll('img, #log script').length === 0";
    assert_eq!(
        page.script(harmless).await,
        json!(true),
        "agent output made no markup"
    );
    page.shot("run-xss-as-text").await;
    page.click("g[data-slug='ship']").await;
    page.wait("#approval-comment")
        .await
        .send_keys("looks good")
        .await
        .expect("type");
    page.shot("run-approval").await;
    page.click("#approve").await;
    page.wait("#run-status[data-status='completed']").await;
    page.wait("g[data-slug='ship'][data-state='completed']")
        .await;
    page.shot("run-completed").await;
    // A follow-up from the page: the agent works again, and its new lines stream in.
    page.click("g[data-slug='build']").await;
    page.wait("#follow-up-text")
        .await
        .send_keys("once more")
        .await
        .expect("type");
    page.click("#queue").await;
    page.client
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::XPath("//div[@id='log']/div[@data-attempt='2']"))
        .await
        .expect("the follow-up's output in the log");
    page.wait("#run-status[data-status='completed']").await;
    page.shot("run-follow-up").await;
    assert!(!id.is_empty());
}

async fn cancel_and_retry(page: &Page, id: &str, release: &Path) {
    page.goto(&format!("/runs/{id}")).await;
    page.wait("g[data-slug='hold'][data-state='running']").await;
    page.click("#cancel").await;
    page.wait("#run-status[data-status='canceled']").await;
    page.shot("run-canceled").await;
    page.click("#retry").await;
    page.wait("g[data-slug='hold'][data-state='running']").await;
    std::fs::write(release, "go\n").expect("release hold");
    page.wait("#run-status[data-status='completed']").await;
    page.shot("run-retried").await;
}

async fn a_busy_log_keeps_the_page_responsive(page: &Page, address: &str, token: &str) {
    let id = start(address, token, "chatty");
    page.goto(&format!("/runs/{id}")).await;
    page.click("g[data-slug='talk']").await;
    page.wait_log("tick 2 ").await;
    // The longest gap between animation frames over two seconds of streaming.
    let gaps = "const done = arguments[arguments.length - 1]; let last = performance.now(), worst = 0; \
        const end = last + 2000; const frame = (now) => { worst = Math.max(worst, now - last); last = now; \
        if (now < end) requestAnimationFrame(frame); else done(worst); }; requestAnimationFrame(frame);";
    let worst = page
        .client
        .execute_async(gaps, vec![])
        .await
        .expect("frames");
    let worst = worst.as_f64().expect("ms");
    let lines = page
        .script("return document.querySelectorAll('#log .line').length")
        .await;
    println!(
        "dashboard: live log at ~1,000 lines/s: longest frame gap {worst:.0} ms, {lines} lines shown"
    );
    // A frozen page misses frames for seconds; a busy two-core machine, a few hundred ms.
    assert!(worst < 1000.0, "the page froze for {worst} ms");
    page.wait_log("done").await;
    page.shot("run-busy-log").await;
}

async fn a_thousand_agents_load_quickly(page: &Page, address: &str, token: &str) {
    let id = start(address, token, "fan");
    let events = wait_run(address, token, &id);
    assert!(
        events.contains("event: run_completed"),
        "the fan-out completes"
    );
    let started = Instant::now();
    page.goto(&format!("/runs/{id}")).await;
    page.wait("g[data-slug='part'][data-instances='1000']")
        .await;
    let waited = started.elapsed();
    let browser = page
        .script("return performance.now()")
        .await
        .as_f64()
        .expect("ms");
    let data = page
        .script("return performance.getEntriesByType('resource').filter((e) => e.name.includes('/ui/runs/')).map((e) => e.duration)[0] ?? -1")
        .await
        .as_f64()
        .unwrap_or(-1.0);
    println!(
        "dashboard: the page of a 1,000-agent run loaded in {browser:.0} ms (browser clock; its data request {data:.0} ms), {} ms with WebDriver",
        waited.as_millis()
    );
    assert!(browser < 1000.0, "a 1,000-agent run page took {browser} ms");
    page.shot("run-1000-agents").await;
    page.click("g[data-slug='part']").await;
    page.wait("#instances li button").await;
    page.shot("run-1000-instances").await;
}

/// The run page's stream is cut mid-run; it reconnects with `Last-Event-ID`, so every line
/// shows exactly once.
async fn a_dropped_stream_resumes_where_it_broke_off(
    page: &Page,
    address: &str,
    token: &str,
    cut: &Path,
) {
    let proxy = proxy::Proxy::start(address);
    let id = start(address, token, "count");
    // Cookies do not depend on the port: the session holds through the proxy.
    page.client
        .goto(&format!("http://{}/runs/{id}", proxy.address))
        .await
        .expect("navigate");
    page.click("g[data-slug='count']").await;
    page.wait_log("count 19").await;
    page.wait("#live.live").await;
    proxy.cut();
    std::fs::write(cut, "go\n").expect("let it count on");
    page.wait_log("count 40").await;
    page.wait("#run-status[data-status='completed']").await;
    let counts = "const lines = [...document.querySelectorAll('#log .line')].map((l) => l.textContent); \
        return Array.from({ length: 40 }, (_, i) => lines.filter((l) => l === `count ${i + 1}`).length);";
    let counts = page.script(counts).await;
    assert_eq!(
        counts,
        json!(vec![1; 40]),
        "every line once, none lost or repeated"
    );
    let reconnects = page
        .script("return document.getElementById('live').dataset.reconnects")
        .await;
    assert_ne!(
        reconnects,
        json!("0"),
        "the stream was cut and connected again"
    );
    page.shot("run-resumed").await;
}

/// The filters narrow the list, as the address says.
async fn runs_filter(page: &Page, held: &str) {
    page.goto("/?status=completed&flight=hold").await;
    page.wait(&format!("tr[data-run='{held}'][data-status='completed']"))
        .await;
    let others = "return [...document.querySelectorAll('#runs tr[data-run]')] \
        .filter((r) => r.dataset.status !== 'completed' || r.children[2].textContent !== 'hold').length";
    assert_eq!(
        page.script(others).await,
        json!(0),
        "only completed runs of hold"
    );
    page.goto("/?status=failed").await;
    page.wait("#runs td.muted").await;
    page.shot("runs-filtered").await;
}

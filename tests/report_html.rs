//! `clnrm run --html FILE` of the example project together with the failing one,
//! opened in headless Chromium as a reader would: the page loads without a console
//! error, and every failing test is on the first screen of a laptop (1366×768).
//! The screenshot it takes is the one in the README (`CLNRM_UPDATE_DOCS=1` writes it
//! to docs/html-report.png).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clnrm_test_support::{containers_required, notice};
use common::{docker_ready, repo, TestProject};

const LAPTOP: &str = "--window-size=1366,768";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Headless Chromium on `page` with `args`; None (with a notice) when it is not installed.
fn chromium(page: &Path, args: &[&str]) -> Option<Output> {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            LAPTOP,
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output();
    match out {
        Ok(out) => Some(out),
        Err(err) => {
            if containers_required() {
                panic!("chromium is missing under CI (.ci/run installs it): {err}");
            }
            notice(&format!(
                "skipping the browser check: chromium cannot start: {err}"
            ));
            None
        }
    }
}

/// Console messages Chromium logged for a page (`--enable-logging=stderr --v=0`).
fn console_messages(page: &Path) -> Option<Vec<String>> {
    let out = chromium(page, &["--enable-logging=stderr", "--v=0", "--dump-dom"])?;
    assert!(
        out.status.success(),
        "chromium failed on {}",
        page.display()
    );
    Some(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|line| line.contains(":CONSOLE"))
            .map(str::to_string)
            .collect(),
    )
}

#[test]
fn the_html_report_shows_failures_on_the_first_screen_without_console_errors() {
    if !docker_ready() {
        return;
    }
    // fixtures/example plus fixtures/failing, as one project named `example`.
    let project = TestProject::new();
    copy_dir(&repo().join("fixtures/example"), &project.path("example"));
    copy_dir(
        &repo().join("fixtures/failing/tests"),
        &project.path("example/tests/failing"),
    );
    let report = project.path("report.html");
    let run = project.clnrm(&["run", "example", "--html", report.to_str().unwrap()]);
    run.expect_code(1);
    let html = std::fs::read_to_string(&report).expect("the report is written");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing is fetched"
    );
    for test in [
        "mismatch",
        "timeout",
        "continue",
        "greet_hello",
        "built",
        "web",
    ] {
        assert!(html.contains(test), "{test} is in the report");
    }

    // The detector sees console errors: a page with one is caught.
    let broken = project.path("broken.html");
    std::fs::write(
        &broken,
        "<p>x</p><script>console.error('probe'); missing();</script>",
    )
    .unwrap();
    let Some(caught) = console_messages(&broken) else {
        return;
    };
    assert_eq!(caught.len(), 2, "the detector sees both errors: {caught:?}");
    let Some(messages) = console_messages(&report) else {
        return;
    };
    assert!(messages.is_empty(), "console messages: {messages:?}");

    // Where the failing tests are once laid out on a laptop screen: a copy of the page
    // with a probe that writes what it measured into the DOM.
    let probed = project.path("probed.html");
    let probe = "<script>\
        const rows = [...document.querySelectorAll('tr.test.fail, tr.test.error')];\
        const seen = rows.filter(r => r.getBoundingClientRect().bottom <= window.innerHeight);\
        document.body.setAttribute('data-probe', seen.length + '/' + rows.length + ' of ' + window.innerHeight);\
        </script></body>";
    std::fs::write(&probed, html.replace("</body>", probe)).unwrap();
    let dom = chromium(&probed, &["--dump-dom"]).unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    let measured = dom
        .split("data-probe=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the probe ran");
    // Chromium's window of 1366×768 keeps room for its own bar: the page gets a
    // little less than 768 pixels, as on a real laptop.
    let (counts, viewport) = measured.split_once(" of ").unwrap();
    let viewport: u32 = viewport.parse().unwrap();
    assert!((600..=768).contains(&viewport), "viewport {viewport}");
    assert_eq!(
        counts, "3/3",
        "failing tests on the first screen of {viewport} pixels"
    );

    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("html-report.png");
    let shot = chromium(
        &report,
        &[&format!("--screenshot={}", screenshot.display())],
    )
    .unwrap();
    assert!(shot.status.success());
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert_eq!(&png[1..4], b"PNG");
    let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((size(16), size(20)), (1366, 768), "a laptop screen");
    if std::env::var_os("CLNRM_UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(repo().join("docs")).unwrap();
        std::fs::copy(&screenshot, repo().join("docs/html-report.png")).unwrap();
    }
}
